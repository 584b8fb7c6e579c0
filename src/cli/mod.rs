//! Command-line interface: argument parsing and dispatch.

mod bench;
mod bench_models;
mod bench_train;
mod checkpoint;
mod compose;
mod graph;
mod grow;
mod position;
mod run;
mod shapes;
mod source_input;
mod sweep;
mod unidiff;

use std::fmt;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use unilip_core::ValidationError;

/// Compose, run and ablate UniLIP models as node graphs.
#[derive(Parser)]
#[command(name = "unilip", version, about)]
struct Cli {
    /// Compute device: `cpu`, or `cuda` in builds with `--features cuda` (the default there).
    #[arg(long, global = true, default_value = unilip_nodes::backend::DeviceKind::native().name())]
    device: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a graph (`.ron`, or a PNG written by Save Image).
    Run(run::RunArgs),
    /// Run a training graph (one with `train.run` nodes), optionally resuming.
    Train {
        /// Graph and run options.
        #[command(flatten)]
        run: run::RunArgs,
        /// Continue every trainer from its newest checkpoint.
        #[arg(long)]
        resume: bool,
    },
    /// Write procedural training/validation data to disk.
    Data(shapes::DataArgs),
    /// Score a checkpoint: ShapesWorld tasks, or UniDiff retrieval on a domain.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Train a model on a procedural world with the whole UniLIP recipe (resumable).
    TrainRecipe(shapes::RecipeArgs),
    /// Run a graph over a grid of param values (ablations); writes results.csv and charts.
    Sweep(sweep::SweepArgs),
    /// Redraw the SVG charts of a finished sweep from its results.csv.
    SweepChart(sweep::ChartArgs),
    /// Open the visual editor (optionally on a graph `.ron` or a Save Image PNG).
    Edit {
        /// Graph to open.
        graph: Option<PathBuf>,
    },
    /// Validate a graph without computing anything; prints every error.
    Validate {
        /// Graph file.
        graph: PathBuf,
    },
    /// List registered node types.
    Nodes {
        /// Export the full schema as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Graph utilities.
    #[command(subcommand)]
    Graph(graph::GraphCommand),
    /// Write a UniLIP checkpoint with random weights in the real key layout.
    InitCheckpoint {
        /// Size preset.
        #[arg(long, value_enum, default_value = "tiny")]
        config: checkpoint::Preset,
        /// Output directory.
        dir: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Dtype of the weights.
        #[arg(long, value_enum, default_value = "bf16")]
        dtype: checkpoint::Dtype,
        /// tokenizer.json to copy in (default: the fixture's Qwen2 tokenizer).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
    /// Checkpoint utilities.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// Benchmarks (print figures).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// A user-facing failure with its exit code.
pub enum CliError {
    /// Bad arguments or input files (exit 2).
    Usage(String),
    /// The graph does not validate (exit 2).
    Invalid(Vec<ValidationError>),
    /// The run failed (exit 1).
    Run(String),
}

impl CliError {
    /// Process exit code.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Run(_) => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "error: {m}"),
            CliError::Run(m) => write!(f, "run failed: {m}"),
            CliError::Invalid(errors) => {
                writeln!(f, "graph is invalid ({} error(s)):", errors.len())?;
                for e in errors {
                    writeln!(f, "  {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// `unilip eval ...`.
#[derive(Subcommand)]
pub enum EvalCommand {
    /// Reconstruction, generation, editing or VQA on ShapesWorld's validation split.
    Shapesworld(shapes::EvalArgs),
    /// UniDiff: Recall@1/5/10 both ways, embedding spread and generation on a domain.
    Unidiff(unidiff::UnidiffEvalArgs),
}

/// Parses arguments and runs the command.
pub fn main() -> Result<(), CliError> {
    let cli = Cli::parse();
    let device = cli.device.parse().map_err(CliError::Usage)?;
    unilip_nodes::backend::select(device).map_err(CliError::Usage)?;
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Train { run, resume } => run::train(run, resume),
        Command::Sweep(args) => sweep::sweep(args),
        Command::SweepChart(args) => sweep::chart(args),
        Command::Data(args) => shapes::data(args),
        Command::Eval(EvalCommand::Shapesworld(args)) => shapes::eval(args),
        Command::Eval(EvalCommand::Unidiff(args)) => unidiff::eval(args),
        Command::TrainRecipe(args) => shapes::recipe(args),
        Command::Edit { graph } => unilip_editor::run_editor(graph).map_err(CliError::Run),
        Command::Validate { graph } => run::validate_cmd(&graph),
        Command::Nodes { json } => {
            graph::list_nodes(json);
            Ok(())
        }
        Command::Graph(cmd) => graph::graph_cmd(cmd),
        Command::Bench(cmd) => bench::bench_cmd(cmd),
        Command::InitCheckpoint {
            config,
            dir,
            seed,
            dtype,
            tokenizer,
        } => checkpoint::init_checkpoint(config, &dir, seed, dtype, tokenizer),
        Command::Checkpoint(cmd) => checkpoint::checkpoint_cmd(cmd),
    }
}
