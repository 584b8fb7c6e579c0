//! The editor application: panels, menus and shortcuts around the canvas, and the action API
//! that both the UI callbacks and the tests call.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Color32, RichText, Ui};
use unilip_core::{atomic_write, GraphDoc, ParamValue, PortRef, Registry};

use crate::canvas::{group_color, Action, Canvas, DroppedWire, SeedLocks};
use crate::document::{read_graph_file, Document};
use crate::files::{is_graph_file, FilePicker, PickTarget};
use crate::inspector::inspector_ui;
use crate::palette::palette_ui;
use crate::recent::{default_store, RecentFiles};
use crate::run::RunState;
use crate::sweep::SweepPanel;
use crate::viewer::ImageViewer;

/// How often a dirty document is written to its autosave file.
const AUTOSAVE_EVERY: Duration = Duration::from_secs(30);

/// A message in the status bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Text.
    pub text: String,
    /// Whether it reports a problem (a refused connection, a failed save...).
    pub error: bool,
}

/// The whole editor state.
pub struct EditorApp {
    /// The open document.
    pub doc: Document,
    /// Runs, node states and outputs.
    pub run: RunState,
    canvas: Canvas,
    palette_search: String,
    /// Latest status message.
    pub notice: Option<Notice>,
    /// The file and folder picker (open, save as, path params, CSV export).
    pub picker: FilePicker,
    /// Recently opened or saved files, kept across sessions.
    pub recent: RecentFiles,
    /// The sweep window.
    pub sweep: SweepPanel,
    /// The image viewer window.
    pub viewer: ImageViewer,
    /// Seed params locked against [`Self::randomise_seeds`] (editor memory, not saved).
    pub seed_locks: SeedLocks,
    /// An autosave newer than the opened file, offered for recovery.
    recovery: Option<PathBuf>,
    last_autosave: Instant,
    confirm_close: bool,
    title: String,
    added: usize,
}

impl EditorApp {
    /// A new editor on an empty graph, or on `path` (errors are shown in the status bar), with
    /// the recent-files list of the user's config folder.
    pub fn new(ctx: &egui::Context, path: Option<PathBuf>) -> Self {
        Self::with_recent_store(ctx, path, default_store())
    }

