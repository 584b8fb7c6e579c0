//! Qwen2 / Qwen2.5 decoder stack (transformers `Qwen2Model`, eager attention) and the causal LM
//! head with KV-cached text generation.
//!
//! UniLIP uses the same stack twice: as the MLLM (`model.language_model.` + `lm_head.`, causal
//! mask with padding) and as the `llm_connector` (`model.llm_connector.`: the last *k* LLM layers
//! renumbered from 0, no `embed_tokens`, a bidirectional additive 4-D mask built by
//! [`bidirectional_mask`]). Both read positions from [`position_ids_from_mask`].
//!
//! Module field names equal the checkpoint keys, so the Burn module tree is the key tree.

use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

use crate::models::layers::{attention, causal_bias, RmsNorm, Rope, SwiGluMlp};
use crate::weights::{self, HostTensor, VarBuilder, WeightError};

/// Additive value of a hidden key in the padding part of a causal mask (as [`causal_bias`]).
const MASKED: f32 = -1e30;

/// `rope_parameters` of transformers ≥ 5 (`{"rope_type": "default", "rope_theta": ...}`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    /// RoPE variant; only `"default"` is supported.
    pub rope_type: Option<String>,
    /// RoPE base.
    pub rope_theta: Option<f64>,
}

/// One token id or several (HF `eos_token_id` may be either).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// A list of ids.
    Many(Vec<u32>),
}

/// HF `Qwen2Config` (`config.json` of a Qwen2 model, or InternVL's `text_config`). Missing fields
/// take the transformers defaults. Both the 4.x `rope_theta`/`rope_scaling` and the 5.x
/// `rope_parameters` spellings are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Qwen2Config {
    /// Vocabulary size (the embedding row count is read from the checkpoint instead).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// SwiGLU hidden width.
    pub intermediate_size: usize,
    /// Number of decoder layers of the full LLM (a connector's count is read from the checkpoint).
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA).
    pub num_key_value_heads: usize,
    /// Per-head width; `hidden_size / num_attention_heads` when absent.
    pub head_dim: Option<usize>,
    /// MLP activation; only `"silu"` is supported.
    pub hidden_act: String,
    /// Longest sequence the model was trained for.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base (transformers 4.x spelling).
    pub rope_theta: Option<f64>,
    /// RoPE scaling (transformers 4.x); only `null` or type `"default"` is supported.
    pub rope_scaling: Option<serde_json::Value>,
    /// RoPE parameters (transformers 5.x spelling).
    pub rope_parameters: Option<RopeParameters>,
    /// Whether `lm_head` shares `embed_tokens.weight`.
    pub tie_word_embeddings: bool,
    /// Sliding-window attention; not supported (must be false).
    pub use_sliding_window: bool,
    /// End-of-sequence id(s).
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    pub pad_token_id: Option<u32>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
}

impl Default for Qwen2Config {
    fn default() -> Self {
        Self {
            vocab_size: 151936,
            hidden_size: 4096,
            intermediate_size: 22016,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: 32,
            head_dim: None,
            hidden_act: "silu".into(),
            max_position_embeddings: 32768,
            rms_norm_eps: 1e-6,
            rope_theta: None,
            rope_scaling: None,
            rope_parameters: None,
            tie_word_embeddings: false,
            use_sliding_window: false,
            eos_token_id: None,
            pad_token_id: None,
            bos_token_id: None,
        }
    }
}

impl Qwen2Config {
    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// RoPE base: `rope_parameters.rope_theta`, else `rope_theta`, else 10000 (HF default).
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10000.0)
    }

    /// The end-of-sequence ids as a list.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        match &self.eos_token_id {
            None => Vec::new(),
            Some(TokenIds::One(id)) => vec![*id],
            Some(TokenIds::Many(ids)) => ids.clone(),
        }
    }

    /// Rejects settings this port does not implement (explains which one).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let heads = self.num_attention_heads;
        if heads == 0
            || self.num_key_value_heads == 0
            || !heads.is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads {heads} must be a positive multiple of num_key_value_heads {}",
                self.num_key_value_heads
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {} not divisible by {heads} heads",
                self.hidden_size
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "hidden_act `{}` unsupported (only silu)",
                self.hidden_act
            ));
        }
        if self.use_sliding_window {
            return Err("use_sliding_window = true is unsupported".into());
        }
        let scaling = self.rope_scaling.as_ref().filter(|v| !v.is_null());
        let scaling_type = scaling.map(|v| {
            v.get("rope_type")
                .or_else(|| v.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("?")
                .to_string()
        });
        let param_type = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_type.clone());
        for t in [scaling_type, param_type].into_iter().flatten() {
            if t != "default" {
                return Err(format!("rope type `{t}` unsupported (only default RoPE)"));
            }
        }
        Ok(())
    }
}

