//! The training loop: load, freeze, group, step, log, checkpoint, resume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::{Module, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::data::{mix, Dataset, EpochOrder, Sample};
use super::log::{self, StepLog};
use super::loss::{LossKind, LossTerm};
use super::objective::{Objective, Task};
use super::optim::{clip_global_norm, learning_rate, trainable_ids, Ema, GroupedAdamW, ParamGroup};
use super::run_dir::{read_state, write_state, RunDir, TrainState};
use super::TrainError;
use crate::backend::TrainB;
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{ComponentSet, ConditionMode, KeyStyle, Unilip, UnilipConfig};
use crate::unidiff::heads::{checkpoint_has_heads, checkpoint_has_text_tower, init_tensors};
use crate::weights::{self, Checkpoint, HostTensor, SaveDtype};

/// Which sub-models receive gradients (the rest are frozen, bit-identical after training).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Trainable {
    /// InternViT + `mlp1`.
    pub vision: bool,
    /// `mlp1` alone, at the full learning rate over a frozen InternViT (InternVL's first stage,
    /// the projector warm-up). Implied by `vision`.
    pub projector: bool,
    /// The LLM and `lm_head`.
    pub llm: bool,
    /// Learnable queries, connector and projector.
    pub connector: bool,
    /// The SANA DiT.
    pub dit: bool,
    /// The latent head (`down_blocks`, `down_mlp`).
    pub latent_head: bool,
    /// The DC-AE pixel decoder.
    pub decoder: bool,
    /// UniDiff's heads, temperature and separate text tower.
    pub heads: bool,
}

impl std::fmt::Debug for Trainable {
    /// Leaves `projector` out while it is off, so that the fingerprints of runs written before
    /// it existed (hashes of this text) stay valid.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Trainable");
        d.field("vision", &self.vision);
        if self.projector {
            d.field("projector", &self.projector);
        }
        d.field("llm", &self.llm)
            .field("connector", &self.connector)
            .field("dit", &self.dit)
            .field("latent_head", &self.latent_head)
            .field("decoder", &self.decoder)
            .field("heads", &self.heads)
            .finish()
    }
}

/// UniLIP's learning-rate multiplier of the vision tower (spec §3).
pub const DEFAULT_VISION_LR_MULT: f64 = 0.1;

/// Hyperparameters of a run (spec §3 gives UniLIP's values).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The weighted loss terms.
    pub losses: Vec<LossTerm>,
    /// Optimizer steps.
    pub steps: usize,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Threads computing micro-batches at once (0 = one per CPU core, at most `grad_accum`). The
    /// result does not depend on it: every micro-batch keeps its samples and noise, and the
    /// gradients are summed in micro-batch order.
    pub workers: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup: usize,
    /// AdamW weight decay (not applied to norms, biases and embeddings).
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// EMA decay of the weights (0 = no EMA; the saved model is then the raw weights).
    pub ema_decay: f64,
    /// Checkpoint every this many steps (and at the end).
    pub save_every: usize,
    /// Seed of data order, noise, timesteps and caption dropout.
    pub seed: u64,
    /// What is trained.
    pub trainable: Trainable,
    /// Learning-rate multiplier of the vision tower (UniLIP: [`DEFAULT_VISION_LR_MULT`]).
    pub vision_lr_mult: f64,
    /// Probability of training a sample with the null prompt (generation / editing).
    pub caption_dropout: f64,
    /// Condition of the DiT (generation / editing).
    pub condition_mode: ConditionMode,
}

impl TrainConfig {
    /// Hash of everything but `steps`, `save_every` and `workers`, which a resumed run may
    /// change, with `vision_lr_mult` at its default while the vision tower is frozen (it then
    /// changes nothing).
    fn fingerprint(&self) -> String {
        let mut c = self.clone();
        if !c.trainable.vision {
            c.vision_lr_mult = DEFAULT_VISION_LR_MULT;
        }
        c.raw_fingerprint()
    }

