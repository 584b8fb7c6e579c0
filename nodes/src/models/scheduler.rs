//! Flow-matching schedulers (spec §2.8): diffusers `FlowMatchEulerDiscreteScheduler` (training
//! tables and the Euler sampler) and `DPMSolverMultistepScheduler` with flow sigmas (DPM-Solver++
//! 2M, the sampler UniLIP's `generate_image` uses), plus classifier-free guidance and the training
//! helpers (logit-normal timestep sampling, `add_noise`, velocity target).
//!
//! Schedule tables are computed on the host with the same float widths as diffusers (numpy f64 or
//! torch f32, step by step); the updates run on Burn tensors with f32 coefficients.

use burn::prelude::*;
use burn::tensor::Distribution;
use serde::Deserialize;

/// Scheduler errors: an unsupported config option or a step outside the schedule.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The config asks for a variant this port does not implement.
    #[error("unsupported scheduler option `{option}` = {value}")]
    Unsupported {
        /// Config field name.
        option: &'static str,
        /// Its value.
        value: String,
    },
    /// The config text is not valid JSON for this scheduler.
    #[error("bad scheduler config: {0}")]
    Config(String),
    /// `set_timesteps` was called with 0 steps.
    #[error("num_inference_steps must be at least 1")]
    NoSteps,
    /// `step` was called with an index outside the current schedule.
    #[error(
        "step index {index} out of range: the schedule has {len} steps (call set_timesteps first)"
    )]
    StepOutOfRange {
        /// Index passed to `step`.
        index: usize,
        /// Number of timesteps in the schedule.
        len: usize,
    },
}

/// Result alias for scheduler calls.
pub type Result<T> = std::result::Result<T, SchedulerError>;

fn unsupported(option: &'static str, value: impl std::fmt::Debug) -> SchedulerError {
    SchedulerError::Unsupported {
        option,
        value: format!("{value:?}"),
    }
}

/// Parses a diffusers `scheduler_config.json`, which Python writes with bare `Infinity`,
/// `-Infinity` and `NaN` (e.g. `lambda_min_clipped`); those literals become `null`.
fn parse_config<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T> {
    let mut clean = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if let Some(lit) = ["-Infinity", "Infinity", "NaN"]
            .iter()
            .find(|l| rest.starts_with(**l))
        {
            clean.push_str("null");
            rest = &rest[lit.len()..];
            continue;
        }
        clean.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&clean).map_err(|e| SchedulerError::Config(e.to_string()))
}

/// `numpy.linspace(start, stop, num)` (endpoint included), in f64 as numpy computes it.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// A sampling schedule: what the model receives at each step, and the `n + 1` sigmas (last = 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule<T> {
    /// Model timesteps, one per step.
    pub timesteps: Vec<T>,
    /// Noise levels, one per step plus the final one.
    pub sigmas: Vec<f32>,
}

impl<T> Schedule<T> {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    /// True before `set_timesteps`.
    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    fn sigma_pair(&self, index: usize) -> Result<(f32, f32)> {
        match (self.sigmas.get(index), self.sigmas.get(index + 1)) {
            (Some(&s), Some(&next)) if index < self.timesteps.len() => Ok((s, next)),
            _ => Err(SchedulerError::StepOutOfRange {
                index,
                len: self.timesteps.len(),
            }),
        }
    }
}

/// `FlowMatchEulerDiscreteScheduler` config (`scheduler_config.json`; defaults = diffusers).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlowMatchEulerConfig {
    /// Training timesteps.
    #[serde(default = "d_train_steps")]
    pub num_train_timesteps: usize,
    /// Timestep shift `s' = shift·s / (1 + (shift-1)·s)`. Note: SANA's config spells it
    /// `flow_shift`, which this scheduler ignores, so UniLIP trains with `shift = 1`.
    #[serde(default = "d_shift")]
    pub shift: f64,
    /// Resolution-dependent shifting; not supported.
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    /// Inverted sigmas; not supported.
    #[serde(default)]
    pub invert_sigmas: bool,
    /// Terminal shift; not supported.
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    /// Karras sigmas; not supported.
    #[serde(default)]
    pub use_karras_sigmas: bool,
    /// Exponential sigmas; not supported.
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    /// Beta sigmas; not supported.
    #[serde(default)]
    pub use_beta_sigmas: bool,
    /// Stochastic sampling; not supported.
    #[serde(default)]
    pub stochastic_sampling: bool,
}

fn d_train_steps() -> usize {
    1000
}
fn d_shift() -> f64 {
    1.0
}

