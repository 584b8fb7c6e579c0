//! The editor's document: the canonical [`GraphDoc`] plus its file, dirty state, undo history
//! and the latest validation result. Every edit of the UI goes through the methods here (the
//! "action API" that the UI tests drive as well).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use unilip_core::document::{GroupView, NodeView};
use unilip_core::types::Connection;
use unilip_core::{
    validate, Edge, GraphDoc, NodeDoc, ParamKind, ParamValue, PortRef, PortType, Registry,
    ValidatedGraph, ValidationError,
};

use crate::history::History;
use crate::params::random_seed;

/// Horizontal distance between layers of the automatic layout.
const LAYOUT_DX: f32 = 360.0;
/// Vertical distance between nodes of one layer.
const LAYOUT_DY: f32 = 220.0;
/// Offset of pasted or duplicated nodes from their originals.
const PASTE_OFFSET: f32 = 40.0;

/// A port of a node as the canvas shows it: name and declared type (`None` for placeholders of
/// unknown node types, whose ports are known only from the edges that name them).
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// Port name.
    pub name: String,
    /// Declared type.
    pub ty: Option<PortType>,
}

/// Inputs and outputs of one node, in pin order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodePorts {
    /// Input pins.
    pub inputs: Vec<Port>,
    /// Output pins.
    pub outputs: Vec<Port>,
}

/// The open graph with its file, history and validation state.
pub struct Document {
    doc: GraphDoc,
    path: Option<PathBuf>,
    saved: GraphDoc,
    history: History,
    errors: Vec<ValidationError>,
    generation: u64,
    /// State before an ongoing untracked change (a node drag), committed when it ends.
    pending: Option<GraphDoc>,
}

impl Default for Document {
    fn default() -> Self {
        Self::from_doc(GraphDoc::default(), None)
    }
}

impl Document {
    /// Wraps a loaded document; it counts as saved.
    pub fn from_doc(mut doc: GraphDoc, path: Option<PathBuf>) -> Self {
        auto_layout(&mut doc);
        let mut d = Self {
            saved: doc.clone(),
            doc,
            path,
            history: History::default(),
            errors: Vec::new(),
            generation: 0,
            pending: None,
        };
        d.revalidate();
        d
    }

    /// Opens a `.ron` graph, or the graph embedded in a PNG written by Save Image, and runs
    /// node migrations. Returns the document and notes about migrations.
    pub fn open(path: &Path) -> Result<(Self, Vec<String>), String> {
        let mut doc = read_graph_file(path)?;
        let notes = doc
            .migrate(Registry::global())
            .into_iter()
            .map(|n| format!("{}: {}", n.node, n.message))
            .collect();
        let is_ron = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ron"));
        Ok((
            Self::from_doc(doc, is_ron.then(|| path.to_path_buf())),
            notes,
        ))
    }

    /// The canonical document.
    pub fn doc(&self) -> &GraphDoc {
        &self.doc
    }

    /// File the document was opened from or last saved to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the document differs from the last saved (or opened) state.
    pub fn is_dirty(&self) -> bool {
        self.doc != self.saved
    }

    /// Counter bumped on every change of the document (the canvas re-syncs when it moves).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Errors of the last validation (same checks as `unilip validate`).
    pub fn errors(&self) -> &[ValidationError] {
        &self.errors
    }

    /// Validation errors that name `node`.
    pub fn errors_for<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a ValidationError> {
        self.errors.iter().filter(move |e| e.node == node)
    }

    /// Validates the document for a run.
    pub fn validated(&self) -> Result<ValidatedGraph, Vec<ValidationError>> {
        validate(&self.doc, Registry::global())
    }

    fn revalidate(&mut self) {
        self.errors = match self.validated() {
            Ok(_) => Vec::new(),
            Err(e) => e,
        };
    }

    fn changed(&mut self) {
        self.generation += 1;
        self.revalidate();
    }