    /// [`Self::fingerprint`] without the `vision_lr_mult` rule, as checkpoints written before
    /// the rule hashed it.
    fn raw_fingerprint(&self) -> String {
        let mut c = self.clone();
        c.save_every = 0;
        c.steps = 0;
        c.workers = 0;
        blake3::hash(format!("{c:?}").as_bytes())
            .to_hex()
            .to_string()
    }

    /// The settings a resumed run must keep, by their `train.run` parameter names (`losses` for
    /// the loss nodes' terms): what [`Self::fingerprint`] hashes, with `vision_lr_mult` only while
    /// the vision tower trains.
    fn resume_settings(&self) -> BTreeMap<String, String> {
        let Self {
            losses,
            steps: _,
            batch_size,
            grad_accum,
            workers: _,
            lr,
            min_lr,
            warmup,
            weight_decay,
            grad_clip,
            ema_decay,
            save_every: _,
            seed,
            trainable,
            vision_lr_mult,
            caption_dropout,
            condition_mode,
        } = self;
        let Trainable {
            vision,
            projector,
            llm,
            connector,
            dit,
            latent_head,
            decoder,
            heads,
        } = *trainable;
        let losses: Vec<String> = losses
            .iter()
            .map(|t| format!("{}×{:?}", t.weight, t.kind))
            .collect();
        let mut named = vec![
            ("losses", losses.join(" + ")),
            ("batch_size", batch_size.to_string()),
            ("grad_accum", grad_accum.to_string()),
            ("lr", lr.to_string()),
            ("min_lr", min_lr.to_string()),
            ("warmup", warmup.to_string()),
            ("weight_decay", weight_decay.to_string()),
            ("grad_clip", grad_clip.to_string()),
            ("ema_decay", ema_decay.to_string()),
            ("seed", seed.to_string()),
            ("train_vision", vision.to_string()),
            ("train_llm", llm.to_string()),
            ("train_connector", connector.to_string()),
            ("train_dit", dit.to_string()),
            ("train_latent_head", latent_head.to_string()),
            ("train_decoder", decoder.to_string()),
            ("train_heads", heads.to_string()),
            ("caption_dropout", caption_dropout.to_string()),
            ("condition", condition_mode.name().to_string()),
        ];
        if vision {
            named.push(("vision_lr_mult", vision_lr_mult.to_string()));
        }
        if projector {
            named.push(("train_projector", projector.to_string()));
        }
        named.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Setup(m.to_string()));
        if self.steps == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return bad("steps, batch_size and grad_accum must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) || self.min_lr < 0.0 || self.min_lr > self.lr {
            return bad("need 0 < lr and 0 ≤ min_lr ≤ lr");
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad("ema_decay must be in [0, 1)");
        }
        if self
            .losses
            .iter()
            .any(|t| !(t.weight.is_finite() && t.weight >= 0.0))
        {
            return bad("loss weights must be finite and ≥ 0");
        }
        Ok(())
    }
}

/// What to train, on what, and where to write it.
pub struct TrainRequest<'a> {
    /// The starting checkpoint directory (HF layout).
    pub base: &'a Path,
    /// The training data.
    pub data: &'a dyn Dataset,
    /// Hyperparameters.
    pub config: &'a TrainConfig,
    /// The run directory.
    pub out: &'a Path,
    /// Continue from `out`'s newest checkpoint when there is one.
    pub resume: bool,
}

/// Called after every step with its log and the total step count; an error stops the run (a
/// [`TrainError::Cancelled`] first writes a checkpoint).
pub type OnStep<'a> = &'a mut dyn FnMut(&StepLog, usize) -> Result<(), TrainError>;

