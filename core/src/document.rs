//! The graph document as saved in `.ron` files: format version, nodes keyed by stable ids with
//! params by name, edges `"node.port" -> "node.port"`, and a `view` section the CLI ignores.
//! Saving is canonical (sorted maps, sorted edges), so load → save is byte-identical.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::params::ParamValue;
use crate::registry::Registry;

/// Current file format version.
pub const FORMAT_VERSION: u32 = 1;

/// `(node id, port name)`, written `"node.port"` in files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    /// Node id.
    pub node: String,
    /// Port name.
    pub port: String,
}

impl PortRef {
    /// Builds a reference.
    pub fn new(node: &str, port: &str) -> Self {
        Self {
            node: node.into(),
            port: port.into(),
        }
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

impl Serialize for PortRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PortRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (node, port) = s.split_once('.').ok_or_else(|| {
            serde::de::Error::custom(format!("port reference `{s}` is not `node.port`"))
        })?;
        Ok(PortRef::new(node, port))
    }
}

/// A wire, written `"node.port -> node.port"` (one line per edge keeps diffs small).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// Output port.
    pub from: PortRef,
    /// Input port.
    pub to: PortRef,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

impl Serialize for Edge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl std::str::FromStr for Edge {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (from, to) = s
            .split_once("->")
            .ok_or_else(|| format!("edge `{s}` is not `node.port -> node.port`"))?;
        let parse = |p: &str| {
            let p = p.trim();
            p.split_once('.')
                .map(|(n, port)| PortRef::new(n, port))
                .ok_or_else(|| format!("port reference `{p}` is not `node.port`"))
        };
        Ok(Edge {
            from: parse(from)?,
            to: parse(to)?,
        })
    }
}

impl<'de> Deserialize<'de> for Edge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One node instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDoc {
    /// Registered node type id.
    #[serde(rename = "type")]
    pub type_id: String,
    /// Version of the node type the params were written for.
    pub version: u32,
    /// Params by name; absent ones take the schema default.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
}

/// Editor-only state of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeView {
    /// Canvas position.
    pub pos: (f32, f32),
    /// Collapsed in the editor.
    #[serde(default)]
    pub collapsed: bool,
}

/// A titled frame around nodes (editor only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    /// Title.
    pub title: String,
    /// Members.
    pub nodes: Vec<String>,
}

/// Editor-only state; the CLI ignores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ViewDoc {
    /// Per-node view state.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeView>,
    /// Frames.
    #[serde(default)]
    pub groups: Vec<GroupView>,
}

impl ViewDoc {
    /// True when there is no editor state to save.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.groups.is_empty()
    }
}

/// A whole graph file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphDoc {
    /// File format version.
    pub format: u32,
    /// Nodes by stable id.
    pub nodes: BTreeMap<String, NodeDoc>,
    /// Wires.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Editor state.
    #[serde(default, skip_serializing_if = "ViewDoc::is_empty")]
    pub view: ViewDoc,
}

impl Default for GraphDoc {
    fn default() -> Self {
        Self {
            format: FORMAT_VERSION,
            nodes: BTreeMap::new(),
            edges: Vec::new(),
            view: ViewDoc::default(),
        }
    }
}

/// A graph file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid RON for a graph document.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// Parser message with position.
        message: String,
    },
    /// Written by a newer format.
    #[error("{path}: format version {found} is newer than this build supports ({FORMAT_VERSION})")]
    Format {
        /// File.
        path: String,
        /// Version in the file.
        found: u32,
    },
}

/// A note from migrating an old node.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationNote {
    /// Node id.
    pub node: String,
    /// What happened.
    pub message: String,
}

impl GraphDoc {
    /// Parses RON text. `origin` names the source in errors.
    pub fn from_ron(text: &str, origin: &str) -> Result<Self, DocError> {
        let doc: GraphDoc = ron::from_str(text).map_err(|e| DocError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        if doc.format > FORMAT_VERSION {
            return Err(DocError::Format {
                path: origin.into(),
                found: doc.format,
            });
        }
        Ok(doc)
    }

    /// Reads a `.ron` file.
    pub fn load(path: &Path) -> Result<Self, DocError> {
        let text = std::fs::read_to_string(path).map_err(|e| DocError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Canonical RON text: sorted nodes, params and edges, fixed indentation, trailing newline.
    pub fn to_ron(&self) -> String {
        let mut canon = self.clone();
        canon.edges.sort();
        canon.edges.dedup();
        let cfg = ron::ser::PrettyConfig::new()
            .indentor("  ".to_string())
            .struct_names(false)
            .separate_tuple_members(false)
            .enumerate_arrays(false);
        let mut s = ron::ser::to_string_pretty(&canon, cfg).expect("graph documents serialise");
        s.push('\n');
        s
    }

    /// Writes the canonical text atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), DocError> {
        atomic_write(path, self.to_ron().as_bytes()).map_err(|e| DocError::Io {
            path: path.display().to_string(),
            source: e,
        })
    }

    /// Runs each node type's migration hook for nodes saved with an older version, and bumps the
    /// version. Unknown types and failed migrations are left for validation to report.
    pub fn migrate(&mut self, registry: &Registry) -> Vec<MigrationNote> {
        let mut notes = Vec::new();
        for (id, node) in &mut self.nodes {
            let Some(def) = registry.get(&node.type_id) else {
                continue;
            };
            let current = def.schema().version;
            if node.version >= current {
                continue;
            }
            match def.migrate(node.version, &mut node.params) {
                Ok(()) => {
                    notes.push(MigrationNote {
                        node: id.clone(),
                        message: format!(
                            "migrated `{}` from version {} to {current}",
                            node.type_id, node.version
                        ),
                    });
                    node.version = current;
                }
                Err(e) => notes.push(MigrationNote {
                    node: id.clone(),
                    message: format!("migration of `{}` failed: {e}", node.type_id),
                }),
            }
        }
        notes
    }

    /// Edges into a node's input, for convenience.
    pub fn edges_into<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.to.node == node)
    }
}

/// Writes `bytes` to `path` via a temp file in the same directory and a rename, so a crash never
/// leaves a half-written file in place of the user's.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
