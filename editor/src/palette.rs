//! The node palette, generated from the registry's schemas: a search field and the node types
//! by category, with descriptions as tooltips.

use std::collections::BTreeMap;

use egui::Ui;
use unilip_core::{NodeSchema, Registry};

/// Shows the palette; returns the type id the user clicked. `accept` filters the offered types
/// (e.g. only those with an input compatible with a dropped wire).
pub fn palette_ui(
    ui: &mut Ui,
    search: &mut String,
    accept: &dyn Fn(&NodeSchema) -> bool,
) -> Option<String> {
    ui.add(
        egui::TextEdit::singleline(search)
            .hint_text("Search nodes")
            .desired_width(f32::INFINITY),
    );
    let needle = search.trim().to_lowercase();
    let mut by_cat: BTreeMap<&str, Vec<&NodeSchema>> = BTreeMap::new();
    for s in Registry::global().schemas().filter(|s| accept(s)) {
        let hit = needle.is_empty()
            || s.id.to_lowercase().contains(&needle)
            || s.description.to_lowercase().contains(&needle)
            || s.category.to_lowercase().contains(&needle);
        if hit {
            by_cat.entry(s.category.as_str()).or_default().push(s);
        }
    }
    if by_cat.is_empty() {
        ui.weak("no matching node types");
        return None;
    }
    let mut picked = None;
    egui::ScrollArea::vertical()
        .max_height(ui.available_height().max(200.0))
        .show(ui, |ui| {
            for (cat, schemas) in by_cat {
                egui::CollapsingHeader::new(cat)
                    .default_open(true)
                    .id_salt(("palette-cat", cat, !needle.is_empty()))
                    .show(ui, |ui| {
                        for s in schemas {
                            if ui.button(&s.id).on_hover_text(&s.description).clicked() {
                                picked = Some(s.id.clone());
                            }
                        }
                    });
            }
        });
    picked
}
