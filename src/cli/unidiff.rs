//! `unilip eval unidiff`: retrieval, collapse and generation scores of a (UniDiff-fine-tuned)
//! checkpoint on a ShapesWorld domain's held-out split.

use std::path::PathBuf;

use clap::Args;
use unilip_nodes::unidiff::eval::{eval_unidiff, UnidiffEvalOptions};

use super::shapes::{checkpoint_or_default, print_metrics, DomainArg};
use super::CliError;

/// Arguments of `unilip eval unidiff`.
#[derive(Args)]
pub struct UnidiffEvalArgs {
    /// The domain (UniDiff's small personalised datasets: pastel, dark, geometric).
    #[arg(long, value_enum)]
    domain: DomainArg,
    /// Checkpoint directory (default: the embedded ShapesWorld model, zero-shot).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Held-out pairs in the retrieval corpus.
    #[arg(long, default_value_t = 200)]
    n: usize,
    /// Prompts for the GenEval-like generation score (0 = skip).
    #[arg(long, default_value_t = 20)]
    gen_n: usize,
    /// Seed of the validation stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object with the metric names and values.
    #[arg(long)]
    json: bool,
}

/// `unilip eval unidiff ...`.
pub fn eval(args: UnidiffEvalArgs) -> Result<(), CliError> {
    let dir = checkpoint_or_default(args.checkpoint)?;
    if args.n < 2 {
        return Err(CliError::Usage("--n must be at least 2".into()));
    }
    let opts = UnidiffEvalOptions {
        domain: args.domain.into(),
        n: args.n,
        gen_n: args.gen_n,
        seed: args.seed,
    };
    let metrics = eval_unidiff(&dir, &opts).map_err(CliError::Run)?;
    print_metrics(&metrics, args.json);
    Ok(())
}