/// Callbacks of a run.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Progress and cancellation, see [`OnStep`].
    pub on_step: Option<OnStep<'a>>,
    /// Stop after this step without a final checkpoint or export, as a crash would (tests).
    pub stop_after: Option<usize>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The exported model (`OUT/model`), `None` when the run stopped early.
    pub model_dir: Option<PathBuf>,
    /// The step the run resumed from, if it did.
    pub resumed_from: Option<usize>,
    /// Steps completed in all.
    pub steps_done: usize,
    /// Steps run by this call.
    pub log: Vec<StepLog>,
    /// The loss of the run's last step, from `OUT/log.csv` (so also when a finished run is
    /// resumed and this call ran no step); `None` when the run stopped early.
    pub final_loss: Option<f64>,
}

/// Runs (or resumes) a training run. See the module docs of [`super`].
pub fn train(req: TrainRequest<'_>, mut hooks: Hooks<'_>) -> Result<TrainReport, TrainError> {
    let cfg = req.config;
    cfg.validate()?;
    if req.data.is_empty() {
        return Err(TrainError::Setup(format!(
            "{} is empty",
            req.data.describe()
        )));
    }
    let task = Task::infer(&cfg.losses, req.data.kind())?;
    let run = RunDir::new(req.out);
    let resume_dir = if req.resume {
        run.latest().map_err(TrainError::Io)?
    } else {
        None
    };
    let state = resume_dir
        .as_deref()
        .map(read_state)
        .transpose()
        .map_err(TrainError::Io)?;
    if let Some(s) = &state {
        check_resume(s, cfg, req.data)?;
    }
    let session = Session::open(req.base, req.out, task, cfg, resume_dir.as_deref())?;
    session.run(req, &run, task, state, &mut hooks, resume_dir)
}

fn check_resume(s: &TrainState, cfg: &TrainConfig, data: &dyn Dataset) -> Result<(), TrainError> {
    let changed = if s.settings_by_name.is_empty() {
        // Written before the settings were stored by name: only the hash can be compared.
        let same = s.settings == cfg.fingerprint() || s.settings == cfg.raw_fingerprint();
        (!same || s.seed != cfg.seed).then(|| "see the run's graph".to_string())
    } else {
        let diffs = settings_diff(&s.settings_by_name, &cfg.resume_settings());
        (!diffs.is_empty()).then(|| diffs.join("; "))
    };
    if let Some(changed) = changed {
        return Err(TrainError::Setup(format!(
            "cannot resume: the training settings differ from the checkpoint's ({changed}); only \
             `steps`, `save_every`, `workers` and, while the vision tower is frozen, \
             `vision_lr_mult` may change; use a new output directory or the checkpoint's settings"
        )));
    }
    if s.data != data.fingerprint() {
        return Err(TrainError::Setup(format!(
            "cannot resume: the dataset changed since the checkpoint ({})",
            data.describe()
        )));
    }
    Ok(())
}

/// One line per setting that differs: "`lr` 0.0003 in the checkpoint, 0.0001 now".
fn settings_diff(saved: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let show = |v: Option<&String>| v.map_or("unset".to_string(), Clone::clone);
    let names: std::collections::BTreeSet<&String> = saved.keys().chain(now.keys()).collect();
    names
        .into_iter()
        .filter(|&k| saved.get(k) != now.get(k))
        .map(|k| {
            format!(
                "`{k}` {} in the checkpoint, {} now",
                show(saved.get(k)),
                show(now.get(k))
            )
        })
        .collect()
}

/// Everything loaded for a run.
struct Session {
    model: Unilip<TrainB>,
    teacher: Option<Unilip<TrainB>>,
    tokenizer: Option<Tokenizer>,
    config: UnilipConfig,
    base: Arc<Checkpoint>,
    base_dir: PathBuf,
}

