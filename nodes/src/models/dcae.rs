//! DC-AE pixel decoder (diffusers `AutoencoderDC.decoder`, v0.32.2): `conv_in` with a
//! channel-repeat shortcut, `up_blocks` run from the deepest stage to stage 0 (each an optional
//! `DCUpBlock2d` followed by `ResBlock`s or `EfficientViTBlock`s), then RMSNorm, ReLU, `conv_out`.
//!
//! UniLIP uses the `dc-ae-f32c32-sana-1.1` decoder (latent `[B,32,16,16]` → image `[B,3,512,512]`)
//! under the key prefix `model.vae_decoder.decoder.`. The Burn module tree equals the checkpoint
//! key tree (`up_blocks.{s}.{j}.…`) up to the enum variant names of [`UpLayer`].

use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::{gelu, relu, silu};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use serde::Deserialize;

use crate::models::layers::{linear_attention, pixel_shuffle, ConvSpec, RmsNorm};
use crate::weights::{Result, VarBuilder, WeightError};

/// Epsilon of every DC-AE RMSNorm.
const NORM_EPS: f64 = 1e-5;
/// Epsilon of the linear-attention denominator (`SanaMultiscaleLinearAttention.eps`).
const ATTN_EPS: f64 = 1e-15;

/// A config value given either once for every stage or as one value per stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerStage<T> {
    /// The same value for every stage.
    All(T),
    /// One value per stage, stage 0 first.
    Each(Vec<T>),
}

impl<T: Clone> PerStage<T> {
    /// The value of stage `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<T> {
        match self {
            Self::All(v) => Some(v.clone()),
            Self::Each(v) => v.get(i).cloned(),
        }
    }
}

/// Block kind of a decoder stage (`decoder_block_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum BlockType {
    /// Two 3×3 convs + RMSNorm, residual.
    ResBlock,
    /// Multiscale ReLU linear attention + GLU MBConv, both residual.
    EfficientViTBlock,
}

/// Normalisation of a decoder stage (`decoder_norm_types`); the decoder only supports RMSNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum NormType {
    /// diffusers `RMSNorm` with weight and bias, eps 1e-5, over channels.
    #[serde(rename = "rms_norm")]
    RmsNorm,
}

/// Activation (`decoder_act_fns`, `decoder_conv_act_fn`; diffusers `get_activation` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Act {
    /// `x·sigmoid(x)`.
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    /// `max(x, 0)`.
    #[serde(rename = "relu")]
    Relu,
    /// Exact (erf) GELU.
    #[serde(rename = "gelu")]
    Gelu,
}

impl Act {
    /// Applies the activation.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Silu => silu(x),
            Self::Relu => relu(x),
            Self::Gelu => gelu(x),
        }
    }
}

/// Upsampler kind (`upsample_block_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UpsampleType {
    /// Nearest ×2, then a 3×3 conv.
    #[serde(rename = "interpolate")]
    Interpolate,
    /// A 3×3 conv to 4× the channels, then pixel shuffle ×2.
    #[serde(rename = "pixel_shuffle")]
    PixelShuffle,
}

/// The decoder part of a diffusers `AutoencoderDC` `config.json` (same field names). Missing
/// fields take the `dc-ae-f32c32-sana-1.1` values; unknown fields (encoder, scaling) are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DcAeConfig {
    /// Image channels (3).
    pub in_channels: usize,
    /// Latent channels (32).
    pub latent_channels: usize,
    /// Channels per attention head (32).
    pub attention_head_dim: usize,
    /// Block kind per stage.
    pub decoder_block_types: PerStage<BlockType>,
    /// Channels per stage, stage 0 (full resolution) first.
    pub decoder_block_out_channels: Vec<usize>,
    /// Blocks per stage.
    pub decoder_layers_per_block: Vec<usize>,
    /// Multiscale kernel sizes of the attention per stage (`[]` for ResBlock stages).
    pub decoder_qkv_multiscales: Vec<Vec<usize>>,
    /// Normalisation per stage.
    pub decoder_norm_types: PerStage<NormType>,
    /// ResBlock activation per stage.
    pub decoder_act_fns: PerStage<Act>,
    /// Upsampler kind.
    pub upsample_block_type: UpsampleType,
    /// Whether `conv_in` gets the channel-repeat shortcut (always on in diffusers 0.32.2).
    pub decoder_in_shortcut: bool,
    /// Activation between `norm_out` and `conv_out` (ReLU in diffusers 0.32.2).
    pub decoder_conv_act_fn: Act,
}