impl Default for FlowMatchEulerConfig {
    fn default() -> Self {
        parse_config("{}").expect("all fields have defaults")
    }
}

impl FlowMatchEulerConfig {
    /// Parses `scheduler_config.json` text.
    pub fn from_json_str(text: &str) -> Result<Self> {
        parse_config(text)
    }
}

/// Timesteps sampled for one training batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingTimesteps {
    /// Indices into the training tables.
    pub indices: Vec<usize>,
    /// DiT timestep input per row (`σ·1000`, float).
    pub timesteps: Vec<f32>,
    /// Noise level per row.
    pub sigmas: Vec<f32>,
}

/// `FlowMatchEulerDiscreteScheduler`: training tables and the Euler sampler.
#[derive(Debug, Clone)]
pub struct FlowMatchEulerScheduler {
    config: FlowMatchEulerConfig,
    train_timesteps: Vec<f32>,
    train_sigmas: Vec<f32>,
    schedule: Schedule<f32>,
}

/// `shift·s / (1 + (shift-1)·s)` in f32, operation by operation as torch/numpy do on f32 data.
fn shift_f32(s: f32, shift: f32) -> f32 {
    (shift * s) / (1.0 + (shift - 1.0) * s)
}

impl FlowMatchEulerScheduler {
    /// Builds the training tables: timesteps `N, N-1, …, 1` → shifted σ, timestep = σ·N (f32).
    pub fn new(config: FlowMatchEulerConfig) -> Result<Self> {
        let c = &config;
        for (name, on) in [
            ("use_dynamic_shifting", c.use_dynamic_shifting),
            ("invert_sigmas", c.invert_sigmas),
            ("use_karras_sigmas", c.use_karras_sigmas),
            ("use_exponential_sigmas", c.use_exponential_sigmas),
            ("use_beta_sigmas", c.use_beta_sigmas),
            ("stochastic_sampling", c.stochastic_sampling),
        ] {
            if on {
                return Err(unsupported(name, on));
            }
        }
        if let Some(t) = c.shift_terminal {
            return Err(unsupported("shift_terminal", t));
        }
        if c.num_train_timesteps == 0 {
            return Err(unsupported("num_train_timesteps", 0));
        }
        let n = c.num_train_timesteps as f32;
        let train_sigmas: Vec<f32> = (1..=c.num_train_timesteps)
            .rev()
            .map(|t| shift_f32(t as f32 / n, c.shift as f32))
            .collect();
        let train_timesteps = train_sigmas.iter().map(|s| s * n).collect();
        Ok(Self {
            config,
            train_timesteps,
            train_sigmas,
            schedule: Schedule {
                timesteps: Vec::new(),
                sigmas: Vec::new(),
            },
        })
    }

    /// The config.
    pub fn config(&self) -> &FlowMatchEulerConfig {
        &self.config
    }

    /// Training timesteps (index 0 = `N·σ_max`), what the DiT receives during training.
    pub fn train_timesteps(&self) -> &[f32] {
        &self.train_timesteps
    }

    /// Training sigmas, aligned with [`Self::train_timesteps`].
    pub fn train_sigmas(&self) -> &[f32] {
        &self.train_sigmas
    }

    /// Default schedule: timesteps `linspace(N·σ_max, N·σ_min, n)`, sigmas = shift(t / N), then 0.
    pub fn set_timesteps(&mut self, n: usize) -> Result<Schedule<f32>> {
        if n == 0 {
            return Err(SchedulerError::NoSteps);
        }
        let nt = self.config.num_train_timesteps as f64;
        let (max, min) = (
            self.train_sigmas[0] as f64,
            self.train_sigmas[self.train_sigmas.len() - 1] as f64,
        );
        let shift = self.config.shift;
        let sigmas: Vec<f32> = linspace(max * nt, min * nt, n)
            .into_iter()
            .map(|t| {
                let s = t / nt;
                (shift * s / (1.0 + (shift - 1.0) * s)) as f32
            })
            .collect();
        Ok(self.finish_schedule(sigmas))
    }

    /// Schedule from explicit unshifted sigmas (UniLIP `sample_images`:
    /// `set_timesteps(n, sigmas=linspace(1, 1/n, n))`); shifted in f32.
    pub fn set_timesteps_with_sigmas(&mut self, sigmas: &[f64]) -> Result<Schedule<f32>> {
        if sigmas.is_empty() {
            return Err(SchedulerError::NoSteps);
        }
        let shift = self.config.shift as f32;
        let sigmas = sigmas.iter().map(|&s| shift_f32(s as f32, shift)).collect();
        Ok(self.finish_schedule(sigmas))
    }

