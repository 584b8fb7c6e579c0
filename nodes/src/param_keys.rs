//! Which checkpoint key every loaded parameter came from, so a trained module can be written back
//! in the exact layout it was read from (HF key names, PyTorch `[out, in]` Linear weights).
//!
//! [`crate::weights::VarBuilder`] gives each parameter a [`ParamId`] derived from its full key
//! ([`param_id`]) and records it here. Two consequences:
//! * saving needs no per-architecture mapping: [`keyed_tensors`] walks any module and looks every
//!   parameter up by id;
//! * a model loaded twice from the same keys has the same ids, so optimizer state (keyed by
//!   `ParamId` in Burn) survives a save/reload cycle — which is what makes `--resume` exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

use crate::weights::HostTensor;

/// Where one parameter lives in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Full checkpoint key.
    pub key: String,
    /// True for Linear weights, stored `[out, in]` on disk and `[in, out]` in Burn.
    pub transposed: bool,
}

/// Shared, growing map `ParamId → checkpoint key` filled while a model loads.
#[derive(Debug, Clone, Default)]
pub struct ParamKeys(Arc<Mutex<HashMap<ParamId, KeyEntry>>>);

impl ParamKeys {
    /// Records that the parameter `id` was read from `key`.
    pub fn record(&self, id: ParamId, key: &str, transposed: bool) {
        self.0.lock().expect("param key lock").insert(
            id,
            KeyEntry {
                key: key.to_string(),
                transposed,
            },
        );
    }

    /// The key of `id`, if it was loaded through a `VarBuilder`.
    pub fn get(&self, id: ParamId) -> Option<KeyEntry> {
        self.0.lock().expect("param key lock").get(&id).cloned()
    }

    /// Number of recorded parameters.
    pub fn len(&self) -> usize {
        self.0.lock().expect("param key lock").len()
    }

    /// True before anything was loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The deterministic parameter id of a checkpoint key (first 8 bytes of its BLAKE3 hash).
pub fn param_id(key: &str) -> ParamId {
    let hash = blake3::hash(key.as_bytes());
    ParamId::from(u64::from_le_bytes(
        hash.as_bytes()[..8].try_into().expect("8 bytes"),
    ))
}

/// A parameter of a module that was not loaded from a checkpoint key, so it cannot be saved.
#[derive(Debug, thiserror::Error)]
#[error("parameter {id} of shape {shape:?} has no checkpoint key (it was not loaded through a VarBuilder)")]
pub struct UnkeyedParam {
    /// The parameter id.
    pub id: ParamId,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// Every float parameter of `module` as a host tensor under its checkpoint key, Linear weights
/// transposed back to PyTorch's `[out, in]`.
pub fn keyed_tensors<B: Backend, M: Module<B>>(
    module: &M,
    keys: &ParamKeys,
) -> Result<BTreeMap<String, HostTensor>, UnkeyedParam> {
    let mut collector = Collector {
        keys,
        out: BTreeMap::new(),
        error: None,
    };
    module.visit(&mut collector);
    match collector.error {
        Some(e) => Err(e),
        None => Ok(collector.out),
    }
}

struct Collector<'a> {
    keys: &'a ParamKeys,
    out: BTreeMap<String, HostTensor>,
    error: Option<UnkeyedParam>,
}

impl<B: Backend> ModuleVisitor<B> for Collector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let value = param.val();
        match self.keys.get(param.id) {
            Some(entry) => {
                let host = if entry.transposed && D == 2 {
                    HostTensor::from_burn(value.swap_dims(0, 1))
                } else {
                    HostTensor::from_burn(value)
                };
                self.out.insert(entry.key, host);
            }
            None => {
                self.error = Some(UnkeyedParam {
                    id: param.id,
                    shape: value.dims().to_vec(),
                })
            }
        }
    }
}
