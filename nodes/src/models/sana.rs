//! SANA DiT: diffusers `SanaTransformer2DModel` with the v0.32.2 semantics UniLIP runs
//! (spec §2.7): patch embedding (+ optional 2-D sin-cos positional embedding), AdaLN-single
//! timestep modulation, caption projection + RMSNorm, blocks of ReLU linear self-attention,
//! softmax cross-attention and a GLUMBConv FFN, then a modulated output norm and `proj_out`.
//!
//! Module field names equal the diffusers state-dict keys (`transformer_blocks.0.attn1.to_q`, …).

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, relu, silu};
use serde::Deserialize;

use crate::models::layers::{
    attention, contiguous, depthwise_conv_channels_last, linear_attention, pointwise_conv_tokens,
    ConvSpec, LayerNorm, RmsNorm,
};
use crate::weights::{Result, VarBuilder, WeightError};

/// Channels of the sinusoidal timestep projection (`Timesteps(256, flip_sin_to_cos=True)`).
const TIME_PROJ_DIM: usize = 256;
/// Denominator epsilon of the linear self-attention (`SanaLinearAttnProcessor2_0`).
const LINEAR_ATTN_EPS: f64 = 1e-15;
/// Additive bias for masked caption tokens: `(1 - m) * -10000`.
const MASK_BIAS: f64 = -10000.0;

/// `SanaTransformer2DModel` config, as in the diffusers `config.json` (defaults = diffusers defaults).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SanaConfig {
    /// Latent channels in.
    #[serde(default = "d_channels")]
    pub in_channels: usize,
    /// Latent channels out (`null` = `in_channels`).
    #[serde(default = "d_out_channels")]
    pub out_channels: Option<usize>,
    /// Self-attention heads.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// Self-attention head width; `heads * head_dim` is the model width.
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: usize,
    /// Number of transformer blocks.
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    /// Cross-attention heads.
    #[serde(default = "d_cross_heads")]
    pub num_cross_attention_heads: usize,
    /// Cross-attention head width.
    #[serde(default = "d_cross_head_dim")]
    pub cross_attention_head_dim: usize,
    /// Width of the (projected) caption tokens; must equal the model width.
    #[serde(default = "d_cross_dim")]
    pub cross_attention_dim: usize,
    /// Width of the raw caption tokens.
    #[serde(default = "d_caption_channels")]
    pub caption_channels: usize,
    /// GLUMBConv expansion ratio (hidden = `int(mlp_ratio * width)`).
    #[serde(default = "d_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Dropout (unused at inference).
    #[serde(default)]
    pub dropout: f64,
    /// Whether the self-attention q/k/v projections have biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Latent size the model was built for (sets the positional-embedding base size).
    #[serde(default = "d_sample_size")]
    pub sample_size: usize,
    /// Patch size.
    #[serde(default = "d_patch_size")]
    pub patch_size: usize,
    /// Whether `norm2` of each block has affine parameters.
    #[serde(default)]
    pub norm_elementwise_affine: bool,
    /// Epsilon of the block LayerNorms.
    #[serde(default = "d_norm_eps")]
    pub norm_eps: f64,
    /// Positional-embedding interpolation scale (`null` = `max(sample_size / 64, 1)`, v0.32.2).
    #[serde(default)]
    pub interpolation_scale: Option<f64>,
    /// Guidance embedding (SANA-Sprint); not supported, must be false.
    #[serde(default)]
    pub guidance_embeds: bool,
    /// Query/key norm (SANA 1.5); not supported, must be null.
    #[serde(default)]
    pub qk_norm: Option<String>,
    /// Timestep scale (SANA-Sprint); not supported, must be 1.
    #[serde(default = "d_timestep_scale")]
    pub timestep_scale: f64,
}

fn d_channels() -> usize {
    32
}
fn d_out_channels() -> Option<usize> {
    Some(32)
}
fn d_heads() -> usize {
    70
}
fn d_head_dim() -> usize {
    32
}
fn d_layers() -> usize {
    20
}
fn d_cross_heads() -> usize {
    20
}
fn d_cross_head_dim() -> usize {
    112
}
fn d_cross_dim() -> usize {
    2240
}
fn d_caption_channels() -> usize {
    2304
}
fn d_mlp_ratio() -> f64 {
    2.5
}
fn d_sample_size() -> usize {
    32
}
fn d_patch_size() -> usize {
    1
}
fn d_norm_eps() -> f64 {
    1e-6
}
fn d_timestep_scale() -> f64 {
    1.0
}

