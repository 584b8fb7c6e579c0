//! What a running node sees: its inputs and params, a progress reporter, and a cancellation token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::executor::RunEnv;
use crate::params::ParamValue;
use crate::value::{TypeError, Value};

/// Cooperative cancellation, shared between the runner and whoever wants to stop it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Events of a run, in order. One stream serves the CLI progress bars and the editor.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run starts; `to_execute` nodes are not cached.
    RunStarted {
        /// Nodes that will execute.
        to_execute: Vec<String>,
        /// Nodes served from the cache.
        cached: Vec<String>,
    },
    /// A node starts.
    NodeStarted {
        /// Node id.
        node: String,
    },
    /// A step inside a node (sampler step, training step).
    NodeProgress {
        /// Node id.
        node: String,
        /// Steps done.
        step: u64,
        /// Steps in all.
        total: u64,
        /// Optional preview (e.g. a latent decoded cheaply).
        preview: Option<Value>,
    },
    /// A node finished.
    NodeFinished {
        /// Node id.
        node: String,
        /// Wall time.
        elapsed: Duration,
    },
    /// A node failed; the run stops.
    NodeFailed {
        /// Node id.
        node: String,
        /// Message.
        message: String,
    },
    /// A warning from a node (e.g. truncated queries).
    Warning {
        /// Node id.
        node: String,
        /// Message.
        message: String,
    },
    /// The run ended (successfully, failed or cancelled).
    RunFinished {
        /// Wall time of the whole run.
        elapsed: Duration,
    },
}

/// Receiver of [`Event`]s.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// An error raised by a node while running.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// Cancelled by the user.
    #[error("cancelled")]
    Cancelled,
    /// An input or param had the wrong type at run time.
    #[error("input `{port}`: {source}")]
    Type {
        /// Port or param name.
        port: String,
        /// The mismatch.
        source: TypeError,
    },
    /// Anything else, with a message for the user.
    #[error("{0}")]
    Failed(String),
}

impl NodeError {
    /// A failure with a message.
    pub fn msg(m: impl Into<String>) -> Self {
        NodeError::Failed(m.into())
    }
}

/// Context given to [`crate::Node::execute`].
pub struct ExecCtx<'a> {
    /// Node id in the graph.
    pub node_id: &'a str,
    /// Params with defaults filled in and values checked.
    pub params: &'a BTreeMap<String, ParamValue>,
    /// Connected inputs by port name (coercions applied).
    pub inputs: BTreeMap<String, Value>,
    pub(crate) events: Option<&'a EventSink>,
    pub(crate) cancel: &'a CancelToken,
    pub(crate) env: &'a RunEnv,
}

impl<'a> ExecCtx<'a> {
    /// A context outside the executor (benchmarks, direct calls, tests).
    pub fn detached(
        node_id: &'a str,
        params: &'a BTreeMap<String, ParamValue>,
        inputs: BTreeMap<String, Value>,
        cancel: &'a CancelToken,
        env: &'a RunEnv,
    ) -> Self {
        Self {
            node_id,
            params,
            inputs,
            events: None,
            cancel,
            env,
        }
    }

    /// Run-wide settings (output directory, provenance).
    pub fn env(&self) -> &RunEnv {
        self.env
    }

    /// A required input.
    pub fn input(&self, port: &str) -> Result<&Value, NodeError> {
        self.inputs
            .get(port)
            .ok_or_else(|| NodeError::msg(format!("input `{port}` is not connected")))
    }

    /// An optional input.
    pub fn opt_input(&self, port: &str) -> Option<&Value> {
        self.inputs.get(port)
    }

    fn param(&self, name: &str) -> Result<&ParamValue, NodeError> {
        self.params
            .get(name)
            .ok_or_else(|| NodeError::msg(format!("param `{name}` missing")))
    }

    fn param_err(name: &str, expected: &str, v: &ParamValue) -> NodeError {
        NodeError::Type {
            port: name.into(),
            source: TypeError {
                expected: expected.into(),
                found: v.to_string(),
            },
        }
    }

    /// Integer param.
    pub fn int(&self, name: &str) -> Result<i64, NodeError> {
        match self.param(name)? {
            ParamValue::Int(i) => Ok(*i),
            v => Err(Self::param_err(name, "Int", v)),
        }
    }

    /// Float param (integers widened).
    pub fn float(&self, name: &str) -> Result<f64, NodeError> {
        let v = self.param(name)?;
        v.as_f64().ok_or_else(|| Self::param_err(name, "Float", v))
    }

    /// Boolean param.
    pub fn bool(&self, name: &str) -> Result<bool, NodeError> {
        match self.param(name)? {
            ParamValue::Bool(b) => Ok(*b),
            v => Err(Self::param_err(name, "Bool", v)),
        }
    }

    /// String/enum/path param.
    pub fn str(&self, name: &str) -> Result<&str, NodeError> {
        let v = self.param(name)?;
        v.as_str().ok_or_else(|| Self::param_err(name, "String", v))
    }

    /// Reports progress of step `step` of `total`; also a cancellation point.
    pub fn progress(&self, step: u64, total: u64, preview: Option<Value>) -> Result<(), NodeError> {
        if let Some(sink) = self.events {
            sink(&Event::NodeProgress {
                node: self.node_id.to_string(),
                step,
                total,
                preview,
            });
        }
        self.check_cancel()
    }

    /// Emits a warning event.
    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(node = self.node_id, "{message}");
        if let Some(sink) = self.events {
            sink(&Event::Warning {
                node: self.node_id.to_string(),
                message,
            });
        }
    }

    /// Returns `Err(Cancelled)` when cancellation was requested.
    pub fn check_cancel(&self) -> Result<(), NodeError> {
        if self.cancel.is_cancelled() {
            Err(NodeError::Cancelled)
        } else {
            Ok(())
        }
    }
}
