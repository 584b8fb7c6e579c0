//! Whole-graph validation before any compute. Every problem is collected and returned at once,
//! each naming the node and the port or param it is about.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};

use crate::document::{GraphDoc, PortRef};
use crate::params::{ParamProblem, ParamValue};
use crate::registry::{InferCtx, Node, Registry};
use crate::types::{Coercion, Connection, PortType};

/// The kind of a validation error (for tests and for grouping in the UI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The graph has a cycle.
    Cycle,
    /// Output and input types are incompatible.
    TypeMismatch,
    /// A required input is not connected.
    RequiredInputMissing,
    /// The node type is not registered.
    UnknownNodeType,
    /// A param name is not in the schema.
    UnknownParam,
    /// A numeric param is outside its range.
    ValueOutOfRange,
    /// An enum param is not one of its choices.
    ValueNotInChoices,
    /// A param literal has the wrong type.
    WrongParamType,
    /// Two wires go into one input.
    DuplicateInput,
    /// An edge names a node that does not exist.
    MissingNode,
    /// An edge names a port the node does not have.
    MissingPort,
    /// A node's own consistency check failed (see the message).
    NodeCheck,
    /// The file was written by a newer version of a node type.
    NewerNodeVersion,
    /// A node id is not usable (empty or contains `.`).
    BadNodeId,
}

/// One validation error.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    /// Kind.
    pub kind: ErrorKind,
    /// Node the error is about (for cycles, the first node of the cycle).
    pub node: String,
    /// Port or param name, when the error is about one.
    pub at: Option<String>,
    /// Human-readable explanation.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(
                f,
                "[{:?}] {}.{}: {}",
                self.kind, self.node, at, self.message
            ),
            None => write!(f, "[{:?}] {}: {}", self.kind, self.node, self.message),
        }
    }
}

/// A node after validation: its definition, full params and inferred output types.
#[derive(Clone)]
pub struct ResolvedNode {
    /// Node id.
    pub id: String,
    /// The node type.
    pub def: Arc<dyn Node>,
    /// Params with defaults filled in and values checked.
    pub params: BTreeMap<String, ParamValue>,
    /// Output types after inference.
    pub output_types: Vec<PortType>,
    /// Input port → (source output, coercion to apply).
    pub inputs: BTreeMap<String, (PortRef, Option<Coercion>)>,
}

/// A graph that passed validation, in topological order.
pub struct ValidatedGraph {
    /// Nodes by id.
    pub nodes: BTreeMap<String, ResolvedNode>,
    /// Topological order (sources first).
    pub order: Vec<String>,
}

impl ValidatedGraph {
    /// `doc` with every param of its validated nodes written out, defaults included: the graph
    /// as run, which savers embed as provenance.
    pub fn effective_doc(&self, doc: &GraphDoc) -> GraphDoc {
        let mut out = doc.clone();
        for (id, node) in &mut out.nodes {
            if let Some(r) = self.nodes.get(id) {
                node.params = r.params.clone();
            }
        }
        out
    }
}

fn err(kind: ErrorKind, node: &str, at: Option<&str>, message: String) -> ValidationError {
    ValidationError {
        kind,
        node: node.to_string(),
        at: at.map(str::to_string),
        message,
    }
}