impl SanaConfig {
    /// Model width (`num_attention_heads * attention_head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels (`out_channels`, else `in_channels`): the latent's channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Whether the DiT takes a source latent concatenated after the noisy one (`in_channels` =
    /// 2 × `out_channels`): false for UniLIP's DiT, true for one that sees the edit source beside
    /// the noisy latent (InstructPix2Pix's input, made by `unilip checkpoint add-source-input`).
    pub fn takes_source(&self) -> bool {
        self.in_channels > self.out_channels()
    }

    /// Interpolation scale of the positional embedding (diffusers 0.32.2 rule for `null`).
    pub fn interpolation_scale(&self) -> f64 {
        self.interpolation_scale
            .unwrap_or_else(|| (self.sample_size / 64).max(1) as f64)
    }

    /// Hidden width of the GLUMBConv (`int(mlp_ratio * width)`).
    pub fn ffn_hidden(&self) -> usize {
        (self.mlp_ratio * self.inner_dim() as f64) as usize
    }

    /// Why this config cannot be run, if it cannot.
    fn unsupported(&self) -> Option<String> {
        if self.guidance_embeds {
            return Some("guidance_embeds = true is not supported".into());
        }
        if let Some(n) = &self.qk_norm {
            return Some(format!("qk_norm = {n:?} is not supported"));
        }
        if self.timestep_scale != 1.0 {
            return Some(format!(
                "timestep_scale = {} is not supported",
                self.timestep_scale
            ));
        }
        if self.cross_attention_dim != self.inner_dim() {
            return Some(format!(
                "cross_attention_dim {} must equal heads * head_dim = {}",
                self.cross_attention_dim,
                self.inner_dim()
            ));
        }
        if self.patch_size == 0 || self.sample_size < self.patch_size {
            return Some(format!(
                "patch_size {} / sample_size {} are invalid",
                self.patch_size, self.sample_size
            ));
        }
        if self.num_attention_heads == 0 || self.num_cross_attention_heads == 0 {
            return Some("attention head counts must be positive".into());
        }
        let out = self.out_channels();
        if self.in_channels != out && self.in_channels != 2 * out {
            return Some(format!(
                "in_channels {} must equal out_channels {out}, or be twice it (a DiT that takes \
                 the edit source's latent beside the noisy one)",
                self.in_channels
            ));
        }
        None
    }
}

/// Which positional embedding is added after `patch_embed.proj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PosEmbed {
    /// No positional embedding (diffusers ≥ 0.33 with `interpolation_scale: null`).
    None,
    /// The exact 2-D sin-cos table (computed in f64, stored as f32): diffusers 0.32.2.
    #[default]
    SinCos,
    /// As [`PosEmbed::SinCos`], but the table for the default grid (`sample_size / patch_size`
    /// squared) is rounded to bf16 (round-to-nearest-even), as UniLIP's bf16 load leaves the
    /// buffer. Other grids are recomputed exactly, as diffusers does.
    SinCosBf16,
}