impl Session {
    fn open(
        base: &Path,
        out: &Path,
        task: Task,
        cfg: &TrainConfig,
        resume: Option<&Path>,
    ) -> Result<Self, TrainError> {
        let dev = crate::backend::device();
        let config = UnilipConfig::load(&base.join("config.json"))?;
        let mut base_ck = Arc::new(Checkpoint::open(base)?);
        if task == Task::Unidiff {
            base_ck = with_unidiff_heads(base_ck, &config, cfg, out)?;
        }
        let components = task.components();
        let model = match resume {
            Some(dir) => Unilip::load_with_config(
                dir.join("train_state").join("raw.safetensors"),
                config.clone(),
                components,
                &dev,
            )?,
            None => Unilip::from_checkpoint(base_ck.clone(), config.clone(), components, &dev)?,
        };
        let model = freeze(model, cfg.trainable);
        let teacher_parts = if task == Task::Unidiff {
            // UniDiff's DiT targets come from the original encoder while the ViT trains.
            let dit_terms = cfg.losses.iter().any(|t| t.kind.uses_dit());
            ((cfg.trainable.vision || cfg.trainable.projector) && dit_terms).then_some(
                ComponentSet {
                    vision: true,
                    decoder: true,
                    ..ComponentSet::default()
                },
            )
        } else {
            cfg.losses
                .iter()
                .any(|t| t.kind.needs_teacher())
                .then_some(ComponentSet {
                    vision: true,
                    ..ComponentSet::default()
                })
        };
        let teacher = teacher_parts
            .map(|parts| {
                Unilip::<TrainB>::from_checkpoint(base_ck.clone(), config.clone(), parts, &dev)
                    .map(|m| m.no_grad())
            })
            .transpose()?;
        let tok_path = base.join("tokenizer.json");
        let tokenizer = if task.needs_tokenizer() {
            if !tok_path.exists() {
                return Err(TrainError::Setup(format!(
                    "{} is missing (this task tokenizes prompts)",
                    tok_path.display()
                )));
            }
            Some(
                Tokenizer::from_file(&tok_path)
                    .map_err(crate::models::unilip::UnilipError::from)?,
            )
        } else {
            None
        };
        Ok(Self {
            model,
            teacher,
            tokenizer,
            config,
            base: base_ck,
            base_dir: base.to_path_buf(),
        })
    }

