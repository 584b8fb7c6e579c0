//! InternViT vision tower (InternViT-300M-448px-V2.5, as in InternVL3 / UniLIP) and the InternVL
//! projector path: drop CLS → pixel shuffle (`ps_version v2`) → `mlp1`.
//!
//! The module tree follows the *original* InternVL key names (`embeddings.class_embedding`,
//! `encoder.layers.{i}.attn.qkv`, `ls1`, …), which is how UniLIP stores the tower under
//! `model.vision_tower.`. Checkpoints in the transformers layout (`embeddings.cls_token`,
//! `encoder.layer.{i}.attention.{q,k,v}_proj`, `lambda_1`, …) are detected from the keys and
//! loaded into the same modules ([`KeyStyle`]). `nn.Sequential` projectors (`mlp1.{0,1,3}`) cannot
//! be Rust field names; [`NormMlp`] uses the transformers names (`layer_norm`, `linear_1`,
//! `linear_2`) for them.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::Deserialize;

use crate::models::layers::{attention, ConvSpec, LayerNorm};
use crate::weights::{Result, VarBuilder, WeightError};

/// LayerNorm epsilon of `mlp1` (`nn.LayerNorm` default in both InternVL and transformers).
pub const MLP1_LAYERNORM_EPS: f64 = 1e-5;

/// A bad input tensor or image (wrong channel count, a size the patch grid / pixel shuffle cannot
/// handle, a token count that does not fit a grid, an empty batch).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// The input has a different number of channels than the model.
    #[error("expected {expected} input channels, found {found}")]
    Channels {
        /// Channels the model takes.
        expected: usize,
        /// Channels in the input.
        found: usize,
    },
    /// The image is smaller than one patch.
    #[error("image {height}x{width} is smaller than one {patch}x{patch} patch")]
    TooSmall {
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
        /// Patch size.
        patch: usize,
    },
    /// The patch grid cannot be pixel-shuffled by the downsample factor.
    #[error("patch grid {rows}x{cols} is not divisible by the pixel-shuffle factor {factor}")]
    Grid {
        /// Patch rows.
        rows: usize,
        /// Patch columns.
        cols: usize,
        /// Shuffle factor (`1 / downsample_ratio`).
        factor: usize,
    },
    /// A token sequence does not have `rows * cols` tokens.
    #[error("{tokens} tokens do not form a {rows}x{cols} grid")]
    TokenCount {
        /// Tokens in the sequence.
        tokens: usize,
        /// Grid rows.
        rows: usize,
        /// Grid columns.
        cols: usize,
    },
    /// An image buffer has the wrong length for its size.
    #[error("image buffer has {found} bytes, expected {expected} ({height}x{width}x3)")]
    Buffer {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        found: usize,
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
    },
    /// No image was given.
    #[error("empty batch")]
    EmptyBatch,
}

/// An image or patch size: a single integer (original InternViT config) or `[height, width]`
/// (transformers config).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(untagged)]
pub enum Size2 {
    /// Square size.
    Square(usize),
    /// `[height, width]`.
    Rect([usize; 2]),
}

impl Size2 {
    /// `[height, width]`.
    pub fn hw(self) -> [usize; 2] {
        match self {
            Size2::Square(s) => [s, s],
            Size2::Rect(hw) => hw,
        }
    }
}

/// InternViT hyper-parameters: transformers `InternVLVisionConfig` field names, with the original
/// `InternVisionConfig` spellings accepted as aliases (`qkv_bias`, `qk_normalization`, integer
/// sizes). Defaults are the transformers defaults (InternViT-300M-448px).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct VisionConfig {
    /// Width of the tower.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP hidden width.
    pub intermediate_size: usize,
    /// Whether `qkv` has a bias (`qkv_bias` in the original config).
    #[serde(alias = "qkv_bias")]
    pub attention_bias: bool,
    /// q/k normalisation (InternViT-6B only; not supported).
    #[serde(alias = "qk_normalization")]
    pub use_qk_norm: bool,
    /// MLP activation (only `gelu` is supported).
    pub hidden_act: String,
    /// `layer_norm` (supported) or `rms_norm`.
    pub norm_type: String,
    /// Epsilon of `norm1`/`norm2`.
    pub layer_norm_eps: f64,
    /// Training image size; fixes the stored position-embedding grid.
    pub image_size: Size2,
    /// Patch size (square).
    pub patch_size: Size2,
    /// Input channels.
    pub num_channels: usize,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            attention_bias: false,
            use_qk_norm: false,
            hidden_act: "gelu".into(),
            norm_type: "layer_norm".into(),
            layer_norm_eps: 1e-6,
            image_size: Size2::Rect([448, 448]),
            patch_size: Size2::Rect([14, 14]),
            num_channels: 3,
        }
    }
}

