//! UniDiff's new parameters on the UniLIP stack, stored under `model.unidiff.*` beside the
//! unchanged backbones (the abstract: "without altering the pre-trained model's basic
//! architecture"):
//!
//! * `image_head` — `Linear(H, D)` on the mean-pooled `mlp1` image features (the CLIP image side);
//! * `text_head` — `Linear(H, D)` on the mean-pooled LLM hidden states of the caption (text side);
//! * `dit_head.fc1/fc2` — `Linear(W, 2D) → SiLU → Linear(2D, D)` on the mean-pooled hidden states
//!   of one DiT block (spec §3.3's projector h_φ, for RSC);
//! * `logit_scale` — CLIP's learnable temperature, `exp` clamped to ≤ 100;
//! * `text_tower.*` (optional) — a separate copy of the LLM as ITC's text encoder, so ITC does not
//!   move the LLM that conditions the DiT (spec §3.4 `share_text_encoder = false`).
//!
//! New heads start as the identity on `H` (so step 0 retrieves with the zero-shot embeddings) and a
//! random `dit_head`; [`init_tensors`] makes them.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::silu;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::models::qwen2::{Qwen2Config, Qwen2Model};
use crate::weights::{self, Checkpoint, HostTensor, VarBuilder};

/// Key prefix of every UniDiff parameter.
pub const PREFIX: &str = "model.unidiff";

/// The key (under [`PREFIX`]) whose presence means a checkpoint has UniDiff heads.
const IMAGE_HEAD_WEIGHT: &str = "image_head.weight";

/// The key (under [`PREFIX`]) whose presence means the heads have a separate text tower.
const TEXT_TOWER_EMBED: &str = "text_tower.embed_tokens.weight";

/// True when `ck` holds UniDiff heads.
pub fn checkpoint_has_heads(ck: &Checkpoint) -> bool {
    ck.contains(&format!("{PREFIX}.{IMAGE_HEAD_WEIGHT}"))
}

/// True when `ck`'s UniDiff heads include a separate text tower.
pub fn checkpoint_has_text_tower(ck: &Checkpoint) -> bool {
    ck.contains(&format!("{PREFIX}.{TEXT_TOWER_EMBED}"))
}

/// CLIP's initial `logit_scale`, `ln(1 / 0.07)`.
pub const LOGIT_SCALE_INIT: f32 = 2.659_26;

/// The RSC projector `h_φ`.
#[derive(Module, Debug)]
pub struct DitHead<B: Backend> {
    /// `Linear(W, 2D)`.
    pub fc1: Linear<B>,
    /// `Linear(2D, D)`.
    pub fc2: Linear<B>,
}

/// The UniDiff heads (see the module docs).
#[derive(Module, Debug)]
pub struct UnidiffHeads<B: Backend> {
    /// Image features → embedding.
    pub image_head: Linear<B>,
    /// Caption hidden states → embedding.
    pub text_head: Linear<B>,
    /// DiT block hidden states → embedding.
    pub dit_head: DitHead<B>,
    /// `[1]`, CLIP's log logit multiplier.
    pub logit_scale: Param<Tensor<B, 1>>,
    /// A separate text encoder for ITC (`None`: the LLM is shared).
    pub text_tower: Option<Qwen2Model<B>>,
}

impl<B: Backend> UnidiffHeads<B> {
    /// True when `vb` (at [`PREFIX`]) holds heads.
    pub fn present(vb: &VarBuilder<B>) -> bool {
        vb.contains(IMAGE_HEAD_WEIGHT)
    }

    /// Loads the heads at `vb` ([`PREFIX`]) for an LLM of width `hidden` (`text`) and a DiT of
    /// width `dit_width`; the embedding width is read from `image_head.weight`.
    pub fn load(
        vb: &VarBuilder<B>,
        hidden: usize,
        dit_width: usize,
        text: &Qwen2Config,
    ) -> weights::Result<Self> {
        let key = vb.key(IMAGE_HEAD_WEIGHT);
        let dim = match vb.pp("image_head").shape_of("weight").as_deref() {
            Some([d, _]) => *d,
            found => {
                // A missing key reports itself (with a hint) through `read`.
                vb.checkpoint().read(&key)?;
                return Err(weights::WeightError::ShapeMismatch {
                    file: vb.checkpoint().root.clone(),
                    key,
                    expected: vec![hidden, hidden],
                    found: found.map(<[usize]>::to_vec).unwrap_or_default(),
                });
            }
        };
        let text_tower = vb
            .contains(TEXT_TOWER_EMBED)
            .then(|| Qwen2Model::load(text, &vb.pp("text_tower")))
            .transpose()?;
        Ok(Self {
            image_head: vb.pp("image_head").linear(hidden, dim, true)?,
            text_head: vb.pp("text_head").linear(hidden, dim, true)?,
            dit_head: DitHead {
                fc1: vb.pp("dit_head.fc1").linear(dit_width, 2 * dim, true)?,
                fc2: vb.pp("dit_head.fc2").linear(2 * dim, dim, true)?,
            },
            logit_scale: vb.param("logit_scale", [1])?,
            text_tower,
        })
    }

