//! The canvas: an egui-snarl view over the [`Document`]. The snarl holds only doc node ids and
//! is re-synced from the document whenever it changes; every user gesture becomes an
//! [`Action`] that the app applies to the document. The snarl itself is never saved.
//! Groups of the document are drawn in the canvas background as titled rectangles around the
//! rectangles their member nodes had in the previous frame.

use std::collections::{BTreeMap, BTreeSet};

use egui::{Align2, Color32, FontId, Id, Painter, Pos2, Rect, RichText, Stroke, Style, Ui};
use egui_snarl::ui::{
    AnyPins, BackgroundPattern, PinInfo, SnarlPin, SnarlStyle, SnarlViewer, SnarlWidget,
};
use egui_snarl::{InPin, InPinId, NodeId, OutPin, OutPinId, Snarl};
use unilip_core::types::Connection;
use unilip_core::{NodeSchema, ParamValue, PortRef, PortType, Registry, Value};

use crate::document::{Document, Port};
use crate::palette::palette_ui;
use crate::params::{param_widget, ParamEdit};
use crate::run::{NodeState, RunState};

/// Largest side of an output thumbnail drawn on a node, in points.
const NODE_THUMB: f32 = 160.0;
/// Space between a group's frame and its members, in points.
const GROUP_MARGIN: f32 = 16.0;
/// Height of a group's title band above its members, in points.
const GROUP_TITLE: f32 = 24.0;
/// Size assumed for a node not drawn yet (its rectangle is known only after a frame).
const NODE_SIZE_GUESS: egui::Vec2 = egui::vec2(200.0, 120.0);

/// Seed params locked against "randomise seeds", as (node id, param name).
pub type SeedLocks = BTreeSet<(String, String)>;

/// A wire that was dropped on empty canvas: the new node gets connected to it.
#[derive(Debug, Clone, PartialEq)]
pub enum DroppedWire {
    /// Dragged out of this output.
    FromOutput(PortRef),
    /// Dragged out of this input.
    FromInput(PortRef),
}

/// An edit requested by the canvas, applied to the document by the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Add a node of this type at a canvas position, optionally wired to a dropped wire.
    Add {
        /// Node type id.
        type_id: String,
        /// Canvas position.
        pos: (f32, f32),
        /// Wire to connect to the new node.
        wire: Option<DroppedWire>,
    },
    /// Delete nodes.
    Remove(Vec<String>),
    /// Duplicate nodes.
    Duplicate(Vec<String>),
    /// Connect an output to an input.
    Connect {
        /// Output.
        from: PortRef,
        /// Input.
        to: PortRef,
    },
    /// Remove one wire.
    Disconnect {
        /// Output.
        from: PortRef,
        /// Input.
        to: PortRef,
    },
    /// Remove all wires of a port.
    DropWires {
        /// The port.
        port: PortRef,
        /// Whether it is an input.
        input: bool,
    },
    /// Change a param.
    SetParam {
        /// Node id.
        node: String,
        /// Param name.
        name: String,
        /// New value.
        value: ParamValue,
    },
    /// Run what this node needs.
    RunUpTo(String),
    /// Put nodes in a new titled group.
    Group {
        /// Members.
        nodes: Vec<String>,
        /// Title.
        title: String,
    },
    /// Rename a group.
    RenameGroup {
        /// Index in the document's group list.
        index: usize,
        /// New title.
        title: String,
    },
    /// Remove a group, keeping its nodes.
    Ungroup(usize),
    /// Open the file or folder picker for a File or Dir param.
    Browse {
        /// Node id.
        node: String,
        /// Param name.
        name: String,
    },
    /// Show an image output in the image viewer.
    ViewImage {
        /// Node id.
        node: String,
        /// Output port name.
        port: String,
    },
    /// Lock or unlock a Seed param against "randomise seeds" (editor memory, not the
    /// document).
    LockSeed {
        /// Node id.
        node: String,
        /// Param name.
        name: String,
        /// New lock state.
        locked: bool,
    },
}

