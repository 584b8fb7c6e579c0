//! UniLIP on Burn: model components (`models`), checkpoint loading (`weights`) and the node
//! definitions that expose them to the graph engine.

pub mod backend;
pub mod default_model;
pub mod eval;
pub mod fixtures;
pub mod imaging;
pub mod models;
pub mod nodes;
pub mod param_keys;
pub mod probe;
pub mod shapesworld;
pub mod train;
pub mod unidiff;
pub mod weights;

/// Forces the linker to keep this crate's node registrations; call once at start-up.
pub fn link() {}