impl Default for DcAeConfig {
    fn default() -> Self {
        use BlockType::{EfficientViTBlock as V, ResBlock as R};
        Self {
            in_channels: 3,
            latent_channels: 32,
            attention_head_dim: 32,
            decoder_block_types: PerStage::Each(vec![R, R, R, V, V, V]),
            decoder_block_out_channels: vec![128, 256, 512, 512, 1024, 1024],
            decoder_layers_per_block: vec![3; 6],
            decoder_qkv_multiscales: vec![vec![], vec![], vec![], vec![5], vec![5], vec![5]],
            decoder_norm_types: PerStage::All(NormType::RmsNorm),
            decoder_act_fns: PerStage::All(Act::Silu),
            upsample_block_type: UpsampleType::Interpolate,
            decoder_in_shortcut: true,
            decoder_conv_act_fn: Act::Relu,
        }
    }
}

/// Everything one stage needs, resolved from the per-stage config lists.
struct Stage {
    channels: usize,
    layers: usize,
    block: BlockType,
    act: Act,
    scales: Vec<usize>,
}

impl DcAeConfig {
    /// Checks the config and resolves each stage; errors name the offending field.
    fn stages(&self) -> std::result::Result<Vec<Stage>, String> {
        let n = self.decoder_block_out_channels.len();
        if n == 0 {
            return Err("decoder_block_out_channels is empty".into());
        }
        let missing = |field: &str| format!("{field} has no entry for each of the {n} stages");
        if self.decoder_layers_per_block.len() != n {
            return Err(missing("decoder_layers_per_block"));
        }
        if self.decoder_qkv_multiscales.len() != n {
            return Err(missing("decoder_qkv_multiscales"));
        }
        let mut stages = Vec::with_capacity(n);
        for i in 0..n {
            let stage = Stage {
                channels: self.decoder_block_out_channels[i],
                layers: self.decoder_layers_per_block[i],
                block: self
                    .decoder_block_types
                    .get(i)
                    .ok_or_else(|| missing("decoder_block_types"))?,
                act: self
                    .decoder_act_fns
                    .get(i)
                    .ok_or_else(|| missing("decoder_act_fns"))?,
                scales: self.decoder_qkv_multiscales[i].clone(),
            };
            self.decoder_norm_types
                .get(i)
                .ok_or_else(|| missing("decoder_norm_types"))?;
            if stage.channels == 0 || stage.layers == 0 {
                return Err(format!(
                    "stage {i}: zero channels or zero layers are not supported"
                ));
            }
            if stage.block == BlockType::EfficientViTBlock
                && (self.attention_head_dim == 0
                    || !stage.channels.is_multiple_of(self.attention_head_dim))
            {
                return Err(format!(
                    "stage {i}: {} channels are not a multiple of attention_head_dim {}",
                    stage.channels, self.attention_head_dim
                ));
            }
            if i + 1 < n
                && !(stage.channels * 4).is_multiple_of(self.decoder_block_out_channels[i + 1])
            {
                return Err(format!(
                    "stage {i}: 4·{} channels are not a multiple of the {} input channels",
                    stage.channels,
                    self.decoder_block_out_channels[i + 1]
                ));
            }
            stages.push(stage);
        }
        let deepest = self.decoder_block_out_channels[n - 1];
        if self.decoder_in_shortcut
            && (self.latent_channels == 0 || !deepest.is_multiple_of(self.latent_channels))
        {
            return Err(format!(
                "{deepest} channels are not a multiple of latent_channels {}",
                self.latent_channels
            ));
        }
        Ok(stages)
    }
}

/// `x.repeat_interleave(r, dim=1)` on NCHW.
fn repeat_channels<B: Backend>(x: Tensor<B, 4>, r: usize) -> Tensor<B, 4> {
    if r == 1 {
        return x;
    }
    let [b, c, h, w] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, c, r, h, w])
        .reshape([b, c * r, h, w])
}

/// A PyTorch `nn.Linear` applied over the channels of `[b, c_in, n]`: `W · x` → `[b, c_out, n]`.
fn linear_channels<B: Backend>(weight: Tensor<B, 2>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    // Burn stores `[in, out]`; the transpose is the PyTorch `[out, in]` matrix.
    weight.transpose().unsqueeze::<3>().matmul(x)
}