/// Pin and wire colour of a port type family.
pub fn family_color(ty: Option<&PortType>) -> Color32 {
    match ty.map(PortType::family) {
        Some("Image") => Color32::from_rgb(100, 180, 255),
        Some("Latent") => Color32::from_rgb(255, 120, 200),
        Some("VisionFeatures") => Color32::from_rgb(180, 130, 255),
        Some("TokenIds") => Color32::from_rgb(120, 220, 220),
        Some("HiddenStates") => Color32::from_rgb(150, 150, 255),
        Some("Conditioning") => Color32::from_rgb(255, 170, 80),
        Some("Text") => Color32::from_rgb(140, 230, 120),
        Some("Int") => Color32::from_rgb(200, 200, 120),
        Some("Float") => Color32::from_rgb(230, 210, 90),
        Some("Bool") => Color32::from_rgb(230, 130, 130),
        Some("Seed") => Color32::from_rgb(200, 160, 110),
        Some("Scheduler") => Color32::from_rgb(160, 200, 160),
        Some("Model") => Color32::from_rgb(200, 100, 255),
        Some("Loss") => Color32::from_rgb(255, 90, 90),
        Some("Dataset") => Color32::from_rgb(170, 170, 170),
        Some("Embeddings") => Color32::from_rgb(90, 210, 170),
        _ => Color32::GRAY,
    }
}

/// Frame colour of the `index`-th group (a small repeating palette).
pub fn group_color(index: usize) -> Color32 {
    const PALETTE: [Color32; 5] = [
        Color32::from_rgb(110, 160, 230),
        Color32::from_rgb(120, 200, 140),
        Color32::from_rgb(230, 170, 90),
        Color32::from_rgb(200, 120, 200),
        Color32::from_rgb(200, 200, 110),
    ];
    PALETTE[index % PALETTE.len()]
}

/// The snarl view and its mapping to document ids.
pub struct Canvas {
    snarl: Snarl<String>,
    ids: BTreeMap<String, NodeId>,
    synced: Option<u64>,
    /// Search text of the canvas context menu's palette.
    search: String,
    /// Widget id of the snarl (for its selection state).
    id: Id,
    /// Graph-space rectangles of the nodes in the last frame, by doc id (to frame groups).
    rects: BTreeMap<String, Rect>,
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            snarl: Snarl::new(),
            ids: BTreeMap::new(),
            synced: None,
            search: String::new(),
            id: Id::new("unilip-canvas"),
            rects: BTreeMap::new(),
        }
    }
}

impl Canvas {
    /// Brings the snarl in line with the document (nodes, positions, wires).
    pub fn sync(&mut self, doc: &Document) {
        if self.synced == Some(doc.generation()) {
            return;
        }
        self.synced = Some(doc.generation());
        let d = doc.doc();
        let stale: Vec<String> = self
            .ids
            .keys()
            .filter(|id| !d.nodes.contains_key(*id))
            .cloned()
            .collect();
        for id in stale {
            if let Some(nid) = self.ids.remove(&id) {
                self.snarl.remove_node(nid);
            }
        }
        for id in d.nodes.keys() {
            let view = d.view.nodes.get(id).cloned().unwrap_or_default();
            let pos = Pos2::new(view.pos.0, view.pos.1);
            match self.ids.get(id) {
                Some(&nid) => {
                    if let Some(info) = self.snarl.get_node_info_mut(nid) {
                        info.pos = pos;
                        info.open = !view.collapsed;
                    }
                }
                None => {
                    let nid = if view.collapsed {
                        self.snarl.insert_node_collapsed(pos, id.clone())
                    } else {
                        self.snarl.insert_node(pos, id.clone())
                    };
                    self.ids.insert(id.clone(), nid);
                }
            }
        }
        let mut want = BTreeSet::new();
        for e in &d.edges {
            let (Some(&fnid), Some(&tnid)) = (self.ids.get(&e.from.node), self.ids.get(&e.to.node))
            else {
                continue;
            };
            let out_idx = doc
                .ports(&e.from.node)
                .outputs
                .iter()
                .position(|p| p.name == e.from.port);
            let in_idx = doc
                .ports(&e.to.node)
                .inputs
                .iter()
                .position(|p| p.name == e.to.port);
            if let (Some(o), Some(i)) = (out_idx, in_idx) {
                want.insert((fnid.0, o, tnid.0, i));
            }
        }
        let have: BTreeSet<(usize, usize, usize, usize)> = self
            .snarl
            .wires()
            .map(|(o, i)| (o.node.0, o.output, i.node.0, i.input))
            .collect();
        for &(fnode, o, tnode, i) in have.difference(&want) {
            self.snarl.disconnect(
                OutPinId {
                    node: NodeId(fnode),
                    output: o,
                },
                InPinId {
                    node: NodeId(tnode),
                    input: i,
                },
            );
        }
        for &(fnode, o, tnode, i) in want.difference(&have) {
            self.snarl.connect(
                OutPinId {
                    node: NodeId(fnode),
                    output: o,
                },
                InPinId {
                    node: NodeId(tnode),
                    input: i,
                },
            );
        }
    }