/// Validates `doc` against `registry`; returns the resolved graph or every error found.
pub fn validate(
    doc: &GraphDoc,
    registry: &Registry,
) -> Result<ValidatedGraph, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let mut resolved: BTreeMap<String, ResolvedNode> = BTreeMap::new();

    // Nodes: type, version, params.
    for (id, node) in &doc.nodes {
        if id.is_empty() || id.contains('.') {
            errors.push(err(
                ErrorKind::BadNodeId,
                id,
                None,
                "node ids must be non-empty and contain no `.`".into(),
            ));
        }
        let Some(def) = registry.get(&node.type_id) else {
            errors.push(err(
                ErrorKind::UnknownNodeType,
                id,
                None,
                format!("unknown node type `{}`", node.type_id),
            ));
            continue;
        };
        let schema = def.schema();
        if node.version > schema.version {
            errors.push(err(
                ErrorKind::NewerNodeVersion,
                id,
                None,
                format!(
                    "`{}` version {} is newer than this build's version {}",
                    node.type_id, node.version, schema.version
                ),
            ));
        }
        let mut params = BTreeMap::new();
        for (name, value) in &node.params {
            let Some(spec) = schema.param(name) else {
                errors.push(err(
                    ErrorKind::UnknownParam,
                    id,
                    Some(name),
                    format!(
                        "`{}` has no param `{name}` (params: {})",
                        node.type_id,
                        schema
                            .params
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            };
            match spec.check(value) {
                Ok(v) => {
                    params.insert(name.clone(), v);
                }
                Err(p) => errors.push(param_error(id, name, p)),
            }
        }
        for spec in &schema.params {
            params
                .entry(spec.name.clone())
                .or_insert_with(|| spec.default.clone());
        }
        resolved.insert(
            id.clone(),
            ResolvedNode {
                id: id.clone(),
                def: def.clone(),
                params,
                output_types: schema.outputs.iter().map(|p| p.ty.clone()).collect(),
                inputs: BTreeMap::new(),
            },
        );
    }

    // Edges: endpoints exist, one wire per input.
    let mut graph: StableDiGraph<String, ()> = StableDiGraph::new();
    let mut index: HashMap<&str, NodeIndex> = HashMap::new();
    for id in doc.nodes.keys() {
        index.insert(id.as_str(), graph.add_node(id.clone()));
    }
    let mut wired: BTreeMap<(String, String), Vec<PortRef>> = BTreeMap::new();
    for e in &doc.edges {
        let mut ok = true;
        for (end, is_output) in [(&e.from, true), (&e.to, false)] {
            if !doc.nodes.contains_key(&end.node) {
                errors.push(err(
                    ErrorKind::MissingNode,
                    &end.node,
                    Some(&end.port),
                    format!(
                        "edge {} -> {} names missing node `{}`",
                        e.from, e.to, end.node
                    ),
                ));
                ok = false;
                continue;
            }
            let Some(r) = resolved.get(&end.node) else {
                ok = false; // unknown type, already reported
                continue;
            };
            let schema = r.def.schema();
            let exists = if is_output {
                schema.output_index(&end.port).is_some()
            } else {
                schema.input(&end.port).is_some()
            };
            if !exists {
                let (dir, names): (&str, Vec<&str>) = if is_output {
                    (
                        "output",
                        schema.outputs.iter().map(|p| p.name.as_str()).collect(),
                    )
                } else {
                    (
                        "input",
                        schema.inputs.iter().map(|p| p.name.as_str()).collect(),
                    )
                };
                errors.push(err(
                    ErrorKind::MissingPort,
                    &end.node,
                    Some(&end.port),
                    format!(
                        "`{}` has no {dir} `{}` ({dir}s: {})",
                        schema.id,
                        end.port,
                        names.join(", ")
                    ),
                ));
                ok = false;
            }
        }
        if let (Some(a), Some(b)) = (
            index.get(e.from.node.as_str()),
            index.get(e.to.node.as_str()),
        ) {
            graph.add_edge(*a, *b, ());
        }
        if ok {
            wired
                .entry((e.to.node.clone(), e.to.port.clone()))
                .or_default()
                .push(e.from.clone());
        }
    }
    for ((node, port), sources) in &wired {
        if sources.len() > 1 {
            errors.push(err(
                ErrorKind::DuplicateInput,
                node,
                Some(port),
                format!(
                    "{} wires into one input: {}",
                    sources.len(),
                    sources
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }

    // Cycles: name every node of every cycle.
    let order = match toposort(&graph, None) {
        Ok(order) => order
            .into_iter()
            .map(|i| graph[i].clone())
            .collect::<Vec<_>>(),
        Err(_) => {
            for scc in tarjan_scc(&graph) {
                let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
                if scc.len() > 1 || self_loop {
                    let mut names: Vec<String> = scc.iter().map(|i| graph[*i].clone()).collect();
                    names.sort();
                    errors.push(err(
                        ErrorKind::Cycle,
                        &names[0],
                        None,
                        format!("cycle through nodes: {}", names.join(", ")),
                    ));
                }
            }
            return Err(errors);
        }
    };

    // Types, in topological order so inferred output types propagate.
    for id in &order {
        let Some(node) = resolved.get(id) else {
            continue;
        };
        let schema = node.def.schema().clone();
        let mut input_types = BTreeMap::new();
        let mut inputs = BTreeMap::new();
        for port in &schema.inputs {
            let source = wired
                .get(&(id.clone(), port.name.clone()))
                .and_then(|s| s.first());
            let Some(src) = source else {
                if !port.optional {
                    errors.push(err(
                        ErrorKind::RequiredInputMissing,
                        id,
                        Some(&port.name),
                        format!(
                            "required input `{}` ({}) is not connected",
                            port.name, port.ty
                        ),
                    ));
                }
                continue;
            };
            let Some(up) = resolved.get(&src.node) else {
                continue;
            };
            let Some(oi) = up.def.schema().output_index(&src.port) else {
                continue;
            };
            let from_ty = up.output_types[oi].clone();
            match from_ty.connect_to(&port.ty) {
                Connection::Refused => errors.push(err(
                    ErrorKind::TypeMismatch,
                    id,
                    Some(&port.name),
                    format!(
                        "{src} gives {from_ty}, but `{}` expects {}",
                        port.name, port.ty
                    ),
                )),
                c => {
                    let coercion = match c {
                        Connection::Coerce(c) => Some(c),
                        _ => None,
                    };
                    input_types.insert(port.name.clone(), from_ty);
                    inputs.insert(port.name.clone(), (src.clone(), coercion));
                }
            }
        }
        let ctx = InferCtx {
            params: &node.params,
            inputs: &input_types,
        };
        let inferred = node.def.infer(&ctx);
        let node = resolved.get_mut(id).expect("resolved above");
        node.inputs = inputs;
        match inferred {
            Ok(types) => node.output_types = types,
            Err(issues) => {
                for i in issues {
                    errors.push(err(ErrorKind::NodeCheck, id, Some(&i.at), i.message));
                }
            }
        }
    }

    if errors.is_empty() {
        let order = order
            .into_iter()
            .filter(|id| resolved.contains_key(id))
            .collect();
        Ok(ValidatedGraph {
            nodes: resolved,
            order,
        })
    } else {
        Err(errors)
    }
}

fn param_error(node: &str, name: &str, p: ParamProblem) -> ValidationError {
    let kind = match p {
        ParamProblem::WrongType { .. } => ErrorKind::WrongParamType,
        ParamProblem::OutOfRange { .. } => ErrorKind::ValueOutOfRange,
        ParamProblem::NotInChoices { .. } => ErrorKind::ValueNotInChoices,
    };
    err(kind, node, Some(name), p.to_string())
}