/// `DCUpBlock2d` with the channel-repeat + pixel-shuffle shortcut.
#[derive(Module, Debug)]
pub struct DcUpBlock2d<B: Backend> {
    /// 3×3 conv: on the nearest ×2 upsample for `interpolate` (run as phase-folded 2×2 convs at
    /// the input resolution, see `nearest_conv_phases`), else to 4× channels before the shuffle.
    pub conv: Conv2d<B>,
    /// Nearest ×2 before the conv (else pixel shuffle after it).
    pub interpolate: bool,
    /// Channel repeats of the shortcut: `out·4 / in`.
    pub repeats: usize,
}

impl<B: Backend> DcUpBlock2d<B> {
    /// Loads the upsampler from `c_in` to `c_out` channels.
    pub fn load(vb: &VarBuilder<B>, c_in: usize, c_out: usize, kind: UpsampleType) -> Result<Self> {
        let interpolate = kind == UpsampleType::Interpolate;
        let conv_out = if interpolate { c_out } else { c_out * 4 };
        Ok(Self {
            conv: ConvSpec::same(c_in, conv_out, 3).load(&vb.pp("conv"))?,
            interpolate,
            repeats: c_out * 4 / c_in,
        })
    }

    /// `[b, c_in, h, w] → [b, c_out, 2h, 2w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        // Both branches end in a pixel shuffle (a channel permutation), so add before shuffling.
        let main = if self.interpolate {
            self.nearest_conv_phases(x.clone())
        } else {
            self.conv.forward(x.clone())
        };
        pixel_shuffle(main + repeat_channels(x, self.repeats), 2)
    }

    /// `conv(nearest×2(x))` before its pixel shuffle: `[b, 4·c_out, h, w]`, channel `4c + 2a + b'`
    /// holding output pixel `(2i + a, 2j + b')`. Each phase `(a, b')` of a 3×3 conv over a nearest
    /// ×2 upsample is a 2×2 conv of `x` whose taps are sums of the 3×3 taps, so one 2×2 conv
    /// (padding 1) with the four phase kernels does the work of the upsampled 3×3 conv with
    /// 2.25× fewer FLOPs.
    fn nearest_conv_phases(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, _, h, w] = x.dims();
        let weight = self.conv.weight.val();
        let [c_out, c_in, _, _] = weight.dims();
        // [1, c_out·c_in, 9] · [4, 9, 4] → phase p, then (o, i), then tap (u, v) at 2u + v.
        let kernels = weight
            .reshape([1, c_out * c_in, 9])
            .matmul(phase_folding(&x.device()))
            .reshape([4 * c_out, c_in, 2, 2]);
        let bias = self
            .conv
            .bias
            .as_ref()
            .map(|bias| bias.val().repeat_dim(0, 4));
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        // [b, 4·c_out, h+1, w+1]: phase p = 2a + b' at channels p·c_out.., window offset (a, b').
        let all = conv2d(x, kernels, bias, options);
        let phases = (0..4)
            .map(|p| {
                let (a, o) = (p / 2, p % 2);
                all.clone()
                    .slice(s![.., p * c_out..(p + 1) * c_out, a..a + h, o..o + w])
            })
            .collect();
        Tensor::stack::<5>(phases, 2).reshape([b, 4 * c_out, h, w])
    }
}

