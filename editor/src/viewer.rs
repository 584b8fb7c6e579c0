//! The image viewer: a resizable window showing an image output at full resolution, fitted to
//! the window or at 1:1 (one image pixel per screen pixel, scrollable), with a picker for the
//! image of a batch. It follows the output: a new run of the node shows the new image.

use std::sync::Arc;

use egui::{TextureFilter, TextureHandle, TextureOptions, Ui};
use unilip_core::{ImageBatch, Value};

use crate::images::color_image;
use crate::run::RunState;

/// How the image is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zoom {
    /// As large as fits the window, keeping the aspect ratio.
    Fit,
    /// One image pixel per screen pixel.
    Actual,
}

/// The image on display and its full-size texture.
struct Viewed {
    node: String,
    port: String,
    index: usize,
    /// The batch the texture was made from (a new run replaces it).
    source: Option<Arc<ImageBatch>>,
    texture: Option<TextureHandle>,
}

/// State of the image viewer window.
pub struct ImageViewer {
    viewed: Option<Viewed>,
    /// Current zoom.
    pub zoom: Zoom,
}

impl Default for ImageViewer {
    fn default() -> Self {
        Self {
            viewed: None,
            zoom: Zoom::Fit,
        }
    }
}

impl ImageViewer {
    /// Shows output `port` of `node` (its first image).
    pub fn open(&mut self, node: &str, port: &str) {
        self.viewed = Some(Viewed {
            node: node.into(),
            port: port.into(),
            index: 0,
            source: None,
            texture: None,
        });
    }

    /// The output on display, as (node, port).
    pub fn showing(&self) -> Option<(&str, &str)> {
        self.viewed
            .as_ref()
            .map(|v| (v.node.as_str(), v.port.as_str()))
    }

    /// Size in pixels of the texture on display (the full image, not a thumbnail).
    pub fn texture_size(&self) -> Option<[usize; 2]> {
        self.viewed.as_ref()?.texture.as_ref().map(|t| t.size())
    }

    /// Shows the window while an output is chosen.
    pub fn show(&mut self, ctx: &egui::Context, run: &RunState) {
        let Some(v) = &mut self.viewed else {
            return;
        };
        let batch = run
            .outputs
            .get(&v.node)
            .and_then(|values| values.iter().find(|s| s.port == v.port))
            .and_then(|s| match &s.value {
                Value::Image(img) => Some(img.clone()),
                _ => None,
            });
        let mut open = true;
        egui::Window::new(format!("{}.{}", v.node, v.port))
            .id(egui::Id::new("unilip-image-viewer"))
            .open(&mut open)
            .resizable(true)
            .default_size([640.0, 520.0])
            .show(ctx, |ui| match batch {
                Some(batch) => view(ui, v, &mut self.zoom, batch),
                None => {
                    ui.weak("No image: run the graph to see this output.");
                }
            });
        if !open {
            self.viewed = None;
        }
    }
}

/// The toolbar and the image.
fn view(ui: &mut Ui, v: &mut Viewed, zoom: &mut Zoom, batch: Arc<ImageBatch>) {
    ui.horizontal(|ui| {
        ui.selectable_value(zoom, Zoom::Fit, "Fit");
        ui.selectable_value(zoom, Zoom::Actual, "1:1");
        ui.separator();
        if batch.n > 1 {
            if ui.small_button("◀").clicked() && v.index > 0 {
                v.index -= 1;
                v.texture = None;
            }
            ui.label(format!("image {}/{}", v.index + 1, batch.n));
            if ui.small_button("▶").clicked() && v.index + 1 < batch.n {
                v.index += 1;
                v.texture = None;
            }
            ui.separator();
        }
        ui.label(format!("{}×{} px", batch.w, batch.h));
    });
    if v.source.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &batch)) {
        v.index = v.index.min(batch.n.saturating_sub(1));
        v.texture = None;
    }
    let texture = v.texture.get_or_insert_with(|| {
        // Sharp pixels when enlarged, smooth when shrunk.
        let options = TextureOptions {
            magnification: TextureFilter::Nearest,
            ..TextureOptions::LINEAR
        };
        ui.ctx().load_texture(
            "unilip-image-viewer",
            color_image(&batch, v.index, usize::MAX),
            options,
        )
    });
    v.source = Some(batch);
    let image = egui::Image::new(&*texture).alt_text("full-size image");
    match zoom {
        Zoom::Fit => {
            let size = ui.available_size();
            ui.add(image.fit_to_exact_size(size).maintain_aspect_ratio(true));
        }
        Zoom::Actual => {
            let scale = 1.0 / ui.ctx().pixels_per_point();
            egui::ScrollArea::both().show(ui, |ui| {
                ui.add(image.fit_to_original_size(scale));
            });
        }
    }
}
