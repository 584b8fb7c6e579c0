//! File handling UI: a small built-in open/save-as dialog with a folder browser (no native
//! dialog dependency), and recognising dropped files.

use std::path::{Path, PathBuf};

use egui::Ui;

/// What the file dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// Open a `.ron` graph or a PNG with an embedded graph.
    Open,
    /// Save the graph under a new name.
    SaveAs,
}

/// State of the open/save-as dialog.
pub struct FileDialog {
    /// Purpose.
    pub mode: FileMode,
    /// Folder being browsed.
    pub dir: PathBuf,
    /// File name or full path typed by the user.
    pub name: String,
}

impl FileDialog {
    /// A dialog starting next to `current` (or in the working directory).
    pub fn new(mode: FileMode, current: Option<&Path>) -> Self {
        let dir = current
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let name = match mode {
            FileMode::SaveAs => current
                .and_then(Path::file_name)
                .map_or("graph.ron".into(), |n| n.to_string_lossy().into_owned()),
            FileMode::Open => String::new(),
        };
        Self { mode, dir, name }
    }

    /// Shows the dialog window. Returns `Some(Some(path))` when confirmed, `Some(None)` when
    /// cancelled, `None` while still open.
    pub fn show(&mut self, ctx: &egui::Context) -> Option<Option<PathBuf>> {
        let mut result = None;
        let title = match self.mode {
            FileMode::Open => "Open graph",
            FileMode::SaveAs => "Save graph as",
        };
        egui::Window::new(title)
            .collapsible(false)
            .default_width(420.0)
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.label("Folder:");
                    ui.monospace(self.dir.display().to_string());
                    if ui
                        .small_button("⬆")
                        .on_hover_text("Parent folder")
                        .clicked()
                    {
                        self.dir = self.dir.join("..");
                    }
                });
                self.listing(ui);
                ui.horizontal(|ui| {
                    ui.label("File:");
                    ui.text_edit_singleline(&mut self.name);
                });
                ui.horizontal(|ui| {
                    let ok = match self.mode {
                        FileMode::Open => "Open",
                        FileMode::SaveAs => "Save",
                    };
                    if ui.button(ok).clicked() && !self.name.trim().is_empty() {
                        result = Some(Some(self.dir.join(self.name.trim())));
                    }
                    if ui.button("Cancel").clicked() {
                        result = Some(None);
                    }
                });
            });
        result
    }

    fn listing(&mut self, ui: &mut Ui) {
        let mut entries: Vec<(bool, String)> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| {
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    (is_dir, e.file_name().to_string_lossy().into_owned())
                })
                .filter(|(is_dir, name)| *is_dir || is_graph_file(Path::new(name)))
                .collect(),
            Err(e) => {
                ui.colored_label(egui::Color32::LIGHT_RED, e.to_string());
                return;
            }
        };
        entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        egui::ScrollArea::vertical()
            .max_height(240.0)
            .show(ui, |ui| {
                for (is_dir, name) in entries {
                    let label = if is_dir {
                        format!("📁 {name}")
                    } else {
                        name.clone()
                    };
                    if ui.selectable_label(self.name == name, label).clicked() {
                        if is_dir {
                            self.dir = self.dir.join(&name);
                        } else {
                            self.name = name;
                        }
                    }
                }
            });
    }
}

/// Whether the editor can open this file (`.ron`, or `.png` that may hold a graph).
pub fn is_graph_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ron") || e.eq_ignore_ascii_case("png"))
}