    /// Like [`Self::new`], with the recent-files list kept in `recent_store` (`None`: in
    /// memory only).
    pub fn with_recent_store(
        ctx: &egui::Context,
        path: Option<PathBuf>,
        recent_store: Option<PathBuf>,
    ) -> Self {
        let mut app = Self {
            doc: Document::default(),
            run: RunState::new(ctx),
            canvas: Canvas::default(),
            palette_search: String::new(),
            notice: None,
            picker: FilePicker::default(),
            recent: RecentFiles::load(recent_store),
            sweep: SweepPanel::default(),
            viewer: ImageViewer::default(),
            seed_locks: SeedLocks::new(),
            recovery: None,
            last_autosave: Instant::now(),
            confirm_close: false,
            title: String::new(),
            added: 0,
        };
        if let Some(p) = path {
            app.open(&p);
        }
        app
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
        });
    }

    /// Opens a `.ron` graph or a PNG made by Save Image.
    pub fn open(&mut self, path: &Path) -> bool {
        match Document::open(path) {
            Ok((doc, notes)) => {
                self.doc = doc;
                self.run.outputs.clear();
                self.run.states.clear();
                self.seed_locks.clear();
                self.recovery = autosave_path(Some(path)).filter(|a| newer(a, path));
                let mut text = format!("opened {}", path.display());
                for n in notes {
                    text.push_str(&format!("; {n}"));
                }
                self.say_remembered(text, path);
                true
            }
            Err(e) => {
                self.say(format!("cannot open: {e}"), true);
                false
            }
        }
    }

    /// Saves to `path`, or to the current file when `None`.
    pub fn save(&mut self, path: Option<&Path>) -> bool {
        match self.doc.save(path) {
            Ok(p) => {
                if let Some(a) = autosave_path(Some(&p)) {
                    let _ = std::fs::remove_file(a);
                }
                self.say_remembered(format!("saved {}", p.display()), &p);
                true
            }
            Err(e) => {
                if path.is_none() && self.doc.path().is_none() {
                    self.picker.save_graph(None);
                }
                self.say(format!("cannot save: {e}"), true);
                false
            }
        }
    }

    /// Starts an empty graph (undoable).
    pub fn new_graph(&mut self) {
        self.seed_locks.clear();
        self.doc.replace(GraphDoc::default());
    }

    /// Adds `path` to the recent files and shows `text`, with the reason when the list could
    /// not be saved.
    fn say_remembered(&mut self, text: String, path: &Path) {
        match self.recent.remember(path) {
            Ok(()) => self.say(text, false),
            Err(e) => self.say(format!("{text}; {e}"), true),
        }
    }

    /// Puts `nodes` in a new group titled `title` (undoable). Returns the group's index.
    pub fn group_nodes(&mut self, nodes: &[String], title: &str) -> Option<usize> {
        let r = self.doc.group(nodes, title);
        if r.is_none() {
            self.say("select nodes to group first", true);
        }
        r
    }

    /// Gives every unlocked Seed param a new random value (one undo step).
    pub fn randomise_seeds(&mut self) {
        let locks = &self.seed_locks;
        let n = self
            .doc
            .randomise_seeds(|node, name| locks.contains(&(node.to_string(), name.to_string())));
        self.say(format!("randomised {n} seed(s)"), false);
    }

    /// Locks or unlocks a Seed param against [`Self::randomise_seeds`].
    pub fn set_seed_lock(&mut self, node: &str, name: &str, locked: bool) {
        let key = (node.to_string(), name.to_string());
        if locked {
            self.seed_locks.insert(key);
        } else {
            self.seed_locks.remove(&key);
        }
    }

    /// Adds a node from the palette next to the previous one. Returns its id.
    pub fn add_node(&mut self, type_id: &str) -> Result<String, String> {
        self.added += 1;
        let k = (self.added % 10) as f32;
        let pos = (40.0 + 40.0 * k, 40.0 + 30.0 * k);
        let r = self.doc.add_node(type_id, pos);
        if let Err(e) = &r {
            self.say(e.clone(), true);
        }
        r
    }

    /// Connects `from` (output) to `to` (input); a refusal is shown in the status bar.
    pub fn connect(&mut self, from: PortRef, to: PortRef) -> Result<(), String> {
        let r = self.doc.connect(from, to);
        if let Err(e) = &r {
            self.say(e.clone(), true);
        }
        r
    }

    /// Sets a param.
    pub fn set_param(&mut self, node: &str, name: &str, value: ParamValue) {
        self.doc.set_param(node, name, value);
    }

    /// Opens the file or folder picker for the File or Dir param `name` of `node`.
    pub fn browse(&mut self, node: &str, name: &str) {
        let Some(n) = self.doc.doc().nodes.get(node) else {
            return;
        };
        let Some(spec) = Registry::global()
            .get(&n.type_id)
            .and_then(|d| d.schema().param(name))
        else {
            return;
        };
        let current = n
            .params
            .get(name)
            .and_then(ParamValue::as_str)
            .unwrap_or_default()
            .to_string();
        self.picker.param(node, spec, &current);
    }

    /// Uses a path chosen in the picker for what it was opened for.
    pub fn picked(&mut self, target: PickTarget, path: &Path) {
        match target {
            PickTarget::OpenGraph => {
                self.open(path);
            }
            PickTarget::SaveGraph => {
                self.save(Some(path));
            }
            PickTarget::Param { node, name } => {
                // A pick is one undo step of its own, not merged with typing in the field.
                self.doc.break_merge();
                let value = ParamValue::Str(path.display().to_string());
                self.set_param(&node, &name, value);
            }
            PickTarget::SweepCsv => {
                self.sweep.csv_path = path.display().to_string();
                let _ = self.sweep.export_csv(&self.run, path);
            }
        }
    }

    /// Queues a run of every output node (or of what `target` needs).
    pub fn run(&mut self, target: Option<&str>) {
        match self.run.submit(&self.doc, target) {
            Ok(id) => self.say(format!("run #{id} queued"), false),
            Err(e) => self.say(e, true),
        }
    }

    /// Cancels running and queued runs.
    pub fn cancel(&mut self) {
        self.run.cancel_all();
        self.say("cancelling", false);
    }

    /// Applies one canvas action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Add { type_id, pos, wire } => {
                let Ok(id) = self.doc.add_node(&type_id, pos) else {
                    return;
                };
                if let Some(wire) = wire {
                    self.wire_new_node(&id, wire);
                }
            }
            Action::Remove(ids) => {
                self.seed_locks.retain(|(node, _)| !ids.contains(node));
                self.doc.remove_nodes(&ids);
            }
            Action::Duplicate(ids) => {
                self.doc.duplicate(&ids);
            }
            Action::Connect { from, to } => {
                let _ = self.connect(from, to);
            }
            Action::Disconnect { from, to } => self.doc.disconnect(&from, &to),
            Action::DropWires { port, input } => self.doc.disconnect_all(&port, input),
            Action::SetParam { node, name, value } => self.set_param(&node, &name, value),
            Action::RunUpTo(node) => self.run(Some(&node)),
            Action::Group { nodes, title } => {
                self.group_nodes(&nodes, &title);
            }
            Action::RenameGroup { index, title } => self.doc.rename_group(index, &title),
            Action::Ungroup(index) => self.doc.ungroup(index),
            Action::LockSeed { node, name, locked } => self.set_seed_lock(&node, &name, locked),
            Action::Browse { node, name } => self.browse(&node, &name),
            Action::ViewImage { node, port } => self.viewer.open(&node, &port),
        }
    }

    /// Connects a node added from a dropped wire to the first compatible port.
    fn wire_new_node(&mut self, id: &str, wire: DroppedWire) {
        let ports = self.doc.ports(id);
        match wire {
            DroppedWire::FromOutput(from) => {
                for p in ports.inputs {
                    if self
                        .doc
                        .connect(from.clone(), PortRef::new(id, &p.name))
                        .is_ok()
                    {
                        return;
                    }
                }
            }
            DroppedWire::FromInput(to) => {
                for p in ports.outputs {
                    if self
                        .doc
                        .connect(PortRef::new(id, &p.name), to.clone())
                        .is_ok()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Draws one frame of the editor into `ui`.
    pub fn ui(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        self.run.poll(&ctx);
        self.handle_input(&ctx);
        self.update_title(&ctx);
        self.autosave();

        egui::Panel::top("menu").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("palette")
            .default_size(200.0)
            .resizable(true)
            .show(ui, |ui| {
                ui.heading("Nodes");
                if let Some(t) = palette_ui(ui, &mut self.palette_search, &|_| true) {
                    let _ = self.add_node(&t);
                }
            });
        let selected = self.canvas.selected(&ctx);
        egui::Panel::right("inspector")
            .default_size(300.0)
            .resizable(true)
            .show(ui, |ui| {
                let actions = groups_ui(ui, &self.doc);
                for a in actions {
                    self.apply(a);
                }
                if let Some(a) = inspector_ui(ui, &self.doc, &mut self.run, &selected) {
                    self.apply(a);
                }
            });
        egui::CentralPanel::no_frame().show(ui, |ui| {
            let actions = self.canvas.show(ui, &self.doc, &self.run, &self.seed_locks);
            let down = ui.input(|i| i.pointer.any_down());
            self.canvas.read_back(&mut self.doc, down);
            for a in actions {
                self.apply(a);
            }
        });
        if self.sweep.show(&ctx, &self.doc, &mut self.run) {
            self.picker.sweep_csv(Path::new(self.sweep.csv_path.trim()));
        }
        self.viewer.show(&ctx, &self.run);
        self.dialogs(&ctx);
        if self.run.busy() {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn top_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.menu_button("File", |ui| {
                if ui.button("New").clicked() {
                    self.new_graph();
                    ui.close();
                }
                if ui.button("Open…").clicked() {
                    self.picker.open_graph(self.doc.path());
                    ui.close();
                }
                if ui.button("Save").clicked() {
                    self.save(None);
                    ui.close();
                }
                if ui.button("Save As…").clicked() {
                    self.picker.save_graph(self.doc.path());
                    ui.close();
                }
                ui.menu_button("Recent", |ui| {
                    if self.recent.list.is_empty() {
                        ui.weak("none yet");
                    }
                    for p in self.recent.list.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            self.open(&p);
                            ui.close();
                        }
                    }
                });
            });
            let (can_undo, can_redo) = self.doc.can_undo_redo();
            if ui
                .add_enabled(can_undo, egui::Button::new("Undo"))
                .clicked()
            {
                self.doc.undo();
            }
            if ui
                .add_enabled(can_redo, egui::Button::new("Redo"))
                .clicked()
            {
                self.doc.redo();
            }
            ui.separator();
            if ui
                .button("▶ Run")
                .on_hover_text("Run every output node")
                .clicked()
            {
                self.run(None);
            }
            let selected = self.canvas.selected(ui.ctx());
            if let [one] = selected.as_slice() {
                if ui.button("▶ Run to selected").clicked() {
                    let one = one.clone();
                    self.run(Some(&one));
                }
            }
            if ui
                .add_enabled(self.run.busy(), egui::Button::new("■ Cancel"))
                .clicked()
            {
                self.cancel();
            }
            if ui
                .selectable_label(self.sweep.open, "📊 Sweep")
                .on_hover_text("Run the graph over a grid of param values")
                .clicked()
            {
                self.sweep.open = !self.sweep.open;
            }
            ui.separator();
            if ui
                .add_enabled(!selected.is_empty(), egui::Button::new("▣ Group selected"))
                .on_hover_text("Frame the selected nodes in a titled group")
                .clicked()
            {
                let title = format!("Group {}", self.doc.doc().view.groups.len() + 1);
                self.group_nodes(&selected, &title);
            }
            if ui
                .button("🎲 Randomise seeds")
                .on_hover_text("New random value for every unlocked seed")
                .clicked()
            {
                self.randomise_seeds();
            }
            ui.separator();
            let name = self
                .doc
                .path()
                .map_or("untitled".into(), |p| p.display().to_string());
            let dirty = if self.doc.is_dirty() { " •" } else { "" };
            ui.label(format!("{name}{dirty}"));
        });
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            if let Some(n) = &self.notice {
                let color = if n.error {
                    Color32::LIGHT_RED
                } else {
                    Color32::GRAY
                };
                ui.label(RichText::new(&n.text).color(color));
            }
            if let Some(a) = self.recovery.clone() {
                ui.separator();
                ui.colored_label(Color32::YELLOW, "An autosave newer than this file exists.");
                if ui.button("Recover").clicked() {
                    match read_graph_file(&a) {
                        Ok(d) => {
                            self.doc.replace(d);
                            self.say("recovered the autosave", false);
                        }
                        Err(e) => self.say(e, true),
                    }
                    self.recovery = None;
                }
                if ui.button("Discard").clicked() {
                    let _ = std::fs::remove_file(&a);
                    self.recovery = None;
                }
            }
        });
    }

    fn dialogs(&mut self, ctx: &egui::Context) {
        if let Some((target, path)) = self.picker.show(ctx) {
            self.picked(target, &path);
        }
        if self.confirm_close {
            egui::Window::new("Unsaved changes")
                .collapsible(false)
                .show(ctx, |ui| {
                    ui.label("The graph has unsaved changes.");
                    ui.horizontal(|ui| {
                        if ui.button("Save and quit").clicked() && self.save(None) {
                            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                        }
                        if ui.button("Quit without saving").clicked() {
                            self.doc.forget_changes();
                            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                        }
                        if ui.button("Cancel").clicked() {
                            self.confirm_close = false;
                        }
                    });
                });
        }
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested()) && self.doc.is_dirty() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm_close = true;
        }
        // The picker takes dropped files and keys (navigation, search) while it is open.
        if self.picker.is_open() {
            return;
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if let Some(p) = dropped.into_iter().find(|p| is_graph_file(p)) {
            self.open(&p);
        }
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        use egui::{Key, KeyboardShortcut, Modifiers};
        let sc = |m, k| KeyboardShortcut::new(m, k);
        let cmd = Modifiers::COMMAND;
        if ctx.input_mut(|i| i.consume_shortcut(&sc(cmd | Modifiers::SHIFT, Key::Z))) {
            self.doc.redo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&sc(cmd, Key::Z))) {
            self.doc.undo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&sc(cmd, Key::Y))) {
            self.doc.redo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&sc(cmd, Key::S))) {
            self.save(None);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&sc(cmd, Key::O))) {
            self.picker.open_graph(self.doc.path());
        }
        let selected = self.canvas.selected(ctx);
        if ctx.input_mut(|i| i.consume_shortcut(&sc(cmd, Key::D))) && !selected.is_empty() {
            self.doc.duplicate(&selected);
        }
        if !selected.is_empty()
            && ctx.input(|i| i.key_pressed(Key::Delete) || i.key_pressed(Key::Backspace))
        {
            self.apply(Action::Remove(selected.clone()));
        }
        let (copy, paste) = ctx.input(|i| {
            let mut copy = false;
            let mut paste = None;
            for e in &i.events {
                match e {
                    egui::Event::Copy => copy = true,
                    egui::Event::Paste(t) => paste = Some(t.clone()),
                    _ => {}
                }
            }
            (copy, paste)
        });
        if copy && !selected.is_empty() {
            ctx.copy_text(self.doc.copy(&selected));
        }
        if let Some(text) = paste {
            if let Err(e) = self.doc.paste(&text) {
                self.say(format!("paste: {e}"), true);
            }
        }
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let name = self
            .doc
            .path()
            .and_then(Path::file_name)
            .map_or("untitled".into(), |n| n.to_string_lossy().into_owned());
        let title = format!(
            "{name}{} — UniLIP editor",
            if self.doc.is_dirty() { " •" } else { "" }
        );
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    fn autosave(&mut self) {
        if !self.doc.is_dirty() || self.last_autosave.elapsed() < AUTOSAVE_EVERY {
            return;
        }
        self.last_autosave = Instant::now();
        if let Some(a) = autosave_path(self.doc.path()) {
            if let Err(e) = atomic_write(&a, self.doc.doc().to_ron().as_bytes()) {
                self.say(format!("autosave failed: {e}"), true);
            }
        }
    }
}

