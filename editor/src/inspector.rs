//! The right-hand panel: the selected node's description and outputs at a larger size, the
//! validation errors of the graph, and the run queue.

use egui::{Color32, RichText, Ui};
use unilip_core::{Registry, Value};

use crate::document::Document;
use crate::run::{JobStatus, RunState};

/// Largest side of an image in the inspector, in points.
const VIEWER_SIZE: f32 = 320.0;

/// Shows the inspector for the `selected` nodes.
pub fn inspector_ui(ui: &mut Ui, doc: &Document, run: &mut RunState, selected: &[String]) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("Inspector");
        match selected {
            [] => {
                ui.weak("Select a node to inspect its outputs.");
            }
            [id] => node_details(ui, doc, run, id),
            many => {
                ui.label(format!("{} nodes selected", many.len()));
            }
        }
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
    });
}

fn node_details(ui: &mut Ui, doc: &Document, run: &RunState, id: &str) {
    let Some(node) = doc.doc().nodes.get(id) else {
        return;
    };
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
    let Some(values) = run.outputs.get(id) else {
        return;
    };
    for v in values {
        ui.separator();
        ui.label(RichText::new(&v.port).strong());
        if let Some(s) = v.value.summary() {
            ui.monospace(s.to_string());
        }
        if let Some(tex) = &v.texture {
            ui.add(egui::Image::new(tex).max_size(egui::vec2(VIEWER_SIZE, VIEWER_SIZE)));
        } else if let Value::Text(t) = &v.value {
            ui.monospace(t);
        } else {
            ui.monospace(v.value.describe());
        }
    }
}