/// 2-D sin-cos positional embedding (diffusers `get_2d_sincos_pos_embed`, torch path), row-major
/// over a `grid_h x grid_w` grid, `[grid_h * grid_w * dim]` values. Column positions fill the first
/// `dim/2` channels, row positions the rest; positions are `arange(n) / (n / base_size) / scale`
/// in f32, the sines and cosines are taken in f64.
pub fn sincos_pos_embed(
    dim: usize,
    grid_h: usize,
    grid_w: usize,
    base_size: usize,
    interpolation_scale: f64,
) -> Vec<f32> {
    let positions = |n: usize| -> Vec<f64> {
        let ratio = (n as f64 / base_size as f64) as f32;
        (0..n)
            .map(|i| (i as f32 / ratio / interpolation_scale as f32) as f64)
            .collect()
    };
    let (ph, pw) = (positions(grid_h), positions(grid_w));
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter)
        .map(|k| 1.0 / 10000f64.powf(k as f64 / quarter as f64))
        .collect();
    let mut out = Vec::with_capacity(grid_h * grid_w * dim);
    for &y in &ph {
        for &x in &pw {
            for pos in [x, y] {
                out.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                out.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    out
}

/// `PatchEmbed`: the patchifying conv (the sin-cos table is generated, not stored).
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// Conv `k = s = patch_size`, latent channels → width.
    pub proj: Conv2d<B>,
}

/// `TimestepEmbedding`: Linear → SiLU → Linear.
#[derive(Module, Debug)]
pub struct TimestepEmbedding<B: Backend> {
    /// 256 → width.
    pub linear_1: Linear<B>,
    /// width → width.
    pub linear_2: Linear<B>,
}

/// `PixArtAlphaCombinedTimestepSizeEmbeddings` without size conditioning.
#[derive(Module, Debug)]
pub struct TimestepEmbeddings<B: Backend> {
    /// The MLP on the sinusoidal projection.
    pub timestep_embedder: TimestepEmbedding<B>,
}

/// `AdaLayerNormSingle`: timestep → (6·width modulation, embedded timestep).
#[derive(Module, Debug)]
pub struct AdaLayerNormSingle<B: Backend> {
    /// Timestep embedding.
    pub emb: TimestepEmbeddings<B>,
    /// width → 6·width, applied to `silu(embedded_timestep)`.
    pub linear: Linear<B>,
}

impl<B: Backend> AdaLayerNormSingle<B> {
    /// Returns `(linear(silu(e)), e)` for f32 timesteps `[b]`.
    fn forward(&self, timestep: Tensor<B, 1>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let proj = timestep_proj(timestep);
        let te = &self.emb.timestep_embedder;
        let e = te.linear_2.forward(silu(te.linear_1.forward(proj)));
        (self.linear.forward(silu(e.clone())), e)
    }
}

/// Sinusoidal timestep projection, 256 channels, `[cos | sin]` (`flip_sin_to_cos=True`,
/// `downscale_freq_shift=0`), frequencies computed in f32 as torch does.
fn timestep_proj<B: Backend>(timestep: Tensor<B, 1>) -> Tensor<B, 2> {
    let half = TIME_PROJ_DIM / 2;
    let neg_log = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (((neg_log * i as f32) / half as f32) as f64).exp() as f32)
        .collect();
    let device = timestep.device();
    let freqs = Tensor::<B, 2>::from_data(TensorData::new(freqs, [1, half]), &device);
    let args = timestep.unsqueeze_dim::<2>(1) * freqs;
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1)
}

/// `PixArtAlphaTextProjection`: Linear → GELU(tanh) → Linear.
#[derive(Module, Debug)]
pub struct CaptionProjection<B: Backend> {
    /// caption_channels → width.
    pub linear_1: Linear<B>,
    /// width → width.
    pub linear_2: Linear<B>,
}

/// Self-attention with `SanaLinearAttnProcessor2_0` (ReLU kernel, no mask, f32).
#[derive(Module, Debug)]
pub struct LinearSelfAttention<B: Backend> {
    /// Query projection.
    pub to_q: Linear<B>,
    /// Key projection.
    pub to_k: Linear<B>,
    /// Value projection.
    pub to_v: Linear<B>,
    /// Output projection (`to_out.0`).
    pub to_out: Vec<Linear<B>>,
    /// Head count.
    pub heads: usize,
}

/// Splits `[b, n, h*d]` into `[b, h, n, d]`.
fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [b, n, c] = x.dims();
    x.reshape([b, n, heads, c / heads]).swap_dims(1, 2)
}

/// Merges `[b, h, n, d]` into `[b, n, h*d]`.
fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, h, n, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, n, h * d])
}