    fn run(
        self,
        req: TrainRequest<'_>,
        run: &RunDir,
        task: Task,
        state: Option<TrainState>,
        hooks: &mut Hooks<'_>,
        resume_dir: Option<PathBuf>,
    ) -> Result<TrainReport, TrainError> {
        let Session {
            mut model,
            teacher,
            tokenizer,
            config,
            base,
            base_dir,
        } = self;
        let cfg = req.config;
        let dev = crate::backend::device();
        let groups = param_groups(&model, cfg);
        if groups.iter().all(|g| g.ids.is_empty()) {
            return Err(TrainError::Setup(
                "nothing to train: every loaded component is frozen (set a `train_*` flag)".into(),
            ));
        }
        let all_ids: Vec<ParamId> = groups.iter().flat_map(|g| g.ids.clone()).collect();
        let mut optim = GroupedAdamW::<TrainB, Unilip<TrainB>>::new(groups);
        let mut ema = (cfg.ema_decay > 0.0).then(|| Ema::new(cfg.ema_decay, &model, &all_ids));
        if let Some(dir) = &resume_dir {
            optim = optim
                .load(&dir.join("train_state"), &dev)
                .map_err(TrainError::Io)?;
            if let Some(ema) = &mut ema {
                ema.restore(&model.keys, &read_all(&Checkpoint::open(dir)?)?);
            }
        }
        let mut objective = Objective::new(task, &cfg.losses)?;
        objective.teacher = teacher.as_ref();
        objective.tokenizer = tokenizer.as_ref();
        objective.caption_dropout = cfg.caption_dropout;
        objective.condition_mode = cfg.condition_mode;
        let writer = CheckpointWriter {
            run,
            config: &config,
            base: &base,
            base_dir: &base_dir,
            state: TrainState {
                step: 0,
                position: 0,
                seed: cfg.seed,
                settings: cfg.fingerprint(),
                settings_by_name: cfg.resume_settings(),
                data: req.data.fingerprint(),
            },
        };

        let start = state.as_ref().map_or(0, |s| s.step);
        let resumed_from = state.as_ref().map(|s| s.step);
        let mut position = state.as_ref().map_or(0, |s| s.position);
        let order = EpochOrder::new(cfg.seed, req.data.len());
        let names: Vec<&str> = cfg.losses.iter().map(|t| t.kind.name()).collect();
        let mut csv =
            log::open(&run.log_csv(), &log::header(&names), start).map_err(TrainError::Io)?;
        let mut last_good = resume_dir.as_ref().map_or_else(
            || "none written yet".to_string(),
            |d| d.display().to_string(),
        );
        let mut history = Vec::new();
        let workers = worker_count(cfg);
        for step in start..cfg.steps {
            if hooks.stop_after.is_some_and(|s| step >= s) {
                return Ok(TrainReport {
                    model_dir: None,
                    resumed_from,
                    steps_done: step,
                    log: history,
                    final_loss: None,
                });
            }
            let lr = learning_rate(step, cfg.steps, cfg.lr, cfg.min_lr, cfg.warmup);
            let mut micros = Vec::with_capacity(cfg.grad_accum);
            for micro in 0..cfg.grad_accum {
                let samples = (0..cfg.batch_size as u64)
                    .map(|k| req.data.get(order.index(position + k)))
                    .collect::<Result<Vec<Sample>, _>>()?;
                position += cfg.batch_size as u64;
                let rng = StdRng::seed_from_u64(mix(mix(cfg.seed, step as u64), micro as u64));
                micros.push(MicroBatch { samples, rng });
            }
            let pass = MicroPass {
                objective: &objective,
                cfg,
                step,
                last_good: &last_good,
            };
            let mut accumulator = GradientsAccumulator::<Unilip<TrainB>>::new();
            let mut term_sums = vec![0.0; cfg.losses.len()];
            pass.run_all(&model, micros, workers, |grads, values| {
                accumulator.accumulate(&model, grads);
                term_sums.iter_mut().zip(values).for_each(|(s, v)| *s += v);
            })?;
            let mut grads = accumulator.grads();
            let norm = clip_global_norm(&model, &mut grads, cfg.grad_clip);
            if !norm.is_finite() {
                return Err(TrainError::NonFinite {
                    step: step + 1,
                    term: "the gradient norm".into(),
                    value: norm,
                    last_good,
                });
            }
            model = optim.step(lr, model, grads);
            if let Some(ema) = &mut ema {
                ema.update(&model, step);
            }
            let terms: Vec<f64> = term_sums
                .iter()
                .map(|s| s / cfg.grad_accum as f64)
                .collect();
            let entry = StepLog {
                step: step + 1,
                lr,
                loss: terms
                    .iter()
                    .zip(&cfg.losses)
                    .map(|(v, t)| v * t.weight)
                    .sum(),
                terms,
                grad_norm: norm,
            };
            log::append(&mut csv, &entry).map_err(TrainError::Io)?;
            let done = step + 1;
            let callback = match hooks.on_step.as_mut() {
                Some(f) => f(&entry, cfg.steps),
                None => Ok(()),
            };
            history.push(entry);
            let cancelled = matches!(callback, Err(TrainError::Cancelled { .. }));
            if cancelled || done % cfg.save_every.max(1) == 0 || done == cfg.steps {
                let dir = writer.write(done, position, &model, &optim, ema.as_ref())?;
                last_good = dir.display().to_string();
            }
            if cancelled {
                return Err(TrainError::Cancelled { step: done });
            }
            callback?;
        }
        let latest = run
            .latest()
            .map_err(TrainError::Io)?
            .ok_or_else(|| TrainError::Io("no checkpoint was written".into()))?;
        let model_dir = run.export_model(&latest).map_err(TrainError::Io)?;
        let losses = log::read_losses(&run.log_csv()).map_err(TrainError::Io)?;
        log::plot(&losses, &run.loss_png()).map_err(TrainError::Io)?;
        Ok(TrainReport {
            model_dir: Some(model_dir),
            resumed_from,
            steps_done: cfg.steps,
            log: history,
            final_loss: losses.last().map(|&(_, loss)| loss),
        })
    }
}

