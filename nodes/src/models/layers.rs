//! Building blocks shared by every architecture: norms, softmax attention (with GQA), rotate-half
//! RoPE, ReLU linear attention, SwiGLU MLP, pixel (un)shuffle, conv loading and channel-last
//! pointwise/depthwise convs.
//!
//! Field names follow the PyTorch modules (`weight`, `bias`), so a model's Burn module tree has the
//! same paths as the checkpoint keys.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::ops::PadMode;

use crate::weights::{Result, VarBuilder};

/// LayerNorm over the last dimension, with optional affine parameters (PyTorch `nn.LayerNorm`;
/// `elementwise_affine=False` gives `weight = bias = None`).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale (`weight` in PyTorch).
    pub weight: Option<Param<Tensor<B, 1>>>,
    /// Shift (`bias` in PyTorch).
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Variance epsilon.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads an affine LayerNorm (`weight` and `bias`) of width `dim`.
    pub fn load(vb: &VarBuilder<B>, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: Some(vb.param("weight", [dim])?),
            bias: Some(vb.param("bias", [dim])?),
            eps,
        })
    }

    /// A LayerNorm without parameters.
    pub fn no_affine(eps: f64) -> Self {
        Self {
            weight: None,
            bias: None,
            eps,
        }
    }

    /// Normalises over the last dimension (biased variance, as PyTorch).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let mut y = (x - mean).div((var + self.eps).sqrt());
        if let Some(w) = &self.weight {
            y = y * w.val().unsqueeze();
        }
        if let Some(b) = &self.bias {
            y = y + b.val().unsqueeze();
        }
        y
    }
}

/// RMSNorm over the last dimension with an optional weight and bias (Qwen2 `Qwen2RMSNorm`,
/// diffusers `RMSNorm`; DC-AE uses weight + bias).
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Scale.
    pub weight: Option<Param<Tensor<B, 1>>>,
    /// Shift, added after scaling.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Epsilon inside the square root.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Loads an RMSNorm with a `weight` and, if `bias`, a `bias`.
    pub fn load(vb: &VarBuilder<B>, dim: usize, eps: f64, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: Some(vb.param("weight", [dim])?),
            bias: if bias {
                Some(vb.param("bias", [dim])?)
            } else {
                None
            },
            eps,
        })
    }

    /// Normalises over the last dimension: `x / sqrt(mean(x²) + eps) * weight + bias`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let rms = (x.clone().powi_scalar(2).mean_dim(D - 1) + self.eps).sqrt();
        let mut y = x.div(rms);
        if let Some(w) = &self.weight {
            y = y * w.val().unsqueeze();
        }
        if let Some(b) = &self.bias {
            y = y + b.val().unsqueeze();
        }
        y
    }

    /// Normalises an NCHW tensor over its channels (DC-AE's `RMSNorm` on `x.movedim(1, -1)`).
    pub fn forward_channels(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    }
}

/// Repeats key/value heads for grouped-query attention: `[b, kvh, s, d] -> [b, kvh*n, s, d]`.
pub fn repeat_kv<B: Backend>(t: Tensor<B, 4>, n: usize) -> Tensor<B, 4> {
    if n == 1 {
        return t;
    }
    let [b, kh, s, d] = t.dims();
    t.unsqueeze_dim::<5>(2)
        .expand([b, kh, n, s, d])
        .reshape([b, kh * n, s, d])
}

/// Softmax attention on `[b, h, s, d]` tensors. `bias` is an additive mask broadcastable to
/// `[b, h, s_q, s_k]` (0 = visible, large negative = hidden). Key/value heads are repeated when
/// fewer than query heads (GQA).
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    bias: Option<Tensor<B, 4>>,
    scale: f64,
) -> Tensor<B, 4> {
    let groups = q.dims()[1] / k.dims()[1];
    let k = repeat_kv(k, groups);
    let v = repeat_kv(v, groups);
    let mut scores = q.matmul(k.swap_dims(2, 3)) * scale;
    if let Some(bias) = bias {
        scores = scores + bias;
    }
    softmax(scores, 3).matmul(v)
}

/// Additive causal mask `[1, 1, s_q, s_k]` aligned bottom-right (query `i` sees keys `..= i + s_k - s_q`).
pub fn causal_bias<B: Backend>(s_q: usize, s_k: usize, device: &B::Device) -> Tensor<B, 4> {
    let offset = s_k as i64 - s_q as i64;
    let hidden = Tensor::<B, 2, Bool>::tril_mask([s_q, s_k], offset, device);
    Tensor::<B, 2>::zeros([s_q, s_k], device)
        .mask_fill(hidden, -1e30)
        .reshape([1, 1, s_q, s_k])
}