impl<B: Backend> LinearSelfAttention<B> {
    fn load(vb: &VarBuilder<B>, cfg: &SanaConfig) -> Result<Self> {
        let (d, bias) = (cfg.inner_dim(), cfg.attention_bias);
        Ok(Self {
            to_q: vb.pp("to_q").linear(d, d, bias)?,
            to_k: vb.pp("to_k").linear(d, d, bias)?,
            to_v: vb.pp("to_v").linear(d, d, bias)?,
            to_out: vec![vb.pp("to_out").pp(0).linear(d, d, true)?],
            heads: cfg.num_attention_heads,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let q = split_heads(relu(self.to_q.forward(x.clone())), self.heads);
        let k = split_heads(relu(self.to_k.forward(x.clone())), self.heads);
        let v = split_heads(self.to_v.forward(x), self.heads);
        let out = merge_heads(linear_attention(q, k, v, LINEAR_ATTN_EPS));
        self.to_out[0].forward(out)
    }
}

/// Cross-attention on the caption (`AttnProcessor2_0`: softmax, additive mask bias).
#[derive(Module, Debug)]
pub struct CrossAttention<B: Backend> {
    /// Query projection (from the hidden states).
    pub to_q: Linear<B>,
    /// Key projection (from the caption).
    pub to_k: Linear<B>,
    /// Value projection (from the caption).
    pub to_v: Linear<B>,
    /// Output projection (`to_out.0`).
    pub to_out: Vec<Linear<B>>,
    /// Head count.
    pub heads: usize,
}

impl<B: Backend> CrossAttention<B> {
    fn load(vb: &VarBuilder<B>, cfg: &SanaConfig) -> Result<Self> {
        let d = cfg.inner_dim();
        let inner = cfg.num_cross_attention_heads * cfg.cross_attention_head_dim;
        let kv_in = cfg.cross_attention_dim;
        Ok(Self {
            to_q: vb.pp("to_q").linear(d, inner, true)?,
            to_k: vb.pp("to_k").linear(kv_in, inner, true)?,
            to_v: vb.pp("to_v").linear(kv_in, inner, true)?,
            to_out: vec![vb.pp("to_out").pp(0).linear(inner, d, true)?],
            heads: cfg.num_cross_attention_heads,
        })
    }

    /// `x` `[b, n, d]`, `caption` `[b, l, d]`, `bias` `[b, heads, n, l]` (or broadcastable to it).
    fn forward(&self, x: Tensor<B, 3>, caption: Tensor<B, 3>, bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let q = split_heads(self.to_q.forward(x), self.heads);
        let k = split_heads(self.to_k.forward(caption.clone()), self.heads);
        let v = split_heads(self.to_v.forward(caption), self.heads);
        let scale = 1.0 / (q.dims()[3] as f64).sqrt();
        self.to_out[0].forward(merge_heads(attention(q, k, v, Some(bias), scale)))
    }
}

/// `GLUMBConv`: 1×1 expand → SiLU → depthwise 3×3 → gated SiLU → 1×1 project.
#[derive(Module, Debug)]
pub struct GluMbConv<B: Backend> {
    /// 1×1, width → 2·hidden (bias).
    pub conv_inverted: Conv2d<B>,
    /// Depthwise 3×3 on 2·hidden channels (bias).
    pub conv_depth: Conv2d<B>,
    /// 1×1, hidden → width (no bias).
    pub conv_point: Conv2d<B>,
}

impl<B: Backend> GluMbConv<B> {
    fn load(vb: &VarBuilder<B>, dim: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            conv_inverted: ConvSpec::same(dim, 2 * hidden, 1).load(&vb.pp("conv_inverted"))?,
            conv_depth: ConvSpec::same(2 * hidden, 2 * hidden, 3)
                .groups(2 * hidden)
                .load(&vb.pp("conv_depth"))?,
            conv_point: ConvSpec::same(hidden, dim, 1)
                .bias(false)
                .load(&vb.pp("conv_point"))?,
        })
    }

    /// Channel-last tokens `[b, h·w, width]` of an `h × w` grid in and out (the same result as
    /// the reference's NCHW convs).
    fn forward(&self, x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
        let x = silu(pointwise_conv_tokens(&self.conv_inverted, x));
        let [b, n, c] = x.dims();
        let x = depthwise_conv_channels_last(&self.conv_depth, x.reshape([b, h, w, c]));
        let mut halves = x.reshape([b, n, c]).chunk(2, 2);
        let gate = contiguous(halves.pop().expect("chunk(2) gives two halves"));
        let hidden = contiguous(halves.pop().expect("chunk(2) gives two halves"));
        pointwise_conv_tokens(&self.conv_point, hidden * silu(gate))
    }
}

/// `SanaTransformerBlock`.
#[derive(Module, Debug)]
pub struct SanaBlock<B: Backend> {
    /// `[6, width]`: shift/scale/gate for attention and FFN, added to the timestep modulation.
    pub scale_shift_table: Param<Tensor<B, 2>>,
    /// Pre-attention LayerNorm (no affine).
    pub norm1: LayerNorm<B>,
    /// Linear self-attention.
    pub attn1: LinearSelfAttention<B>,
    /// Pre-FFN LayerNorm (affine iff `norm_elementwise_affine`).
    pub norm2: LayerNorm<B>,
    /// Cross-attention on the caption.
    pub attn2: CrossAttention<B>,
    /// GLUMBConv FFN.
    pub ff: GluMbConv<B>,
}