/// The 0/1 tensor `[4, 9, 4]` folding a 3×3 kernel (row-major taps) into the 2×2 kernel (taps
/// `2u + v`) seen by each output phase `p = 2a + b'` of a nearest ×2 upsample. Along each axis,
/// phase 0 reads inputs `(i-1, i, i)` (taps `{0}`, `{1, 2}`), phase 1 reads `(i, i, i+1)`
/// (taps `{0, 1}`, `{2}`).
fn phase_folding<B: Backend>(device: &B::Device) -> Tensor<B, 3> {
    let reads = |phase: usize, tap: usize, k: usize| match (phase, tap) {
        (0, 0) => k == 0,
        (0, _) => k >= 1,
        (_, 0) => k <= 1,
        _ => k == 2,
    };
    let mut m = vec![0f32; 4 * 9 * 4];
    for p in 0..4 {
        for k in 0..9 {
            for t in 0..4 {
                if reads(p / 2, t / 2, k / 3) && reads(p % 2, t % 2, k % 3) {
                    m[(p * 9 + k) * 4 + t] = 1.0;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [4, 9, 4]), device)
}

/// Decoder `ResBlock`: `x + norm(conv2(act(conv1(x))))`.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    /// 3×3 conv with bias.
    pub conv1: Conv2d<B>,
    /// 3×3 conv without bias.
    pub conv2: Conv2d<B>,
    /// RMSNorm over channels.
    pub norm: RmsNorm<B>,
    /// Activation between the convs.
    #[module(skip)]
    pub act: Act,
}

impl<B: Backend> ResBlock<B> {
    /// Loads a ResBlock of width `c`.
    pub fn load(vb: &VarBuilder<B>, c: usize, act: Act) -> Result<Self> {
        Ok(Self {
            conv1: ConvSpec::same(c, c, 3).load(&vb.pp("conv1"))?,
            conv2: ConvSpec::same(c, c, 3).bias(false).load(&vb.pp("conv2"))?,
            norm: RmsNorm::load(&vb.pp("norm"), c, NORM_EPS, true)?,
            act,
        })
    }

    /// Forward pass on NCHW.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = self
            .conv2
            .forward(self.act.apply(self.conv1.forward(x.clone())));
        self.norm.forward_channels(h) + x
    }
}

/// One multiscale branch: depthwise `k×k` conv then grouped 1×1 conv over the `[q|k|v]` channels.
#[derive(Module, Debug)]
pub struct MultiscaleProjection<B: Backend> {
    /// Depthwise conv, no bias.
    pub proj_in: Conv2d<B>,
    /// 1×1 conv with `3·heads` groups, no bias.
    pub proj_out: Conv2d<B>,
}

/// `SanaMultiscaleLinearAttention` (residual, RMSNorm) with ReLU kernels.
#[derive(Module, Debug)]
pub struct MultiscaleLinearAttention<B: Backend> {
    /// First third of the concatenated projections.
    pub to_q: Linear<B>,
    /// Second third.
    pub to_k: Linear<B>,
    /// Last third.
    pub to_v: Linear<B>,
    /// Multiscale branches, one per kernel size.
    pub to_qkv_multiscale: Vec<MultiscaleProjection<B>>,
    /// Output projection from `inner·(1 + scales)` to the block width.
    pub to_out: Linear<B>,
    /// RMSNorm over channels.
    pub norm_out: RmsNorm<B>,
    /// Channels per head.
    pub head_dim: usize,
}

impl<B: Backend> MultiscaleLinearAttention<B> {
    /// Loads the attention of width `c` with `c / head_dim` heads and the given kernel sizes.
    pub fn load(vb: &VarBuilder<B>, c: usize, head_dim: usize, scales: &[usize]) -> Result<Self> {
        let heads = c / head_dim;
        let inner = heads * head_dim;
        let qkv = 3 * inner;
        let ms = vb.pp("to_qkv_multiscale");
        let to_qkv_multiscale = scales
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let vb = ms.pp(i);
                Ok(MultiscaleProjection {
                    proj_in: ConvSpec::same(qkv, qkv, k)
                        .groups(qkv)
                        .bias(false)
                        .load(&vb.pp("proj_in"))?,
                    proj_out: ConvSpec::same(qkv, qkv, 1)
                        .groups(3 * heads)
                        .bias(false)
                        .load(&vb.pp("proj_out"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            to_q: vb.pp("to_q").linear(c, inner, false)?,
            to_k: vb.pp("to_k").linear(c, inner, false)?,
            to_v: vb.pp("to_v").linear(c, inner, false)?,
            to_qkv_multiscale,
            to_out: vb
                .pp("to_out")
                .linear(inner * (1 + scales.len()), c, false)?,
            norm_out: RmsNorm::load(&vb.pp("norm_out"), c, NORM_EPS, true)?,
            head_dim,
        })
    }

    /// Forward pass on NCHW (residual included).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let d = self.head_dim;
        // [to_q | to_k | to_v] as one channel matmul: [b, 3·inner, n].
        let w_qkv = Tensor::cat(
            vec![
                self.to_q.weight.val(),
                self.to_k.weight.val(),
                self.to_v.weight.val(),
            ],
            1,
        );
        let qkv = linear_channels(w_qkv, x.clone().reshape([b, c, n]));
        let qkv_ch = qkv.dims()[1];
        let qkv = qkv.reshape([b, qkv_ch, h, w]);
        let mut branches = vec![qkv.clone()];
        for ms in &self.to_qkv_multiscale {
            branches.push(ms.proj_out.forward(ms.proj_in.forward(qkv.clone())));
        }
        // Heads are consecutive chunks of 3·d channels of the concatenation, each [q|k|v].
        let total = qkv_ch * branches.len();
        let heads = Tensor::cat(branches, 1).reshape([b, total / (3 * d), 3 * d, n]);
        let q = relu(heads.clone().narrow(2, 0, d));
        let k = relu(heads.clone().narrow(2, d, d));
        let v = heads.narrow(2, 2 * d, d);
        let out = if n > d {
            linear_attention(
                q.swap_dims(2, 3),
                k.swap_dims(2, 3),
                v.swap_dims(2, 3),
                ATTN_EPS,
            )
            .swap_dims(2, 3)
        } else {
            quadratic_attention(q, k, v)
        };
        let out = linear_channels(self.to_out.weight.val(), out.reshape([b, total / 3, n]));
        self.norm_out.forward_channels(out.reshape([b, c, h, w])) + x
    }
}

/// The small-input branch of `SanaMultiscaleLinearAttention` on `[b, h, d, n]` (`n <= d`):
/// `v · S` with `S = kᵀq` normalised over keys (`S / (Σ_keys S + eps)`).
fn quadratic_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let scores = k.swap_dims(2, 3).matmul(q);
    let scores = scores.clone().div(scores.sum_dim(2) + ATTN_EPS);
    v.matmul(scores)
}

