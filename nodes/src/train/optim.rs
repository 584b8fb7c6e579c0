//! Optimisation pieces around Burn's AdamW: parameter groups (per-module learning-rate
//! multipliers, no weight decay on norms/biases/embeddings), global-norm gradient clipping, an EMA
//! of the weights, and the warmup + cosine learning-rate schedule.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;

use crate::param_keys::ParamKeys;
use crate::weights::HostTensor;

/// Learning rate at `step` (0-based) of `total`: linear warmup from `lr/warmup` to `lr` over
/// `warmup` steps, then a half cosine from `lr` down to `min_lr` at the last step.
pub fn learning_rate(step: usize, total: usize, lr: f64, min_lr: f64, warmup: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup + 1).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// A set of parameters sharing a learning-rate multiplier and a weight decay.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// Name, used for the optimizer-state file (`optim-{name}.bin`).
    pub name: String,
    /// The parameters.
    pub ids: Vec<ParamId>,
    /// Multiplier on the schedule's learning rate.
    pub lr_mult: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
}

/// Collects the ids of every float parameter of a module that requires a gradient, with the
/// rank of each (1-D parameters are norms and biases).
#[derive(Default)]
pub struct TrainableIds {
    /// `(id, rank)` in visiting order.
    pub ids: Vec<(ParamId, usize)>,
}

impl<B: Backend> ModuleVisitor<B> for TrainableIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if param.val().is_require_grad() {
            self.ids.push((param.id, D));
        }
    }
}

/// The trainable parameter ids of `module` with their ranks.
pub fn trainable_ids<B: Backend, M: Module<B>>(module: &M) -> Vec<(ParamId, usize)> {
    let mut v = TrainableIds::default();
    module.visit(&mut v);
    v.ids
}

/// One AdamW per [`ParamGroup`] (Burn's AdamW takes one weight decay; torch-like `eps = 1e-8`).
pub struct GroupedAdamW<B: AutodiffBackend, M: AutodiffModule<B>> {
    groups: Vec<(ParamGroup, OptimizerAdaptor<AdamW, M, B>)>,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> GroupedAdamW<B, M> {
    /// Optimizers for `groups` (β = 0.9 / 0.999).
    pub fn new(groups: Vec<ParamGroup>) -> Self {
        let groups = groups
            .into_iter()
            .map(|g| {
                let opt = AdamWConfig::new()
                    .with_beta_1(0.9)
                    .with_beta_2(0.999)
                    .with_epsilon(1e-8)
                    .with_weight_decay(g.weight_decay as f32)
                    .init::<B, M>();
                (g, opt)
            })
            .collect();
        Self { groups }
    }

    /// The groups.
    pub fn groups(&self) -> impl Iterator<Item = &ParamGroup> {
        self.groups.iter().map(|(g, _)| g)
    }

    /// One update of every group at learning rate `lr × lr_mult`.
    pub fn step(&mut self, lr: f64, mut model: M, mut grads: GradientsParams) -> M {
        for (group, opt) in &mut self.groups {
            let mut split = GradSplit::<B> {
                wanted: group.ids.iter().copied().collect(),
                from: &mut grads,
                into: GradientsParams::new(),
                _b: std::marker::PhantomData,
            };
            model.visit(&mut split);
            let part = split.into;
            if !part.is_empty() {
                model = opt.step(lr * group.lr_mult, model, part);
            }
        }
        model
    }

    /// Writes each group's optimizer state to `dir/optim-{name}.bin`.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let rec = BinFileRecorder::<FullPrecisionSettings>::new();
        for (g, opt) in &self.groups {
            let path = dir.join(format!("optim-{}", g.name));
            Recorder::<B>::record(&rec, opt.to_record(), path.clone())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Restores every group's optimizer state from `dir` (written by [`Self::save`]).
    pub fn load(mut self, dir: &Path, device: &B::Device) -> Result<Self, String> {
        let rec = BinFileRecorder::<FullPrecisionSettings>::new();
        let mut groups = Vec::with_capacity(self.groups.len());
        for (g, opt) in self.groups.drain(..) {
            let path = dir.join(format!("optim-{}", g.name));
            let record = Recorder::<B>::load(&rec, path.clone(), device)
                .map_err(|e| format!("{}.bin: {e}", path.display()))?;
            groups.push((g, opt.load_record(record)));
        }
        self.groups = groups;
        Ok(self)
    }
}

/// Moves the gradients of `wanted` parameters from one set to another.
struct GradSplit<'a, B: AutodiffBackend> {
    wanted: HashSet<ParamId>,
    from: &'a mut GradientsParams,
    into: GradientsParams,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradSplit<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.wanted.contains(&param.id) {
            if let Some(g) = self.from.remove::<B::InnerBackend, D>(param.id) {
                self.into.register(param.id, g);
            }
        }
    }
}

