//! The UniLIP node-graph engine. Knows no model: port types, the node registry, RON graph
//! documents, whole-graph validation, the cached executor and parameter sweeps over it.
//!
//! A node type implements [`Node`] and registers itself with
//! `inventory::submit! { NodeRegistration { build: || Box::new(MyNode::new()) } }`.

pub mod document;
pub mod exec_ctx;
pub mod executor;
pub mod params;
pub mod registry;
pub mod sweep;
pub mod types;
pub mod validate;
pub mod value;

pub use document::{atomic_write, Edge, GraphDoc, NodeDoc, PortRef};
pub use exec_ctx::{CancelToken, Event, EventSink, ExecCtx, NodeError};
pub use executor::{Executor, RunEnv, RunError, RunOptions, RunReport};
pub use params::{ParamKind, ParamSpec, ParamValue};
pub use registry::{InferCtx, InferIssue, Node, NodeRegistration, NodeSchema, PortSpec, Registry};
pub use sweep::{Axis, PointResult, Sweep, SweepError, SweepOptions, SweepTable};
pub use types::{LatentSpace, ModelKind, PortType};
pub use validate::{validate, ErrorKind, ValidatedGraph, ValidationError};
pub use value::{ImageBatch, Payload, Summary, Value};

/// Re-exported so node crates can register without depending on `inventory` themselves.
pub use inventory;
