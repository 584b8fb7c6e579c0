//! `unilip init-checkpoint` and
//! `unilip checkpoint inspect|calibrate|reinit|graft|grow|add-position|add-source-input`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use unilip_nodes::backend::{device, B};
use unilip_nodes::models::unilip::{
    write_random_checkpoint, ComponentSet, KeyStyle, Unilip, UnilipConfig,
};
use unilip_nodes::shapesworld::GenConfig;
use unilip_nodes::train::calibrate::calibrate;
use unilip_nodes::train::data::DatasetKind;
use unilip_nodes::train::shapes::{shapes_tokenizer, ShapesDataset};
use unilip_nodes::weights::{Checkpoint, SaveDtype};

use super::compose::{compose, Component, ComposeArgs, Source};
use super::grow::{grow, Deepen};
use super::CliError;

/// Model size presets for `init-checkpoint`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Preset {
    /// Fixture-sized model (seconds on a CPU).
    Tiny,
    /// UniLIP-1B shapes (InternVL3-1B + SANA-0.6B).
    #[value(name = "1b")]
    OneB,
    /// UniLIP-3B shapes (InternVL3-2B + SANA-1.6B).
    #[value(name = "3b")]
    ThreeB,
    /// The CPU-trainable 64×64 ShapesWorld model with its word-level tokenizer.
    Shapes,
}

/// Dtype of written weights.
#[derive(Clone, Copy, ValueEnum)]
pub enum Dtype {
    /// bfloat16, as released UniLIP checkpoints.
    Bf16,
    /// float32.
    F32,
}

