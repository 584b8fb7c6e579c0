//! UniLIP on Burn: model components (`models`), checkpoint loading (`weights`) and the node
//! definitions that expose them to the graph engine.

pub mod fixtures;
pub mod models;
pub mod weights;
