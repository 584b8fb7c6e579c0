//! Node definitions registered with the graph engine. Each file defines a few related nodes.

pub mod eval;
pub mod image_io;
pub mod image_ops;
pub mod metrics;
pub mod png_meta;
pub mod scalar;
pub mod train;
pub mod unidiff;
pub mod unilip;

use std::collections::BTreeMap;

use unilip_core::{NodeError, ParamValue};

/// Registers a node type that has a `new()` constructor.
#[macro_export]
macro_rules! register_node {
    ($t:ty) => {
        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }
        inventory::submit! {
            unilip_core::NodeRegistration { build: || Box::new(<$t>::new()) }
        }
    };
}

/// Turns any displayable error into a node failure.
pub fn failed(e: impl std::fmt::Display) -> NodeError {
    NodeError::msg(e.to_string())
}

/// A path param that must be non-empty.
pub fn path_param(params: &BTreeMap<String, ParamValue>, name: &str) -> Result<String, String> {
    match params.get(name) {
        Some(ParamValue::Str(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("param `{name}` must be a non-empty path")),
    }
}