impl VisionConfig {
    /// Checks that the config describes a tower this port implements.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let [ph, pw] = self.patch_size.hw();
        if ph != pw || ph == 0 {
            return Err(format!(
                "patch_size must be square and non-zero, got {ph}x{pw}"
            ));
        }
        let heads = self.num_attention_heads;
        if heads == 0 || !self.hidden_size.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {heads}",
                self.hidden_size
            ));
        }
        if self.use_qk_norm {
            return Err("use_qk_norm / qk_normalization is not supported".into());
        }
        if self.norm_type != "layer_norm" {
            return Err(format!(
                "norm_type `{}` is not supported (only layer_norm)",
                self.norm_type
            ));
        }
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act `{}` is not supported (only gelu)",
                self.hidden_act
            ));
        }
        Ok(())
    }

    /// Patch size (square).
    pub fn patch(&self) -> usize {
        self.patch_size.hw()[0]
    }

    /// Patch grid the stored position embedding was trained for.
    pub fn position_grid(&self) -> [usize; 2] {
        let [h, w] = self.image_size.hw();
        [h / self.patch(), w / self.patch()]
    }
}

/// The LLM side of the config; only its width matters here (`mlp1` output).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct TextConfig {
    /// LLM hidden size.
    pub hidden_size: usize,
}

impl Default for TextConfig {
    /// transformers' `Qwen2Config` default width.
    fn default() -> Self {
        Self { hidden_size: 4096 }
    }
}

/// transformers `InternVLConfig` (also the shape of UniLIP's `config.json`): the vision tower,
/// the LLM width (`text_config`, or `llm_config` in the original InternVL chat config) and the
/// projector options.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct Config {
    /// Vision tower.
    pub vision_config: VisionConfig,
    /// LLM (only `hidden_size` is read).
    #[serde(alias = "llm_config")]
    pub text_config: TextConfig,
    /// Pixel-shuffle ratio (0.5: 2×2 tokens merged into one).
    pub downsample_ratio: f64,
    /// Activation inside `mlp1` (only `gelu`).
    pub projector_hidden_act: String,
    /// Which hidden state feeds the projector (`-1` = last layer; `select_layer` in the original).
    #[serde(alias = "select_layer")]
    pub vision_feature_layer: i64,
    /// `default` drops the CLS token (the only strategy pixel shuffle allows).
    pub vision_feature_select_strategy: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            vision_config: VisionConfig::default(),
            text_config: TextConfig::default(),
            downsample_ratio: 0.5,
            projector_hidden_act: "gelu".into(),
            vision_feature_layer: -1,
            vision_feature_select_strategy: "default".into(),
        }
    }
}

impl Config {
    /// Checks the config and returns `(shuffle factor, layers run for the features)`.
    pub fn validate(&self) -> std::result::Result<(usize, usize), String> {
        self.vision_config.validate()?;
        let inv = 1.0 / self.downsample_ratio;
        let factor = inv.round();
        if !(factor >= 1.0 && (inv - factor).abs() < 1e-6) {
            return Err(format!(
                "downsample_ratio {} is not 1/n for an integer n",
                self.downsample_ratio
            ));
        }
        if self.projector_hidden_act != "gelu" {
            return Err(format!(
                "projector_hidden_act `{}` is not supported (only gelu)",
                self.projector_hidden_act
            ));
        }
        if self.vision_feature_select_strategy != "default" {
            return Err(format!(
                "vision_feature_select_strategy `{}` is not supported (only default)",
                self.vision_feature_select_strategy
            ));
        }
        let n = self.vision_config.num_hidden_layers as i64;
        let layer = self.vision_feature_layer;
        let layers = if layer < 0 { n + 1 + layer } else { layer };
        if !(0..=n).contains(&layers) {
            return Err(format!(
                "vision_feature_layer {layer} is out of range for {n} layers"
            ));
        }
        Ok((factor as usize, layers as usize))
    }

