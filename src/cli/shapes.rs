//! ShapesWorld commands: `unilip data shapesworld`, `unilip eval shapesworld` and
//! `unilip train-recipe shapesworld`.

use std::path::{Path, PathBuf};

use clap::builder::PossibleValuesParser;
use clap::{Args, ValueEnum};
use unilip_core::{GraphDoc, ParamValue};
use unilip_nodes::eval::{
    eval_shapesworld, EditMethod, EvalOptions, EvalTask, Metrics, RegionMode,
};
use unilip_nodes::models::flow_edit::FlowEditOptions;
use unilip_nodes::models::regions::RegionLayout;
use unilip_nodes::shapesworld::{write_split, Domain, GenConfig, Split, EDIT_KIND_NAMES};

use super::checkpoint::{init_checkpoint, Dtype, Preset};
use super::run::run_doc;
use super::CliError;

/// The only procedural world so far (a positional word, so other worlds can follow).
#[derive(Clone, Copy, ValueEnum)]
pub enum World {
    /// Coloured shapes with captions, edits and VQA (64×64).
    Shapesworld,
}

/// ShapesWorld domain names.
#[derive(Clone, Copy, ValueEnum)]
pub enum DomainArg {
    /// Saturated colours on white.
    Default,
    /// Pastel colours on a dark background.
    Pastel,
    /// Jewel colours on near-black.
    Dark,
    /// Primary colours on cream, geometric words (disc, box, rhombus).
    Geometric,
}

impl From<DomainArg> for Domain {
    fn from(d: DomainArg) -> Self {
        match d {
            DomainArg::Default => Domain::Default,
            DomainArg::Pastel => Domain::Pastel,
            DomainArg::Dark => Domain::Dark,
            DomainArg::Geometric => Domain::Geometric,
        }
    }
}

/// Train or validation stream.
#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    /// Training stream.
    Train,
    /// Validation stream.
    Val,
}

/// `unilip data shapesworld`.
#[derive(Args)]
pub struct DataArgs {
    /// The world.
    world: World,
    /// Which stream.
    #[arg(long, value_enum, default_value = "train")]
    split: SplitArg,
    /// Items of each kind (captions, edits, VQA).
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Output directory (captions/, edits/, vqa.jsonl, scenes.jsonl, edits.jsonl).
    #[arg(long)]
    out: PathBuf,
    /// Generator seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 64)]
    resolution: u32,
    /// Style and vocabulary.
    #[arg(long, value_enum, default_value = "default")]
    domain: DomainArg,
}

/// `unilip data shapesworld ...`.
pub fn data(args: DataArgs) -> Result<(), CliError> {
    let World::Shapesworld = args.world;
    let config = GenConfig {
        resolution: args.resolution,
        seed: args.seed,
        split: match args.split {
            SplitArg::Train => Split::Train,
            SplitArg::Val => Split::Val,
        },
        domain: args.domain.into(),
    };
    write_split(&args.out, &config, args.n).map_err(|e| CliError::Run(e.to_string()))?;
    println!(
        "wrote {} ShapesWorld items of each kind to {}",
        args.n,
        args.out.display()
    );
    Ok(())
}

/// Evaluation tasks.
#[derive(Clone, Copy, ValueEnum)]
pub enum TaskArg {
    /// Reconstruction PSNR and SSIM.
    Recon,
    /// GenEval-like text-to-image score.
    Generate,
    /// Edit score.
    Edit,
    /// VQA accuracy.
    Vqa,
    /// Linear probes of the image features at each object's token (shape, colour, size, row,
    /// column): what the encoder keeps.
    Probe,
    /// The DiT's flow-matching loss with its own condition and with parts of it swapped or
    /// dropped (prompt; source image, instruction): how much it uses each.
    Flow,
}