/// Checkpoint utilities.
#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// Show what a checkpoint holds and check every tensor against its config.
    Inspect {
        /// Checkpoint directory.
        dir: PathBuf,
    },
    /// Measure the latents on ShapesWorld images and set `unilip_shift` (per-channel means) and
    /// `unilip_factor` (1/std about them) in config.json (do this after training an encoder).
    Calibrate {
        /// Checkpoint directory.
        dir: PathBuf,
        /// Images to measure.
        #[arg(long, default_value_t = 256)]
        n: usize,
    },
    /// Copy a checkpoint with some components drawn afresh at random, optionally under an
    /// edited config (e.g. a deeper DiT), every other tensor kept: the start of an ablation.
    Reinit {
        /// Checkpoint to start from.
        base: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        replace: Replace,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Copy a checkpoint with some components (tensors and their config fields) taken from
    /// another checkpoint, every other tensor kept: combine parts trained separately, or swap one
    /// in to measure what it changes.
    Graft {
        /// Checkpoint to start from.
        base: PathBuf,
        /// Checkpoint the components come from.
        #[arg(long)]
        from: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        replace: Replace,
    },
    /// Copy a checkpoint with its connector or DiT grown to LAYERS layers, each new one a copy
    /// of the last with the projections into the residual stream zeroed (identity at the
    /// start), every other tensor kept: ask whether depth limits a trained component.
    Grow {
        /// Checkpoint to start from.
        base: PathBuf,
        /// Component to deepen.
        #[arg(long, value_enum)]
        component: Deepen,
        /// Layer count after growing (more than the base has).
        #[arg(long)]
        layers: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Copy a checkpoint with SCALE × a fixed 2-D sin-cos table added to the InternViT's
    /// position table (patch rows; CLS kept), every other tensor kept: give the features an
    /// absolute-position signal of known strength (`eval --task probe` reads how much arrives).
    AddPosition {
        /// Checkpoint to start from.
        base: PathBuf,
        /// Multiplier of the sin-cos table (its values are sines and cosines: rms 0.71 × SCALE).
        #[arg(long)]
        scale: f32,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Copy a checkpoint whose DiT also takes the edit source's latent, concatenated after the
    /// noisy latent (InstructPix2Pix's input; UniLIP's DiT sees the source only through its
    /// condition), the new input weights zero so the copy computes what the base did.
    AddSourceInput {
        /// Checkpoint to start from.
        base: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// What `reinit` and `graft` replace.
#[derive(Args)]
pub struct Replace {
    /// Components to replace (repeat or comma-separate).
    #[arg(long = "component", value_enum, value_delimiter = ',', required = true)]
    components: Vec<Component>,
    /// Config edit FIELD=VALUE (JSON value), e.g. dit_config.num_layers=4, applied last
    /// (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
}

fn err(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// `unilip init-checkpoint`: a random-weight UniLIP checkpoint in the real key layout.
pub fn init_checkpoint(
    preset: Preset,
    dir: &Path,
    seed: u64,
    dtype: Dtype,
    tokenizer: Option<PathBuf>,
) -> Result<(), CliError> {
    let dtype = match dtype {
        Dtype::Bf16 => SaveDtype::Bf16,
        Dtype::F32 => SaveDtype::F32,
    };
    let (config, default_tok) = match preset {
        Preset::Tiny => (UnilipConfig::tiny(), None),
        Preset::OneB => (UnilipConfig::one_b(), None),
        Preset::ThreeB => (UnilipConfig::three_b(), None),
        Preset::Shapes => {
            let tok = shapes_tokenizer().map_err(err)?;
            std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
            let path = dir.join("tokenizer.json");
            tok.save(&path).map_err(err)?;
            (
                UnilipConfig::shapes(tok.vocab_size(), tok.special()),
                Some(path),
            )
        }
    };
    let tok = tokenizer
        .or(default_tok)
        .unwrap_or_else(|| unilip_nodes::fixtures::root().join("tokenizer/tokenizer.json"));
    if !tok.exists() {
        eprintln!(
            "warning: no tokenizer at {} (pass --tokenizer); prompt nodes need one",
            tok.display()
        );
    }
    let params = write_random_checkpoint(
        dir,
        config,
        seed,
        dtype,
        tok.exists().then_some(tok.as_path()),
    )
    .map_err(err)?;
    println!(
        "wrote {} ({:.1} M parameters, random seed {seed})",
        dir.display(),
        params as f64 / 1e6
    );
    Ok(())
}

/// The sub-model a key belongs to.
fn group(key: &str) -> &'static str {
    const GROUPS: [(&str, &str); 11] = [
        ("vision_tower.", "vision tower"),
        ("multi_modal_projector.", "mlp1 projector"),
        ("language_model.lm_head", "lm_head"),
        ("lm_head", "lm_head"),
        ("language_model.", "LLM"),
        ("latent_queries", "queries"),
        ("llm_connector.", "connector"),
        ("projector.", "projector"),
        ("dit.", "SANA DiT"),
        ("vae_decoder.", "latent head + DC-AE decoder"),
        ("unidiff.", "UniDiff heads"),
    ];
    let k = key.strip_prefix("model.").unwrap_or(key);
    GROUPS
        .iter()
        .find(|(p, _)| k.starts_with(p))
        .map_or("other", |(_, g)| g)
}

/// `unilip checkpoint inspect|calibrate|reinit|graft|grow|add-position|add-source-input`.
pub fn checkpoint_cmd(cmd: CheckpointCommand) -> Result<(), CliError> {
    match cmd {
        CheckpointCommand::Inspect { dir } => inspect(&dir),
        CheckpointCommand::Calibrate { dir, n } => calibrate_cmd(&dir, n),
        CheckpointCommand::Reinit {
            base,
            out,
            replace,
            seed,
        } => compose(&ComposeArgs {
            base: &base,
            out: &out,
            components: &replace.components,
            sets: &replace.sets,
            source: Source::Random { seed },
        }),
        CheckpointCommand::Graft {
            base,
            from,
            out,
            replace,
        } => compose(&ComposeArgs {
            base: &base,
            out: &out,
            components: &replace.components,
            sets: &replace.sets,
            source: Source::Donor(&from),
        }),
        CheckpointCommand::Grow {
            base,
            component,
            layers,
            out,
        } => grow(&base, component, layers, &out),
        CheckpointCommand::AddPosition { base, scale, out } => {
            super::position::add_position(&base, scale, &out)
        }
        CheckpointCommand::AddSourceInput { base, out } => {
            super::source_input::add_source_input(&base, &out)
        }
    }
}

/// `unilip checkpoint calibrate DIR`: `unilip_shift` and `unilip_factor` from ShapesWorld
/// training images.
pub fn calibrate_cmd(dir: &Path, n: usize) -> Result<(), CliError> {
    let data = ShapesDataset::new(GenConfig::default(), DatasetKind::Captions, n)
        .map_err(CliError::Usage)?;
    let stats = calibrate(dir, &data, n).map_err(CliError::Run)?;
    let means: Vec<String> = stats
        .channel_means
        .iter()
        .map(|m| format!("{m:.4}"))
        .collect();
    println!(
        "{}: unilip_factor = {:.4}, unilip_shift = [{}]",
        dir.display(),
        1.0 / stats.std,
        means.join(", ")
    );
    Ok(())
}

fn inspect(dir: &Path) -> Result<(), CliError> {
    let ck = Arc::new(Checkpoint::open(dir).map_err(err)?);
    let cfg_path = dir.join("config.json");
    let config = UnilipConfig::load(&cfg_path).map_err(err)?;
    let files: Vec<&Path> = ck.files().collect();
    println!("checkpoint {}", dir.display());
    println!("  files: {}", files.len());
    println!("  tensors: {}", ck.len());
    let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for key in ck.keys() {
        let meta = ck.meta(key).expect("listed");
        *dtypes.entry(format!("{:?}", meta.dtype)).or_default() += 1;
        let g = groups.entry(group(key)).or_default();
        g.0 += 1;
        g.1 += meta.shape.iter().product::<usize>();
    }
    println!("  dtypes: {dtypes:?}");
    println!("  key style: {:?}", KeyStyle::detect(&ck));
    println!("  sub-models:");
    for (g, (n, p)) in &groups {
        println!(
            "    {g:<30} {n:>6} tensors {:>10.2} M params",
            *p as f64 / 1e6
        );
    }
    let has_lm_head = groups.contains_key("lm_head");
    let components = ComponentSet {
        lm_head: has_lm_head,
        ..ComponentSet::ALL
    };
    Unilip::<B>::from_checkpoint(ck.clone(), config, components, &device()).map_err(err)?;
    let unexpected = ck.unread_keys();
    if !unexpected.is_empty() {
        return Err(CliError::Usage(format!(
            "{} unexpected tensor(s) in {}: {}",
            unexpected.len(),
            dir.display(),
            unexpected
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    println!(
        "  every tensor matches config.json{}",
        if has_lm_head {
            ""
        } else {
            " (no lm_head: generation only)"
        }
    );
    Ok(())
}