    /// `mlp1` widths `[in, hidden, out]`: ViT width × factor², LLM width, LLM width.
    pub fn mlp1_dims(&self, factor: usize) -> [usize; 3] {
        let h = self.text_config.hidden_size;
        [self.vision_config.hidden_size * factor * factor, h, h]
    }
}

fn config_error<B: Backend>(vb: &VarBuilder<B>, reason: String) -> WeightError {
    WeightError::Config {
        file: vb.checkpoint().root.clone(),
        reason,
    }
}

/// Which naming a checkpoint uses for the vision tower and projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStyle {
    /// Original InternVL (`trust_remote_code`) names, as in UniLIP checkpoints.
    Original,
    /// transformers `InternVLVisionModel` / `InternVLMultiModalProjector` names.
    Transformers,
}

impl KeyStyle {
    /// Detects the vision-tower naming under `vb` (original unless `embeddings.cls_token` exists).
    pub fn detect_vision<B: Backend>(vb: &VarBuilder<B>) -> Self {
        if !vb.contains("embeddings.class_embedding") && vb.contains("embeddings.cls_token") {
            KeyStyle::Transformers
        } else {
            KeyStyle::Original
        }
    }

    /// Detects the projector naming under `vb` (original unless `layer_norm.weight` exists).
    pub fn detect_mlp<B: Backend>(vb: &VarBuilder<B>) -> Self {
        if !vb.contains("0.weight") && vb.contains("layer_norm.weight") {
            KeyStyle::Transformers
        } else {
            KeyStyle::Original
        }
    }

    fn pick(self, original: &'static str, transformers: &'static str) -> &'static str {
        match self {
            KeyStyle::Original => original,
            KeyStyle::Transformers => transformers,
        }
    }
}

/// `nn.Sequential(LayerNorm, Linear, GELU, Linear)`: InternVL `mlp1` and UniLIP's latent-head
/// MLPs. On disk: keys `0`, `1`, `3` (original) or `layer_norm`, `linear_1`, `linear_2`.
#[derive(Module, Debug)]
pub struct NormMlp<B: Backend> {
    /// Input LayerNorm (`0`).
    pub layer_norm: LayerNorm<B>,
    /// First Linear (`1`).
    pub linear_1: Linear<B>,
    /// Second Linear (`3`), after an exact GELU.
    pub linear_2: Linear<B>,
}

/// InternVL's projector `mlp1` (`model.multi_modal_projector` in UniLIP).
pub type Mlp1<B> = NormMlp<B>;

impl<B: Backend> NormMlp<B> {
    /// Loads widths `[in, hidden, out]` with LayerNorm epsilon `eps`, detecting the key style.
    pub fn load(vb: &VarBuilder<B>, dims: [usize; 3], eps: f64) -> Result<Self> {
        let [d_in, d_mid, d_out] = dims;
        let style = KeyStyle::detect_mlp(vb);
        Ok(Self {
            layer_norm: LayerNorm::load(&vb.pp(style.pick("0", "layer_norm")), d_in, eps)?,
            linear_1: vb
                .pp(style.pick("1", "linear_1"))
                .linear(d_in, d_mid, true)?,
            linear_2: vb
                .pp(style.pick("3", "linear_2"))
                .linear(d_mid, d_out, true)?,
        })
    }

    /// `linear_2(gelu(linear_1(layer_norm(x))))`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let h = gelu(self.linear_1.forward(self.layer_norm.forward(x)));
        self.linear_2.forward(h)
    }
}