/// Errors of the forward and generation APIs (bad inputs, never a panic).
#[derive(Debug, thiserror::Error)]
pub enum Qwen2Error {
    /// Token ids were given to a stack without `embed_tokens` (the connector).
    #[error("this Qwen2 stack has no `embed_tokens` (e.g. the llm_connector); pass inputs_embeds")]
    NoEmbedTokens,
    /// A token id is outside the embedding table.
    #[error("token id {id} is outside the vocabulary ({vocab} rows)")]
    TokenOutOfRange {
        /// The offending id.
        id: i64,
        /// Embedding rows.
        vocab: usize,
    },
    /// An input tensor has the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Invalid generation settings.
    #[error("invalid generation settings: {0}")]
    Generation(String),
}

/// Result alias for [`Qwen2Error`].
pub type Result<T> = std::result::Result<T, Qwen2Error>;

/// The attention mask of a forward call.
#[derive(Debug, Clone)]
pub enum AttentionMask<B: Backend> {
    /// Causal attention, optionally AND a key padding mask `[batch, keys]` (1 = keep, 0 = pad;
    /// with a KV cache, `keys` = cached + new tokens). Hidden keys get `-1e30`.
    Causal(Option<Tensor<B, 2, Int>>),
    /// An additive float mask `[batch or 1, 1 or heads, queries, keys]`, used as-is (no causal
    /// part), e.g. the connector's [`bidirectional_mask`].
    Additive(Tensor<B, 4>),
}

impl<B: Backend> AttentionMask<B> {
    /// The additive bias for `batch` rows, `s_q` queries and `s_k` keys.
    fn bias(
        &self,
        batch: usize,
        heads: usize,
        s_q: usize,
        s_k: usize,
        dev: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        match self {
            Self::Causal(None) => Ok(causal_bias(s_q, s_k, dev)),
            Self::Causal(Some(pad)) => {
                if pad.dims() != [batch, s_k] {
                    return Err(Qwen2Error::Shape(format!(
                        "padding mask is {:?}, expected [{batch}, {s_k}] (batch, cached + new tokens)",
                        pad.dims()
                    )));
                }
                let hidden = pad.clone().equal_elem(0).reshape([batch, 1, 1, s_k]);
                Ok(causal_bias(s_q, s_k, dev)
                    .expand([batch, 1, s_q, s_k])
                    .mask_fill(hidden.expand([batch, 1, s_q, s_k]), MASKED))
            }
            Self::Additive(m) => {
                let [b, h, q, k] = m.dims();
                if !(b == 1 || b == batch) || !(h == 1 || h == heads) || q != s_q || k != s_k {
                    return Err(Qwen2Error::Shape(format!(
                        "additive mask is {:?}, expected [{batch} or 1, 1 or {heads}, {s_q}, {s_k}]",
                        m.dims()
                    )));
                }
                Ok(m.clone())
            }
        }
    }
}

/// `position_ids = clamp(cumsum(mask) - 1, 0)` for a 2-D mask `[batch, seq]` (UniLIP, HF generate).
pub fn position_ids_from_mask<B: Backend>(mask: Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
    mask.cumsum(1).sub_scalar(1).clamp_min(0)
}

/// The connector's bidirectional additive mask `(1 - m_i·m_j) · -100000`, `[batch, 1, seq, seq]`,
/// from a 2-D mask `[batch, seq]` (1 = keep).
pub fn bidirectional_mask<B: Backend>(mask: Tensor<B, 2, Int>) -> Tensor<B, 4> {
    let [b, s] = mask.dims();
    let m = mask.float();
    let pair = m.clone().reshape([b, 1, s, 1]) * m.reshape([b, 1, 1, s]);
    pair.neg().add_scalar(1.0).mul_scalar(-100000.0)
}

/// Cached keys/values of one layer (`[batch, kv_heads, seq, head_dim]`, keys after RoPE).
type KvEntry<B> = Option<(Tensor<B, 4>, Tensor<B, 4>)>;