/// `GLUMBConv` (expand 4, RMSNorm, residual).
#[derive(Module, Debug)]
pub struct GluMbConv<B: Backend> {
    /// 1×1 conv `c → 8c` with bias.
    pub conv_inverted: Conv2d<B>,
    /// Depthwise 3×3 conv on `8c` with bias.
    pub conv_depth: Conv2d<B>,
    /// 1×1 conv `4c → c`, no bias.
    pub conv_point: Conv2d<B>,
    /// RMSNorm over channels.
    pub norm: RmsNorm<B>,
}

impl<B: Backend> GluMbConv<B> {
    /// Loads a GLUMBConv of width `c`.
    pub fn load(vb: &VarBuilder<B>, c: usize) -> Result<Self> {
        let hidden = 4 * c;
        Ok(Self {
            conv_inverted: ConvSpec::same(c, 2 * hidden, 1).load(&vb.pp("conv_inverted"))?,
            conv_depth: ConvSpec::same(2 * hidden, 2 * hidden, 3)
                .groups(2 * hidden)
                .load(&vb.pp("conv_depth"))?,
            conv_point: ConvSpec::same(hidden, c, 1)
                .bias(false)
                .load(&vb.pp("conv_point"))?,
            norm: RmsNorm::load(&vb.pp("norm"), c, NORM_EPS, true)?,
        })
    }

    /// Forward pass on NCHW (residual included).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = silu(self.conv_inverted.forward(x.clone()));
        let h = self.conv_depth.forward(h);
        let half = h.dims()[1] / 2;
        let gated = h.clone().narrow(1, 0, half) * silu(h.narrow(1, half, half));
        self.norm.forward_channels(self.conv_point.forward(gated)) + x
    }
}

/// `EfficientViTBlock`: attention then GLUMBConv.
#[derive(Module, Debug)]
pub struct EfficientVitBlock<B: Backend> {
    /// Multiscale linear attention.
    pub attn: MultiscaleLinearAttention<B>,
    /// GLU MBConv.
    pub conv_out: GluMbConv<B>,
}

impl<B: Backend> EfficientVitBlock<B> {
    /// Forward pass on NCHW.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.conv_out.forward(self.attn.forward(x))
    }
}

/// One entry of an up block's `nn.Sequential` (`up_blocks.{s}.{j}`).
// Burn's `Module` derive has no `Box` support, and a decoder holds only a few dozen layers.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum UpLayer<B: Backend> {
    /// `DCUpBlock2d` (index 0 of every stage but the deepest).
    Upsample(DcUpBlock2d<B>),
    /// `ResBlock`.
    Res(ResBlock<B>),
    /// `EfficientViTBlock`.
    Vit(EfficientVitBlock<B>),
}