    /// Draws the canvas and returns the edits the user asked for. `locks` are the locked
    /// seeds, shown on their lock toggles.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        doc: &Document,
        run: &RunState,
        locks: &SeedLocks,
    ) -> Vec<Action> {
        self.sync(doc);
        self.rects.retain(|id, _| doc.doc().nodes.contains_key(id));
        let mut viewer = Viewer {
            doc,
            run,
            locks,
            rects: &mut self.rects,
            search: &mut self.search,
            actions: Vec::new(),
        };
        let style = SnarlStyle {
            collapsible: Some(true),
            wire_width: Some(3.0),
            pin_size: Some(10.0),
            ..SnarlStyle::new()
        };
        SnarlWidget::new()
            .id(self.id)
            .style(style)
            .show(&mut self.snarl, &mut viewer, ui);
        viewer.actions
    }

    /// Copies node positions and collapsed states changed by the widget into the document.
    /// A drag becomes one undo step once the pointer is released.
    pub fn read_back(&self, doc: &mut Document, pointer_down: bool) {
        for (id, &nid) in &self.ids {
            if let Some(info) = self.snarl.get_node_info(nid) {
                doc.set_view_untracked(id, (info.pos.x, info.pos.y), !info.open);
            }
        }
        if !pointer_down {
            doc.commit_pending();
        }
    }

    /// Doc ids of the nodes selected on the canvas.
    pub fn selected(&self, ctx: &egui::Context) -> Vec<String> {
        egui_snarl::ui::get_selected_nodes(self.id, ctx)
            .into_iter()
            .filter_map(|nid| self.snarl.get_node(nid).cloned())
            .collect()
    }
}

/// The [`SnarlViewer`]: reads the document and run state, records actions.
struct Viewer<'a> {
    doc: &'a Document,
    run: &'a RunState,
    locks: &'a SeedLocks,
    rects: &'a mut BTreeMap<String, Rect>,
    search: &'a mut String,
    actions: Vec<Action>,
}