/// Key/value cache for incremental decoding with [`Qwen2Model::forward_cached`].
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<KvEntry<B>>,
}

impl<B: Backend> Default for KvCache<B> {
    fn default() -> Self {
        Self { layers: Vec::new() }
    }
}

impl<B: Backend> KvCache<B> {
    /// Number of cached positions.
    pub fn seq_len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dims()[2],
            _ => 0,
        }
    }
}

/// `Qwen2Attention`: q/k/v projections with bias, o_proj without, rotate-half RoPE, GQA.
#[derive(Module, Debug)]
pub struct Qwen2Attention<B: Backend> {
    /// Query projection.
    pub q_proj: Linear<B>,
    /// Key projection.
    pub k_proj: Linear<B>,
    /// Value projection.
    pub v_proj: Linear<B>,
    /// Output projection.
    pub o_proj: Linear<B>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
}

impl<B: Backend> Qwen2Attention<B> {
    /// Loads `q_proj`, `k_proj`, `v_proj`, `o_proj` under `vb`.
    pub fn load(cfg: &Qwen2Config, vb: &VarBuilder<B>) -> weights::Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        Ok(Self {
            q_proj: vb.pp("q_proj").linear(h, nq * hd, true)?,
            k_proj: vb.pp("k_proj").linear(h, nkv * hd, true)?,
            v_proj: vb.pp("v_proj").linear(h, nkv * hd, true)?,
            o_proj: vb.pp("o_proj").linear(nq * hd, h, false)?,
            num_heads: nq,
            num_kv_heads: nkv,
            head_dim: hd,
        })
    }

    /// `[b, s, heads·d] -> [b, heads, s, d]`.
    fn heads(&self, x: Tensor<B, 3>, n: usize) -> Tensor<B, 4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, n, self.head_dim]).swap_dims(1, 2)
    }

    /// Attention over `x` `[b, s, hidden]`; appends this step's keys/values to `past` if given.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        cos_sin: &(Tensor<B, 4>, Tensor<B, 4>),
        bias: Tensor<B, 4>,
        past: Option<&mut KvEntry<B>>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (cos, sin) = cos_sin;
        let q = Rope::apply(
            self.heads(self.q_proj.forward(x.clone()), self.num_heads),
            cos,
            sin,
        );
        let mut k = Rope::apply(
            self.heads(self.k_proj.forward(x.clone()), self.num_kv_heads),
            cos,
            sin,
        );
        let mut v = self.heads(self.v_proj.forward(x), self.num_kv_heads);
        if let Some(slot) = past {
            if let Some((pk, pv)) = slot.take() {
                k = Tensor::cat(vec![pk, k], 2);
                v = Tensor::cat(vec![pv, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let out = attention(q, k, v, Some(bias), scale);
        self.o_proj.forward(
            out.swap_dims(1, 2)
                .reshape([b, s, self.num_heads * self.head_dim]),
        )
    }
}

/// `Qwen2DecoderLayer`: pre-norm attention and SwiGLU MLP, each with a residual.
#[derive(Module, Debug)]
pub struct Qwen2DecoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: Qwen2Attention<B>,
    /// SwiGLU MLP.
    pub mlp: SwiGluMlp<B>,
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
}

impl<B: Backend> Qwen2DecoderLayer<B> {
    /// Loads one layer (`layers.{i}` prefix in `vb`).
    pub fn load(cfg: &Qwen2Config, vb: &VarBuilder<B>) -> weights::Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            self_attn: Qwen2Attention::load(cfg, &vb.pp("self_attn"))?,
            mlp: SwiGluMlp::load(&vb.pp("mlp"), h, cfg.intermediate_size)?,
            input_layernorm: RmsNorm::load(&vb.pp("input_layernorm"), h, eps, false)?,
            post_attention_layernorm: RmsNorm::load(
                &vb.pp("post_attention_layernorm"),
                h,
                eps,
                false,
            )?,
        })
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        cos_sin: &(Tensor<B, 4>, Tensor<B, 4>),
        bias: Tensor<B, 4>,
        past: Option<&mut KvEntry<B>>,
    ) -> Tensor<B, 3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), cos_sin, bias, past);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

/// Output of [`Qwen2Model::forward_traced`].
#[derive(Debug, Clone)]
pub struct Qwen2Output<B: Backend> {
    /// Post-final-norm hidden states `[b, s, hidden]` (UniLIP's `hidden_states[-1]`).
    pub last_hidden_state: Tensor<B, 3>,
    /// Output of each decoder layer (the pre-norm residual stream), in order.
    pub layers: Vec<Tensor<B, 3>>,
}

