//! Burn implementations of the UniLIP components, one file per architecture.

pub mod layers;