    /// `exp(logit_scale)`, clamped to ≤ 100 as CLIP does.
    pub fn scale(&self) -> Tensor<B, 1> {
        self.logit_scale.val().exp().clamp_max(100.0)
    }

    /// Image embedding `[b, D]` of `mlp1` features `[b, n, H]`.
    pub fn image_embedding(&self, features: Tensor<B, 3>) -> Tensor<B, 2> {
        self.image_head
            .forward(features.mean_dim(1).squeeze_dim::<2>(1))
    }

    /// Text embedding `[b, D]` of caption hidden states `[b, l, H]` with their padding mask.
    pub fn text_embedding(&self, hidden: Tensor<B, 3>, mask: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        self.text_head.forward(masked_mean(hidden, mask))
    }

    /// Diffusion-side embedding `[b, D]` of one DiT block's hidden states `[b, n, W]`.
    pub fn dit_embedding(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let pooled = hidden.mean_dim(1).squeeze_dim::<2>(1);
        self.dit_head
            .fc2
            .forward(silu(self.dit_head.fc1.forward(pooled)))
    }
}

/// Mean over the positions where `mask` is 1: `[b, l, h]`, `[b, l]` → `[b, h]`.
pub fn masked_mean<B: Backend>(hidden: Tensor<B, 3>, mask: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let m = mask.float().unsqueeze_dim::<3>(2);
    let count = m.clone().sum_dim(1).clamp_min(1.0);
    (hidden * m).sum_dim(1).div(count).squeeze_dim::<2>(1)
}

/// Fresh heads for an LLM of width `hidden` and a DiT of width `dit_width`, keyed under
/// [`PREFIX`]: identity image/text heads (`D = hidden`), a random `dit_head` (N(0, 1/fan_in),
/// seeded), `logit_scale = ln(1/0.07)`. With `text_tower = Some((checkpoint, llm_prefix))` the
/// LLM's decoder stack (`embed_tokens`, `layers`, `norm` under `llm_prefix`) is copied as the
/// separate text encoder.
pub fn init_tensors(
    hidden: usize,
    dit_width: usize,
    seed: u64,
    text_tower: Option<(&Checkpoint, &str)>,
) -> weights::Result<BTreeMap<String, HostTensor>> {
    let dim = hidden;
    let mut out = BTreeMap::new();
    let mut put = |name: &str, shape: Vec<usize>, data: Vec<f32>| {
        out.insert(format!("{PREFIX}.{name}"), HostTensor { shape, data });
    };
    let identity: Vec<f32> = (0..dim * hidden)
        .map(|i| f32::from(u8::from(i / hidden == i % hidden)))
        .collect();
    for head in ["image_head", "text_head"] {
        put(
            &format!("{head}.weight"),
            vec![dim, hidden],
            identity.clone(),
        );
        put(&format!("{head}.bias"), vec![dim], vec![0.0; dim]);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, d_out, d_in) in [("fc1", 2 * dim, dit_width), ("fc2", dim, 2 * dim)] {
        let std = (1.0 / d_in as f32).sqrt();
        let w = (0..d_out * d_in)
            .map(|_| std * weights::standard_normal(&mut rng))
            .collect();
        put(&format!("dit_head.{name}.weight"), vec![d_out, d_in], w);
        put(
            &format!("dit_head.{name}.bias"),
            vec![d_out],
            vec![0.0; d_out],
        );
    }
    put("logit_scale", vec![1], vec![LOGIT_SCALE_INIT]);
    if let Some((ck, llm_prefix)) = text_tower {
        let from = format!("{llm_prefix}.");
        for key in ck.keys() {
            if let Some(rest) = key.strip_prefix(&from) {
                out.insert(format!("{PREFIX}.text_tower.{rest}"), ck.read(key)?);
            }
        }
    }
    Ok(out)
}