    fn finish_schedule(&mut self, mut sigmas: Vec<f32>) -> Schedule<f32> {
        let nt = self.config.num_train_timesteps as f32;
        let timesteps = sigmas.iter().map(|s| s * nt).collect();
        sigmas.push(0.0);
        self.schedule = Schedule { timesteps, sigmas };
        self.schedule.clone()
    }

    /// The current sampling schedule.
    pub fn schedule(&self) -> &Schedule<f32> {
        &self.schedule
    }

    /// Euler step `x + (σ_{i+1} - σ_i)·v` for step `index` of the current schedule.
    pub fn step<B: Backend, const D: usize>(
        &self,
        model_output: Tensor<B, D>,
        index: usize,
        sample: Tensor<B, D>,
    ) -> Result<Tensor<B, D>> {
        let (sigma, next) = self.schedule.sigma_pair(index)?;
        Ok(sample + model_output.mul_scalar(next - sigma))
    }

    /// Samples training timesteps for a batch: index = ⌊sigmoid(N(mean, std))·N⌋ (logit-normal,
    /// diffusers `compute_density_for_timestep_sampling`), then the training tables at it.
    pub fn sample_training<R: rand::Rng>(
        &self,
        batch: usize,
        mean: f64,
        std: f64,
        rng: &mut R,
    ) -> TrainingTimesteps {
        let indices = logit_normal_indices(batch, self.config.num_train_timesteps, mean, std, rng);
        TrainingTimesteps {
            timesteps: indices.iter().map(|&i| self.train_timesteps[i]).collect(),
            sigmas: indices.iter().map(|&i| self.train_sigmas[i]).collect(),
            indices,
        }
    }
}

/// Logit-normal timestep indices: `⌊sigmoid(u)·n⌋` with `u ~ N(mean, std)`, clamped to `n - 1`.
pub fn logit_normal_indices<R: rand::Rng>(
    batch: usize,
    n: usize,
    mean: f64,
    std: f64,
    rng: &mut R,
) -> Vec<usize> {
    let u = TensorData::random::<f32, _, _>([batch], Distribution::Normal(mean, std), rng);
    u.to_vec::<f32>()
        .unwrap_or_default()
        .into_iter()
        .map(|u| {
            let p = 1.0 / (1.0 + (-u).exp());
            ((p * n as f32) as usize).min(n.saturating_sub(1))
        })
        .collect()
}

/// `N(0, 1)` noise of `shape` drawn from `rng` (`TensorData::random`, so a seed fixes it).
pub fn gaussian_noise<B: Backend, const D: usize, R: rand::Rng>(
    shape: [usize; D],
    rng: &mut R,
    device: &B::Device,
) -> Tensor<B, D> {
    let data = TensorData::random::<f32, _, _>(shape, Distribution::Normal(0.0, 1.0), rng);
    Tensor::from_data(data, device)
}

/// Noisy sample `x_t = (1 - σ)·x0 + σ·ε` with one σ per batch row (`sigmas` `[b]`).
pub fn add_noise<B: Backend, const D: usize>(
    x0: Tensor<B, D>,
    noise: Tensor<B, D>,
    sigmas: Tensor<B, 1>,
) -> Tensor<B, D> {
    let mut shape = [1usize; D];
    shape[0] = sigmas.dims()[0];
    let s = sigmas.reshape(shape);
    s.clone().neg().add_scalar(1.0) * x0 + s * noise
}

/// Flow-matching regression target `ε - x0` (the velocity the DiT predicts).
pub fn velocity_target<B: Backend, const D: usize>(
    x0: Tensor<B, D>,
    noise: Tensor<B, D>,
) -> Tensor<B, D> {
    noise - x0
}

/// Classifier-free guidance `uncond + scale·(cond - uncond)`.
pub fn cfg<B: Backend, const D: usize>(
    uncond: Tensor<B, D>,
    cond: Tensor<B, D>,
    scale: f32,
) -> Tensor<B, D> {
    uncond.clone() + (cond - uncond).mul_scalar(scale)
}