/// `Qwen2Model`: optional `embed_tokens`, decoder layers, final `norm`.
#[derive(Module, Debug)]
pub struct Qwen2Model<B: Backend> {
    /// Token embedding; `None` for the connector.
    pub embed_tokens: Option<Embedding<B>>,
    /// Decoder layers (as many as the checkpoint holds, numbered from 0).
    pub layers: Vec<Qwen2DecoderLayer<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// RoPE table (a constant, not in checkpoints).
    pub rotary_emb: Rope<B>,
    /// Model width.
    pub hidden_size: usize,
}

impl<B: Backend> Qwen2Model<B> {
    /// Loads the stack at `vb` (e.g. `model.language_model` or `model.llm_connector`).
    /// `embed_tokens` is loaded if present (its row count comes from the file); the number of
    /// layers is the number of consecutive `layers.{i}` present, starting at 0 (at least one).
    pub fn load(cfg: &Qwen2Config, vb: &VarBuilder<B>) -> weights::Result<Self> {
        cfg.validate().map_err(|reason| WeightError::Config {
            file: vb.checkpoint().root.clone(),
            reason: format!("qwen2 config at `{}`: {reason}", vb.key("")),
        })?;
        let h = cfg.hidden_size;
        let embed_tokens = match vb.shape_of("embed_tokens.weight") {
            Some(shape) => {
                let rows = shape.first().copied().unwrap_or(0);
                let weight = vb.pp("embed_tokens").param("weight", [rows, h])?;
                Some(Embedding { weight })
            }
            None => None,
        };
        let lv = vb.pp("layers");
        let n = (0..)
            .take_while(|i| lv.pp(i).contains("input_layernorm.weight"))
            .count()
            .max(1);
        let layers = (0..n)
            .map(|i| Qwen2DecoderLayer::load(cfg, &lv.pp(i)))
            .collect::<weights::Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            norm: RmsNorm::load(&vb.pp("norm"), h, cfg.rms_norm_eps, false)?,
            rotary_emb: Rope::new(cfg.head_dim(), cfg.rope_theta(), vb.device()),
            hidden_size: h,
        })
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Embeds token ids `[b, s]` -> `[b, s, hidden]`, checking they are in range.
    pub fn embed(&self, input_ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>> {
        let emb = self
            .embed_tokens
            .as_ref()
            .ok_or(Qwen2Error::NoEmbedTokens)?;
        let vocab = emb.weight.dims()[0];
        let bad = input_ids
            .to_data()
            .iter::<i64>()
            .find(|&i| i < 0 || i as usize >= vocab);
        if let Some(id) = bad {
            return Err(Qwen2Error::TokenOutOfRange { id, vocab });
        }
        Ok(emb.forward(input_ids))
    }

    /// Forward from token ids: [`Self::embed`] then [`Self::forward`].
    pub fn forward_ids(
        &self,
        input_ids: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        position_ids: Option<Tensor<B, 2, Int>>,
    ) -> Result<Tensor<B, 3>> {
        self.forward(self.embed(input_ids)?, mask, position_ids)
    }

    /// Forward from `inputs_embeds` `[b, s, hidden]`; returns the post-norm hidden states.
    /// Without `position_ids` the positions are `0..s` (as `Qwen2Model` itself; UniLIP passes
    /// [`position_ids_from_mask`]).
    pub fn forward(
        &self,
        inputs_embeds: Tensor<B, 3>,
        mask: &AttentionMask<B>,
        position_ids: Option<Tensor<B, 2, Int>>,
    ) -> Result<Tensor<B, 3>> {
        Ok(self
            .run(inputs_embeds, mask, position_ids, None, false)?
            .last_hidden_state)
    }

    /// As [`Self::forward`], also returning every layer's output for trace comparison.
    pub fn forward_traced(
        &self,
        inputs_embeds: Tensor<B, 3>,
        mask: &AttentionMask<B>,
        position_ids: Option<Tensor<B, 2, Int>>,
    ) -> Result<Qwen2Output<B>> {
        self.run(inputs_embeds, mask, position_ids, None, true)
    }

    /// Incremental forward: attends to the positions in `cache` plus the new ones, then appends the
    /// new keys/values. Default positions continue after the cached ones; a `Causal` padding mask
    /// or an `Additive` mask must cover cached + new keys.
    pub fn forward_cached(
        &self,
        inputs_embeds: Tensor<B, 3>,
        mask: &AttentionMask<B>,
        position_ids: Option<Tensor<B, 2, Int>>,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>> {
        Ok(self
            .run(inputs_embeds, mask, position_ids, Some(cache), false)?
            .last_hidden_state)
    }

    fn run(
        &self,
        x: Tensor<B, 3>,
        mask: &AttentionMask<B>,
        position_ids: Option<Tensor<B, 2, Int>>,
        mut cache: Option<&mut KvCache<B>>,
        trace: bool,
    ) -> Result<Qwen2Output<B>> {
        let [b, s, h] = x.dims();
        if h != self.hidden_size {
            return Err(Qwen2Error::Shape(format!(
                "inputs_embeds width {h}, model width {}",
                self.hidden_size
            )));
        }
        let dev = x.device();
        let past = cache.as_ref().map_or(0, |c| c.seq_len());
        let positions = match position_ids {
            Some(p) if p.dims() != [b, s] => {
                return Err(Qwen2Error::Shape(format!(
                    "position_ids {:?}, expected [{b}, {s}]",
                    p.dims()
                )))
            }
            Some(p) => p,
            None => Tensor::<B, 1, Int>::arange(past as i64..(past + s) as i64, &dev)
                .reshape([1, s])
                .expand([b, s]),
        };
        let heads = self.layers.first().map_or(1, |l| l.self_attn.num_heads);
        let bias = mask.bias(b, heads, s, past + s, &dev)?;
        let cos_sin = self.rotary_emb.cos_sin(positions);
        if let Some(c) = cache.as_deref_mut() {
            c.layers.resize_with(self.layers.len(), || None);
        }
        let mut outs = Vec::new();
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(x, &cos_sin, bias.clone(), slot);
            if trace {
                outs.push(x.clone());
            }
        }
        Ok(Qwen2Output {
            last_hidden_state: self.norm.forward(x),
            layers: outs,
        })
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Most likely token (first one on ties).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the top-p nucleus.
    Sample {
        /// Softmax temperature (> 0).
        temperature: f64,
        /// Nucleus mass in (0, 1]; 1 disables the filter.
        top_p: f64,
    },
}

/// Settings of [`Qwen2ForCausalLM::generate`].
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// Maximum number of generated tokens per row.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// A row stops after emitting one of these (the id is kept in its output).
    pub eos_token_ids: Vec<u32>,
    /// Seed of the sampling RNG (`StdRng::seed_from_u64`).
    pub seed: u64,
    /// Whether to return the logits of every step.
    pub output_logits: bool,
}

