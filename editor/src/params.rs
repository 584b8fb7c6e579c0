//! Param widgets generated from [`ParamSpec`]s: drag values with ranges, checkboxes, combo
//! boxes, text fields, seeds with a randomise button and a lock toggle, and path fields with a
//! button that opens the file or folder picker.

use std::hash::{BuildHasher, Hasher};

use egui::{Color32, RichText, Ui};
use unilip_core::{ParamKind, ParamSpec, ParamValue};

/// Largest seed the widgets produce (seeds are stored as non-negative `i64`).
const SEED_MAX: i64 = i64::MAX;

/// What the user did with a param widget.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamEdit {
    /// Changed the value.
    Set(ParamValue),
    /// Asked for the file or folder picker (File and Dir params).
    Browse,
}

/// Shows the widget of one param and returns what the user did with it, if anything.
/// `error` (from validation) is shown under the widget. For Seed params, `locked` is the state
/// of the lock toggle shown next to the randomise button (flipped when the user clicks it);
/// other kinds leave it alone.
pub fn param_widget(
    ui: &mut Ui,
    node: &str,
    spec: &ParamSpec,
    value: Option<&ParamValue>,
    error: Option<&str>,
    locked: &mut bool,
) -> Option<ParamEdit> {
    let value = value.unwrap_or(&spec.default).clone();
    let id = ui.id().with((node, &spec.name));
    let mut out = None;
    ui.horizontal(|ui| {
        ui.label(&spec.name).on_hover_text(&spec.doc);
        out = match spec.kind {
            ParamKind::Int | ParamKind::Float => number(ui, spec, &value).map(ParamEdit::Set),
            ParamKind::Seed => seed(ui, spec, &value, locked).map(ParamEdit::Set),
            ParamKind::Bool => {
                let mut b = matches!(value, ParamValue::Bool(true));
                ui.checkbox(&mut b, "")
                    .changed()
                    .then_some(ParamEdit::Set(ParamValue::Bool(b)))
            }
            ParamKind::Enum => {
                let current = value.as_str().unwrap_or_default().to_string();
                let mut chosen = current.clone();
                egui::ComboBox::from_id_salt(id)
                    .selected_text(&chosen)
                    .show_ui(ui, |ui| {
                        for c in &spec.choices {
                            ui.selectable_value(&mut chosen, c.clone(), c);
                        }
                    });
                (chosen != current).then_some(ParamEdit::Set(ParamValue::Str(chosen)))
            }
            ParamKind::String => {
                let mut s = value.as_str().unwrap_or_default().to_string();
                let r = ui.add(
                    egui::TextEdit::singleline(&mut s)
                        .id(id)
                        .desired_width(180.0),
                );
                r.changed().then_some(ParamEdit::Set(ParamValue::Str(s)))
            }
            ParamKind::FilePath | ParamKind::DirPath => path(ui, id, spec, &value),
            ParamKind::Text => {
                let mut s = value.as_str().unwrap_or_default().to_string();
                let r = ui.add(
                    egui::TextEdit::multiline(&mut s)
                        .id(id)
                        .desired_rows(3)
                        .desired_width(220.0),
                );
                r.changed().then_some(ParamEdit::Set(ParamValue::Str(s)))
            }
        };
    });
    if let Some(e) = error {
        ui.label(RichText::new(e).color(Color32::LIGHT_RED).small());
    }
    out
}

/// A path text field and a button that asks for the picker.
fn path(ui: &mut Ui, id: egui::Id, spec: &ParamSpec, value: &ParamValue) -> Option<ParamEdit> {
    let (hint, tip) = match spec.kind {
        ParamKind::DirPath => ("folder path", "Choose a folder"),
        _ => ("file path", "Choose a file"),
    };
    let mut s = value.as_str().unwrap_or_default().to_string();
    let r = ui.add(
        egui::TextEdit::singleline(&mut s)
            .id(id)
            .hint_text(hint)
            .desired_width(180.0),
    );
    if ui.small_button("🗁").on_hover_text(tip).clicked() {
        return Some(ParamEdit::Browse);
    }
    r.changed().then_some(ParamEdit::Set(ParamValue::Str(s)))
}

fn number(ui: &mut Ui, spec: &ParamSpec, value: &ParamValue) -> Option<ParamValue> {
    let is_int = spec.kind == ParamKind::Int;
    let mut x = value.as_f64().unwrap_or(0.0);
    let mut drag = egui::DragValue::new(&mut x).speed(if is_int { 1.0 } else { 0.01 });
    if let Some((lo, hi)) = spec.range {
        drag = drag.range(lo..=hi);
    }
    if is_int {
        drag = drag.fixed_decimals(0);
    }
    if !ui.add(drag).changed() {
        return None;
    }
    Some(if is_int {
        ParamValue::Int(x.round() as i64)
    } else {
        ParamValue::Float(x)
    })
}

fn seed(
    ui: &mut Ui,
    spec: &ParamSpec,
    value: &ParamValue,
    locked: &mut bool,
) -> Option<ParamValue> {
    let mut x = match value {
        ParamValue::Int(i) => *i,
        _ => 0,
    };
    let mut changed = ui
        .add(egui::DragValue::new(&mut x).range(0..=SEED_MAX))
        .on_hover_text(&spec.doc)
        .changed();
    if ui
        .small_button("🎲")
        .on_hover_text("Randomise the seed")
        .clicked()
    {
        x = random_seed();
        changed = true;
    }
    let (icon, tip) = if *locked {
        ("🔒", "Locked: \"Randomise seeds\" keeps this seed")
    } else {
        ("🔓", "Unlocked: \"Randomise seeds\" changes this seed")
    };
    if ui.small_button(icon).on_hover_text(tip).clicked() {
        *locked = !*locked;
    }
    changed.then_some(ParamValue::Int(x))
}

/// A random non-negative seed from the OS-seeded hasher (no RNG crate needed).
pub fn random_seed() -> i64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() >> 1) as i64
}