/// `DPMSolverMultistepScheduler` config (`scheduler_config.json`; defaults = diffusers). Only the
/// flow-sigma DPM-Solver++ variant SANA uses is implemented; other settings are rejected by
/// [`DpmSolverMultistepScheduler::new`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DpmSolverConfig {
    /// Training timesteps.
    #[serde(default = "d_train_steps")]
    pub num_train_timesteps: usize,
    /// Solver order (1 or 2 supported).
    #[serde(default = "d_order")]
    pub solver_order: usize,
    /// Must be `flow_prediction`.
    #[serde(default = "d_prediction")]
    pub prediction_type: String,
    /// Dynamic thresholding; not supported.
    #[serde(default)]
    pub thresholding: bool,
    /// Must be `dpmsolver++`.
    #[serde(default = "d_algorithm")]
    pub algorithm_type: String,
    /// `midpoint` or `heun`.
    #[serde(default = "d_solver_type")]
    pub solver_type: String,
    /// Use first order at the last step(s).
    #[serde(default = "d_true")]
    pub lower_order_final: bool,
    /// Euler (first order) at the final step.
    #[serde(default)]
    pub euler_at_final: bool,
    /// Karras sigmas; not supported.
    #[serde(default)]
    pub use_karras_sigmas: bool,
    /// Exponential sigmas; not supported.
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    /// Beta sigmas; not supported.
    #[serde(default)]
    pub use_beta_sigmas: bool,
    /// Lu lambdas; not supported.
    #[serde(default)]
    pub use_lu_lambdas: bool,
    /// Must be true (flow sigmas).
    #[serde(default)]
    pub use_flow_sigmas: bool,
    /// Flow shift `s' = f·s / (1 + (f-1)·s)`.
    #[serde(default = "d_shift")]
    pub flow_shift: f64,
    /// Must be `zero`.
    #[serde(default = "d_final_sigmas")]
    pub final_sigmas_type: String,
    /// Only `linspace` is meaningful with flow sigmas; others are rejected.
    #[serde(default = "d_spacing")]
    pub timestep_spacing: String,
    /// Resolution-dependent shifting; not supported.
    #[serde(default)]
    pub use_dynamic_shifting: bool,
}

fn d_order() -> usize {
    2
}
fn d_prediction() -> String {
    "epsilon".into()
}
fn d_algorithm() -> String {
    "dpmsolver++".into()
}
fn d_solver_type() -> String {
    "midpoint".into()
}
fn d_true() -> bool {
    true
}
fn d_final_sigmas() -> String {
    "zero".into()
}
fn d_spacing() -> String {
    "linspace".into()
}

impl DpmSolverConfig {
    /// Parses `scheduler_config.json` text (tolerates Python's `-Infinity`).
    pub fn from_json_str(text: &str) -> Result<Self> {
        parse_config(text)
    }

    /// SANA's 512px sampler config (`flow_shift` 3, flow sigmas, DPM-Solver++ 2M midpoint).
    pub fn sana() -> Self {
        parse_config(
            r#"{"prediction_type": "flow_prediction", "use_flow_sigmas": true, "flow_shift": 3.0}"#,
        )
        .expect("valid literal config")
    }
}

/// `DPMSolverMultistepScheduler` (DPM-Solver++ with flow sigmas), stateful over one trajectory.
#[derive(Debug, Clone)]
pub struct DpmSolverMultistepScheduler<B: Backend, const D: usize> {
    config: DpmSolverConfig,
    schedule: Schedule<i64>,
    /// Data predictions of the previous step (for the 2nd-order update).
    prev_x0: Option<Tensor<B, D>>,
    lower_order_nums: usize,
}

/// `(α, σ)` of a flow sigma and its log-SNR `λ = ln α - ln σ`, in f32.
fn alpha_sigma_lambda(sigma: f32) -> (f32, f32, f32) {
    let alpha = 1.0 - sigma;
    (alpha, sigma, alpha.ln() - sigma.ln())
}