/// Global L2 norm of all gradients of `model`, and (when above `max_norm > 0`) every gradient
/// scaled by `max_norm / norm` — torch's `clip_grad_norm_`. Returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut sq = SquaredNorm::<B> {
        grads,
        total: 0.0,
        _b: std::marker::PhantomData,
    };
    model.visit(&mut sq);
    let norm = sq.total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let mut scale = ScaleGrads::<B> {
            grads,
            scale: (max_norm / (norm + 1e-6)) as f32,
            _b: std::marker::PhantomData,
        };
        model.visit(&mut scale);
    }
    norm
}

struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: f64,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            self.total += g.powi_scalar(2).sum().into_scalar().elem::<f64>();
        }
    }
}

struct ScaleGrads<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    scale: f32,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.scale));
        }
    }
}

/// Exponential moving average of the trainable weights (kept flat on the inner backend), with
/// diffusers' warmup: the decay at update `n` is `min(decay, (1 + n) / (10 + n))`.
pub struct Ema<B: AutodiffBackend> {
    decay: f64,
    shadow: HashMap<ParamId, (Tensor<B::InnerBackend, 1>, Vec<usize>)>,
}

impl<B: AutodiffBackend> Ema<B> {
    /// An EMA of the parameters `ids` of `model`, starting at their current values.
    pub fn new<M: Module<B>>(decay: f64, model: &M, ids: &[ParamId]) -> Self {
        let mut init = EmaVisit::<B> {
            wanted: ids.iter().copied().collect(),
            shadow: HashMap::new(),
            factor: None,
        };
        model.visit(&mut init);
        Self {
            decay,
            shadow: init.shadow,
        }
    }

    /// Replaces the shadow values by `tensors` (keyed as in a checkpoint), for resuming.
    pub fn restore(&mut self, keys: &ParamKeys, tensors: &BTreeMap<String, HostTensor>) {
        for (id, (value, shape)) in self.shadow.iter_mut() {
            let Some(entry) = keys.get(*id) else { continue };
            let Some(host) = tensors.get(&entry.key) else {
                continue;
            };
            let mut data = host.data.clone();
            if entry.transposed && shape.len() == 2 {
                data = transpose(&data, host.shape[0], host.shape[1]);
            }
            *value = Tensor::from_data(TensorData::new(data, [value.dims()[0]]), &value.device());
        }
    }

    /// Folds the current weights in (`update` is the 0-based update count).
    pub fn update<M: Module<B>>(&mut self, model: &M, update: usize) {
        let d = self.decay.min((1 + update) as f64 / (10 + update) as f64);
        let mut visit = EmaVisit::<B> {
            wanted: HashSet::new(),
            shadow: std::mem::take(&mut self.shadow),
            factor: Some(d as f32),
        };
        model.visit(&mut visit);
        self.shadow = visit.shadow;
    }

    /// The averaged weights under their checkpoint keys (Linear weights back to `[out, in]`).
    pub fn tensors(&self, keys: &ParamKeys) -> BTreeMap<String, HostTensor> {
        self.shadow
            .iter()
            .filter_map(|(id, (value, shape))| {
                let entry = keys.get(*id)?;
                let data = value
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .ok()?;
                let host = if entry.transposed && shape.len() == 2 {
                    HostTensor {
                        shape: vec![shape[1], shape[0]],
                        data: transpose(&data, shape[0], shape[1]),
                    }
                } else {
                    HostTensor {
                        shape: shape.clone(),
                        data,
                    }
                };
                Some((entry.key, host))
            })
            .collect()
    }
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Initialises (`factor = None`, only `wanted`) or updates (`factor = Some(d)`) the shadow.
struct EmaVisit<B: AutodiffBackend> {
    wanted: HashSet<ParamId>,
    shadow: HashMap<ParamId, (Tensor<B::InnerBackend, 1>, Vec<usize>)>,
    factor: Option<f32>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for EmaVisit<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val().inner();
        let shape = value.dims().to_vec();
        let flat = value.reshape([shape.iter().product::<usize>()]);
        match self.factor {
            None if self.wanted.contains(&param.id) => {
                self.shadow.insert(param.id, (flat, shape));
            }
            Some(d) => {
                if let Some((old, _)) = self.shadow.get_mut(&param.id) {
                    *old = old.clone().mul_scalar(d) + flat.mul_scalar(1.0 - d);
                }
            }
            None => {}
        }
    }
}