impl<B: Backend> UpLayer<B> {
    /// Forward pass on NCHW.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Self::Upsample(m) => m.forward(x),
            Self::Res(m) => m.forward(x),
            Self::Vit(m) => m.forward(x),
        }
    }
}

/// Per-stage activations of one decoder call, as hooked by the fixtures.
#[derive(Debug, Clone)]
pub struct DcAeTrace<B: Backend> {
    /// `conv_in(z)`, before the input shortcut is added.
    pub conv_in: Tensor<B, 4>,
    /// `(s, output of up_blocks.s)` in execution order (deepest stage first).
    pub up_blocks: Vec<(usize, Tensor<B, 4>)>,
    /// `norm_out` output, before the activation and `conv_out`.
    pub norm_out: Tensor<B, 4>,
    /// The decoded image `[B, 3, h·f, w·f]`.
    pub sample: Tensor<B, 4>,
}

/// The DC-AE decoder.
#[derive(Module, Debug)]
pub struct DcAeDecoder<B: Backend> {
    /// 3×3 conv from the latent to the deepest stage width.
    pub conv_in: Conv2d<B>,
    /// Stages indexed as in the checkpoint (0 = full resolution); run from last to first.
    pub up_blocks: Vec<Vec<UpLayer<B>>>,
    /// RMSNorm over channels (weight + bias).
    pub norm_out: RmsNorm<B>,
    /// 3×3 conv to image channels.
    pub conv_out: Conv2d<B>,
    /// Channel repeats of the `conv_in` shortcut (0 = no shortcut).
    pub in_shortcut_repeats: usize,
    /// Activation before `conv_out`.
    #[module(skip)]
    pub conv_act: Act,
    /// Spatial upsampling factor (2 per upsampler).
    pub factor: usize,
}

impl<B: Backend> DcAeDecoder<B> {
    /// Loads the decoder from `vb` positioned at its root (keys `conv_in.*`, `up_blocks.*`, …;
    /// `decoder.` in a diffusers checkpoint, `model.vae_decoder.decoder.` in UniLIP).
    pub fn load(cfg: &DcAeConfig, vb: &VarBuilder<B>) -> Result<Self> {
        let stages = cfg.stages().map_err(|reason| WeightError::Config {
            file: vb.checkpoint().root.clone(),
            reason: format!("DC-AE decoder: {reason}"),
        })?;
        let n = stages.len();
        let deepest = stages[n - 1].channels;
        let mut up_blocks = Vec::with_capacity(n);
        for (i, st) in stages.iter().enumerate() {
            let vb = vb.pp("up_blocks").pp(i);
            let mut layers = Vec::with_capacity(st.layers + 1);
            if i + 1 < n {
                let c_in = stages[i + 1].channels;
                let up = DcUpBlock2d::load(&vb.pp(0), c_in, st.channels, cfg.upsample_block_type)?;
                layers.push(UpLayer::Upsample(up));
            }
            for _ in 0..st.layers {
                let vb = vb.pp(layers.len());
                layers.push(match st.block {
                    BlockType::ResBlock => UpLayer::Res(ResBlock::load(&vb, st.channels, st.act)?),
                    BlockType::EfficientViTBlock => UpLayer::Vit(EfficientVitBlock {
                        attn: MultiscaleLinearAttention::load(
                            &vb.pp("attn"),
                            st.channels,
                            cfg.attention_head_dim,
                            &st.scales,
                        )?,
                        conv_out: GluMbConv::load(&vb.pp("conv_out"), st.channels)?,
                    }),
                });
            }
            up_blocks.push(layers);
        }
        let c0 = stages[0].channels;
        Ok(Self {
            conv_in: ConvSpec::same(cfg.latent_channels, deepest, 3).load(&vb.pp("conv_in"))?,
            up_blocks,
            norm_out: RmsNorm::load(&vb.pp("norm_out"), c0, NORM_EPS, true)?,
            conv_out: ConvSpec::same(c0, cfg.in_channels, 3).load(&vb.pp("conv_out"))?,
            in_shortcut_repeats: if cfg.decoder_in_shortcut {
                deepest / cfg.latent_channels
            } else {
                0
            },
            conv_act: cfg.decoder_conv_act_fn,
            factor: 1 << (n - 1),
        })
    }