/// `table[None] + emb.reshape(b, k, d)`, chunked into `k` tensors and each repeated over the
/// `tokens` positions, `[b, tokens, d]`.
///
/// The reference broadcasts `[b, 1, d]`; repeating it once into a contiguous tensor (a memcpy)
/// lets every use below take the CPU backend's contiguous element-wise path instead of its
/// per-element strided walk, forward and backward (the results are the same).
fn modulation<B: Backend>(
    table: &Param<Tensor<B, 2>>,
    emb: Tensor<B, 3>,
    tokens: usize,
) -> Vec<Tensor<B, 3>> {
    let k = table.dims()[0];
    (table.val().unsqueeze::<3>() + emb)
        .chunk(k, 1)
        .into_iter()
        .map(|m| m.repeat_dim(1, tokens))
        .collect()
}

/// `x * (1 + scale) + shift`.
fn modulate<B: Backend>(
    x: Tensor<B, 3>,
    shift: &Tensor<B, 3>,
    scale: &Tensor<B, 3>,
) -> Tensor<B, 3> {
    x * (scale.clone() + 1.0) + shift.clone()
}

impl<B: Backend> SanaBlock<B> {
    fn load(vb: &VarBuilder<B>, cfg: &SanaConfig) -> Result<Self> {
        let d = cfg.inner_dim();
        let norm2 = if cfg.norm_elementwise_affine {
            LayerNorm::load(&vb.pp("norm2"), d, cfg.norm_eps)?
        } else {
            LayerNorm::no_affine(cfg.norm_eps)
        };
        Ok(Self {
            scale_shift_table: vb.param("scale_shift_table", [6, d])?,
            norm1: LayerNorm::no_affine(cfg.norm_eps),
            attn1: LinearSelfAttention::load(&vb.pp("attn1"), cfg)?,
            norm2,
            attn2: CrossAttention::load(&vb.pp("attn2"), cfg)?,
            ff: GluMbConv::load(&vb.pp("ff"), d, cfg.ffn_hidden())?,
        })
    }

    /// `x` `[b, h*w, d]`; `t6` `[b, 6d]`; `caption` `[b, l, d]`; `bias` `[b, heads, h*w, l]`.
    fn forward(&self, x: Tensor<B, 3>, cond: &Conditioning<B>, h: usize, w: usize) -> Tensor<B, 3> {
        let [b, n, d] = x.dims();
        let m = modulation(
            &self.scale_shift_table,
            cond.timestep.clone().reshape([b, 6, d]),
            n,
        );
        let (shift_msa, scale_msa, gate_msa) = (&m[0], &m[1], &m[2]);
        let (shift_mlp, scale_mlp, gate_mlp) = (&m[3], &m[4], &m[5]);

        let normed = modulate(self.norm1.forward(x.clone()), shift_msa, scale_msa);
        let x = x + gate_msa.clone() * self.attn1.forward(normed);
        let x = self
            .attn2
            .forward(x.clone(), cond.caption.clone(), cond.bias.clone())
            + x;

        let normed = modulate(self.norm2.forward(x.clone()), shift_mlp, scale_mlp);
        let ff = self.ff.forward(normed, h, w);
        x + gate_mlp.clone() * ff
    }
}

/// Everything the blocks see besides the hidden states.
struct Conditioning<B: Backend> {
    /// AdaLN-single modulation `[b, 6d]`.
    timestep: Tensor<B, 2>,
    /// Embedded timestep `[b, d]` (final-layer modulation).
    embedded_timestep: Tensor<B, 2>,
    /// Caption after projection, before the RMSNorm `[b, l, d]`.
    caption_projection: Tensor<B, 3>,
    /// Caption after `caption_norm` `[b, l, d]`.
    caption: Tensor<B, 3>,
    /// Cross-attention bias `[b, heads, n, l]` (repeated from `[b, 1, 1, l]` unless given per
    /// image token, see [`modulation`]).
    bias: Tensor<B, 4>,
}

/// Intermediate activations of one forward pass, named as the fixture traces.
#[derive(Debug, Clone)]
pub struct SanaTrace<B: Backend> {
    /// Tokens after `patch_embed` (positional embedding included) `[b, n, d]`.
    pub patch_embed: Tensor<B, 3>,
    /// AdaLN-single modulation `[b, 6d]` (`time_embed` output 0).
    pub timestep: Tensor<B, 2>,
    /// Embedded timestep `[b, d]` (`time_embed` output 1).
    pub embedded_timestep: Tensor<B, 2>,
    /// `caption_projection` output `[b, l, d]`.
    pub caption_projection: Tensor<B, 3>,
    /// `caption_norm` output `[b, l, d]`.
    pub caption_norm: Tensor<B, 3>,
    /// Hidden states after each block `[b, n, d]`.
    pub blocks: Vec<Tensor<B, 3>>,
    /// Output norm after the final modulation (diffusers ≥ 0.33 `SanaModulatedNorm` `norm_out`),
    /// i.e. the `proj_out` input `[b, n, d]`.
    pub norm_out: Tensor<B, 3>,
    /// `proj_out` output `[b, n, p²·c]`.
    pub proj_out: Tensor<B, 3>,
    /// Model output `[b, c, H, W]`.
    pub sample: Tensor<B, 4>,
}