/// Patch embedding, CLS token and absolute position embedding.
#[derive(Module, Debug)]
pub struct VisionEmbeddings<B: Backend> {
    /// CLS token `[1, 1, C]`.
    pub class_embedding: Param<Tensor<B, 3>>,
    /// Conv `patch × patch`, stride `patch`, with bias.
    pub patch_embedding: Conv2d<B>,
    /// `[1, 1 + rows·cols, C]` for the stored grid (CLS position first).
    pub position_embedding: Param<Tensor<B, 3>>,
    /// Rows of the stored position grid.
    pub grid_rows: usize,
    /// Columns of the stored position grid.
    pub grid_cols: usize,
}

impl<B: Backend> VisionEmbeddings<B> {
    fn load(cfg: &VisionConfig, vb: &VarBuilder<B>, style: KeyStyle) -> Result<Self> {
        let c = cfg.hidden_size;
        let p = cfg.patch();
        let [rows, cols] = cfg.position_grid();
        let patch = ConvSpec::same(cfg.num_channels, c, p).stride(p).padding(0);
        let patch_vb = match style {
            KeyStyle::Original => vb.pp("patch_embedding"),
            KeyStyle::Transformers => vb.pp("patch_embeddings").pp("projection"),
        };
        Ok(Self {
            class_embedding: vb.param(style.pick("class_embedding", "cls_token"), [1, 1, c])?,
            patch_embedding: patch.load(&patch_vb)?,
            position_embedding: vb.param(
                style.pick("position_embedding", "position_embeddings"),
                [1, 1 + rows * cols, c],
            )?,
            grid_rows: rows,
            grid_cols: cols,
        })
    }

    /// Position embedding for a `rows × cols` patch grid: the stored table, or its patch part
    /// bicubic-resized (PyTorch cubic, A = −0.75, `align_corners=False`) when the grid differs.
    pub fn position_embedding_for(&self, rows: usize, cols: usize) -> Tensor<B, 3> {
        let pe = self.position_embedding.val();
        if (rows, cols) == (self.grid_rows, self.grid_cols) {
            return pe;
        }
        let [_, n, c] = pe.dims();
        let cls = pe.clone().narrow(1, 0, 1);
        let grid = pe
            .narrow(1, 1, n - 1)
            .reshape([1, self.grid_rows, self.grid_cols, c])
            .permute([0, 3, 1, 2]);
        let options = InterpolateOptions::new(InterpolateMode::Bicubic).with_align_corners(false);
        let resized = interpolate(grid, [rows, cols], options)
            .reshape([1, c, rows * cols])
            .swap_dims(1, 2);
        Tensor::cat(vec![cls, resized], 1)
    }

    /// `[B, ch, H, W]` → `[B, 1 + rows·cols, C]` (CLS first).
    pub fn forward(&self, pixel_values: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = self.patch_embedding.forward(pixel_values);
        let [b, c, rows, cols] = x.dims();
        let patches = x.reshape([b, c, rows * cols]).swap_dims(1, 2);
        let cls = self.class_embedding.val().expand([b, 1, c]);
        Tensor::cat(vec![cls, patches], 1) + self.position_embedding_for(rows, cols)
    }
}

/// Fused-qkv multi-head self-attention.
#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    /// `[C → 3C]`, output laid out `[q | k | v]`, each `heads × head_dim`.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    /// Number of heads.
    pub num_heads: usize,
}