    /// Spatial upsampling factor from latent to image (32 for f32c32).
    pub fn upsample_factor(&self) -> usize {
        self.factor
    }

    /// Decodes a latent `[B, C, h, w]` into an image `[B, 3, h·f, w·f]`.
    pub fn forward(&self, latent: Tensor<B, 4>) -> Tensor<B, 4> {
        self.run(latent, |_, _| {})
    }

    /// Like [`Self::forward`], also returning the per-stage activations.
    pub fn forward_trace(&self, latent: Tensor<B, 4>) -> DcAeTrace<B> {
        let (mut conv_in, mut norm_out, mut up_blocks) = (None, None, Vec::new());
        let sample = self.run(latent, |tap, x| match tap {
            Tap::ConvIn => conv_in = Some(x.clone()),
            Tap::UpBlock(s) => up_blocks.push((s, x.clone())),
            Tap::NormOut => norm_out = Some(x.clone()),
        });
        DcAeTrace {
            conv_in: conv_in.expect("run taps conv_in"),
            up_blocks,
            norm_out: norm_out.expect("run taps norm_out"),
            sample,
        }
    }

    /// The forward pass; `tap` sees each traced activation as it is produced.
    fn run(&self, z: Tensor<B, 4>, mut tap: impl FnMut(Tap, &Tensor<B, 4>)) -> Tensor<B, 4> {
        let mut x = self.conv_in.forward(z.clone());
        tap(Tap::ConvIn, &x);
        if self.in_shortcut_repeats > 0 {
            x = x + repeat_channels(z, self.in_shortcut_repeats);
        }
        for (s, block) in self.up_blocks.iter().enumerate().rev() {
            for layer in block {
                x = layer.forward(x);
            }
            tap(Tap::UpBlock(s), &x);
        }
        let x = self.norm_out.forward_channels(x);
        tap(Tap::NormOut, &x);
        self.conv_out.forward(self.conv_act.apply(x))
    }
}

/// Points of the forward pass recorded by [`DcAeDecoder::forward_trace`].
enum Tap {
    ConvIn,
    UpBlock(usize),
    NormOut,
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    type B = burn::backend::Flex;

    #[test]
    fn parity_quadratic_branch_matches_linear() {
        let dev = Default::default();
        // [b, heads, d, n] with n <= d, as the quadratic branch sees them.
        let rand = || {
            relu(Tensor::<B, 4>::random(
                [2, 3, 8, 5],
                Distribution::Normal(0., 1.),
                &dev,
            ))
        };
        let (q, k, v) = (rand(), rand(), rand());
        let quad = quadratic_attention(q.clone(), k.clone(), v.clone());
        let lin = linear_attention(
            q.swap_dims(2, 3),
            k.swap_dims(2, 3),
            v.swap_dims(2, 3),
            ATTN_EPS,
        )
        .swap_dims(2, 3);
        let diff: f32 = (quad - lin).abs().max().into_scalar().elem();
        assert!(
            diff < 1e-5,
            "quadratic vs linear attention differ by {diff}"
        );
    }

    #[test]
    fn parity_config_defaults_are_sana_1_1() {
        let cfg: DcAeConfig = serde_json::from_str("{}").expect("empty config parses");
        let stages = cfg.stages().expect("default config is valid");
        let widths: Vec<usize> = stages.iter().map(|s| s.channels).collect();
        assert_eq!(widths, [128, 256, 512, 512, 1024, 1024]);
        assert_eq!(stages[3].block, BlockType::EfficientViTBlock);
        assert_eq!(stages[2].block, BlockType::ResBlock);
        assert_eq!(cfg.latent_channels, 32);
        let one: DcAeConfig = serde_json::from_str(
            r#"{"decoder_block_types": "ResBlock", "decoder_layers_per_block": [1, 2], "latent_channels": 8,
                "decoder_block_out_channels": [8, 16], "decoder_qkv_multiscales": [[], []]}"#,
        )
        .expect("string block type parses");
        assert_eq!(one.stages().expect("valid").len(), 2);
        let bad: DcAeConfig =
            serde_json::from_str(r#"{"decoder_layers_per_block": [3, 3]}"#).expect("parses");
        assert!(
            bad.stages().is_err(),
            "mismatched per-stage lengths must be rejected"
        );
    }
}