/// `SanaTransformer2DModel`.
#[derive(Module, Debug)]
pub struct SanaTransformer<B: Backend> {
    /// Patchifying conv.
    pub patch_embed: PatchEmbed<B>,
    /// AdaLN-single timestep embedding.
    pub time_embed: AdaLayerNormSingle<B>,
    /// Caption MLP.
    pub caption_projection: CaptionProjection<B>,
    /// Caption RMSNorm (eps 1e-5, weight only).
    pub caption_norm: RmsNorm<B>,
    /// The blocks.
    pub transformer_blocks: Vec<SanaBlock<B>>,
    /// `[2, width]` shift/scale of the output norm.
    pub scale_shift_table: Param<Tensor<B, 2>>,
    /// Output LayerNorm (no affine, eps 1e-6).
    pub norm_out: LayerNorm<B>,
    /// width → p²·out_channels.
    pub proj_out: Linear<B>,
    /// The config it was built from.
    #[module(skip)]
    pub config: SanaConfig,
    /// Positional embedding mode.
    #[module(skip)]
    pub pos_embed: PosEmbed,
}

impl<B: Backend> SanaTransformer<B> {
    /// Loads the DiT from `vb` (positioned at the DiT prefix, e.g. `model.dit`), with the
    /// diffusers 0.32.2 default [`PosEmbed::SinCos`]; see [`Self::with_pos_embed`].
    pub fn load(cfg: &SanaConfig, vb: &VarBuilder<B>) -> Result<Self> {
        if let Some(reason) = cfg.unsupported() {
            return Err(WeightError::Config {
                file: vb.checkpoint().root.clone(),
                reason: format!("SANA config: {reason}"),
            });
        }
        let d = cfg.inner_dim();
        let p = cfg.patch_size;
        let te = vb.pp("time_embed");
        let tse = te.pp("emb").pp("timestep_embedder");
        let cp = vb.pp("caption_projection");
        let blocks = (0..cfg.num_layers)
            .map(|i| SanaBlock::load(&vb.pp("transformer_blocks").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed: PatchEmbed {
                proj: ConvSpec::same(cfg.in_channels, d, p)
                    .stride(p)
                    .padding(0)
                    .load(&vb.pp("patch_embed").pp("proj"))?,
            },
            time_embed: AdaLayerNormSingle {
                emb: TimestepEmbeddings {
                    timestep_embedder: TimestepEmbedding {
                        linear_1: tse.pp("linear_1").linear(TIME_PROJ_DIM, d, true)?,
                        linear_2: tse.pp("linear_2").linear(d, d, true)?,
                    },
                },
                linear: te.pp("linear").linear(d, 6 * d, true)?,
            },
            caption_projection: CaptionProjection {
                linear_1: cp.pp("linear_1").linear(cfg.caption_channels, d, true)?,
                linear_2: cp.pp("linear_2").linear(d, d, true)?,
            },
            caption_norm: RmsNorm::load(&vb.pp("caption_norm"), d, 1e-5, false)?,
            transformer_blocks: blocks,
            scale_shift_table: vb.param("scale_shift_table", [2, d])?,
            norm_out: LayerNorm::no_affine(1e-6),
            proj_out: vb
                .pp("proj_out")
                .linear(d, p * p * cfg.out_channels(), true)?,
            config: cfg.clone(),
            pos_embed: PosEmbed::default(),
        })
    }

    /// Sets the positional-embedding mode (UniLIP checkpoints: [`PosEmbed::SinCosBf16`]).
    pub fn with_pos_embed(mut self, mode: PosEmbed) -> Self {
        self.pos_embed = mode;
        self
    }