/// `cfg.workers`, with 0 resolved to the CPU cores, never more than the micro-batches.
fn worker_count(cfg: &TrainConfig) -> usize {
    let wanted = match cfg.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    wanted.clamp(1, cfg.grad_accum)
}

/// One micro-batch: its samples and the generator of its noise, timesteps and dropout.
struct MicroBatch {
    samples: Vec<Sample>,
    rng: StdRng,
}

/// Forward and backward of micro-batches within one optimizer step.
struct MicroPass<'a> {
    objective: &'a Objective<'a>,
    cfg: &'a TrainConfig,
    step: usize,
    last_good: &'a str,
}

/// A micro-batch's gradients and the (unweighted) value of each loss term.
type MicroResult = Result<(GradientsParams, Vec<f64>), TrainError>;

impl MicroPass<'_> {
    /// Hands every micro-batch's gradients and term values to `consume`, in micro-batch order,
    /// computing `workers` at a time (so at most `workers` gradient sets are held at once). A
    /// worker runs on its own fork of the model (same parameter ids, its own autodiff graph), so
    /// the workers' backward passes do not serialise on one graph.
    fn run_all(
        &self,
        model: &Unilip<TrainB>,
        micros: Vec<MicroBatch>,
        workers: usize,
        mut consume: impl FnMut(GradientsParams, Vec<f64>),
    ) -> Result<(), TrainError> {
        let mut pending = micros.into_iter().peekable();
        while pending.peek().is_some() {
            let wave: Vec<MicroBatch> = pending.by_ref().take(workers.max(1)).collect();
            for result in self.run_wave(model, wave) {
                let (grads, values) = result?;
                consume(grads, values);
            }
        }
        Ok(())
    }

    /// The results of `wave`, in order: inline for one micro-batch, else one thread each.
    fn run_wave(&self, model: &Unilip<TrainB>, wave: Vec<MicroBatch>) -> Vec<MicroResult> {
        if wave.len() == 1 {
            return wave.into_iter().map(|m| self.run(model, m)).collect();
        }
        let device = crate::backend::device();
        std::thread::scope(|scope| {
            let handles: Vec<_> = wave
                .into_iter()
                .map(|micro| {
                    let replica = model.clone().fork(&device);
                    scope.spawn(move || self.run(&replica, micro))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(TrainError::Setup(
                            "a training worker thread panicked".into(),
                        ))
                    })
                })
                .collect()
        })
    }

    /// Forward and backward of one micro-batch; a NaN/Inf term stops the run.
    fn run(&self, model: &Unilip<TrainB>, micro: MicroBatch) -> MicroResult {
        let MicroBatch { samples, mut rng } = micro;
        let terms = self.objective.losses(model, &samples, &mut rng)?;
        let mut values = Vec::with_capacity(terms.len());
        let mut total: Option<Tensor<TrainB, 1>> = None;
        for (t, spec) in terms.into_iter().zip(&self.cfg.losses) {
            let value = t.clone().into_scalar().elem::<f64>();
            if !value.is_finite() {
                return Err(TrainError::NonFinite {
                    step: self.step + 1,
                    term: format!("loss `{}`", spec.kind.name()),
                    value,
                    last_good: self.last_good.to_string(),
                });
            }
            values.push(value);
            let weighted = t.mul_scalar(spec.weight / self.cfg.grad_accum as f64);
            total = Some(match total {
                Some(acc) => acc + weighted,
                None => weighted,
            });
        }
        let total = total.ok_or_else(|| TrainError::Setup("no loss terms".into()))?;
        Ok((GradientsParams::from_grads(total.backward(), model), values))
    }
}

