//! Loss terms the trainer sums (`Σ weightᵢ·lossᵢ`), and the math of each.
//!
//! Pixel and feature losses follow spec §3.1 (UniLIP encoder); the velocity loss follows §2.8
//! (flow matching with logit-normal timesteps); the text loss is next-token cross-entropy on the
//! answer tokens (how the MLLM learns to understand).

use std::fmt;

use crate::models::teacher_forcing::token_log_probs;
use burn::prelude::*;

use crate::unidiff::RscMode;

/// Which loss a term computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossKind {
    /// Mean squared error between the reconstruction and the input image, both in [0, 1].
    PixelMse,
    /// Mean absolute error between the reconstruction and the input image.
    PixelL1,
    /// LPIPS-style distance in the frozen original vision tower: per layer, unit-normalise every
    /// token's channels, then the mean squared difference, averaged over layers.
    Perceptual,
    /// Self-distillation: MSE between the student's `mlp1` features and the frozen original's.
    Distill,
    /// Flow matching: MSE between the DiT output and `ε − x0` at logit-normal timesteps.
    FlowMatching {
        /// Mean of the logit-normal timestep density.
        logit_mean: f64,
        /// Standard deviation of the logit-normal timestep density.
        logit_std: f64,
    },
    /// Hard-negative prompt contrast, on ShapesWorld captions that relate two groups: the DiT's
    /// flow loss on a sample under the caption rearranged (relation reversed, or the groups'
    /// colours or shapes swapped: one at random) must exceed its loss under the caption itself
    /// by `margin`; the term is `mean relu(margin − (L_rearranged − L_own))` over those rows.
    /// It rewards a DiT for reading which group goes where and has which colour and shape.
    PromptContrast {
        /// The loss gap below which a sample counts.
        margin: f64,
    },
    /// Next-token cross-entropy over the answer (or caption) tokens.
    Text,
    /// UniDiff ITC: symmetric InfoNCE between the image and caption embeddings (UniDiff heads)
    /// at CLIP's learnable temperature.
    Itc {
        /// ITC's text encoder is a separate copy of the LLM (`text_tower`), so ITC does not move
        /// the LLM that conditions the DiT.
        separate_text: bool,
    },
    /// UniDiff RSC between a DiT block's pooled, projected hidden states of the noisy latent and
    /// the clean image's CLIP embedding, on the samples with timestep ≤ `t_max`.
    Rsc {
        /// How the two feature sets are tied.
        mode: RscMode,
        /// The DiT block whose output is tapped (0-based).
        tap_block: usize,
        /// Largest timestep (0–1000) a sample may have to count.
        t_max: f64,
        /// Temperature of the contrastive modes.
        temperature: f64,
    },
}

impl LossKind {
    /// Short name used in logs and the CSV header.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PixelMse => "mse",
            Self::PixelL1 => "l1",
            Self::Perceptual => "perceptual",
            Self::Distill => "distill",
            Self::FlowMatching { .. } => "flow_matching",
            Self::PromptContrast { .. } => "prompt_contrast",
            Self::Text => "text",
            Self::Itc { .. } => "itc",
            Self::Rsc { .. } => "rsc",
        }
    }

    /// True for the losses of encoder (reconstruction) training.
    pub fn is_encoder(&self) -> bool {
        matches!(
            self,
            Self::PixelMse | Self::PixelL1 | Self::Perceptual | Self::Distill
        )
    }

    /// True for UniDiff's own terms (ITC, RSC).
    pub fn is_unidiff(&self) -> bool {
        matches!(self, Self::Itc { .. } | Self::Rsc { .. })
    }

    /// True when the term runs the DiT on noised latents.
    pub fn uses_dit(&self) -> bool {
        self.is_flow() || matches!(self, Self::Rsc { .. })
    }

    /// True for the terms of generation / editing training (flow matching and its prompt
    /// contrast).
    pub fn is_flow(&self) -> bool {
        matches!(
            self,
            Self::FlowMatching { .. } | Self::PromptContrast { .. }
        )
    }

    /// True when the frozen original vision tower is needed.
    pub fn needs_teacher(&self) -> bool {
        matches!(self, Self::Perceptual | Self::Distill)
    }
}

/// A weighted term of the training objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossTerm {
    /// What it computes.
    pub kind: LossKind,
    /// Its weight in the sum.
    pub weight: f64,
}

impl fmt::Display for LossTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}", self.weight, self.kind.name())
    }
}

/// Mean squared error over all elements.
pub fn mse<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, 1> {
    (a - b).powi_scalar(2).mean()
}

/// Mean absolute error over all elements.
pub fn l1<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, 1> {
    (a - b).abs().mean()
}

/// LPIPS-style distance between two lists of `[b, tokens, C]` hidden states (one per layer):
/// tokens unit-normalised over channels, squared difference summed over channels, averaged over
/// tokens, batch and layers.
pub fn feature_distance<B: Backend>(a: &[Tensor<B, 3>], b: &[Tensor<B, 3>]) -> Tensor<B, 1> {
    let unit = |t: Tensor<B, 3>| {
        let norm = t.clone().powi_scalar(2).sum_dim(2).sqrt().add_scalar(1e-10);
        t / norm
    };
    let per_layer: Vec<Tensor<B, 1>> = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            (unit(x.clone()) - unit(y.clone()))
                .powi_scalar(2)
                .sum_dim(2)
                .mean()
        })
        .collect();
    let n = per_layer.len().max(1) as f64;
    Tensor::cat(per_layer, 0).sum().div_scalar(n)
}

/// Mean next-token cross-entropy: `logits` `[b, L, V]` predict `targets` `[b, L]` (the token at
/// the next position); positions where `weights` `[b, L]` is 0 are ignored.
pub fn token_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    weights: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let picked = token_log_probs(logits, targets);
    let total = weights.clone().sum().clamp_min(1.0);
    (picked * weights).sum().neg() / total
}