    /// Applies `f` as one undoable edit. Edits with the same `merge_key` in a row (typing in one
    /// field) form a single undo step. Returns whether the document changed.
    pub fn edit(&mut self, merge_key: Option<String>, f: impl FnOnce(&mut GraphDoc)) -> bool {
        self.commit_pending();
        let before = self.doc.clone();
        f(&mut self.doc);
        if self.doc == before {
            return false;
        }
        self.history.record(before, merge_key);
        self.changed();
        true
    }

    /// Replaces the whole document as one undoable edit (e.g. "new").
    pub fn replace(&mut self, doc: GraphDoc) {
        self.edit(None, |d| *d = doc);
    }

    /// Ends merging of consecutive same-field edits.
    pub fn break_merge(&mut self) {
        self.history.break_merge();
    }

    /// Ports of a node: from its schema, or for an unknown type from the edges naming it.
    pub fn ports(&self, id: &str) -> NodePorts {
        let Some(node) = self.doc.nodes.get(id) else {
            return NodePorts::default();
        };
        if let Some(def) = Registry::global().get(&node.type_id) {
            let s = def.schema();
            let conv = |p: &unilip_core::PortSpec| Port {
                name: p.name.clone(),
                ty: Some(p.ty.clone()),
            };
            return NodePorts {
                inputs: s.inputs.iter().map(conv).collect(),
                outputs: s.outputs.iter().map(conv).collect(),
            };
        }
        let mut ins = BTreeSet::new();
        let mut outs = BTreeSet::new();
        for e in &self.doc.edges {
            if e.to.node == id {
                ins.insert(e.to.port.clone());
            }
            if e.from.node == id {
                outs.insert(e.from.port.clone());
            }
        }
        let conv = |name: String| Port { name, ty: None };
        NodePorts {
            inputs: ins.into_iter().map(conv).collect(),
            outputs: outs.into_iter().map(conv).collect(),
        }
    }