impl<B: Backend> VisionAttention<B> {
    fn load(cfg: &VisionConfig, vb: &VarBuilder<B>, style: KeyStyle) -> Result<Self> {
        let c = cfg.hidden_size;
        let bias = cfg.attention_bias;
        let qkv = match style {
            KeyStyle::Original => vb.pp("qkv").linear(c, 3 * c, bias)?,
            KeyStyle::Transformers => {
                let parts = ["q_proj", "k_proj", "v_proj"]
                    .iter()
                    .map(|n| vb.pp(n).linear(c, c, bias))
                    .collect::<Result<Vec<_>>>()?;
                let weight = Tensor::cat(parts.iter().map(|l| l.weight.val()).collect(), 1);
                let biases: Option<Vec<_>> = parts
                    .iter()
                    .map(|l| l.bias.as_ref().map(|b| b.val()))
                    .collect();
                Linear {
                    weight: Param::from_tensor(weight),
                    bias: biases.map(|b| Param::from_tensor(Tensor::cat(b, 0))),
                }
            }
        };
        Ok(Self {
            qkv,
            proj: vb
                .pp(style.pick("proj", "projection_layer"))
                .linear(c, c, true)?,
            num_heads: cfg.num_attention_heads,
        })
    }

    /// Bidirectional softmax attention over `[B, N, C]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let h = self.num_heads;
        let hd = c / h;
        let qkv = self.qkv.forward(x).reshape([b, n, 3, h, hd]);
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i, 1)
                .reshape([b, n, h, hd])
                .swap_dims(1, 2)
        };
        let out = attention(part(0), part(1), part(2), None, (hd as f64).powf(-0.5));
        self.proj.forward(out.swap_dims(1, 2).reshape([b, n, c]))
    }
}

/// `fc2(gelu(fc1(x)))`.
#[derive(Module, Debug)]
pub struct VisionMlp<B: Backend> {
    /// `C → intermediate`.
    pub fc1: Linear<B>,
    /// `intermediate → C`.
    pub fc2: Linear<B>,
}

/// One pre-norm encoder layer with LayerScale.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// Self-attention.
    pub attn: VisionAttention<B>,
    /// MLP.
    pub mlp: VisionMlp<B>,
    /// Norm before attention.
    pub norm1: LayerNorm<B>,
    /// Norm before the MLP.
    pub norm2: LayerNorm<B>,
    /// LayerScale of the attention branch.
    pub ls1: Param<Tensor<B, 1>>,
    /// LayerScale of the MLP branch.
    pub ls2: Param<Tensor<B, 1>>,
}

impl<B: Backend> EncoderLayer<B> {
    fn load(cfg: &VisionConfig, vb: &VarBuilder<B>, style: KeyStyle) -> Result<Self> {
        let (c, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let mlp = vb.pp("mlp");
        Ok(Self {
            attn: VisionAttention::load(cfg, &vb.pp(style.pick("attn", "attention")), style)?,
            mlp: VisionMlp {
                fc1: mlp.pp("fc1").linear(c, cfg.intermediate_size, true)?,
                fc2: mlp.pp("fc2").linear(cfg.intermediate_size, c, true)?,
            },
            norm1: LayerNorm::load(&vb.pp(style.pick("norm1", "layernorm_before")), c, eps)?,
            norm2: LayerNorm::load(&vb.pp(style.pick("norm2", "layernorm_after")), c, eps)?,
            ls1: vb.param(style.pick("ls1", "lambda_1"), [c])?,
            ls2: vb.param(style.pick("ls2", "lambda_2"), [c])?,
        })
    }

    /// `x += ls1·attn(norm1(x)); x += ls2·mlp(norm2(x))`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x)) * self.ls1.val().unsqueeze();
        let h = gelu(self.mlp.fc1.forward(self.norm2.forward(x.clone())));
        x + self.mlp.fc2.forward(h) * self.ls2.val().unsqueeze()
    }
}

/// The encoder stack.
#[derive(Module, Debug)]
pub struct VisionEncoder<B: Backend> {
    /// Layers in order.
    pub layers: Vec<EncoderLayer<B>>,
}

/// InternViT (`InternVisionModel`): embeddings + encoder, no final norm.
#[derive(Module, Debug)]
pub struct InternVisionModel<B: Backend> {
    /// Patch/CLS/position embeddings.
    pub embeddings: VisionEmbeddings<B>,
    /// Transformer layers.
    pub encoder: VisionEncoder<B>,
    /// Patch size.
    pub patch_size: usize,
}