    /// The positional embedding added for a `grid_h x grid_w` token grid, `[1, n, width]`
    /// (`None` for [`PosEmbed::None`]).
    pub fn pos_embed_table(
        &self,
        grid_h: usize,
        grid_w: usize,
        device: &B::Device,
    ) -> Option<Tensor<B, 3>> {
        let cfg = &self.config;
        let base = cfg.sample_size / cfg.patch_size;
        let d = cfg.inner_dim();
        let mut table = match self.pos_embed {
            PosEmbed::None => return None,
            PosEmbed::SinCos | PosEmbed::SinCosBf16 => {
                sincos_pos_embed(d, grid_h, grid_w, base, cfg.interpolation_scale())
            }
        };
        if self.pos_embed == PosEmbed::SinCosBf16 && grid_h == base && grid_w == base {
            for v in &mut table {
                *v = half::bf16::from_f32(*v).to_f32();
            }
        }
        let data = TensorData::new(table, [1, grid_h * grid_w, d]);
        Some(Tensor::from_data(data, device))
    }

    /// The DiT input of a noisy latent `x` `[b, C, H, W]`: `x` itself for UniLIP's DiT; for a DiT
    /// that [`SanaConfig::takes_source`], `x` with `source` (the clean source latent, same
    /// shape, e.g. the image being edited) concatenated on channels, or zeros without one
    /// (text-to-image, as it was trained). A source given to a DiT that takes none is not used.
    pub fn input(&self, x: Tensor<B, 4>, source: Option<&Tensor<B, 4>>) -> Tensor<B, 4> {
        if !self.config.takes_source() {
            return x;
        }
        let source = source.cloned().unwrap_or_else(|| x.zeros_like());
        Tensor::cat(vec![x, source], 1)
    }

    /// Patch embedding (+ positional embedding): `[b, c, H, W]` → `[b, n, d]`, and the token grid.
    fn embed_patches(&self, x: Tensor<B, 4>) -> (Tensor<B, 3>, usize, usize) {
        let y = self.patch_embed.proj.forward(x);
        let [b, d, h, w] = y.dims();
        let tokens = y.reshape([b, d, h * w]).swap_dims(1, 2);
        match self.pos_embed_table(h, w, &tokens.device()) {
            Some(pe) => (tokens + pe, h, w),
            None => (tokens, h, w),
        }
    }

    /// Timestep and caption conditioning for `tokens` image tokens. `caption_mask` is `[b, 1, l]`
    /// (the same for every image token) or `[b, tokens, l]` (per image token), with 1 = attend,
    /// 0 = drop.
    fn condition(
        &self,
        timestep: Tensor<B, 1>,
        caption: Tensor<B, 3>,
        caption_mask: Tensor<B, 3>,
        tokens: usize,
    ) -> Conditioning<B> {
        let (t6, e) = self.time_embed.forward(timestep);
        let cp = &self.caption_projection;
        let proj = cp
            .linear_2
            .forward(gelu_approximate(cp.linear_1.forward(caption)));
        let [b, m, l] = caption_mask.dims();
        let bias = caption_mask
            .neg()
            .add_scalar(1.0)
            .mul_scalar(MASK_BIAS)
            .reshape([b, 1, m, l])
            .repeat_dim(1, self.config.num_cross_attention_heads);
        let bias = if m == tokens {
            bias
        } else {
            bias.repeat_dim(2, tokens)
        };
        Conditioning {
            timestep: t6,
            embedded_timestep: e,
            caption: self.caption_norm.forward(proj.clone()),
            caption_projection: proj,
            bias,
        }
    }

    /// Output head: `(modulated norm_out, proj_out, sample)`.
    fn head(
        &self,
        x: Tensor<B, 3>,
        e: Tensor<B, 2>,
        h: usize,
        w: usize,
    ) -> (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 4>) {
        let n = x.dims()[1];
        let m = modulation(&self.scale_shift_table, e.unsqueeze_dim::<3>(1), n);
        let normed = modulate(self.norm_out.forward(x), &m[0], &m[1]);
        let proj = self.proj_out.forward(normed.clone());
        let [b, _, _] = proj.dims();
        let (p, c) = (self.config.patch_size, self.config.out_channels());
        let sample = proj
            .clone()
            .reshape([b, h, w, p, p, c])
            .permute([0, 5, 1, 3, 2, 4])
            .reshape([b, c, h * p, w * p]);
        (normed, proj, sample)
    }