    /// A fresh node id derived from the type id (`image.resize` → `resize`, `resize_2`, ...).
    pub fn fresh_id(&self, type_id: &str) -> String {
        let base: String = type_id
            .rsplit('.')
            .next()
            .unwrap_or("node")
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '_' })
            .collect();
        let base = if base.is_empty() { "node".into() } else { base };
        if !self.doc.nodes.contains_key(&base) {
            return base;
        }
        (2..)
            .map(|i| format!("{base}_{i}"))
            .find(|id| !self.doc.nodes.contains_key(id))
            .expect("some id is free")
    }

    /// Adds a node of a registered type at `pos`, with every param at its default.
    pub fn add_node(&mut self, type_id: &str, pos: (f32, f32)) -> Result<String, String> {
        let def = Registry::global()
            .get(type_id)
            .ok_or_else(|| format!("unknown node type `{type_id}`"))?;
        let schema = def.schema();
        let id = self.fresh_id(type_id);
        let node = NodeDoc {
            type_id: type_id.to_string(),
            version: schema.version,
            params: schema
                .params
                .iter()
                .map(|p| (p.name.clone(), p.default.clone()))
                .collect(),
        };
        self.edit(None, |d| {
            d.nodes.insert(id.clone(), node);
            d.view.nodes.insert(
                id.clone(),
                NodeView {
                    pos,
                    collapsed: false,
                },
            );
        });
        Ok(id)
    }

    /// Removes nodes with their wires, view state and group memberships; groups left without
    /// members are removed too.
    pub fn remove_nodes(&mut self, ids: &[String]) {
        let set: BTreeSet<&String> = ids.iter().collect();
        self.edit(None, |d| {
            d.nodes.retain(|id, _| !set.contains(id));
            d.edges
                .retain(|e| !set.contains(&e.from.node) && !set.contains(&e.to.node));
            d.view.nodes.retain(|id, _| !set.contains(id));
            for g in &mut d.view.groups {
                g.nodes.retain(|id| !set.contains(id));
            }
            d.view.groups.retain(|g| !g.nodes.is_empty());
        });
    }

    /// Puts the existing nodes among `ids` in a new titled group (one undo step). Returns the
    /// group's index, or `None` when none of the ids names a node.
    pub fn group(&mut self, ids: &[String], title: &str) -> Option<usize> {
        let mut nodes: Vec<String> = Vec::new();
        for id in ids {
            if self.doc.nodes.contains_key(id) && !nodes.contains(id) {
                nodes.push(id.clone());
            }
        }
        if nodes.is_empty() {
            return None;
        }
        let title = title.to_string();
        self.edit(None, |d| d.view.groups.push(GroupView { title, nodes }));
        Some(self.doc.view.groups.len() - 1)
    }

    /// Renames group `index`; consecutive renames of one group merge into one undo step.
    pub fn rename_group(&mut self, index: usize, title: &str) {
        self.edit(Some(format!("group title {index}")), |d| {
            if let Some(g) = d.view.groups.get_mut(index) {
                g.title = title.to_string();
            }
        });
    }

    /// Removes group `index`, keeping its nodes.
    pub fn ungroup(&mut self, index: usize) {
        self.edit(None, |d| {
            if index < d.view.groups.len() {
                d.view.groups.remove(index);
            }
        });
    }

    /// Gives every Seed param a new random value, except those for which `locked(node, param)`
    /// holds, as one undo step. Returns how many seeds changed.
    pub fn randomise_seeds(&mut self, locked: impl Fn(&str, &str) -> bool) -> usize {
        let mut count = 0;
        self.edit(None, |d| {
            for (id, node) in &mut d.nodes {
                let Some(def) = Registry::global().get(&node.type_id) else {
                    continue;
                };
                for spec in &def.schema().params {
                    if spec.kind == ParamKind::Seed && !locked(id, &spec.name) {
                        node.params
                            .insert(spec.name.clone(), ParamValue::Int(random_seed()));
                        count += 1;
                    }
                }
            }
        });
        count
    }

    /// Checks whether `from` (an output) may feed `to` (an input); the error is the reason shown
    /// to the user.
    pub fn check_connection(&self, from: &PortRef, to: &PortRef) -> Result<(), String> {
        if from.node == to.node {
            return Err(format!("cannot connect `{}` to itself", from.node));
        }
        let out_ty = self.port_type(&from.node, &from.port, false)?;
        let in_ty = self.port_type(&to.node, &to.port, true)?;
        if let (Some(o), Some(i)) = (&out_ty, &in_ty) {
            if o.connect_to(i) == Connection::Refused {
                return Err(format!(
                    "cannot connect {from} ({o}) to {to} ({i}): incompatible types"
                ));
            }
        }
        if self.reaches(&to.node, &from.node) {
            return Err(format!("connecting {from} to {to} would create a cycle"));
        }
        Ok(())
    }

    fn port_type(&self, node: &str, port: &str, input: bool) -> Result<Option<PortType>, String> {
        let ports = self.ports(node);
        let list = if input { &ports.inputs } else { &ports.outputs };
        list.iter()
            .find(|p| p.name == port)
            .map(|p| p.ty.clone())
            .ok_or_else(|| format!("node `{node}` has no port `{port}`"))
    }

    /// Whether `target` is downstream of (or equal to) `start`.
    fn reaches(&self, start: &str, target: &str) -> bool {
        let mut stack = vec![start.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if n == target {
                return true;
            }
            if seen.insert(n.clone()) {
                stack.extend(
                    self.doc
                        .edges
                        .iter()
                        .filter(|e| e.from.node == n)
                        .map(|e| e.to.node.clone()),
                );
            }
        }
        false
    }

    /// Connects an output to an input, replacing the wire the input had (one wire per input).
    /// Refused connections leave the document unchanged and return the reason.
    pub fn connect(&mut self, from: PortRef, to: PortRef) -> Result<(), String> {
        self.check_connection(&from, &to)?;
        self.edit(None, |d| {
            d.edges.retain(|e| e.to != to);
            d.edges.push(Edge { from, to });
        });
        Ok(())
    }

    /// Removes one wire.
    pub fn disconnect(&mut self, from: &PortRef, to: &PortRef) {
        self.edit(None, |d| {
            d.edges.retain(|e| !(e.from == *from && e.to == *to))
        });
    }

    /// Removes every wire into an input (`input == true`) or out of an output.
    pub fn disconnect_all(&mut self, port: &PortRef, input: bool) {
        self.edit(None, |d| {
            d.edges.retain(|e| {
                if input {
                    e.to != *port
                } else {
                    e.from != *port
                }
            })
        });
    }

    /// Sets a param; consecutive changes of one param merge into one undo step.
    pub fn set_param(&mut self, node: &str, name: &str, value: ParamValue) {
        let key = format!("param {node}.{name}");
        self.edit(Some(key), |d| {
            if let Some(n) = d.nodes.get_mut(node) {
                n.params.insert(name.to_string(), value);
            }
        });
    }

    /// Moves a node without recording an undo step yet; [`Self::commit_pending`] records the
    /// whole drag as one step.
    pub fn set_view_untracked(&mut self, node: &str, pos: (f32, f32), collapsed: bool) {
        let current = self.doc.view.nodes.get(node);
        if current.is_some_and(|v| v.pos == pos && v.collapsed == collapsed) {
            return;
        }
        if self.pending.is_none() {
            self.pending = Some(self.doc.clone());
        }
        self.doc
            .view
            .nodes
            .insert(node.to_string(), NodeView { pos, collapsed });
        self.generation += 1;
    }

    /// Records an ongoing untracked change (a drag) as one undo step.
    pub fn commit_pending(&mut self) {
        if let Some(before) = self.pending.take() {
            if before != self.doc {
                self.history.record(before, None);
            }
        }
    }

    /// Undoes the last edit. Returns false when there is nothing to undo.
    pub fn undo(&mut self) -> bool {
        self.commit_pending();
        match self.history.undo(&self.doc) {
            Some(prev) => {
                self.doc = prev;
                self.changed();
                true
            }
            None => false,
        }
    }

    /// Redoes the last undone edit.
    pub fn redo(&mut self) -> bool {
        self.commit_pending();
        match self.history.redo(&self.doc) {
            Some(next) => {
                self.doc = next;
                self.changed();
                true
            }
            None => false,
        }
    }

    /// Whether undo / redo are possible.
    pub fn can_undo_redo(&self) -> (bool, bool) {
        (
            self.history.can_undo() || self.pending.is_some(),
            self.history.can_redo(),
        )
    }

    /// Saves atomically to `path` (or the current file) and makes it the document's file.
    pub fn save(&mut self, path: Option<&Path>) -> Result<PathBuf, String> {
        self.commit_pending();
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| self.path.clone())
            .ok_or("no file name yet: use Save As")?;
        self.doc.save(&path).map_err(|e| e.to_string())?;
        self.saved = self.doc.clone();
        self.path = Some(path.clone());
        Ok(path)
    }

    /// Treats the current state as saved without writing it (closing without saving).
    pub fn forget_changes(&mut self) {
        self.saved = self.doc.clone();
    }

    /// The selected nodes and the wires among them, as RON text for the clipboard.
    pub fn copy(&self, ids: &[String]) -> String {
        let set: BTreeSet<&String> = ids.iter().collect();
        let mut frag = GraphDoc::default();
        for id in ids {
            if let Some(n) = self.doc.nodes.get(id) {
                frag.nodes.insert(id.clone(), n.clone());
            }
            if let Some(v) = self.doc.view.nodes.get(id) {
                frag.view.nodes.insert(id.clone(), v.clone());
            }
        }
        frag.edges = self
            .doc
            .edges
            .iter()
            .filter(|e| set.contains(&e.from.node) && set.contains(&e.to.node))
            .cloned()
            .collect();
        frag.to_ron()
    }

    /// Pastes nodes copied with [`Self::copy`] (from this or another graph) under fresh ids,
    /// offset from the originals. Returns the new ids.
    pub fn paste(&mut self, text: &str) -> Result<Vec<String>, String> {
        let frag = GraphDoc::from_ron(text, "clipboard").map_err(|e| e.to_string())?;
        let mut rename = BTreeMap::new();
        let mut staged = GraphDoc::default();
        for (id, node) in frag.nodes {
            let probe = Document {
                doc: merged_ids(&self.doc, &staged),
                ..Document::default()
            };
            let new_id = probe.fresh_id(id.rsplit('_').next_back().unwrap_or(&id));
            let mut view = frag.view.nodes.get(&id).cloned().unwrap_or_default();
            view.pos.0 += PASTE_OFFSET;
            view.pos.1 += PASTE_OFFSET;
            staged.view.nodes.insert(new_id.clone(), view);
            staged.nodes.insert(new_id.clone(), node);
            rename.insert(id, new_id);
        }
        let edges: Vec<Edge> = frag
            .edges
            .into_iter()
            .filter_map(|e| {
                Some(Edge {
                    from: PortRef::new(rename.get(&e.from.node)?, &e.from.port),
                    to: PortRef::new(rename.get(&e.to.node)?, &e.to.port),
                })
            })
            .collect();
        self.edit(None, |d| {
            d.nodes.extend(staged.nodes);
            d.view.nodes.extend(staged.view.nodes);
            d.edges.extend(edges);
        });
        Ok(rename.into_values().collect())
    }

    /// Copies and pastes in one step.
    pub fn duplicate(&mut self, ids: &[String]) -> Vec<String> {
        let text = self.copy(ids);
        self.paste(&text).unwrap_or_default()
    }
}