/// Result of [`Qwen2ForCausalLM::generate`].
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    /// Generated ids per batch row (prompt excluded, eos included).
    pub tokens: Vec<Vec<u32>>,
    /// With `output_logits`: the next-token logits `[batch, vocab]` of each step.
    pub logits: Vec<HostTensor>,
}

/// `Qwen2ForCausalLM`: the decoder stack plus `lm_head` (or tied to `embed_tokens`).
#[derive(Module, Debug)]
pub struct Qwen2ForCausalLM<B: Backend> {
    /// The decoder stack (must have `embed_tokens`).
    pub model: Qwen2Model<B>,
    /// Output projection; `None` when tied to `model.embed_tokens`.
    pub lm_head: Option<Linear<B>>,
}

impl<B: Backend> Qwen2ForCausalLM<B> {
    /// Loads the stack at `model_vb` and, unless `tie_word_embeddings`, `lm_head` at `lm_head_vb`
    /// (HF: `model` and `lm_head`; UniLIP: `model.language_model` and `lm_head`).
    pub fn load(
        cfg: &Qwen2Config,
        model_vb: &VarBuilder<B>,
        lm_head_vb: &VarBuilder<B>,
    ) -> weights::Result<Self> {
        let model = Qwen2Model::load(cfg, model_vb)?;
        if model.embed_tokens.is_none() {
            return Err(WeightError::MissingKey {
                key: model_vb.key("embed_tokens.weight"),
                source_desc: model_vb.checkpoint().root.display().to_string(),
                hint: None,
            });
        }
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            let rows = lm_head_vb
                .shape_of("weight")
                .and_then(|s| s.first().copied())
                .unwrap_or(cfg.vocab_size);
            Some(lm_head_vb.linear(cfg.hidden_size, rows, false)?)
        };
        Ok(Self { model, lm_head })
    }

    /// Logits `[b, s, vocab]` of post-norm hidden states.
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
        match (&self.lm_head, &self.model.embed_tokens) {
            (Some(head), _) => Ok(head.forward(hidden)),
            (None, Some(emb)) => Ok(hidden.matmul(emb.weight.val().transpose().unsqueeze())),
            (None, None) => Err(Qwen2Error::NoEmbedTokens),
        }
    }

    /// Generates up to `cfg.max_new_tokens` tokens after the prompt `inputs_embeds` `[b, s, hidden]`
    /// using a KV cache. `prompt_mask` `[b, s]` (1 = token, 0 = pad) allows left-padded batches;
    /// positions are `clamp(cumsum(mask) - 1, 0)`.
    pub fn generate(
        &self,
        inputs_embeds: Tensor<B, 3>,
        prompt_mask: Option<Tensor<B, 2, Int>>,
        cfg: &GenerationConfig,
    ) -> Result<GenerationOutput> {
        if let Sampling::Sample { temperature, top_p } = cfg.sampling {
            if !(temperature > 0.0 && temperature.is_finite() && top_p > 0.0 && top_p <= 1.0) {
                return Err(Qwen2Error::Generation(format!(
                    "temperature {temperature} must be > 0 and top_p {top_p} in (0, 1]"
                )));
            }
        }
        let [b, s, _] = inputs_embeds.dims();
        let dev = inputs_embeds.device();
        let mut mask = prompt_mask.unwrap_or_else(|| Tensor::ones([b, s], &dev));
        let mut positions = position_ids_from_mask(mask.clone());
        let mut next_pos = mask.clone().sum_dim(1);
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut cache = KvCache::default();
        let mut out = GenerationOutput {
            tokens: vec![Vec::new(); b],
            logits: Vec::new(),
        };
        let mut done = vec![false; b];
        let mut x = inputs_embeds;
        for _ in 0..cfg.max_new_tokens {
            let len = x.dims()[1];
            let hidden = self.model.forward_cached(
                x,
                &AttentionMask::Causal(Some(mask.clone())),
                Some(positions),
                &mut cache,
            )?;
            let last = self.logits(hidden.narrow(1, len - 1, 1))?;
            let vocab = last.dims()[2];
            let logits = HostTensor::from_burn(last.reshape([b, vocab]));
            let mut next = Vec::with_capacity(b);
            for (row, row_logits) in logits.data.chunks(vocab.max(1)).enumerate() {
                let tok = pick(row_logits, cfg.sampling, &mut rng);
                if !done[row] {
                    out.tokens[row].push(tok);
                    done[row] = cfg.eos_token_ids.contains(&tok);
                }
                next.push(tok as i64);
            }
            if cfg.output_logits {
                out.logits.push(logits);
            }
            if done.iter().all(|&d| d) {
                break;
            }
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(next, [b, 1]), &dev);
            x = self.model.embed(ids)?;
            mask = Tensor::cat(vec![mask, Tensor::ones([b, 1], &dev)], 1);
            positions = next_pos.clone();
            next_pos = next_pos.add_scalar(1);
        }
        Ok(out)
    }
}

/// Chooses a token from one row of logits.
fn pick(logits: &[f32], sampling: Sampling, rng: &mut StdRng) -> u32 {
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 {
                    (i, x)
                } else {
                    best
                }
            })
            .0 as u32
    };
    let Sampling::Sample { temperature, top_p } = sampling else {
        return argmax(logits);
    };
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let probs: Vec<f64> = logits
        .iter()
        .map(|&x| ((x as f64 - max) / temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    // Nucleus: the most likely tokens until their mass reaches top_p (at least one).
    let mut kept = Vec::new();
    let mut mass = 0.0;
    for &i in &order {
        kept.push(i);
        mass += probs[i] / total;
        if mass >= top_p {
            break;
        }
    }
    let kept_total: f64 = kept.iter().map(|&i| probs[i]).sum();
    let mut u = rng.random::<f64>() * kept_total;
    for &i in &kept {
        u -= probs[i];
        if u < 0.0 {
            return i as u32;
        }
    }
    kept.last().map_or_else(|| argmax(logits), |&i| i as u32)
}
