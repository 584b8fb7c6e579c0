//! Training nodes: datasets, loss terms and the trainer (see [`crate::train`]).

pub mod data;
pub mod loss;
pub mod trainer;