/// ReLU-kernel linear attention as in SANA / DC-AE (`out_i = Σ_j v_j (k_j·q_i) / (Σ_j k_j·q_i + eps)`).
/// Inputs are `[b, h, n, d]` with ReLU already applied to `q` and `k`; computed in f32.
pub fn linear_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    eps: f64,
) -> Tensor<B, 4> {
    let kv = k.clone().swap_dims(2, 3).matmul(v); // [b,h,d,d_v]
    let num = q.clone().matmul(kv); // [b,h,n,d_v]
    let k_sum = k.sum_dim(2); // [b,h,1,d]
    let den = q.matmul(k_sum.swap_dims(2, 3)); // [b,h,n,1]
    num.div(den + eps)
}

/// Rotary position embedding in the HF "rotate half" convention (Qwen2/Llama).
#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    /// `theta^(-2j/d)`, `j < d/2`; a constant, not saved.
    pub inv_freq: Tensor<B, 1>,
}

impl<B: Backend> Rope<B> {
    /// Builds the frequency table for `head_dim` and base `theta`.
    pub fn new(head_dim: usize, theta: f64, device: &B::Device) -> Self {
        let inv: Vec<f32> = (0..head_dim / 2)
            .map(|j| (1.0 / theta.powf(2.0 * j as f64 / head_dim as f64)) as f32)
            .collect();
        Self {
            inv_freq: Tensor::from_data(TensorData::new(inv, [head_dim / 2]), device),
        }
    }

    /// `(cos, sin)` of shape `[b, 1, s, d]` for integer positions `[b, s]`.
    pub fn cos_sin(&self, positions: Tensor<B, 2, Int>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, s] = positions.dims();
        let half = self.inv_freq.dims()[0];
        let pos = positions.float().reshape([b, s, 1]);
        let freqs = pos * self.inv_freq.clone().reshape([1, 1, half]);
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2).reshape([b, 1, s, 2 * half]);
        (emb.clone().cos(), emb.sin())
    }

    /// Applies the rotation to `x` `[b, h, s, d]`.
    pub fn apply(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
        let d = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, d / 2);
        let x2 = x.clone().narrow(3, d / 2, d / 2);
        x * cos.clone() + Tensor::cat(vec![x2.neg(), x1], 3) * sin.clone()
    }
}

/// SwiGLU MLP: `down(silu(gate(x)) * up(x))` (Qwen2 `Qwen2MLP`).
#[derive(Module, Debug)]
pub struct SwiGluMlp<B: Backend> {
    /// Gate projection.
    pub gate_proj: Linear<B>,
    /// Up projection.
    pub up_proj: Linear<B>,
    /// Down projection.
    pub down_proj: Linear<B>,
}

impl<B: Backend> SwiGluMlp<B> {
    /// Loads `gate_proj`, `up_proj`, `down_proj` (no biases).
    pub fn load(vb: &VarBuilder<B>, hidden: usize, intermediate: usize) -> Result<Self> {
        Ok(Self {
            gate_proj: vb.pp("gate_proj").linear(hidden, intermediate, false)?,
            up_proj: vb.pp("up_proj").linear(hidden, intermediate, false)?,
            down_proj: vb.pp("down_proj").linear(intermediate, hidden, false)?,
        })
    }

    /// Forward pass.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let g = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(g * self.up_proj.forward(x))
    }
}

/// Shape of a PyTorch `nn.Conv2d` (square kernel, symmetric padding), loaded with [`ConvSpec::load`].
pub struct ConvSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Groups (`c_in` for depthwise).
    pub groups: usize,
    /// Whether the conv has a bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A stride-1 conv with "same" padding for odd kernels.
    pub fn same(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Self {
            c_in,
            c_out,
            kernel,
            stride: 1,
            padding: kernel / 2,
            groups: 1,
            bias: true,
        }
    }

    /// Sets the groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Sets whether there is a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Loads `weight` `[c_out, c_in/groups, k, k]` (and `bias`) from `vb`.
    pub fn load<B: Backend>(&self, vb: &VarBuilder<B>) -> Result<Conv2d<B>> {
        let p = self.padding;
        let mut conv = Conv2dConfig::new([self.c_in, self.c_out], [self.kernel, self.kernel])
            .with_stride([self.stride, self.stride])
            .with_groups(self.groups)
            .with_bias(self.bias)
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init::<B>(vb.device());
        conv.weight = vb.param(
            "weight",
            [
                self.c_out,
                self.c_in / self.groups,
                self.kernel,
                self.kernel,
            ],
        )?;
        if self.bias {
            conv.bias = Some(vb.param("bias", [self.c_out])?);
        }
        Ok(conv)
    }
}

/// A 1×1 conv (stride 1, one group) applied to channel-last tokens `[b, n, c_in] -> [b, n, c_out]`
/// as one matmul: the same result as the conv on NCHW, without moving to that layout and back
/// (on the CPU backends a conv's backward pass costs several times its matmul).
pub fn pointwise_conv_tokens<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [c_out, c_in, kh, kw] = conv.weight.dims();
    debug_assert!((kh, kw) == (1, 1), "pointwise conv needs a 1×1 kernel");
    let [b, n, _] = x.dims();
    let weight = conv.weight.val().reshape([c_out, c_in]).transpose();
    let y = x.reshape([b * n, c_in]).matmul(weight);
    let y = match &conv.bias {
        Some(bias) => y + bias.val().unsqueeze::<2>(),
        None => y,
    };
    y.reshape([b, n, c_out])
}