/// `unilip eval shapesworld`.
#[derive(Args)]
pub struct EvalArgs {
    /// What to measure.
    #[arg(long, value_enum)]
    task: TaskArg,
    /// Checkpoint directory (default: the embedded ShapesWorld model).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Seed of the validation stream and of the sampling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Validation items.
    #[arg(long, default_value_t = 100)]
    n: usize,
    /// Style and vocabulary.
    #[arg(long, value_enum, default_value = "default")]
    domain: DomainArg,
    /// Sampler steps (generate, edit).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// CFG scale (generate, edit): 4.5, UniLIP's, except with `--edit-method flow-edit` and
    /// `flow-edit-located`, where it is both FlowEdit prompts' scale and defaults to 3 (what
    /// graphs/flow_edit.ron uses). Not read by `by-kind`.
    #[arg(long)]
    guidance: Option<f32>,
    /// Guide only the sampler steps at noise level σ ≤ this (generate, edit); 1 guides every
    /// step, as UniLIP does.
    #[arg(long, default_value_t = 1.0)]
    guidance_max_sigma: f32,
    /// Sampler timestep shift (generate, edit) instead of the checkpoint's `flow_shift`
    /// (UniLIP/SANA: 3); lower spends more of the steps at low noise.
    #[arg(long)]
    flow_shift: Option<f32>,
    /// Edit only: `unilip` (the DiT samples the edit under the source image and the
    /// instruction), `flow-edit` (FlowEdit between the one-object prompts the instruction is
    /// rewritten into, as unilip.edit_prompts does; moves and swaps return the source) or
    /// `flow-edit-located` (the same, with the source kept outside the cells where the DiT
    /// locates the edited object, as graphs/flow_edit_located.ron does; moves and swaps are
    /// made too, by FlowEdit between the objects' captions read over their located boxes and
    /// over the boxes they go to, at strength 0.9 and CFG 8) or `by-kind` (each kind by its
    /// own operation at the located object, as graphs/edit_object.ron does: the object's
    /// pixels painted the colour the DiT draws the new colour in for recolour, scaled 1.5× or
    /// 1/1.5× for resize, filled from around them for remove, the new object sampled in the emptiest box for add, the objects' pixels cut and
    /// pasted for move and swap).
    #[arg(long, value_enum, default_value = "unilip")]
    edit_method: EditMethodArg,
    /// Edit only: the fraction of the schedule that edits. `unilip`: below 1, start sampling from
    /// the source image's latent noised to this fraction of the schedule (SDEdit / img2img
    /// strength) instead of from pure noise (default 1). `flow-edit`, `flow-edit-located`:
    /// FlowEdit's n_max / T (default 0.6). Not read by `by-kind`.
    #[arg(long, value_parser = unit_interval)]
    strength: Option<f32>,
    /// Generate only: sample this many candidates per prompt and keep the one the model's own
    /// understanding rates best (the log-probability of the right answers to the prompt's
    /// count, colour, shape and relation questions); 1 is the plain sampler.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    best_of: u32,
    /// Generate only: draw each object of the prompt's planned layout alone and paste it at
    /// its place (graphs/compose.ron) instead of sampling the whole scene.
    #[arg(long)]
    compose: bool,
    /// Edit only: score edits of these kinds alone (comma-separated; item `i` is then the
    /// `i`-th edit of those kinds in the validation stream). Default: every kind, as drawn.
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(EDIT_KIND_NAMES))]
    edit_kinds: Vec<String>,
    /// Recon only: add Gaussian noise of this standard deviation (in the DiT's units; its
    /// sampler starts from unit noise) to each latent before the pixel decoder, to see how
    /// robust the decoder is to imperfect latents such as a DiT's samples.
    #[arg(long, default_value_t = 0.0)]
    latent_noise: f32,
    /// Generate only: regional prompting (see --layout): each region's own caption is read, in
    /// the DiT's cross-attention, by the tokens of its box alone (`own`), or beside the whole
    /// prompt (`with-base`).
    #[arg(long, value_enum, default_value = "off")]
    regions: RegionArg,
    /// Generate with --regions only: `groups` (the halves of a two-group prompt's groups) or
    /// `objects` (one region per object of a layout drawn from each sample's noise seed, for
    /// every prompt).
    #[arg(long, value_enum, default_value = "groups")]
    layout: LayoutArg,
    /// DiT condition (generate, edit, flow): dual, hidden_only or query_only.
    #[arg(long, default_value = "dual")]
    condition: String,
    /// Print one JSON object with the metric names and values.
    #[arg(long)]
    json: bool,
    /// Also write every item's images (PNG) and scores to this directory: `items.jsonl` (one
    /// record per item: prompt or question, the model's answer, what the scorer detected,
    /// the item's scores) and `metrics.json`. Not for `--task probe` or `flow`.
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
}