/// A document whose node ids are those of both inputs (only ids matter: used to find free ids).
fn merged_ids(a: &GraphDoc, b: &GraphDoc) -> GraphDoc {
    let mut out = GraphDoc::default();
    for id in a.nodes.keys().chain(b.nodes.keys()) {
        out.nodes.insert(
            id.clone(),
            NodeDoc {
                type_id: String::new(),
                version: 0,
                params: BTreeMap::new(),
            },
        );
    }
    out
}

/// Reads a `.ron` file, or the graph embedded in a PNG written by Save Image.
pub fn read_graph_file(path: &Path) -> Result<GraphDoc, String> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        let text = unilip_nodes::nodes::png_meta::read_graph(path).map_err(|e| e.to_string())?;
        GraphDoc::from_ron(&text, &path.display().to_string()).map_err(|e| e.to_string())
    } else {
        GraphDoc::load(path).map_err(|e| e.to_string())
    }
}

/// Gives every node without a saved position one from a layered layout (column = longest path
/// from a source).
fn auto_layout(doc: &mut GraphDoc) {
    if doc.nodes.keys().all(|id| doc.view.nodes.contains_key(id)) {
        return;
    }
    let mut depth: BTreeMap<&str, usize> = doc.nodes.keys().map(|k| (k.as_str(), 0)).collect();
    for _ in 0..doc.nodes.len() {
        let mut moved = false;
        for e in &doc.edges {
            let (Some(&f), Some(&t)) = (
                depth.get(e.from.node.as_str()),
                depth.get(e.to.node.as_str()),
            ) else {
                continue;
            };
            if t < f + 1 {
                depth.insert(e.to.node.as_str(), f + 1);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut placed = Vec::new();
    for (id, d) in depth {
        let row = rows.entry(d).or_default();
        placed.push((
            id.to_string(),
            (d as f32 * LAYOUT_DX, *row as f32 * LAYOUT_DY),
        ));
        *row += 1;
    }
    for (id, pos) in placed {
        doc.view.nodes.entry(id).or_insert(NodeView {
            pos,
            collapsed: false,
        });
    }
}