impl<B: Backend> InternVisionModel<B> {
    /// Loads the tower at `vb` (original or transformers key names, detected).
    pub fn load(cfg: &VisionConfig, vb: &VarBuilder<B>) -> Result<Self> {
        cfg.validate().map_err(|r| config_error(vb, r))?;
        let style = KeyStyle::detect_vision(vb);
        let layers_vb = vb.pp("encoder").pp(style.pick("layers", "layer"));
        let embeddings = VisionEmbeddings::load(cfg, &vb.pp("embeddings"), style)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::load(cfg, &layers_vb.pp(i), style))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings,
            encoder: VisionEncoder { layers },
            patch_size: cfg.patch(),
        })
    }

    /// Patch grid `[rows, cols]` of an `height × width` image.
    pub fn grid(&self, height: usize, width: usize) -> [usize; 2] {
        [height / self.patch_size, width / self.patch_size]
    }

    fn check(&self, pixel_values: &Tensor<B, 4>) -> std::result::Result<(), InputError> {
        let [_, ch, height, width] = pixel_values.dims();
        let expected = self.embeddings.patch_embedding.weight.dims()[1];
        if ch != expected {
            return Err(InputError::Channels {
                expected,
                found: ch,
            });
        }
        if height < self.patch_size || width < self.patch_size {
            return Err(InputError::TooSmall {
                height,
                width,
                patch: self.patch_size,
            });
        }
        Ok(())
    }

    /// Hidden state after the first `layers` encoder layers (0 = embeddings), `[B, 1 + N, C]`.
    pub fn hidden_state(
        &self,
        pixel_values: Tensor<B, 4>,
        layers: usize,
    ) -> std::result::Result<Tensor<B, 3>, InputError> {
        self.check(&pixel_values)?;
        let x = self.embeddings.forward(pixel_values);
        Ok(self
            .encoder
            .layers
            .iter()
            .take(layers)
            .fold(x, |x, l| l.forward(x)))
    }

    /// The output of every encoder layer, `[B, 1 + N, C]` each (the feature pyramid of a
    /// perceptual loss).
    pub fn layer_outputs(
        &self,
        pixel_values: Tensor<B, 4>,
    ) -> std::result::Result<Vec<Tensor<B, 3>>, InputError> {
        self.check(&pixel_values)?;
        let mut x = self.embeddings.forward(pixel_values);
        let mut out = Vec::with_capacity(self.encoder.layers.len());
        for layer in &self.encoder.layers {
            x = layer.forward(x);
            out.push(x.clone());
        }
        Ok(out)
    }

    /// `last_hidden_state` `[B, 1 + N, C]` (CLS first) of normalised `[B, ch, H, W]` pixels.
    pub fn forward(
        &self,
        pixel_values: Tensor<B, 4>,
    ) -> std::result::Result<Tensor<B, 3>, InputError> {
        self.hidden_state(pixel_values, self.encoder.layers.len())
    }
}

/// InternVL pixel shuffle (`ps_version v2`) of a `[B, rows, cols, C]` grid by `factor`:
/// output token `(y, x)` (row-major) holds the `factor²` input tokens `(factor·y + dy, factor·x + dx)`
/// concatenated in `(dy, dx)` order → `[B, rows·cols/factor², C·factor²]`. The caller checks
/// that `factor` divides `rows` and `cols`.
pub fn pixel_shuffle<B: Backend>(x: Tensor<B, 4>, factor: usize) -> Tensor<B, 3> {
    let [b, rows, cols, c] = x.dims();
    let f = factor;
    let (r2, c2) = (rows / f, cols / f);
    x.reshape([b, r2, f, c2, f, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b, r2 * c2, f * f * c])
}

/// The InternVL image-feature path: `vision_tower` → drop CLS → pixel shuffle → `mlp1`
/// (`model.vision_tower` + `model.multi_modal_projector` in UniLIP).
#[derive(Module, Debug)]
pub struct InternVlVision<B: Backend> {
    /// InternViT.
    pub vision_tower: InternVisionModel<B>,
    /// `mlp1`.
    pub multi_modal_projector: Mlp1<B>,
    /// Pixel-shuffle factor (`1 / downsample_ratio`).
    pub shuffle_factor: usize,
    /// Encoder layers run for the features (from `vision_feature_layer`).
    pub feature_layers: usize,
}

