//! Training on Burn's autodiff backend: UniLIP's encoder self-distillation (spec §3.1) and
//! dual-condition flow matching for generation and editing (§3.2), plus understanding (captioning /
//! VQA) for small MLLMs.
//!
//! [`train`] runs one configured objective on one dataset, starting from a checkpoint directory
//! and writing resumable checkpoints in the same HF layout the loader reads (see [`run_dir`]).
//! Resuming is exact: ids of parameters derive from their checkpoint keys (so AdamW state keyed
//! by id reloads), and the data order, noise, timesteps and caption dropout derive from
//! `(seed, step)` alone.

pub mod calibrate;
pub mod data;
pub mod log;
pub mod loss;
pub mod objective;
pub mod optim;
pub mod run_dir;
pub mod shapes;
mod trainer;

pub use trainer::{
    train, Hooks, OnStep, TrainConfig, TrainReport, TrainRequest, Trainable, DEFAULT_VISION_LR_MULT,
};

use crate::models::unilip::UnilipError;
use crate::weights::WeightError;

/// Why a training run stopped early or could not start.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Settings, losses and data that do not fit together.
    #[error("training setup: {0}")]
    Setup(String),
    /// A sample could not be read.
    #[error("training data: {0}")]
    Data(#[from] data::DataError),
    /// The starting checkpoint could not be loaded.
    #[error(transparent)]
    Weights(#[from] WeightError),
    /// The model failed on a batch.
    #[error(transparent)]
    Model(#[from] UnilipError),
    /// A loss (or the gradient norm) became NaN or infinite.
    #[error(
        "step {step}: {term} is {value}; training stopped (last good checkpoint: {last_good})"
    )]
    NonFinite {
        /// 1-based step.
        step: usize,
        /// The loss term (or `gradient norm`).
        term: String,
        /// Its value.
        value: f64,
        /// The newest checkpoint on disk, untouched.
        last_good: String,
    },
    /// Reading or writing the run directory failed.
    #[error("{0}")]
    Io(String),
    /// The run was cancelled; a checkpoint of the last completed step was written.
    #[error("training cancelled after step {step} (resume with `resume = true`)")]
    Cancelled {
        /// Steps completed.
        step: usize,
    },
}
