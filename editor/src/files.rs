//! File pickers: opening and saving graphs, File and Dir params (images, checkpoint folders),
//! and the sweep's CSV export, all through one in-app dialog, plus recognising dropped files.
//!
//! The dialog is the `egui-file-dialog` crate (egui 0.36 compatible, maintained): quick access
//! to home/documents/drives, path editing, search, filters, new folders, keyboard navigation and
//! an overwrite prompt. A native dialog (`rfd`) was not chosen: it needs GTK or an xdg desktop
//! portal at run time, which headless and minimal Linux machines (ours included) lack, so it
//! would need a second fallback UI anyway, and it cannot be driven by the kittest UI tests. Every
//! path param keeps its text field next to the picker button.

use std::path::{Path, PathBuf};

use egui_file_dialog::{DialogState, FileDialog, FileDialogConfig, OpeningMode};
use unilip_core::{ParamKind, ParamSpec};

/// What a picked path is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickTarget {
    /// Open it as the graph.
    OpenGraph,
    /// Save the graph there.
    SaveGraph,
    /// Set this File or Dir param.
    Param {
        /// Node id.
        node: String,
        /// Param name.
        name: String,
    },
    /// Export the sweep results there.
    SweepCsv,
}

/// The editor's file picker: one in-app dialog reconfigured for each pick. Pinned folders,
/// hidden-file settings and the last visited folder carry over between picks.
pub struct FilePicker {
    dialog: FileDialog,
    target: Option<PickTarget>,
}

impl Default for FilePicker {
    fn default() -> Self {
        Self {
            dialog: FileDialog::new(),
            target: None,
        }
    }
}

impl FilePicker {
    /// Whether the dialog is showing.
    pub fn is_open(&self) -> bool {
        self.target.is_some() && *self.dialog.state() == DialogState::Open
    }

    /// What the open dialog is for.
    pub fn target(&self) -> Option<&PickTarget> {
        self.target.as_ref().filter(|_| self.is_open())
    }

    /// Opens the dialog to pick a graph (`.ron`, or a PNG with an embedded graph), starting in
    /// the folder of `current`.
    pub fn open_graph(&mut self, current: Option<&Path>) {
        let config = config("Open graph", current.and_then(Path::parent))
            .add_file_filter_extensions("Graphs (.ron, .png)", vec!["ron", "png"]);
        self.start(
            PickTarget::OpenGraph,
            FileDialogConfig {
                default_file_filter: Some("Graphs (.ron, .png)".into()),
                ..config
            },
            FileDialog::pick_file,
        );
    }

    /// Opens the dialog to choose where to save the graph, proposing `current`'s name.
    pub fn save_graph(&mut self, current: Option<&Path>) {
        let name = current
            .and_then(Path::file_name)
            .map_or("graph.ron".into(), |n| n.to_string_lossy().into_owned());
        let config = config("Save graph as", current.and_then(Path::parent))
            .add_save_extension("RON graph", "ron");
        self.start(
            PickTarget::SaveGraph,
            FileDialogConfig {
                default_file_name: name,
                default_save_extension: Some("RON graph".into()),
                ..config
            },
            FileDialog::save_file,
        );
    }

    /// Opens the dialog for a File or Dir param of `node` whose value is `current`. Other kinds
    /// are ignored.
    pub fn param(&mut self, node: &str, spec: &ParamSpec, current: &str) {
        let target = PickTarget::Param {
            node: node.into(),
            name: spec.name.clone(),
        };
        let current = Path::new(current);
        let title = format!("{node}.{}", spec.name);
        match spec.kind {
            ParamKind::FilePath => {
                let config = config(&title, current.parent())
                    .add_file_filter_extensions("Images", vec!["png", "jpg", "jpeg"]);
                self.start(target, config, FileDialog::pick_file);
            }
            ParamKind::DirPath => {
                // A folder value opens in itself, so its siblings are one click away.
                let start = current.is_dir().then_some(current).or(current.parent());
                self.start(target, config(&title, start), FileDialog::pick_directory);
            }
            _ => {}
        }
    }

    /// Opens the dialog to choose where the sweep's CSV goes, starting at `current`.
    pub fn sweep_csv(&mut self, current: &Path) {
        let name = current
            .file_name()
            .map_or("results.csv".into(), |n| n.to_string_lossy().into_owned());
        let config =
            config("Export sweep results", current.parent()).add_save_extension("CSV", "csv");
        self.start(
            PickTarget::SweepCsv,
            FileDialogConfig {
                default_file_name: name,
                default_save_extension: Some("CSV".into()),
                ..config
            },
            FileDialog::save_file,
        );
    }

    fn start(&mut self, target: PickTarget, config: FileDialogConfig, open: fn(&mut FileDialog)) {
        let storage = self.dialog.storage_mut().clone();
        self.dialog = FileDialog::with_config(config).storage(storage);
        open(&mut self.dialog);
        self.target = Some(target);
    }

    /// Shows the dialog while it is open. Returns the target and the path once the user picked
    /// one (cancelling returns nothing and closes the dialog).
    pub fn show(&mut self, ctx: &egui::Context) -> Option<(PickTarget, PathBuf)> {
        self.target.as_ref()?;
        self.dialog.update(ctx);
        match self.dialog.state() {
            DialogState::Open => None,
            DialogState::Picked(_) => {
                let path = self.dialog.take_picked()?;
                Some((self.target.take()?, path))
            }
            _ => {
                self.target = None;
                None
            }
        }
    }
}

/// A dialog titled `title` that starts in `dir` when it exists (else where the user was last).
fn config(title: &str, dir: Option<&Path>) -> FileDialogConfig {
    let dir = dir.filter(|d| d.is_dir());
    let base = FileDialogConfig::default();
    FileDialogConfig {
        title: Some(title.into()),
        id: Some(egui::Id::new("unilip-file-picker")),
        opening_mode: if dir.is_some() {
            OpeningMode::AlwaysInitialDir
        } else {
            OpeningMode::LastVisitedDir
        },
        initial_directory: dir.map_or(base.initial_directory.clone(), Path::to_path_buf),
        ..base
    }
}

/// Whether the editor can open this file (`.ron`, or `.png` that may hold a graph).
pub fn is_graph_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ron") || e.eq_ignore_ascii_case("png"))
}