impl Viewer<'_> {
    fn schema(&self, id: &str) -> Option<&'static NodeSchema> {
        let node = self.doc.doc().nodes.get(id)?;
        Registry::global().get(&node.type_id).map(|d| d.schema())
    }

    fn port_error(&self, node: &str, port: &str) -> Option<String> {
        let msgs: Vec<String> = self
            .doc
            .errors_for(node)
            .filter(|e| e.at.as_deref() == Some(port))
            .map(|e| e.message.clone())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("\n"))
    }

    fn pin(&self, ui: &mut Ui, node: &str, port: Option<&Port>, optional: bool) -> PinInfo {
        let Some(port) = port else {
            return PinInfo::circle();
        };
        let color = family_color(port.ty.as_ref());
        let ty = port.ty.as_ref().map_or("unknown".into(), |t| t.to_string());
        let mut text = RichText::new(&port.name).color(color);
        if optional {
            text = text.italics();
        }
        ui.label(text).on_hover_text(ty);
        if let Some(err) = self.port_error(node, &port.name) {
            ui.label(RichText::new("⚠").color(Color32::LIGHT_RED))
                .on_hover_text(err);
        }
        PinInfo::circle().with_fill(color).with_wire_color(color)
    }

    fn state_badge(&self, ui: &mut Ui, id: &str) {
        let Some(state) = self.run.states.get(id) else {
            return;
        };
        let (text, color) = match state {
            NodeState::Queued => ("queued".to_string(), Color32::GRAY),
            NodeState::Running { step, total } if *total > 0 => {
                (format!("running {step}/{total}"), Color32::YELLOW)
            }
            NodeState::Running { .. } => ("running".into(), Color32::YELLOW),
            NodeState::Cached => ("cached".into(), Color32::LIGHT_BLUE),
            NodeState::Done(d) => (format!("done {:.2?}", d), Color32::LIGHT_GREEN),
            NodeState::Failed(_) => ("error".into(), Color32::LIGHT_RED),
        };
        let r = ui.label(RichText::new(text).color(color).small());
        if let NodeState::Failed(m) = state {
            r.on_hover_text(m);
        }
    }

    fn show_outputs(&mut self, ui: &mut Ui, id: &str) {
        if let Some(NodeState::Running { step, total }) = self.run.states.get(id) {
            if *total > 0 {
                ui.add(
                    egui::ProgressBar::new(*step as f32 / *total as f32)
                        .desired_width(NODE_THUMB)
                        .show_percentage(),
                );
            }
            if let Some(tex) = self.run.previews.get(id) {
                ui.add(egui::Image::new(tex).max_size(egui::vec2(NODE_THUMB, NODE_THUMB)));
            }
        }
        if let Some(NodeState::Failed(m)) = self.run.states.get(id) {
            ui.label(RichText::new(m).color(Color32::LIGHT_RED).small());
        }
        let Some(values) = self.run.outputs.get(id) else {
            return;
        };
        for v in values {
            let summary = v
                .value
                .summary()
                .map_or_else(|| v.value.describe(), |s| s.to_string());
            if let Some(tex) = &v.texture {
                let thumb = egui::Image::new(tex)
                    .max_size(egui::vec2(NODE_THUMB, NODE_THUMB))
                    .alt_text(format!("{id}.{}", v.port))
                    .sense(egui::Sense::click());
                if ui
                    .add(thumb)
                    .on_hover_text(format!("{}: {summary}\nClick to enlarge", v.port))
                    .clicked()
                {
                    self.actions.push(Action::ViewImage {
                        node: id.to_string(),
                        port: v.port.clone(),
                    });
                }
            } else if let Value::Text(t) = &v.value {
                let short: String = t.chars().take(200).collect();
                ui.label(RichText::new(short).monospace().small())
                    .on_hover_text(t);
            } else {
                ui.label(RichText::new(format!("{}: {}", v.port, v.value.describe())).small())
                    .on_hover_text(summary);
            }
        }
    }

    fn add_menu(&mut self, ui: &mut Ui, pos: Pos2, wire: Option<DroppedWire>) {
        let wanted = wire.as_ref().and_then(|w| {
            let (node, port, input) = match w {
                DroppedWire::FromOutput(p) => (&p.node, &p.port, false),
                DroppedWire::FromInput(p) => (&p.node, &p.port, true),
            };
            let ports = self.doc.ports(node);
            let list = if input { ports.inputs } else { ports.outputs };
            list.into_iter()
                .find(|p| &p.name == port)
                .and_then(|p| p.ty)
                .map(|t| (t, input))
        });
        let accept = |s: &NodeSchema| match &wanted {
            None => true,
            Some((ty, false)) => s
                .inputs
                .iter()
                .any(|i| ty.connect_to(&i.ty) != Connection::Refused),
            Some((ty, true)) => s
                .outputs
                .iter()
                .any(|o| o.ty.connect_to(ty) != Connection::Refused),
        };
        if let Some(type_id) = palette_ui(ui, self.search, &accept) {
            self.actions.push(Action::Add {
                type_id,
                pos: (pos.x, pos.y),
                wire,
            });
            ui.close();
        }
    }
}