/// `base` with UniDiff heads: as it is when it has them (a fine-tuned UniDiff model), else plus
/// fresh heads ([`init_tensors`], seeded by the run's seed; with a copy of the LLM as the text
/// tower when the ITC term asks for a separate one) written to `OUT/unidiff_init.safetensors`.
fn with_unidiff_heads(
    base: Arc<Checkpoint>,
    config: &UnilipConfig,
    cfg: &TrainConfig,
    out: &Path,
) -> Result<Arc<Checkpoint>, TrainError> {
    let separate = cfg.losses.iter().any(|t| {
        matches!(
            t.kind,
            LossKind::Itc {
                separate_text: true
            }
        )
    });
    if checkpoint_has_heads(&base) {
        if separate && !checkpoint_has_text_tower(&base) {
            return Err(TrainError::Setup(format!(
                "{}: its UniDiff heads share the LLM as text encoder; a separate text tower \
                 cannot be added to trained heads (start from a checkpoint without heads)",
                base.root.display()
            )));
        }
        return Ok(base);
    }
    let llm_prefix = KeyStyle::detect(&base).language_model();
    let tensors = init_tensors(
        config.hidden_size(),
        config.dit.inner_dim(),
        cfg.seed,
        separate.then_some((base.as_ref(), llm_prefix)),
    )?;
    std::fs::create_dir_all(out).map_err(|e| TrainError::Io(format!("{}: {e}", out.display())))?;
    let init = out.join("unidiff_init.safetensors");
    weights::write_safetensors(&init, &tensors, SaveDtype::F32, None)?;
    let mut files: Vec<PathBuf> = base.files().map(Path::to_path_buf).collect();
    files.push(init);
    let mut merged = Checkpoint::from_files(&files)?;
    merged.root = base.root.clone();
    merged.config = base.config.clone();
    Ok(Arc::new(merged))
}

/// Freezes (no gradients) every component not marked trainable.
fn freeze(mut m: Unilip<TrainB>, t: Trainable) -> Unilip<TrainB> {
    fn off<M: Module<TrainB>>(x: Option<M>, on: bool) -> Option<M> {
        if on {
            x
        } else {
            x.map(Module::no_grad)
        }
    }
    m.vision = match m.vision {
        Some(mut v) if t.projector && !t.vision => {
            v.vision_tower = v.vision_tower.no_grad();
            Some(v)
        }
        v => off(v, t.vision),
    };
    m.language_model = off(m.language_model, t.llm);
    m.latent_queries = off(m.latent_queries, t.connector);
    m.llm_connector = off(m.llm_connector, t.connector);
    m.projector = off(m.projector, t.connector);
    m.dit = off(m.dit, t.dit);
    m.unidiff = off(m.unidiff, t.heads);
    if let Some(v) = &mut m.vae_decoder {
        if !t.latent_head {
            v.latent_head = v.latent_head.clone().no_grad();
        }
        if !t.decoder {
            v.decoder = v.decoder.clone().no_grad();
        }
    }
    m
}

/// Trainable parameter ids with their ranks.
type RankedIds = Vec<(ParamId, usize)>;