impl<B: Backend, const D: usize> DpmSolverMultistepScheduler<B, D> {
    /// Checks the config against the implemented variant.
    pub fn new(config: DpmSolverConfig) -> Result<Self> {
        let c = &config;
        let checks: [(&'static str, bool, String); 10] = [
            (
                "solver_order",
                !(1..=2).contains(&c.solver_order),
                c.solver_order.to_string(),
            ),
            (
                "prediction_type",
                c.prediction_type != "flow_prediction",
                c.prediction_type.clone(),
            ),
            (
                "algorithm_type",
                c.algorithm_type != "dpmsolver++",
                c.algorithm_type.clone(),
            ),
            (
                "solver_type",
                !["midpoint", "heun"].contains(&c.solver_type.as_str()),
                c.solver_type.clone(),
            ),
            ("use_flow_sigmas", !c.use_flow_sigmas, "false".into()),
            (
                "final_sigmas_type",
                c.final_sigmas_type != "zero",
                c.final_sigmas_type.clone(),
            ),
            (
                "timestep_spacing",
                c.timestep_spacing != "linspace",
                c.timestep_spacing.clone(),
            ),
            ("thresholding", c.thresholding, "true".into()),
            (
                "use_dynamic_shifting",
                c.use_dynamic_shifting,
                "true".into(),
            ),
            (
                "use_karras/exponential/beta_sigmas/lu_lambdas",
                c.use_karras_sigmas
                    || c.use_exponential_sigmas
                    || c.use_beta_sigmas
                    || c.use_lu_lambdas,
                "true".into(),
            ),
        ];
        if let Some((name, _, value)) = checks.into_iter().find(|(_, bad, _)| *bad) {
            return Err(SchedulerError::Unsupported {
                option: name,
                value,
            });
        }
        Ok(Self {
            config,
            schedule: Schedule {
                timesteps: Vec::new(),
                sigmas: Vec::new(),
            },
            prev_x0: None,
            lower_order_nums: 0,
        })
    }

    /// The config.
    pub fn config(&self) -> &DpmSolverConfig {
        &self.config
    }

    /// Flow schedule: `α = linspace(1, 1/N, n+1)`, `s = 1 - α`, shifted, reversed, last dropped
    /// (f64); timesteps = `int64(σ·N)` (truncated); sigmas as f32 plus a final 0. Resets the history.
    pub fn set_timesteps(&mut self, n: usize) -> Result<Schedule<i64>> {
        if n == 0 {
            return Err(SchedulerError::NoSteps);
        }
        let nt = self.config.num_train_timesteps as f64;
        let f = self.config.flow_shift;
        let mut sigmas: Vec<f64> = linspace(1.0, 1.0 / nt, n + 1)
            .into_iter()
            .map(|a| {
                let s = 1.0 - a;
                f * s / (1.0 + (f - 1.0) * s)
            })
            .rev()
            .collect();
        sigmas.pop();
        let timesteps = sigmas.iter().map(|s| (s * nt) as i64).collect();
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).collect();
        sigmas.push(0.0);
        self.schedule = Schedule { timesteps, sigmas };
        self.reset();
        Ok(self.schedule.clone())
    }

    /// The current schedule.
    pub fn schedule(&self) -> &Schedule<i64> {
        &self.schedule
    }

    /// Forgets the multistep history (start of a new trajectory).
    pub fn reset(&mut self) {
        self.prev_x0 = None;
        self.lower_order_nums = 0;
    }

    /// One solver step from step `index` to `index + 1`; `model_output` is the (guided) velocity.
    /// Steps must be taken in order; index 0 starts a new trajectory (clears the history).
    pub fn step(
        &mut self,
        model_output: Tensor<B, D>,
        index: usize,
        sample: Tensor<B, D>,
    ) -> Result<Tensor<B, D>> {
        let (sigma_s, sigma_t) = self.schedule.sigma_pair(index)?;
        if index == 0 {
            self.reset();
        }
        let n = self.schedule.len();
        let c = &self.config;
        let last = index + 1 == n;
        let lower_order_final = last
            && (c.euler_at_final
                || (c.lower_order_final && n < 15)
                || c.final_sigmas_type == "zero");
        let x0 = sample.clone() - model_output.mul_scalar(sigma_s);

        let (alpha_t, sigma_t, lambda_t) = alpha_sigma_lambda(sigma_t);
        let (_, _, lambda_s) = alpha_sigma_lambda(sigma_s);
        let h = lambda_t - lambda_s;
        let phi = alpha_t * ((-h).exp() - 1.0);
        let first = sample.mul_scalar(sigma_t / sigma_s) - x0.clone().mul_scalar(phi);

        let prev = match (
            &self.prev_x0,
            c.solver_order == 1 || self.lower_order_nums < 1 || lower_order_final,
        ) {
            (Some(m1), false) => {
                let sigma_s1 = self.schedule.sigmas[index - 1];
                let (_, _, lambda_s1) = alpha_sigma_lambda(sigma_s1);
                let r0 = (lambda_s - lambda_s1) / h;
                let d1 = (x0.clone() - m1.clone()).mul_scalar(1.0 / r0);
                if c.solver_type == "heun" {
                    first + d1.mul_scalar(alpha_t * (((-h).exp() - 1.0) / h + 1.0))
                } else {
                    first - d1.mul_scalar(0.5 * phi)
                }
            }
            _ => first,
        };
        self.prev_x0 = Some(x0);
        if self.lower_order_nums < c.solver_order {
            self.lower_order_nums += 1;
        }
        Ok(prev)
    }
}
