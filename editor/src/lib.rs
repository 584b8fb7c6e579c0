//! The UniLIP visual node editor: an eframe app with an egui-snarl canvas over the core's
//! [`unilip_core::GraphDoc`]. The document is the only state that is saved; the snarl is a view
//! rebuilt from it, because snarl node ids are reused slab indices, its wires serialise in
//! random order and its pins are positional.
//!
//! Modules: [`document`] (the document, edits, undo), [`history`] (snapshots), [`canvas`]
//! (snarl viewer and sync), [`palette`], [`params`] (param widgets), [`worker`] and [`run`]
//! (background runs), [`sweep`] (the sweep window) with [`chart`] (its bar charts),
//! [`viewer`] (the image viewer) with [`images`] (image batches as egui images),
//! [`inspector`], [`files`] (file and folder pickers), [`recent`] (recent files kept across
//! sessions), [`app`] (the window).

pub mod app;
pub mod canvas;
pub mod chart;
pub mod document;
pub mod files;
pub mod history;
pub mod images;
pub mod inspector;
pub mod palette;
pub mod params;
pub mod recent;
pub mod run;
pub mod sweep;
pub mod viewer;
pub mod worker;

use std::path::PathBuf;

pub use app::EditorApp;
pub use canvas::Action;
pub use document::Document;

/// Opens the editor window on `path` (or an empty graph) and blocks until it is closed.
/// Node types must be linked in already (call `unilip_nodes::link()` first).
pub fn run_editor(path: Option<PathBuf>) -> Result<(), String> {
    unilip_nodes::link();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 860.0])
            .with_title("UniLIP editor"),
        ..Default::default()
    };
    eframe::run_native(
        "UniLIP editor",
        options,
        Box::new(move |cc| Ok(Box::new(EditorApp::new(&cc.egui_ctx, path)))),
    )
    .map_err(|e| e.to_string())
}