/// `--edit-method`: see [`EditMethod`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum EditMethodArg {
    /// The DiT samples the edit under the source image and the instruction (UniLIP).
    Unilip,
    /// FlowEdit between one-object prompts written from the instruction.
    FlowEdit,
    /// FlowEdit, with the source kept outside where the DiT locates the edited object; moves
    /// and swaps between located boxes.
    FlowEditLocated,
    /// Each kind by its own operation at the located object (graphs/edit_object.ron): the
    /// pixels repainted for recolour, scaled for resize, fill for remove, inpainting in the
    /// emptiest box for add, cut-and-paste for move and swap.
    ByKind,
}

/// `--layout`: see [`RegionLayout`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LayoutArg {
    /// One region per group of a prompt relating two groups: the half its relation puts it in.
    Groups,
    /// One region per object of a layout drawn for every prompt, each object's caption over
    /// its box.
    Objects,
}

/// `--regions`: see [`RegionMode`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RegionArg {
    /// The whole prompt everywhere (UniLIP).
    Off,
    /// Each group's half reads that group's caption alone.
    Own,
    /// Each group's half reads that group's caption and the whole prompt.
    WithBase,
}

/// A number in `[0, 1]` (clap value parser).
fn unit_interval(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is outside [0, 1]")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// `unilip eval shapesworld ...`.
pub fn eval(args: EvalArgs) -> Result<(), CliError> {
    let dir = checkpoint_or_default(args.checkpoint)?;
    let mut opts = EvalOptions::new(
        match args.task {
            TaskArg::Recon => EvalTask::Recon,
            TaskArg::Generate => EvalTask::Generate,
            TaskArg::Edit => EvalTask::Edit,
            TaskArg::Vqa => EvalTask::Vqa,
            TaskArg::Probe => EvalTask::Probe,
            TaskArg::Flow => EvalTask::Flow,
        },
        args.n,
    );
    opts.seed = args.seed;
    opts.domain = args.domain.into();
    opts.steps = args.steps;
    opts.guidance_max_sigma = args.guidance_max_sigma;
    opts.condition = args.condition.parse().map_err(CliError::Usage)?;
    opts.edit_method = match args.edit_method {
        EditMethodArg::Unilip => EditMethod::Unilip,
        EditMethodArg::FlowEdit => EditMethod::FlowEdit,
        EditMethodArg::FlowEditLocated => EditMethod::FlowEditLocated,
        EditMethodArg::ByKind => EditMethod::ByKind,
    };
    let flow_edit = FlowEditOptions::default();
    let (strength, guidance) = match opts.edit_method {
        EditMethod::Unilip => (1.0, opts.guidance),
        EditMethod::FlowEdit | EditMethod::FlowEditLocated | EditMethod::ByKind => {
            (flow_edit.strength, flow_edit.guidance_scale)
        }
    };
    opts.strength = args.strength.unwrap_or(strength);
    opts.guidance = args.guidance.unwrap_or(guidance);
    opts.flow_shift = args.flow_shift;
    opts.best_of = args.best_of as usize;
    opts.compose = args.compose;
    opts.edit_kinds = args
        .edit_kinds
        .iter()
        .filter_map(|k| EDIT_KIND_NAMES.into_iter().find(|name| name == k))
        .collect();
    opts.latent_noise = args.latent_noise;
    opts.regions = match args.regions {
        RegionArg::Off => RegionMode::Off,
        RegionArg::Own => RegionMode::Own,
        RegionArg::WithBase => RegionMode::WithBase,
    };
    opts.layout = match args.layout {
        LayoutArg::Groups => RegionLayout::Groups,
        LayoutArg::Objects => RegionLayout::Objects,
    };
    opts.dump = args.dump;
    let metrics = eval_shapesworld(&dir, &opts).map_err(CliError::Run)?;
    print_metrics(&metrics, args.json);
    Ok(())
}

/// The given checkpoint directory, or the embedded default model's.
pub fn checkpoint_or_default(dir: Option<PathBuf>) -> Result<PathBuf, CliError> {
    match dir {
        Some(d) => Ok(d),
        None => unilip_nodes::default_model::dir().map_err(CliError::Usage),
    }
}

/// Metrics as `name: value` lines, or one JSON object.
pub fn print_metrics(metrics: &Metrics, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(metrics).expect("metrics serialise")
        );
    } else {
        for (k, v) in metrics {
            println!("{k}: {v:.4}");
        }
    }
}

