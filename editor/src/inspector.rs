//! The right-hand panel: the selected node's description and outputs at a larger size (a click
//! on an image opens the viewer), the validation errors of the graph, and the run queue.

use egui::{Color32, RichText, Ui};
use unilip_core::{Registry, Value};

use crate::canvas::Action;
use crate::document::Document;
use crate::run::{JobStatus, RunState};

/// Largest side of an image in the inspector, in points.
const VIEWER_SIZE: f32 = 320.0;

/// Shows the inspector for the `selected` nodes. Returns the action asked for by a click on an
/// output image (open it in the viewer).
pub fn inspector_ui(
    ui: &mut Ui,
    doc: &Document,
    run: &mut RunState,
    selected: &[String],
) -> Option<Action> {
    egui::ScrollArea::vertical()
        .show(ui, |ui| {
            ui.heading("Inspector");
            let action = match selected {
                [] => {
                    ui.weak("Select a node to inspect its outputs.");
                    None
                }
                [id] => node_details(ui, doc, run, id),
                many => {
                    ui.label(format!("{} nodes selected", many.len()));
                    None
                }
            };
            validation_and_runs(ui, doc, run);
            action
        })
        .inner
}

/// Validation errors and the run queue.
fn validation_and_runs(ui: &mut Ui, doc: &Document, run: &mut RunState) {
    ui.separator();
    ui.heading("Validation");
    if doc.errors().is_empty() {
        ui.label(RichText::new("graph is valid").color(Color32::LIGHT_GREEN));
    }
    for e in doc.errors() {
        ui.label(
            RichText::new(e.to_string())
                .color(Color32::LIGHT_RED)
                .small(),
        );
    }
    ui.separator();
    ui.heading("Runs");
    ui.horizontal(|ui| {
        ui.label("Output folder:");
        let mut dir = run.out_dir.display().to_string();
        if ui.text_edit_singleline(&mut dir).changed() {
            run.out_dir = dir.into();
        }
    });
    for job in run.jobs.iter().rev().take(20) {
        let (text, color) = match &job.status {
            JobStatus::Queued => ("queued".to_string(), Color32::GRAY),
            JobStatus::Running => ("running".into(), Color32::YELLOW),
            JobStatus::Done(d) => (format!("done in {d:.2?}"), Color32::LIGHT_GREEN),
            JobStatus::Failed(m) => (format!("failed: {m}"), Color32::LIGHT_RED),
            JobStatus::Cancelled => ("cancelled".into(), Color32::GRAY),
        };
        ui.label(RichText::new(format!("#{} {} — {text}", job.id, job.label)).color(color));
    }
}

/// Description, errors and outputs of node `id`; a click on an output image asks for the
/// viewer.
fn node_details(ui: &mut Ui, doc: &Document, run: &RunState, id: &str) -> Option<Action> {
    let node = doc.doc().nodes.get(id)?;
    ui.label(RichText::new(id).strong());
    ui.label(RichText::new(&node.type_id).monospace());
    match Registry::global().get(&node.type_id) {
        Some(def) => {
            ui.label(&def.schema().description);
        }
        None => {
            ui.colored_label(
                Color32::LIGHT_RED,
                "unknown node type: kept as a placeholder",
            );
        }
    }
    for e in doc.errors_for(id) {
        ui.colored_label(Color32::LIGHT_RED, e.to_string());
    }
    let mut action = None;
    for v in run.outputs.get(id)? {
        ui.separator();
        ui.label(RichText::new(&v.port).strong());
        if let Some(s) = v.value.summary() {
            ui.monospace(s.to_string());
        }
        if let Some(tex) = &v.texture {
            let image = egui::Image::new(tex)
                .max_size(egui::vec2(VIEWER_SIZE, VIEWER_SIZE))
                .sense(egui::Sense::click());
            if ui.add(image).on_hover_text("Click to enlarge").clicked() {
                action = Some(Action::ViewImage {
                    node: id.to_string(),
                    port: v.port.clone(),
                });
            }
        } else if let Value::Text(t) = &v.value {
            ui.monospace(t);
        } else {
            ui.monospace(v.value.describe());
        }
    }
    action
}