/// One group per (component, decay / no decay): the vision tower at `vision_lr_mult` (`mlp1`
/// alone, while only the projector trains, at the full rate); no weight
/// decay on 1-D parameters (norms, biases, scales) and embeddings/queries.
fn param_groups(m: &Unilip<TrainB>, cfg: &TrainConfig) -> Vec<ParamGroup> {
    let vision_mult = if cfg.trainable.vision {
        cfg.vision_lr_mult
    } else {
        1.0
    };
    let mut parts: Vec<(&str, f64, RankedIds)> = vec![
        ("vision", vision_mult, trainable_ids(&m.vision)),
        ("llm", 1.0, trainable_ids(&m.language_model)),
        ("connector", 1.0, {
            let mut v = trainable_ids(&m.latent_queries);
            v.extend(trainable_ids(&m.llm_connector));
            v.extend(trainable_ids(&m.projector));
            v
        }),
        ("dit", 1.0, trainable_ids(&m.dit)),
        ("unidiff", 1.0, trainable_ids(&m.unidiff)),
    ];
    if let Some(v) = &m.vae_decoder {
        parts.push(("latent_head", 1.0, trainable_ids(&v.latent_head)));
        parts.push(("decoder", 1.0, trainable_ids(&v.decoder)));
    }
    let no_decay = |id: ParamId, rank: usize| {
        rank == 1
            || m.keys.get(id).is_some_and(|e| {
                e.key.contains("embed") || e.key.contains("queries") || e.key.contains("position")
            })
    };
    let mut groups = Vec::new();
    for (name, mult, ids) in parts {
        let (plain, decayed): (Vec<_>, Vec<_>) =
            ids.into_iter().partition(|(id, r)| no_decay(*id, *r));
        for (suffix, ids, wd) in [("", decayed, cfg.weight_decay), ("-no_decay", plain, 0.0)] {
            if !ids.is_empty() {
                groups.push(ParamGroup {
                    name: format!("{name}{suffix}"),
                    ids: ids.into_iter().map(|(id, _)| id).collect(),
                    lr_mult: mult,
                    weight_decay: wd,
                });
            }
        }
    }
    groups
}

/// Every tensor of a checkpoint, as f32.
fn read_all(ck: &Checkpoint) -> Result<BTreeMap<String, HostTensor>, TrainError> {
    ck.keys()
        .into_iter()
        .map(|k| Ok((k.to_string(), ck.read(k)?)))
        .collect()
}

/// Writes checkpoints of a run.
struct CheckpointWriter<'a> {
    run: &'a RunDir,
    config: &'a UnilipConfig,
    base: &'a Checkpoint,
    base_dir: &'a Path,
    state: TrainState,
}

impl CheckpointWriter<'_> {
    /// `checkpoints/step-N`: the full model (base tensors, overridden by the trained components,
    /// overridden by their EMA) in the HF layout, plus the raw weights, optimizer and run state.
    fn write(
        &self,
        step: usize,
        position: u64,
        model: &Unilip<TrainB>,
        optim: &GroupedAdamW<TrainB, Unilip<TrainB>>,
        ema: Option<&Ema<TrainB>>,
    ) -> Result<PathBuf, TrainError> {
        let raw = model
            .tensors()
            .map_err(|e| TrainError::Io(format!("saving the model: {e}")))?;
        // The base checkpoint's tensors the run did not load (read from the mapped files at each
        // save rather than held in memory), then the trained components.
        let mut merged = self
            .base
            .keys()
            .into_iter()
            .filter(|k| !raw.contains_key(*k))
            .map(|k| Ok((k.to_string(), self.base.read(k)?)))
            .collect::<Result<BTreeMap<_, _>, TrainError>>()?;
        merged.extend(raw.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(ema) = ema {
            merged.extend(ema.tensors(&model.keys));
        }
        let state = TrainState {
            step,
            position,
            ..self.state.clone()
        };
        let json = serde_json::to_string_pretty(&self.config.to_json()).expect("config serialises");
        self.run
            .write_checkpoint(step, |dir| {
                let err = |e: weights::WeightError| e.to_string();
                weights::write_safetensors(
                    &dir.join("model.safetensors"),
                    &merged,
                    SaveDtype::F32,
                    None,
                )
                .map_err(err)?;
                weights::write_safetensors(
                    &dir.join("train_state").join("raw.safetensors"),
                    &raw,
                    SaveDtype::F32,
                    None,
                )
                .map_err(err)?;
                weights::atomic_write(&dir.join("config.json"), json.as_bytes()).map_err(err)?;
                let tok = self.base_dir.join("tokenizer.json");
                if tok.exists() {
                    std::fs::copy(&tok, dir.join("tokenizer.json"))
                        .map_err(|e| format!("{}: {e}", tok.display()))?;
                }
                optim.save(&dir.join("train_state"))?;
                write_state(dir, &state)
            })
            .map_err(TrainError::Io)
    }
}