/// The groups of the document, each with its title field, members and an ungroup button.
/// Returns the edits the user asked for.
fn groups_ui(ui: &mut Ui, doc: &Document) -> Vec<Action> {
    let mut actions = Vec::new();
    let groups = &doc.doc().view.groups;
    egui::CollapsingHeader::new(format!("Groups ({})", groups.len()))
        .id_salt("groups")
        .default_open(true)
        .show(ui, |ui| {
            if groups.is_empty() {
                ui.weak("Select nodes and use \"Group selected\".");
            }
            for (index, g) in groups.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.colored_label(group_color(index), "■");
                    let mut title = g.title.clone();
                    let r = ui.add(
                        egui::TextEdit::singleline(&mut title)
                            .id(egui::Id::new(("group title", index)))
                            .desired_width(140.0),
                    );
                    if r.changed() {
                        actions.push(Action::RenameGroup { index, title });
                    }
                    if ui
                        .small_button("Ungroup")
                        .on_hover_text("Remove the frame, keep the nodes")
                        .clicked()
                    {
                        actions.push(Action::Ungroup(index));
                    }
                });
                ui.label(RichText::new(g.nodes.join(", ")).weak().small());
            }
        });
    ui.separator();
    actions
}

/// Where the autosave of a document lives: next to its file, or in the temp folder when it
/// has none.
pub fn autosave_path(file: Option<&Path>) -> Option<PathBuf> {
    match file {
        Some(p) => {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some(p.with_file_name(format!(".{name}.autosave")))
        }
        None => Some(std::env::temp_dir().join("unilip-editor-untitled.autosave.ron")),
    }
}

/// Whether `a` exists and was modified after `b`.
fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(a), m(b)), (Some(x), Some(y)) if x > y)
}

impl eframe::App for EditorApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.ui(ui);
    }
}