    /// Velocity prediction. `x` `[b, c, H, W]`, `timestep` `[b]` (f32, e.g. 999.0),
    /// `caption` `[b, l, caption_channels]`, `caption_mask` `[b, l]` (1 = keep, 0 = drop).
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        timestep: Tensor<B, 1>,
        caption: Tensor<B, 3>,
        caption_mask: Tensor<B, 2>,
    ) -> Tensor<B, 4> {
        self.forward_tapped(x, timestep, caption, caption_mask, None)
            .0
    }

    /// [`Self::forward`] with a caption mask `[b, 1, l]` (every image token reads the same caption
    /// tokens, as `forward` with the `[b, l]` mask) or `[b, h·w, l]` (one row per image token,
    /// row-major over the token grid; 1 = attend): each image token reads only the caption
    /// tokens its row allows. Regional prompting uses it to let each part of the canvas read its
    /// own prompt.
    pub fn forward_token_masked(
        &self,
        x: Tensor<B, 4>,
        timestep: Tensor<B, 1>,
        caption: Tensor<B, 3>,
        token_mask: Tensor<B, 3>,
    ) -> Tensor<B, 4> {
        self.run(x, timestep, caption, token_mask, None).0
    }

    /// [`Self::forward`] that also returns the hidden states `[b, n, d]` after block `tap`
    /// (0-based) of the same pass, when `tap` names a block (UniDiff's RSC reads them).
    pub fn forward_tapped(
        &self,
        x: Tensor<B, 4>,
        timestep: Tensor<B, 1>,
        caption: Tensor<B, 3>,
        caption_mask: Tensor<B, 2>,
        tap: Option<usize>,
    ) -> (Tensor<B, 4>, Option<Tensor<B, 3>>) {
        self.run(x, timestep, caption, caption_mask.unsqueeze_dim(1), tap)
    }

    /// The forward pass with a `[b, 1 or h·w, l]` caption mask, and the hidden states after block
    /// `tap` when it names one.
    fn run(
        &self,
        x: Tensor<B, 4>,
        timestep: Tensor<B, 1>,
        caption: Tensor<B, 3>,
        caption_mask: Tensor<B, 3>,
        tap: Option<usize>,
    ) -> (Tensor<B, 4>, Option<Tensor<B, 3>>) {
        let (mut hs, h, w) = self.embed_patches(x);
        let cond = self.condition(timestep, caption, caption_mask, h * w);
        let mut tapped = None;
        for (i, block) in self.transformer_blocks.iter().enumerate() {
            hs = block.forward(hs, &cond, h, w);
            if tap == Some(i) {
                tapped = Some(hs.clone());
            }
        }
        (self.head(hs, cond.embedded_timestep, h, w).2, tapped)
    }

    /// [`Self::forward`] that also returns every intermediate named in the fixture traces.
    pub fn forward_traced(
        &self,
        x: Tensor<B, 4>,
        timestep: Tensor<B, 1>,
        caption: Tensor<B, 3>,
        caption_mask: Tensor<B, 2>,
    ) -> SanaTrace<B> {
        let (patch_embed, h, w) = self.embed_patches(x);
        let cond = self.condition(timestep, caption, caption_mask.unsqueeze_dim(1), h * w);
        let mut blocks = Vec::with_capacity(self.transformer_blocks.len());
        let mut hs = patch_embed.clone();
        for block in &self.transformer_blocks {
            hs = block.forward(hs, &cond, h, w);
            blocks.push(hs.clone());
        }
        let (norm_out, proj_out, sample) = self.head(hs, cond.embedded_timestep.clone(), h, w);
        SanaTrace {
            patch_embed,
            timestep: cond.timestep,
            embedded_timestep: cond.embedded_timestep,
            caption_projection: cond.caption_projection,
            caption_norm: cond.caption,
            blocks,
            norm_out,
            proj_out,
            sample,
        }
    }

    /// Feature tap: the hidden states `[b, n, d]` after block `block` (0-based), running only the
    /// blocks up to it. `None` when `block >= num_layers`.
    pub fn features(
        &self,
        x: Tensor<B, 4>,
        timestep: Tensor<B, 1>,
        caption: Tensor<B, 3>,
        caption_mask: Tensor<B, 2>,
        block: usize,
    ) -> Option<Tensor<B, 3>> {
        if block >= self.transformer_blocks.len() {
            return None;
        }
        let (mut hs, h, w) = self.embed_patches(x);
        let cond = self.condition(timestep, caption, caption_mask.unsqueeze_dim(1), h * w);
        for blk in &self.transformer_blocks[..=block] {
            hs = blk.forward(hs, &cond, h, w);
        }
        Some(hs)
    }
}