impl SnarlViewer<String> for Viewer<'_> {
    fn title(&mut self, node: &String) -> String {
        node.clone()
    }

    fn show_header(
        &mut self,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<String>,
    ) {
        let id = snarl[node].clone();
        let type_id = self
            .doc
            .doc()
            .nodes
            .get(&id)
            .map(|n| n.type_id.clone())
            .unwrap_or_default();
        let desc = self.schema(&id).map_or_else(
            || format!("unknown node type `{type_id}` (params and wires are kept)"),
            |s| s.description.clone(),
        );
        ui.label(RichText::new(&id).strong()).on_hover_text(desc);
        ui.label(RichText::new(type_id).weak().small());
        self.state_badge(ui, &id);
    }

    fn final_node_rect(
        &mut self,
        node: NodeId,
        rect: Rect,
        _ui: &mut Ui,
        snarl: &mut Snarl<String>,
    ) {
        if let Some(id) = snarl.get_node(node) {
            self.rects.insert(id.clone(), rect);
        }
    }

    fn draw_background(
        &mut self,
        background: Option<&BackgroundPattern>,
        viewport: &Rect,
        snarl_style: &SnarlStyle,
        style: &Style,
        painter: &Painter,
        _snarl: &Snarl<String>,
    ) {
        if let Some(bg) = background {
            bg.draw(viewport, snarl_style, style, painter);
        }
        let view = &self.doc.doc().view;
        for (i, group) in view.groups.iter().enumerate() {
            let members = group.nodes.iter().filter_map(|id| {
                self.rects.get(id).copied().or_else(|| {
                    let pos = view.nodes.get(id)?.pos;
                    Some(Rect::from_min_size(
                        Pos2::new(pos.0, pos.1),
                        NODE_SIZE_GUESS,
                    ))
                })
            });
            let Some(bounds) = members.reduce(|a, b| a.union(b)) else {
                continue;
            };
            let frame = bounds
                .expand(GROUP_MARGIN)
                .with_min_y(bounds.min.y - GROUP_MARGIN - GROUP_TITLE);
            let color = group_color(i);
            painter.rect_filled(frame, 8.0, color.gamma_multiply(0.15));
            painter.rect_stroke(
                frame,
                8.0,
                Stroke::new(1.5, color),
                egui::StrokeKind::Inside,
            );
            painter.text(
                frame.min + egui::vec2(10.0, 4.0),
                Align2::LEFT_TOP,
                &group.title,
                FontId::proportional(16.0),
                color,
            );
        }
    }

    fn node_frame(
        &mut self,
        default: egui::Frame,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        snarl: &Snarl<String>,
    ) -> egui::Frame {
        let id = &snarl[node];
        if self.schema(id).is_none() {
            return default
                .fill(Color32::from_rgb(110, 20, 20))
                .stroke(Stroke::new(2.0, Color32::RED));
        }
        if self.doc.errors_for(id).next().is_some()
            || matches!(self.run.states.get(id), Some(NodeState::Failed(_)))
        {
            return default.stroke(Stroke::new(2.0, Color32::LIGHT_RED));
        }
        default
    }

    fn inputs(&mut self, node: &String) -> usize {
        self.doc.ports(node).inputs.len()
    }

    fn outputs(&mut self, node: &String) -> usize {
        self.doc.ports(node).outputs.len()
    }

    fn show_input(
        &mut self,
        pin: &InPin,
        ui: &mut Ui,
        snarl: &mut Snarl<String>,
    ) -> impl SnarlPin + 'static {
        let id = snarl[pin.id.node].clone();
        let ports = self.doc.ports(&id);
        let port = ports.inputs.get(pin.id.input);
        let optional = port
            .and_then(|p| self.schema(&id).and_then(|s| s.input(&p.name)))
            .is_some_and(|p| p.optional);
        self.pin(ui, &id, port, optional)
    }

    fn show_output(
        &mut self,
        pin: &OutPin,
        ui: &mut Ui,
        snarl: &mut Snarl<String>,
    ) -> impl SnarlPin + 'static {
        let id = snarl[pin.id.node].clone();
        let ports = self.doc.ports(&id);
        let port = ports.outputs.get(pin.id.output);
        let info = self.pin(ui, &id, port, false);
        if let (Some(port), Some(values)) = (port, self.run.outputs.get(&id)) {
            if let Some(v) = values.iter().find(|v| v.port == port.name) {
                let text = v
                    .value
                    .summary()
                    .map_or_else(|| v.value.describe(), |s| s.to_string());
                ui.label(RichText::new("ⓘ").weak()).on_hover_text(text);
            }
        }
        info
    }

    fn has_body(&mut self, _node: &String) -> bool {
        true
    }

    fn show_body(
        &mut self,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<String>,
    ) {
        let id = snarl[node].clone();
        let Some(doc_node) = self.doc.doc().nodes.get(&id) else {
            return;
        };
        let mut edits = Vec::new();
        ui.vertical(|ui| {
            let ports = self.doc.ports(&id);
            match self.schema(&id) {
                Some(schema) => {
                    for spec in &schema.params {
                        let err = self.port_error(&id, &spec.name);
                        let was_locked = self.locks.contains(&(id.clone(), spec.name.clone()));
                        let mut locked = was_locked;
                        let edit = param_widget(
                            ui,
                            &id,
                            spec,
                            doc_node.params.get(&spec.name),
                            err.as_deref(),
                            &mut locked,
                        );
                        let (node, name) = (id.clone(), spec.name.clone());
                        match edit {
                            Some(ParamEdit::Set(value)) => {
                                edits.push(Action::SetParam { node, name, value })
                            }
                            Some(ParamEdit::Browse) => edits.push(Action::Browse { node, name }),
                            None => {}
                        }
                        if locked != was_locked {
                            edits.push(Action::LockSeed {
                                node: id.clone(),
                                name: spec.name.clone(),
                                locked,
                            });
                        }
                    }
                }
                None => {
                    ui.label(
                        RichText::new(format!("unknown type `{}`", doc_node.type_id))
                            .color(Color32::LIGHT_RED),
                    );
                    for (k, v) in &doc_node.params {
                        ui.label(RichText::new(format!("{k} = {v}")).small());
                    }
                }
            }
            let known: BTreeSet<&str> = ports
                .inputs
                .iter()
                .chain(&ports.outputs)
                .map(|p| p.name.as_str())
                .chain(
                    self.schema(&id)
                        .into_iter()
                        .flat_map(|s| s.params.iter().map(|p| p.name.as_str())),
                )
                .collect();
            for e in self.doc.errors_for(&id) {
                if e.at.as_deref().is_none_or(|a| !known.contains(a)) {
                    ui.label(RichText::new(&e.message).color(Color32::LIGHT_RED).small());
                }
            }
            self.show_outputs(ui, &id);
        });
        self.actions.extend(edits);
    }

    fn has_graph_menu(&mut self, _pos: Pos2, _snarl: &mut Snarl<String>) -> bool {
        true
    }

    fn show_graph_menu(&mut self, pos: Pos2, ui: &mut Ui, _snarl: &mut Snarl<String>) {
        ui.label("Add node");
        self.add_menu(ui, pos, None);
    }

    fn has_dropped_wire_menu(&mut self, _src: AnyPins, _snarl: &mut Snarl<String>) -> bool {
        true
    }

    fn show_dropped_wire_menu(
        &mut self,
        pos: Pos2,
        ui: &mut Ui,
        src: AnyPins,
        snarl: &mut Snarl<String>,
    ) {
        let wire = match src {
            AnyPins::Out(pins) => pins.first().and_then(|p| {
                let id = snarl.get_node(p.node)?;
                let port = self.doc.ports(id).outputs.get(p.output)?.name.clone();
                Some(DroppedWire::FromOutput(PortRef::new(id, &port)))
            }),
            AnyPins::In(pins) => pins.first().and_then(|p| {
                let id = snarl.get_node(p.node)?;
                let port = self.doc.ports(id).inputs.get(p.input)?.name.clone();
                Some(DroppedWire::FromInput(PortRef::new(id, &port)))
            }),
        };
        ui.label("Add a compatible node");
        self.add_menu(ui, pos, wire);
    }

    fn has_node_menu(&mut self, _node: &String) -> bool {
        true
    }

    fn show_node_menu(
        &mut self,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<String>,
    ) {
        let id = snarl[node].clone();
        if ui.button("Run up to here").clicked() {
            self.actions.push(Action::RunUpTo(id.clone()));
            ui.close();
        }
        if ui.button("Duplicate").clicked() {
            self.actions.push(Action::Duplicate(vec![id.clone()]));
            ui.close();
        }
        if ui.button("Delete").clicked() {
            self.actions.push(Action::Remove(vec![id]));
            ui.close();
        }
    }

    fn connect(&mut self, from: &OutPin, to: &InPin, snarl: &mut Snarl<String>) {
        if let Some((f, t)) = self.pin_refs(from.id, to.id, snarl) {
            self.actions.push(Action::Connect { from: f, to: t });
        }
    }

    fn disconnect(&mut self, from: &OutPin, to: &InPin, snarl: &mut Snarl<String>) {
        if let Some((f, t)) = self.pin_refs(from.id, to.id, snarl) {
            self.actions.push(Action::Disconnect { from: f, to: t });
        }
    }

    fn drop_outputs(&mut self, pin: &OutPin, snarl: &mut Snarl<String>) {
        let id = snarl[pin.id.node].clone();
        if let Some(p) = self.doc.ports(&id).outputs.get(pin.id.output) {
            self.actions.push(Action::DropWires {
                port: PortRef::new(&id, &p.name),
                input: false,
            });
        }
    }

    fn drop_inputs(&mut self, pin: &InPin, snarl: &mut Snarl<String>) {
        let id = snarl[pin.id.node].clone();
        if let Some(p) = self.doc.ports(&id).inputs.get(pin.id.input) {
            self.actions.push(Action::DropWires {
                port: PortRef::new(&id, &p.name),
                input: true,
            });
        }
    }
}

impl Viewer<'_> {
    fn pin_refs(
        &self,
        from: OutPinId,
        to: InPinId,
        snarl: &Snarl<String>,
    ) -> Option<(PortRef, PortRef)> {
        let fid = snarl.get_node(from.node)?;
        let tid = snarl.get_node(to.node)?;
        let fport = self.doc.ports(fid).outputs.get(from.output)?.name.clone();
        let tport = self.doc.ports(tid).inputs.get(to.input)?.name.clone();
        Some((PortRef::new(fid, &fport), PortRef::new(tid, &tport)))
    }
}