/// `unilip train-recipe shapesworld`.
#[derive(Args)]
pub struct RecipeArgs {
    /// The world.
    world: World,
    /// Run directory (one sub-directory per stage; re-running resumes).
    #[arg(long)]
    out: PathBuf,
    /// Multiplies every stage's step count (1 = the shipped recipe).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

/// The recipe's stages: name and graph, in order (spec §3 in miniature).
pub const RECIPE: [(&str, &str); 5] = [
    (
        "understand",
        include_str!("../../graphs/recipe/shapes_1_understand.ron"),
    ),
    (
        "encoder_stage1",
        include_str!("../../graphs/recipe/shapes_2_encoder_stage1.ron"),
    ),
    (
        "encoder_stage2",
        include_str!("../../graphs/recipe/shapes_3_encoder_stage2.ron"),
    ),
    (
        "generate",
        include_str!("../../graphs/recipe/shapes_4_generate.ron"),
    ),
    (
        "edit",
        include_str!("../../graphs/recipe/shapes_5_edit.ron"),
    ),
];

fn set(doc: &mut GraphDoc, node: &str, param: &str, value: ParamValue) -> Result<(), CliError> {
    doc.nodes
        .get_mut(node)
        .ok_or_else(|| CliError::Usage(format!("recipe graph has no node `{node}`")))?
        .params
        .insert(param.into(), value);
    Ok(())
}

/// `unilip train-recipe shapesworld --out DIR`: a random ShapesWorld model, then understanding
/// (the LLM only, over the vision tower as initialised), encoder stage 1 and 2 (after which
/// `unilip_shift` and `unilip_factor` are calibrated so the DiT sees zero-mean, unit-variance
/// latents), generation and editing, each stage starting from the previous one's model and
/// resuming when re-run.
pub fn recipe(args: RecipeArgs) -> Result<(), CliError> {
    let World::Shapesworld = args.world;
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err(CliError::Usage(format!(
            "--scale {} must be positive",
            args.scale
        )));
    }
    let init = args.out.join("init");
    if !init.join("model.safetensors").exists() {
        init_checkpoint(Preset::Shapes, &init, 0, Dtype::F32, None)?;
    }
    let mut previous = init;
    for (i, (stage, text)) in RECIPE.iter().enumerate() {
        println!("== stage {}/{}: {stage}", i + 1, RECIPE.len());
        let mut doc =
            GraphDoc::from_ron(text, stage).map_err(|e| CliError::Usage(e.to_string()))?;
        let out = args.out.join(stage);
        set(
            &mut doc,
            "ckpt",
            "dir",
            ParamValue::Str(path_str(&previous)),
        )?;
        set(&mut doc, "train", "out", ParamValue::Str(path_str(&out)))?;
        set(&mut doc, "train", "resume", ParamValue::Bool(true))?;
        let steps = match doc.nodes["train"].params.get("steps") {
            Some(ParamValue::Int(s)) => *s,
            _ => 100,
        };
        let scaled = ((steps as f64 * args.scale).round() as i64).max(1);
        set(&mut doc, "train", "steps", ParamValue::Int(scaled))?;
        run_doc(&doc, &[], &args.out)?;
        previous = out.join("model");
        if *stage == "encoder_stage2" {
            // The DiT stages need zero-mean, unit-variance targets: measure this encoder's latents.
            super::checkpoint::calibrate_cmd(&previous, 256)?;
        }
    }
    println!("trained model: {}", previous.display());
    Ok(())
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}
