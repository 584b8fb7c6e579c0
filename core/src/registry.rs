//! Node types: their schema (ports, params), their behaviour ([`Node`]), and the global registry
//! filled at link time through `inventory`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::exec_ctx::{ExecCtx, NodeError};
use crate::params::{ParamSpec, ParamValue};
use crate::types::PortType;
use crate::value::Value;

/// One input or output port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortSpec {
    /// Port name, unique among the node's inputs (or outputs).
    pub name: String,
    /// Declared type.
    pub ty: PortType,
    /// Inputs only: whether the node can run without it.
    pub optional: bool,
    /// What it carries.
    pub doc: String,
}

impl PortSpec {
    /// A required input or an output.
    pub fn new(name: &str, ty: PortType, doc: &str) -> Self {
        Self {
            name: name.into(),
            ty,
            optional: false,
            doc: doc.into(),
        }
    }

    /// An optional input.
    pub fn optional(name: &str, ty: PortType, doc: &str) -> Self {
        Self {
            optional: true,
            ..Self::new(name, ty, doc)
        }
    }
}

/// Everything the registry, the validator, the CLI and the editor know about a node type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSchema {
    /// Stable type id used in graph files, e.g. `image.load`.
    pub id: String,
    /// Schema version; files with an older version go through [`Node::migrate`].
    pub version: u32,
    /// Menu path, e.g. `image` or `unilip/generate`.
    pub category: String,
    /// One-paragraph description (tooltips, docs).
    pub description: String,
    /// Inputs, in display order.
    pub inputs: Vec<PortSpec>,
    /// Outputs, in display order.
    pub outputs: Vec<PortSpec>,
    /// Parameters, in display order.
    pub params: Vec<ParamSpec>,
    /// A sink (saves, shows or measures something): run by default when no output is requested.
    pub output_node: bool,
}

impl NodeSchema {
    /// Input port by name.
    pub fn input(&self, name: &str) -> Option<&PortSpec> {
        self.inputs.iter().find(|p| p.name == name)
    }

    /// Output port index by name.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|p| p.name == name)
    }

    /// Param by name.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// Types known before compute, given to [`Node::infer`].
pub struct InferCtx<'a> {
    /// The node's params, defaults filled in.
    pub params: &'a BTreeMap<String, ParamValue>,
    /// Types of the connected inputs (after upstream inference); absent when unconnected.
    pub inputs: &'a BTreeMap<String, PortType>,
}

/// A problem found by [`Node::infer`], tied to a port or param of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct InferIssue {
    /// Port or param name the issue is about.
    pub at: String,
    /// Explanation.
    pub message: String,
}

/// Behaviour of a node type.
pub trait Node: Send + Sync {
    /// The schema.
    fn schema(&self) -> &NodeSchema;

    /// Refines output types from params and input types without computing anything (e.g. a
    /// checkpoint loader reads `config.json` to type its model handles), and checks inputs
    /// against each other. The default returns the declared output types.
    fn infer(&self, _ctx: &InferCtx<'_>) -> Result<Vec<PortType>, Vec<InferIssue>> {
        Ok(self.schema().outputs.iter().map(|p| p.ty.clone()).collect())
    }

    /// Extra cache-key material for state outside the graph (file contents, checkpoint files).
    /// Errors are shown on the node; they never silently disable caching.
    fn fingerprint(&self, _params: &BTreeMap<String, ParamValue>) -> Result<String, String> {
        Ok(String::new())
    }

    /// Upgrades params saved by an older `version` of this node type.
    fn migrate(
        &self,
        _from_version: u32,
        _params: &mut BTreeMap<String, ParamValue>,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Runs the node. Inputs and params are in `ctx`; returns one value per declared output.
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError>;
}

/// A registration submitted with `inventory::submit!` by the crate that defines a node.
pub struct NodeRegistration {
    /// Builds the node (called once, when the registry is first used).
    pub build: fn() -> Box<dyn Node>,
}

inventory::collect!(NodeRegistration);

/// All registered node types, by id.
pub struct Registry {
    nodes: BTreeMap<String, Arc<dyn Node>>,
}

impl Registry {
    /// The registry of every node linked into this binary.
    pub fn global() -> &'static Registry {
        static REG: OnceLock<Registry> = OnceLock::new();
        REG.get_or_init(|| {
            Registry::from_nodes(inventory::iter::<NodeRegistration>().map(|r| (r.build)()))
        })
    }

    /// A registry from explicit nodes (tests). Later duplicates of an id replace earlier ones.
    pub fn from_nodes(nodes: impl IntoIterator<Item = Box<dyn Node>>) -> Self {
        Self {
            nodes: nodes
                .into_iter()
                .map(|n| (n.schema().id.clone(), Arc::from(n)))
                .collect(),
        }
    }

    /// Node type by id.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Node>> {
        self.nodes.get(id)
    }

    /// All schemas, sorted by id.
    pub fn schemas(&self) -> impl Iterator<Item = &NodeSchema> {
        self.nodes.values().map(|n| n.schema())
    }

    /// The whole schema as pretty JSON (for the editor and generated docs).
    pub fn schema_json(&self) -> String {
        let all: Vec<&NodeSchema> = self.schemas().collect();
        serde_json::to_string_pretty(&all).expect("schemas are plain data")
    }
}
