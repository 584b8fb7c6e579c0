//! UniDiff's losses (arXiv 2306.00813, `spec/unidiff.md`): image–text contrastive (ITC) and
//! reciprocal semantic consistency (RSC), generic over the backend so they train on autodiff.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Rows scaled to unit L2 norm.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// Mean cross-entropy of `logits` `[n, n]` with the diagonal as the target of every row.
fn diagonal_cross_entropy<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    let n = logits.dims()[0];
    let logp = log_softmax(logits, 1);
    let eye = Tensor::<B, 2>::eye(n, &logp.device());
    (logp * eye).sum().neg().div_scalar(n as f32)
}

/// Symmetric InfoNCE between paired rows of `a` and `b` (`[n, d]` each): cosine similarities
/// divided by `temperature`, cross-entropy towards the pair in both directions, averaged — CLIP's
/// loss, and UniDiff's ITC with `a` = images, `b` = texts.
pub fn info_nce<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>, temperature: f32) -> Tensor<B, 1> {
    let scale = Tensor::from_floats([1.0 / temperature], &a.device());
    info_nce_scaled(a, b, scale)
}

/// [`info_nce`] with the logit multiplier `scale` (`[1]`, CLIP's `exp(logit_scale)`) as a tensor,
/// so a learnable temperature receives its gradient.
pub fn info_nce_scaled<B: Backend>(
    a: Tensor<B, 2>,
    b: Tensor<B, 2>,
    scale: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let logits = l2_normalize(a).matmul(l2_normalize(b).transpose()) * scale.unsqueeze::<2>();
    (diagonal_cross_entropy(logits.clone()) + diagonal_cross_entropy(logits.transpose()))
        .div_scalar(2.0)
}

/// How RSC ties the diffusion model's visual features to the CLIP image embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RscMode {
    /// Symmetric in-batch InfoNCE between the two feature sets (spec §3.3's default).
    Contrastive,
    /// `1 − cos` of each pair, averaged (no negatives).
    Cosine,
    /// Each feature set is pulled to its caption's text embedding with InfoNCE; the mean of both.
    TextAnchored,
}

impl RscMode {
    /// The names the `mode` param takes.
    pub const NAMES: [&'static str; 3] = ["contrastive", "cosine", "text_anchored"];
}

impl std::str::FromStr for RscMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "contrastive" => Ok(Self::Contrastive),
            "cosine" => Ok(Self::Cosine),
            "text_anchored" => Ok(Self::TextAnchored),
            other => Err(format!(
                "unknown RSC mode `{other}` (expected {})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Reciprocal semantic consistency between `diffusion` and `clip` features (`[n, d]`, already
/// projected and pooled). `text` (`[n, d]`) is only read by [`RscMode::TextAnchored`]. Every mode
/// is symmetric in its two feature sets.
pub fn rsc_loss<B: Backend>(
    diffusion: Tensor<B, 2>,
    clip: Tensor<B, 2>,
    text: Option<Tensor<B, 2>>,
    mode: RscMode,
    temperature: f32,
) -> Result<Tensor<B, 1>, String> {
    match mode {
        RscMode::Contrastive => Ok(info_nce(diffusion, clip, temperature)),
        RscMode::Cosine => {
            let cos = (l2_normalize(diffusion) * l2_normalize(clip)).sum_dim(1);
            Ok(cos.neg().add_scalar(1.0).mean())
        }
        RscMode::TextAnchored => {
            let t = text.ok_or("the text-anchored RSC needs text embeddings")?;
            Ok(
                (info_nce(diffusion, t.clone(), temperature) + info_nce(clip, t, temperature))
                    .div_scalar(2.0),
            )
        }
    }
}