/// `x` with a contiguous row-major layout: a copy when `x` is a strided view (a slice along the
/// last dimension, a transpose), `x` itself otherwise. Element-wise ops on the CPU backend walk a
/// strided operand one element at a time; one copy first makes them vector loops.
pub fn contiguous<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    x.reshape([dims.iter().product::<usize>()]).reshape(dims)
}

/// A depthwise k×k conv (stride 1, "same" zero padding, `groups = channels`) on channel-last
/// `[b, h, w, c]`: the same result as the conv on NCHW.
///
/// The padded input is flattened to rows `[b·h'·w', c]`; the tap at `(i, j)` then reads the rows
/// `i·w' + j` further on, one block of rows, so each tap is one broadcast multiply-add (forward
/// and backward) instead of a grouped conv, whose backward is a naive transposed conv on the CPU
/// backends. Rows that straddle a padded border are computed and dropped.
pub fn depthwise_conv_channels_last<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [c, per_group, k, kw] = conv.weight.dims();
    debug_assert!(
        per_group == 1 && k == kw && k % 2 == 1,
        "depthwise odd square kernel"
    );
    let [b, h, w, _] = x.dims();
    let p = k / 2;
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let rows = b * hp * wp;
    let reach = (k - 1) * wp + (k - 1);
    let flat = x
        .pad([(p, p), (p, p), (0, 0)], PadMode::Constant(0.0))
        .reshape([rows, c])
        .pad([(0, reach), (0, 0)], PadMode::Constant(0.0));
    let taps = contiguous(conv.weight.val().reshape([c, k * k]).transpose());
    let mut out: Option<Tensor<B, 2>> = None;
    for i in 0..k {
        for j in 0..k {
            let tap = taps.clone().narrow(0, i * k + j, 1);
            let term = flat.clone().narrow(0, i * wp + j, rows) * tap;
            out = Some(match out {
                Some(acc) => acc + term,
                None => term,
            });
        }
    }
    let out = out.expect("a kernel has at least one tap");
    let out = match &conv.bias {
        Some(bias) => out + bias.val().unsqueeze::<2>(),
        None => out,
    };
    out.reshape([b, hp, wp, c]).slice([0..b, 0..h, 0..w, 0..c])
}

/// `torch.pixel_shuffle(x, r)`: `[n, c·r², h, w] -> [n, c, h·r, w·r]`.
pub fn pixel_shuffle<B: Backend>(x: Tensor<B, 4>, r: usize) -> Tensor<B, 4> {
    let [n, crr, h, w] = x.dims();
    let c = crr / (r * r);
    x.reshape([n, c, r, r, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([n, c, h * r, w * r])
}

/// `torch.pixel_unshuffle(x, r)`: `[n, c, h·r, w·r] -> [n, c·r², h, w]`.
pub fn pixel_unshuffle<B: Backend>(x: Tensor<B, 4>, r: usize) -> Tensor<B, 4> {
    let [n, c, hr, wr] = x.dims();
    let (h, w) = (hr / r, wr / r);
    x.reshape([n, c, h, r, w, r])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([n, c * r * r, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    type B = burn::backend::Flex;

    fn random_conv(c_in: usize, c_out: usize, kernel: usize, groups: usize) -> Conv2d<B> {
        let dev = Default::default();
        let p = kernel / 2;
        let mut conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init::<B>(&dev);
        let normal = Distribution::Normal(0., 1.);
        conv.weight = Param::from_tensor(Tensor::random(conv.weight.dims(), normal, &dev));
        conv.bias = Some(Param::from_tensor(Tensor::random([c_out], normal, &dev)));
        conv
    }

    fn max_diff(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn channel_last_convs_match_nchw_convs() {
        let (b, c, h, w) = (2, 6, 5, 4);
        let x = Tensor::<B, 4>::random(
            [b, c, h, w],
            Distribution::Normal(0., 1.),
            &Default::default(),
        );
        let tokens = x.clone().permute([0, 2, 3, 1]);

        let depthwise = random_conv(c, c, 3, c);
        let ours = depthwise_conv_channels_last(&depthwise, tokens.clone()).permute([0, 3, 1, 2]);
        let diff = max_diff(ours, depthwise.forward(x.clone()));
        assert!(diff < 1e-4, "depthwise conv differs by {diff}");

        let pointwise = random_conv(c, 7, 1, 1);
        let ours = pointwise_conv_tokens(&pointwise, tokens.reshape([b, h * w, c]))
            .reshape([b, h, w, 7])
            .permute([0, 3, 1, 2]);
        let diff = max_diff(ours, pointwise.forward(x));
        assert!(diff < 1e-4, "pointwise conv differs by {diff}");
    }
}