impl<B: Backend> InternVlVision<B> {
    /// Loads `vision_tower.*` and `multi_modal_projector.*` under `vb` (UniLIP: `vb.pp("model")`).
    pub fn load(cfg: &Config, vb: &VarBuilder<B>) -> Result<Self> {
        let vision = InternVisionModel::load(&cfg.vision_config, &vb.pp("vision_tower"))?;
        Self::with_tower(cfg, vision, &vb.pp("multi_modal_projector"))
    }

    /// Loads from a checkpoint root, accepting both on-disk spellings of UniLIP / InternVL-hf
    /// checkpoints: `model.vision_tower.*` + `model.multi_modal_projector.*` (transformers
    /// 4.52.0–4.52.3) or `vision_tower.*` + `multi_modal_projector.*` (spec §4.2).
    pub fn load_from_root(cfg: &Config, root: &VarBuilder<B>) -> Result<Self> {
        let nested = root.pp("model").pp("vision_tower").pp("embeddings");
        if nested.contains("class_embedding") || nested.contains("cls_token") {
            Self::load(cfg, &root.pp("model"))
        } else {
            Self::load(cfg, root)
        }
    }

    /// Combines a loaded tower with `mlp1` loaded at `mlp_vb` (e.g. `mlp1` in InternVL files).
    pub fn with_tower(
        cfg: &Config,
        vision_tower: InternVisionModel<B>,
        mlp_vb: &VarBuilder<B>,
    ) -> Result<Self> {
        let (factor, layers) = cfg.validate().map_err(|r| config_error(mlp_vb, r))?;
        Ok(Self {
            vision_tower,
            multi_modal_projector: NormMlp::load(
                mlp_vb,
                cfg.mlp1_dims(factor),
                MLP1_LAYERNORM_EPS,
            )?,
            shuffle_factor: factor,
            feature_layers: layers,
        })
    }

    /// Feature-token grid `[rows, cols]` of an `height × width` image.
    pub fn feature_grid(&self, height: usize, width: usize) -> [usize; 2] {
        let [r, c] = self.vision_tower.grid(height, width);
        [r / self.shuffle_factor, c / self.shuffle_factor]
    }

    /// Drops CLS from a `[B, 1 + rows·cols, C]` hidden state of an `height × width` image and
    /// pixel-shuffles it → `[B, tokens, C·factor²]` (the `mlp1` input).
    pub fn shuffle(
        &self,
        hidden: Tensor<B, 3>,
        height: usize,
        width: usize,
    ) -> std::result::Result<Tensor<B, 3>, InputError> {
        let [rows, cols] = self.vision_tower.grid(height, width);
        let [b, n, c] = hidden.dims();
        let f = self.shuffle_factor;
        if !rows.is_multiple_of(f) || !cols.is_multiple_of(f) {
            return Err(InputError::Grid {
                rows,
                cols,
                factor: f,
            });
        }
        if n != rows * cols + 1 {
            return Err(InputError::TokenCount {
                tokens: n.saturating_sub(1),
                rows,
                cols,
            });
        }
        let grid = hidden.narrow(1, 1, rows * cols).reshape([b, rows, cols, c]);
        Ok(pixel_shuffle(grid, f))
    }

    /// Image features `[B, tokens, H]` (UniLIP features / LLM image embeddings) of normalised
    /// pixels `[B, ch, H, W]`; tokens are row-major over [`Self::feature_grid`].
    pub fn image_features(
        &self,
        pixel_values: Tensor<B, 4>,
    ) -> std::result::Result<Tensor<B, 3>, InputError> {
        let [_, _, height, width] = pixel_values.dims();
        let hidden = self
            .vision_tower
            .hidden_state(pixel_values, self.feature_layers)?;
        let shuffled = self.shuffle(hidden, height, width)?;
        Ok(self.multi_modal_projector.forward(shuffled))
    }
}
