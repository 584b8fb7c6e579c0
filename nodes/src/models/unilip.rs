//! The whole UniLIP model (spec §1, §2.5–2.6, §4): config, checkpoint loading and the pipeline
//! steps for text-to-image, editing, reconstruction and understanding.
//!
//! [`Unilip`] holds every component as an `Option`, loaded on demand ([`ComponentSet`]); its field
//! names are the checkpoint key prefixes (`vision` = `vision_tower` + `multi_modal_projector`,
//! `language_model` + `lm_head`, `latent_queries`, `llm_connector`, `projector`, `dit`,
//! `vae_decoder`). Each pipeline stage is a separate `pub fn`, so graph nodes can expose stages:
//!
//! * text-to-image: [`Unilip::condition`] on a `[pos, neg]` prompt batch → [`Condition::rows`] →
//!   [`Unilip::sample`] (null-first CFG) → [`Unilip::decode`] → [`to_image`];
//! * editing: the same with `image_features` from [`Unilip::image_features`];
//! * reconstruction: [`Unilip::encode_latent`] → [`Unilip::decode_latent`];
//! * understanding: [`Unilip::understand`] (InternVL chat prompt, greedy / top-p generation).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::models::dcae::{DcAeConfig, DcAeDecoder};
use crate::models::inpaint::Inpaint;
use crate::models::internvit::{self, InputError, InternVlVision};
use crate::models::latent_head::LatentHead;
use crate::models::qwen2::{
    bidirectional_mask, position_ids_from_mask, AttentionMask, GenerationConfig, GenerationOutput,
    Qwen2Config, Qwen2Error, Qwen2ForCausalLM, Qwen2Model,
};
use crate::models::regions::{regional_caption, MaskedCaption, RegionPrompt};
use crate::models::sana::{PosEmbed, SanaConfig, SanaTransformer};
use crate::models::scheduler::{
    cfg as guide, gaussian_noise, DpmSolverConfig, DpmSolverMultistepScheduler,
    FlowMatchEulerConfig, FlowMatchEulerScheduler, SchedulerError,
};
use crate::models::teacher_forcing::{token_log_probs, TextBatch};
use crate::models::tokenizer::{understanding_prompt, SpecialIds, Tokenizer, TokenizerError};
use crate::param_keys::{keyed_tensors, ParamKeys, UnkeyedParam};
use crate::unidiff::heads::UnidiffHeads;
use crate::weights::{self, read_json, Checkpoint, HostTensor, VarBuilder, WeightError};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// A UniLIP `config.json`: the InternVL part (`vision_config`, `text_config`, `downsample_ratio`,
/// `image_token_id`, …), UniLIP's own fields (`n_query`, `connect_layer`, `unilip_factor`) and
/// the optional `dit_config` (SANA), `vae_config` (DC-AE) and `scheduler_config` (DPM-Solver).
///
/// Released UniLIP checkpoints carry no DiT/DC-AE/scheduler configs (Python fetches them from
/// other repos); when absent they default to SANA-600M (text width 896, UniLIP-1B) or SANA-1.6B
/// (width 1536, UniLIP-3B), `dc-ae-f32c32-sana-1.1` and SANA's 512px DPM-Solver++ config.
/// A `dynamic` `rope_scaling` in `text_config` is dropped: it changes nothing below
/// `max_position_embeddings` (32768) tokens.
///
/// Serialisation writes the complete JSON (defaults filled in), with the scalar fields taken from
/// this struct. Edit sub-configs through JSON and [`UnilipConfig::from_json`].
#[derive(Debug, Clone)]
pub struct UnilipConfig {
    /// Vision tower + `mlp1` (the InternVL part of the config).
    pub vision: internvit::Config,
    /// The LLM (and connector) config, `text_config`.
    pub text: Qwen2Config,
    /// Number of learnable queries (`latent_queries` rows; 256).
    pub n_query: usize,
    /// Connector depth (last LLM layers copied; 6).
    pub connect_layer: usize,
    /// DiT latent scale: `z_dit = (z − unilip_shift) · unilip_factor` (10.6 for 1B, 9.5 for 3B).
    pub unilip_factor: f64,
    /// Per-channel latent offset subtracted before scaling (`unilip_shift`; empty = none, as in
    /// the released checkpoints). `checkpoint calibrate` sets it for encoders trained here, whose
    /// latents carry large per-channel means that would otherwise dominate the unit variance.
    pub unilip_shift: Vec<f64>,
    /// Token id of `<IMG_CONTEXT>` (151667).
    pub image_token_id: u32,
    /// SANA DiT.
    pub dit: SanaConfig,
    /// DC-AE (decoder part).
    pub vae: DcAeConfig,
    /// DPM-Solver++ sampler.
    pub scheduler: DpmSolverConfig,
    /// DiT positional embedding (`dit_pos_embed`: `sincos_bf16` (default, what UniLIP runs),
    /// `sincos` or `none`).
    pub pos_embed: PosEmbed,
    /// Output images are the decoder output resized by this factor (`output_scale`; UniLIP:
    /// 28/32, i.e. 512 → 448 px, the encoder's input size).
    pub output_scale: f64,
    json: Value,
}

/// UniLIP's scalar fields (serde defaults = the values of the released checkpoints).
#[derive(Deserialize)]
struct Scalars {
    #[serde(default = "d_n_query")]
    n_query: usize,
    #[serde(default = "d_connect_layer")]
    connect_layer: usize,
    unilip_factor: Option<f64>,
    #[serde(default)]
    unilip_shift: Vec<f64>,
    #[serde(default = "d_image_token_id")]
    image_token_id: u32,
    dit_pos_embed: Option<String>,
    #[serde(default = "d_output_scale")]
    output_scale: f64,
}

fn d_output_scale() -> f64 {
    28.0 / 32.0
}

fn d_n_query() -> usize {
    256
}
fn d_connect_layer() -> usize {
    6
}
fn d_image_token_id() -> u32 {
    151667
}

/// SANA-600M (`Sana_600M_512px_diffusers`, UniLIP-1B) or SANA-1.6B (`Sana_1600M_512px_diffusers`,
/// UniLIP-3B) transformer config, chosen by the LLM width.
fn default_dit(hidden: usize) -> Option<Value> {
    let (layers, heads, cross_heads, cross_head_dim) = match hidden {
        896 => (28, 36, 16, 72),
        1536 => (20, 70, 20, 112),
        _ => return None,
    };
    Some(json!({
        "_class_name": "SanaTransformer2DModel",
        "in_channels": 32, "out_channels": 32, "num_layers": layers,
        "num_attention_heads": heads, "attention_head_dim": 32,
        "num_cross_attention_heads": cross_heads, "cross_attention_head_dim": cross_head_dim,
        "cross_attention_dim": heads * 32, "caption_channels": 2304, "mlp_ratio": 2.5,
        "dropout": 0.0, "attention_bias": false, "sample_size": 16, "patch_size": 1,
        "norm_elementwise_affine": false, "norm_eps": 1e-6
    }))
}

/// `mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers` (decoder fields).
fn default_vae() -> Value {
    json!({
        "_class_name": "AutoencoderDC",
        "in_channels": 3, "latent_channels": 32, "attention_head_dim": 32,
        "decoder_block_types": ["ResBlock", "ResBlock", "ResBlock",
            "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock"],
        "decoder_block_out_channels": [128, 256, 512, 512, 1024, 1024],
        "decoder_layers_per_block": [3, 3, 3, 3, 3, 3],
        "decoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
        "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu",
        "upsample_block_type": "interpolate", "scaling_factor": 0.41407
    })
}

/// SANA 512px `scheduler/scheduler_config.json` (spec §2.8).
fn default_scheduler() -> Value {
    json!({
        "_class_name": "DPMSolverMultistepScheduler",
        "num_train_timesteps": 1000, "solver_order": 2, "prediction_type": "flow_prediction",
        "thresholding": false, "algorithm_type": "dpmsolver++", "solver_type": "midpoint",
        "lower_order_final": true, "euler_at_final": false, "use_karras_sigmas": false,
        "use_exponential_sigmas": false, "use_beta_sigmas": false, "use_lu_lambdas": false,
        "use_flow_sigmas": true, "flow_shift": 3.0, "final_sigmas_type": "zero",
        "timestep_spacing": "linspace"
    })
}

/// InternViT-300M-448px (`vision_config` of InternVL3-1B/2B-hf), or a tiny tower of the same shape.
fn vision_json(hidden: usize, layers: usize, heads: usize, mlp: usize) -> Value {
    json!({
        "model_type": "internvl_vision", "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": mlp, "attention_bias": true,
        "use_qk_norm": false, "hidden_act": "gelu", "norm_type": "layer_norm",
        "layer_norm_eps": 1e-6, "image_size": [448, 448], "patch_size": [14, 14], "num_channels": 3
    })
}

/// Qwen2.5 `text_config` of InternVL3 (vocabulary rows as in UniLIP-1B: 151678).
fn text_json(hidden: usize, mlp: usize, layers: usize, heads: usize, kv: usize) -> Value {
    json!({
        "model_type": "qwen2", "vocab_size": 151678, "hidden_size": hidden,
        "intermediate_size": mlp, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "hidden_act": "silu", "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": {"factor": 2.0, "rope_type": "dynamic", "type": "dynamic"},
        "tie_word_embeddings": false, "use_sliding_window": false,
        "bos_token_id": 151643, "eos_token_id": 151645
    })
}

/// The InternVL + UniLIP top level around a vision and a text config.
fn unilip_json(vision: Value, text: Value, n_query: usize, connect: usize, factor: f64) -> Value {
    json!({
        "model_type": "unilip_internvl", "architectures": ["UniLIP_InternVLForCausalLM"],
        "image_token_id": 151667, "downsample_ratio": 0.5, "projector_hidden_act": "gelu",
        "vision_feature_layer": -1, "vision_feature_select_strategy": "default",
        "vision_config": vision, "text_config": text,
        "n_query": n_query, "connect_layer": connect, "unilip_factor": factor
    })
}

fn pos_embed_name(p: PosEmbed) -> &'static str {
    match p {
        PosEmbed::None => "none",
        PosEmbed::SinCos => "sincos",
        PosEmbed::SinCosBf16 => "sincos_bf16",
    }
}

fn parse<T: for<'de> Deserialize<'de>>(v: &Value, what: &str) -> std::result::Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("{what}: {e}"))
}

impl UnilipConfig {
    /// Parses a UniLIP `config.json` value, filling in the defaults described on the type.
    pub fn from_json(mut json: Value) -> std::result::Result<Self, String> {
        let obj = json
            .as_object_mut()
            .ok_or("config.json is not a JSON object")?;
        if !obj.contains_key("vision_config") {
            return Err("no `vision_config`".into());
        }
        let text_json = obj
            .get("text_config")
            .or_else(|| obj.get("llm_config"))
            .cloned()
            .ok_or("no `text_config` (or `llm_config`)")?;
        let mut text: Qwen2Config = parse(&text_json, "text_config")?;
        let dynamic = |t: Option<&str>| t == Some("dynamic");
        let scaling_type = text.rope_scaling.as_ref().and_then(|v| {
            v.get("rope_type")
                .or_else(|| v.get("type"))
                .and_then(Value::as_str)
        });
        if dynamic(scaling_type) {
            text.rope_scaling = None;
        }
        if let Some(p) = text.rope_parameters.as_mut() {
            if dynamic(p.rope_type.as_deref()) {
                p.rope_type = None;
            }
        }
        let h = text.hidden_size;
        let defaults = [
            ("dit_config", default_dit(h)),
            ("vae_config", Some(default_vae())),
            ("scheduler_config", Some(default_scheduler())),
        ];
        for (key, default) in defaults {
            if obj.get(key).is_none_or(Value::is_null) {
                let value = default.ok_or_else(|| {
                    format!("no `{key}`, and text hidden size {h} is neither 896 (UniLIP-1B) nor 1536 (UniLIP-3B)")
                })?;
                obj.insert(key.into(), value);
            }
        }
        let s: Scalars = parse(&json, "UniLIP fields")?;
        let unilip_factor = match (s.unilip_factor, h) {
            (Some(f), _) => f,
            (None, 896) => 10.6,
            (None, 1536) => 9.5,
            (None, _) => return Err("no `unilip_factor`".into()),
        };
        let pos_embed = match s.dit_pos_embed.as_deref() {
            None | Some("sincos_bf16") => PosEmbed::SinCosBf16,
            Some("sincos") => PosEmbed::SinCos,
            Some("none") => PosEmbed::None,
            Some(other) => {
                return Err(format!(
                    "dit_pos_embed `{other}` (expected sincos_bf16, sincos or none)"
                ))
            }
        };
        let cfg = Self {
            vision: parse(&json, "vision part")?,
            text,
            n_query: s.n_query,
            connect_layer: s.connect_layer,
            unilip_factor,
            unilip_shift: s.unilip_shift,
            image_token_id: s.image_token_id,
            dit: parse(&json["dit_config"], "dit_config")?,
            vae: parse(&json["vae_config"], "vae_config")?,
            scheduler: parse(&json["scheduler_config"], "scheduler_config")?,
            pos_embed,
            output_scale: s.output_scale,
            json,
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.vision.text_config.hidden_size != self.text.hidden_size {
            return Err("vision text width differs from text_config.hidden_size".into());
        }
        if self.dit.out_channels() != self.vae.latent_channels {
            return Err(format!(
                "dit_config.out_channels {} != vae_config.latent_channels {}",
                self.dit.out_channels(),
                self.vae.latent_channels
            ));
        }
        if self.n_query == 0 || self.connect_layer == 0 {
            return Err("n_query and connect_layer must be positive".into());
        }
        if !(self.output_scale.is_finite() && self.output_scale > 0.0) {
            return Err(format!(
                "output_scale {} is not positive",
                self.output_scale
            ));
        }
        if !(self.unilip_factor.is_finite() && self.unilip_factor != 0.0) {
            return Err(format!(
                "unilip_factor {} is not usable",
                self.unilip_factor
            ));
        }
        let shift = &self.unilip_shift;
        if !shift.is_empty() && shift.len() != self.vae.latent_channels {
            return Err(format!(
                "unilip_shift has {} values but the latent has {} channels",
                shift.len(),
                self.vae.latent_channels
            ));
        }
        if shift.iter().any(|v| !v.is_finite()) {
            return Err("unilip_shift holds a non-finite value".into());
        }
        Ok(())
    }

    /// Reads and parses a `config.json` file (errors are [`WeightError::Config`] naming it).
    pub fn load(path: &Path) -> weights::Result<Self> {
        Self::from_json(read_json(path)?).map_err(|reason| WeightError::Config {
            file: path.to_path_buf(),
            reason,
        })
    }

    /// The complete config as JSON (what [`Serialize`] writes).
    pub fn to_json(&self) -> Value {
        let mut json = self.json.clone();
        if let Some(obj) = json.as_object_mut() {
            obj.insert("n_query".into(), self.n_query.into());
            obj.insert("connect_layer".into(), self.connect_layer.into());
            obj.insert("unilip_factor".into(), self.unilip_factor.into());
            if self.unilip_shift.is_empty() {
                obj.remove("unilip_shift");
            } else {
                obj.insert("unilip_shift".into(), self.unilip_shift.clone().into());
            }
            obj.insert("image_token_id".into(), self.image_token_id.into());
            obj.insert("output_scale".into(), self.output_scale.into());
            obj.insert(
                "dit_pos_embed".into(),
                pos_embed_name(self.pos_embed).into(),
            );
        }
        json
    }

    /// LLM width `H`.
    pub fn hidden_size(&self) -> usize {
        self.text.hidden_size
    }

    /// A CPU-sized model with the shapes of the `unilip_e2e` fixture (ViT 32 wide, LLM 64 wide,
    /// 8 queries, 2-layer connector, 2-layer DiT, 3-stage DC-AE), 448 px input, 16×16 latent,
    /// and the real vocabulary size so the Qwen2 tokenizer works.
    pub fn tiny() -> Self {
        let mut text = text_json(64, 96, 2, 4, 2);
        text["head_dim"] = 16.into();
        let mut json = unilip_json(vision_json(32, 2, 4, 128), text, 8, 2, 10.6);
        json["dit_config"] = json!({
            "in_channels": 32, "out_channels": 32, "num_layers": 2,
            "num_attention_heads": 2, "attention_head_dim": 16,
            "num_cross_attention_heads": 2, "cross_attention_head_dim": 16,
            "cross_attention_dim": 32, "caption_channels": 24, "mlp_ratio": 2.5,
            "sample_size": 16, "patch_size": 1, "norm_elementwise_affine": false, "norm_eps": 1e-6
        });
        json["vae_config"] = json!({
            "in_channels": 3, "latent_channels": 32, "attention_head_dim": 8,
            "decoder_block_types": ["ResBlock", "EfficientViTBlock", "EfficientViTBlock"],
            "decoder_block_out_channels": [8, 16, 32], "decoder_layers_per_block": [1, 1, 1],
            "decoder_qkv_multiscales": [[], [5], [5]], "decoder_norm_types": "rms_norm",
            "decoder_act_fns": "silu", "upsample_block_type": "interpolate"
        });
        Self::from_json(json).expect("valid tiny preset")
    }

    /// A CPU-trainable model for 64×64 images (ShapesWorld) with a word-level vocabulary of
    /// `vocab_size` tokens with the given special ids (`<IMG_CONTEXT>`, `<|im_end|>` as EOS): ViT patch 4 (16×16 grid,
    /// 32 wide, 2 layers) → pixel shuffle → 64 tokens of width 64; LLM 64 wide with 2 layers;
    /// 16 queries and a 1-layer connector; a 4-layer DiT of width 128 on an 8×8×16 latent; a
    /// 4-stage DC-AE decoder (×8, 16–64 channels) back to 64×64.
    pub fn shapes(vocab_size: usize, special: SpecialIds) -> Self {
        let mut vision = vision_json(32, 2, 2, 64);
        vision["image_size"] = json!([64, 64]);
        vision["patch_size"] = json!([4, 4]);
        let mut text = text_json(64, 128, 2, 4, 2);
        text["head_dim"] = 16.into();
        text["vocab_size"] = vocab_size.into();
        text["max_position_embeddings"] = 512.into();
        text["eos_token_id"] = json!([special.im_end, special.endoftext]);
        text["bos_token_id"] = Value::Null;
        if let Some(o) = text.as_object_mut() {
            o.remove("rope_scaling");
        }
        let mut json = unilip_json(vision, text, 16, 1, 1.0);
        json["image_token_id"] = special.img_context.into();
        json["output_scale"] = 1.0.into();
        json["dit_config"] = json!({
            "in_channels": 16, "out_channels": 16, "num_layers": 4,
            "num_attention_heads": 4, "attention_head_dim": 32,
            "num_cross_attention_heads": 4, "cross_attention_head_dim": 32,
            "cross_attention_dim": 128, "caption_channels": 128, "mlp_ratio": 2.5,
            "sample_size": 8, "patch_size": 1, "norm_elementwise_affine": false, "norm_eps": 1e-6
        });
        json["vae_config"] = json!({
            "in_channels": 3, "latent_channels": 16, "attention_head_dim": 8,
            "decoder_block_types": ["ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock"],
            "decoder_block_out_channels": [16, 32, 64, 64], "decoder_layers_per_block": [1, 1, 1, 1],
            "decoder_qkv_multiscales": [[], [], [5], [5]], "decoder_norm_types": "rms_norm",
            "decoder_act_fns": "silu", "upsample_block_type": "interpolate"
        });
        Self::from_json(json).expect("valid shapes preset")
    }

    /// UniLIP-1B: InternVL3-1B (InternViT-300M + Qwen2.5-0.5B), SANA-600M, factor 10.6.
    pub fn one_b() -> Self {
        let text = text_json(896, 4864, 24, 14, 2);
        Self::from_json(unilip_json(
            vision_json(1024, 24, 16, 4096),
            text,
            256,
            6,
            10.6,
        ))
        .expect("valid 1B preset")
    }

    /// UniLIP-3B: InternVL3-2B (InternViT-300M + Qwen2.5-1.5B), SANA-1.6B, factor 9.5.
    pub fn three_b() -> Self {
        let text = text_json(1536, 8960, 28, 12, 2);
        Self::from_json(unilip_json(
            vision_json(1024, 24, 16, 4096),
            text,
            256,
            6,
            9.5,
        ))
        .expect("valid 3B preset")
    }
}

impl Serialize for UnilipConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for UnilipConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Self::from_json(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Which components [`Unilip::load`] reads. `lm_head` implies `llm`; `connector` covers
/// `latent_queries`, `llm_connector` and `projector`; `decoder` covers the latent head and the
/// DC-AE decoder (`vae_decoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ComponentSet {
    /// `vision_tower` + `multi_modal_projector` (image features).
    pub vision: bool,
    /// The LLM (`language_model`).
    pub llm: bool,
    /// `lm_head` (understanding only).
    pub lm_head: bool,
    /// `latent_queries`, `llm_connector`, `projector`.
    pub connector: bool,
    /// The SANA DiT.
    pub dit: bool,
    /// `vae_decoder`: latent head + DC-AE decoder.
    pub decoder: bool,
    /// UniDiff heads (`model.unidiff.*`), when the checkpoint has them.
    pub unidiff: bool,
}

impl ComponentSet {
    /// Everything.
    pub const ALL: Self = Self {
        vision: true,
        llm: true,
        lm_head: true,
        connector: true,
        dit: true,
        decoder: true,
        unidiff: true,
    };
    /// Text-to-image: LLM, connector, DiT, decoder (no vision, no `lm_head`).
    pub const GENERATION: Self = Self {
        vision: false,
        llm: true,
        lm_head: false,
        connector: true,
        dit: true,
        decoder: true,
        unidiff: false,
    };
    /// Editing: [`Self::GENERATION`] plus the vision tower.
    pub const EDITING: Self = Self {
        vision: true,
        ..Self::GENERATION
    };
    /// Reconstruction: vision tower and `vae_decoder`.
    pub const RECONSTRUCTION: Self = Self {
        vision: true,
        llm: false,
        lm_head: false,
        connector: false,
        dit: false,
        decoder: true,
        unidiff: false,
    };
    /// Understanding: vision tower, LLM and `lm_head`.
    pub const UNDERSTANDING: Self = Self {
        vision: true,
        llm: true,
        lm_head: true,
        connector: false,
        dit: false,
        decoder: false,
        unidiff: false,
    };
    /// Image features only: the vision tower and `mlp1` (feature probes).
    pub const VISION: Self = Self {
        vision: true,
        llm: false,
        lm_head: false,
        connector: false,
        dit: false,
        decoder: false,
        unidiff: false,
    };
}

/// How a checkpoint spells the InternVL prefixes (spec §4.2), decided once from the key list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStyle {
    /// transformers 4.52.0–4.52.3: `model.language_model.*`, `model.vision_tower.*`,
    /// `model.multi_modal_projector.*`, `lm_head.weight`.
    Nested,
    /// transformers with the conversion mapping reversed on save: `language_model.model.*`,
    /// `vision_tower.*`, `multi_modal_projector.*`, `language_model.lm_head.weight`.
    Legacy,
}

impl KeyStyle {
    /// Legacy when any key starts with `language_model.`, `vision_tower.` or
    /// `multi_modal_projector.`; nested otherwise. Every other component is under `model.` in both.
    pub fn detect(ck: &Checkpoint) -> Self {
        let legacy = ck.keys().iter().any(|k| {
            ["language_model.", "vision_tower.", "multi_modal_projector."]
                .iter()
                .any(|p| k.starts_with(p))
        });
        if legacy {
            Self::Legacy
        } else {
            Self::Nested
        }
    }

    /// Parent of `vision_tower` and `multi_modal_projector`.
    fn vision_parent(self) -> &'static str {
        match self {
            Self::Nested => "model",
            Self::Legacy => "",
        }
    }

    /// Prefix of the LLM's `Qwen2Model`.
    pub fn language_model(self) -> &'static str {
        match self {
            Self::Nested => "model.language_model",
            Self::Legacy => "language_model.model",
        }
    }

    /// Prefix of `lm_head`.
    fn lm_head(self) -> &'static str {
        match self {
            Self::Nested => "lm_head",
            Self::Legacy => "language_model.lm_head",
        }
    }

    /// The key (or key prefix) this style uses for `nested`, spelled in the nested style.
    pub fn spell(self, nested: &str) -> String {
        let under = |parent: &str, name: &str| match parent {
            "" => format!("{name}."),
            p => format!("{p}.{name}."),
        };
        let prefixes = [
            (
                "model.language_model.",
                format!("{}.", self.language_model()),
            ),
            (
                "model.vision_tower.",
                under(self.vision_parent(), "vision_tower"),
            ),
            (
                "model.multi_modal_projector.",
                under(self.vision_parent(), "multi_modal_projector"),
            ),
            ("lm_head.", format!("{}.", self.lm_head())),
        ];
        prefixes
            .iter()
            .find_map(|(from, to)| nested.strip_prefix(from).map(|rest| format!("{to}{rest}")))
            .unwrap_or_else(|| nested.to_string())
    }
}

/// `model.vae_decoder`: the latent head (`down_blocks`, `down_mlp`) and the DC-AE `decoder`.
#[derive(Module, Debug)]
pub struct VaeDecoder<B: Backend> {
    /// Features → latent (`clip_down`); its keys sit directly under `vae_decoder.`.
    pub latent_head: LatentHead<B>,
    /// DC-AE decoder.
    pub decoder: DcAeDecoder<B>,
}

/// UniLIP with any subset of its components loaded.
#[derive(Module, Debug)]
pub struct Unilip<B: Backend> {
    /// InternViT + pixel shuffle + `mlp1`.
    pub vision: Option<InternVlVision<B>>,
    /// The frozen LLM (+ `lm_head` when loaded).
    pub language_model: Option<Qwen2ForCausalLM<B>>,
    /// Learnable queries `[1, n_query, H]`.
    pub latent_queries: Option<Param<Tensor<B, 3>>>,
    /// The bidirectional connector (last LLM layers, no `embed_tokens`).
    pub llm_connector: Option<Qwen2Model<B>>,
    /// `Linear(H, caption_channels)`.
    pub projector: Option<Linear<B>>,
    /// SANA DiT.
    pub dit: Option<SanaTransformer<B>>,
    /// Latent head + DC-AE decoder.
    pub vae_decoder: Option<VaeDecoder<B>>,
    /// UniDiff's projection heads and temperature, when loaded.
    pub unidiff: Option<UnidiffHeads<B>>,
    /// The config.
    #[module(skip)]
    pub config: UnilipConfig,
    /// What was loaded.
    #[module(skip)]
    pub components: ComponentSet,
    /// The checkpoint key of every parameter (for saving a trained model).
    #[module(skip)]
    pub keys: ParamKeys,
}

impl<B: Backend> Unilip<B> {
    /// Opens a checkpoint directory (`config.json` + `model.safetensors` or a sharded index) or a
    /// single `.safetensors` file with a `config.json` beside it, and loads `components`.
    pub fn load(
        path: impl AsRef<Path>,
        components: ComponentSet,
        device: &B::Device,
    ) -> weights::Result<Self> {
        let path = path.as_ref();
        let ck = Checkpoint::open(path)?;
        let cfg_path = if path.is_dir() {
            path.join("config.json")
        } else {
            path.parent()
                .map_or_else(|| PathBuf::from("config.json"), |p| p.join("config.json"))
        };
        let config = match &ck.config {
            Some(v) => {
                UnilipConfig::from_json(v.clone()).map_err(|reason| WeightError::Config {
                    file: cfg_path.clone(),
                    reason,
                })?
            }
            None if cfg_path.exists() => UnilipConfig::load(&cfg_path)?,
            None => {
                return Err(WeightError::Config {
                    file: cfg_path,
                    reason: "not found".into(),
                })
            }
        };
        Self::from_checkpoint(Arc::new(ck), config, components, device)
    }

    /// Opens the checkpoint at `path` (directory or `.safetensors` file) and loads `components`
    /// with an explicit config (any `config.json` there is ignored).
    pub fn load_with_config(
        path: impl AsRef<Path>,
        config: UnilipConfig,
        components: ComponentSet,
        device: &B::Device,
    ) -> weights::Result<Self> {
        let ck = Checkpoint::open(path)?;
        Self::from_checkpoint(Arc::new(ck), config, components, device)
    }

    /// Loads `components` from an open checkpoint with an explicit config.
    pub fn from_checkpoint(
        ck: Arc<Checkpoint>,
        config: UnilipConfig,
        components: ComponentSet,
        device: &B::Device,
    ) -> weights::Result<Self> {
        let c = ComponentSet {
            llm: components.llm || components.lm_head,
            ..components
        };
        let style = KeyStyle::detect(&ck);
        Self::from_var_builder(VarBuilder::<B>::new(ck, device), style, config, c)
    }

    /// A model with deterministic random weights in the real key layout (`init-checkpoint`,
    /// benchmarks, tests), and every tensor it made, keyed as in a UniLIP checkpoint.
    pub fn random(
        config: UnilipConfig,
        seed: u64,
        device: &B::Device,
    ) -> weights::Result<(Self, BTreeMap<String, HostTensor>)> {
        let oracle = random_key_oracle(&config);
        let root = VarBuilder::<B>::random(seed, oracle, device);
        let model =
            Self::from_var_builder(root.clone(), KeyStyle::Nested, config, ComponentSet::ALL)?;
        Ok((model, root.made()))
    }

    /// Loads `components` from a builder at the checkpoint root, with key style `style`.
    pub fn from_var_builder(
        root: VarBuilder<B>,
        style: KeyStyle,
        config: UnilipConfig,
        c: ComponentSet,
    ) -> weights::Result<Self> {
        let model = root.pp("model");
        let h = config.hidden_size();
        let vision = c
            .vision
            .then(|| InternVlVision::load(&config.vision, &root.pp(style.vision_parent())))
            .transpose()?;
        let language_model = c
            .llm
            .then(|| load_llm(&config.text, &root, style, c.lm_head))
            .transpose()?;
        let (latent_queries, llm_connector, projector) = if c.connector {
            let queries = model.param("latent_queries", [1, config.n_query, h])?;
            let connector = load_connector(&config, &model.pp("llm_connector"))?;
            let caption = config.dit.caption_channels;
            let projector = model.pp("projector").linear(h, caption, true)?;
            (Some(queries), Some(connector), Some(projector))
        } else {
            (None, None, None)
        };
        let dit = c
            .dit
            .then(|| {
                SanaTransformer::load(&config.dit, &model.pp("dit"))
                    .map(|d| d.with_pos_embed(config.pos_embed))
            })
            .transpose()?;
        let vae_decoder = c
            .decoder
            .then(|| -> weights::Result<VaeDecoder<B>> {
                let vb = model.pp("vae_decoder");
                Ok(VaeDecoder {
                    latent_head: LatentHead::load(&vb, h)?,
                    decoder: DcAeDecoder::load(&config.vae, &vb.pp("decoder"))?,
                })
            })
            .transpose()?;
        let heads_vb = root.pp(crate::unidiff::heads::PREFIX);
        let unidiff = (c.unidiff && UnidiffHeads::present(&heads_vb))
            .then(|| UnidiffHeads::load(&heads_vb, h, config.dit.inner_dim(), &config.text))
            .transpose()?;
        Ok(Self {
            vision,
            language_model,
            latent_queries,
            llm_connector,
            projector,
            dit,
            vae_decoder,
            unidiff,
            config,
            components: c,
            keys: root.param_keys(),
        })
    }
}

impl<B: Backend> Unilip<B> {
    /// Every loaded parameter under its checkpoint key, in the layout the loader reads.
    pub fn tensors(&self) -> std::result::Result<BTreeMap<String, HostTensor>, UnkeyedParam> {
        keyed_tensors(self, &self.keys)
    }
}

/// Writes a random-weight checkpoint directory for `config`: `model.safetensors` (real key
/// layout), `config.json` and, when given, a copy of `tokenizer`. Returns the parameter count.
pub fn write_random_checkpoint(
    dir: &Path,
    config: UnilipConfig,
    seed: u64,
    dtype: weights::SaveDtype,
    tokenizer: Option<&Path>,
) -> weights::Result<usize> {
    let json = serde_json::to_string_pretty(&config.to_json()).expect("config serialises");
    let (_, tensors) =
        Unilip::<crate::backend::B>::random(config, seed, &crate::backend::device())?;
    weights::write_safetensors(&dir.join("model.safetensors"), &tensors, dtype, None)?;
    weights::atomic_write(&dir.join("config.json"), json.as_bytes())?;
    if let Some(tok) = tokenizer {
        let bytes = std::fs::read(tok).map_err(|source| WeightError::Io {
            path: tok.to_path_buf(),
            source,
        })?;
        weights::atomic_write(&dir.join("tokenizer.json"), &bytes)?;
    }
    Ok(tensors.values().map(|t| t.data.len()).sum())
}

/// Which keys "exist" in a random checkpoint of `config` (layer counts, vocabulary shapes), in the
/// nested (transformers 4.52.0–4.52.3) key style.
fn random_key_oracle(config: &UnilipConfig) -> impl Fn(&str) -> Option<Vec<usize>> + Send + Sync {
    let h = config.hidden_size();
    let vocab = config.text.vocab_size;
    let llm_layers = config.text.num_hidden_layers;
    let connect = config.connect_layer;
    let latent = config.vae.latent_channels;
    move |key: &str| {
        let layer_below = |prefix: &str, n: usize| {
            key.strip_prefix(prefix)
                .and_then(|rest| rest.split('.').next())
                .and_then(|i| i.parse::<usize>().ok())
                .map(|i| i < n)
        };
        if let Some(ok) = layer_below("model.language_model.layers.", llm_layers) {
            return ok.then(Vec::new);
        }
        if let Some(ok) = layer_below("model.llm_connector.layers.", connect) {
            return ok.then(Vec::new);
        }
        if let Some(ok) = layer_below("model.vae_decoder.down_blocks.", 3) {
            return ok.then(Vec::new);
        }
        match key {
            "model.language_model.embed_tokens.weight" | "lm_head.weight" => Some(vec![vocab, h]),
            "model.vae_decoder.down_mlp.1.weight" => Some(vec![latent, h]),
            _ => None,
        }
    }
}

fn load_llm<B: Backend>(
    cfg: &Qwen2Config,
    root: &VarBuilder<B>,
    style: KeyStyle,
    lm_head: bool,
) -> weights::Result<Qwen2ForCausalLM<B>> {
    let vb = root.pp(style.language_model());
    if lm_head {
        return Qwen2ForCausalLM::load(cfg, &vb, &root.pp(style.lm_head()));
    }
    let model = Qwen2Model::load(cfg, &vb)?;
    if model.embed_tokens.is_none() {
        return Err(WeightError::MissingKey {
            key: vb.key("embed_tokens.weight"),
            source_desc: vb.checkpoint().root.display().to_string(),
            hint: None,
        });
    }
    Ok(Qwen2ForCausalLM {
        model,
        lm_head: None,
    })
}

fn load_connector<B: Backend>(
    cfg: &UnilipConfig,
    vb: &VarBuilder<B>,
) -> weights::Result<Qwen2Model<B>> {
    let connector = Qwen2Model::load(&cfg.text, vb)?;
    let n = connector.num_layers();
    if n < cfg.connect_layer {
        return Err(WeightError::MissingKey {
            key: vb.key(&format!("layers.{n}.input_layernorm.weight")),
            source_desc: vb.checkpoint().root.display().to_string(),
            hint: None,
        });
    }
    if n > cfg.connect_layer {
        return Err(WeightError::Config {
            file: vb.checkpoint().root.clone(),
            reason: format!(
                "`{}` has {n} layers but connect_layer is {}",
                vb.key("layers"),
                cfg.connect_layer
            ),
        });
    }
    Ok(connector)
}

// ---------------------------------------------------------------------------------------------
// Pipeline
// ---------------------------------------------------------------------------------------------

/// Pipeline errors: a component not loaded, bad inputs, or an error of a component.
#[derive(Debug, thiserror::Error)]
pub enum UnilipError {
    /// The step needs a component that [`Unilip::load`] was not asked for.
    #[error("component `{0}` is not loaded (add it to the ComponentSet)")]
    NotLoaded(&'static str),
    /// Checkpoint / config error.
    #[error(transparent)]
    Weights(#[from] WeightError),
    /// LLM / connector error.
    #[error(transparent)]
    Llm(#[from] Qwen2Error),
    /// Sampler error.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// Bad image or token-grid input.
    #[error(transparent)]
    Image(#[from] InputError),
    /// Tokenizer error.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Inconsistent tensors (shapes, image-token counts).
    #[error("invalid input: {0}")]
    Input(String),
}

/// Result alias for the pipeline.
pub type Result<T> = std::result::Result<T, UnilipError>;

fn need<'a, T>(x: &'a Option<T>, name: &'static str) -> Result<&'a T> {
    x.as_ref().ok_or(UnilipError::NotLoaded(name))
}

/// Which connector outputs become the DiT's cross-attention context.
///
/// With `L_t` prompt tokens (text mask `m`) and `n` queries, the LLM always runs causally with
/// the 2-D padding mask and `position_ids = clamp(cumsum(mask) − 1, 0)`:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConditionMode {
    /// UniLIP: queries appended (mask `m ++ 1ⁿ`), the connector runs on all `L_t + n` positions
    /// with the bidirectional mask `(1 − M_i·M_j)·−1e5` of `M = m ++ 1ⁿ` and the LLM positions;
    /// the DiT mask is `M`.
    #[default]
    Dual,
    /// Prompt positions only: no queries are appended (the causal LLM gives the prompt positions
    /// the same states either way); the connector runs on the `L_t` prompt positions with the
    /// bidirectional mask of `m`; the DiT mask is `m`.
    HiddenOnly,
    /// Query outputs only (MetaQuery style): queries appended as in `Dual`, then the connector runs
    /// on the last `n` positions alone, with an all-ones bidirectional mask (queries see only
    /// queries) and their LLM positions; the DiT mask is all ones.
    QueryOnly,
}

impl ConditionMode {
    /// The names graphs and the CLI use, in declaration order.
    pub const NAMES: [&'static str; 3] = ["dual", "hidden_only", "query_only"];

    /// The name graphs and the CLI use for this mode.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl std::str::FromStr for ConditionMode {
    type Err = String;

    /// `dual`, `hidden_only` or `query_only` (the names graphs and the CLI use).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "dual" => Ok(Self::Dual),
            "hidden_only" => Ok(Self::HiddenOnly),
            "query_only" => Ok(Self::QueryOnly),
            other => Err(format!(
                "condition `{other}`: expected dual, hidden_only or query_only"
            )),
        }
    }
}

/// A DiT conditioning: caption embeddings `[b, l, caption_channels]` and their mask `[b, l]`.
#[derive(Debug, Clone)]
pub struct Condition<B: Backend> {
    /// Projector output.
    pub embeds: Tensor<B, 3>,
    /// 1 = attend, 0 = padding.
    pub mask: Tensor<B, 2, Int>,
}

impl<B: Backend> Condition<B> {
    /// Batch size.
    pub fn batch(&self) -> usize {
        self.embeds.dims()[0]
    }

    /// Rows `start..start + len` (e.g. `rows(0, 1)` = positive, `rows(1, 1)` = negative prompt).
    pub fn rows(&self, start: usize, len: usize) -> Result<Self> {
        if start + len > self.batch() || len == 0 {
            return Err(UnilipError::Input(format!(
                "rows {start}..{} of a condition with {} rows",
                start + len,
                self.batch()
            )));
        }
        Ok(Self {
            embeds: self.embeds.clone().narrow(0, start, len),
            mask: self.mask.clone().narrow(0, start, len),
        })
    }

    /// The condition for `batch` rows: itself when it has them, its one row repeated when it has
    /// one, an error otherwise.
    pub fn broadcast(&self, batch: usize) -> Result<Self> {
        let [b, l, c] = self.embeds.dims();
        match b {
            _ if b == batch => Ok(self.clone()),
            1 => Ok(Self {
                embeds: self.embeds.clone().expand([batch, l, c]),
                mask: self.mask.clone().expand([batch, l]),
            }),
            _ => Err(UnilipError::Input(format!(
                "a condition with {b} rows for {batch} latents"
            ))),
        }
    }

    /// Right-pads to `len` tokens with zero embeddings and mask 0.
    pub(crate) fn pad_to(&self, len: usize) -> Self {
        let [b, l, c] = self.embeds.dims();
        if l >= len {
            return self.clone();
        }
        let dev = self.embeds.device();
        Self {
            embeds: Tensor::cat(
                vec![self.embeds.clone(), Tensor::zeros([b, len - l, c], &dev)],
                1,
            ),
            mask: Tensor::cat(
                vec![self.mask.clone(), Tensor::zeros([b, len - l], &dev)],
                1,
            ),
        }
    }
}

/// Every intermediate of [`Unilip::condition_traced`].
#[derive(Debug, Clone)]
pub struct ConditionTrace<B: Backend> {
    /// LLM input (prompt embeddings, image features inserted, queries appended).
    pub inputs_embeds: Tensor<B, 3>,
    /// LLM 2-D mask.
    pub attention_mask: Tensor<B, 2, Int>,
    /// LLM position ids.
    pub position_ids: Tensor<B, 2, Int>,
    /// LLM `hidden_states[-1]` (post-norm).
    pub llm_hidden: Tensor<B, 3>,
    /// Connector input (image positions overwritten by the raw features when editing).
    pub connector_input: Tensor<B, 3>,
    /// Connector output (post-norm).
    pub connector_hidden: Tensor<B, 3>,
    /// The result: projector output and its mask.
    pub condition: Condition<B>,
}

/// Positions of `image_token_id` in each row of `input_ids` `[b, l]`.
pub fn image_positions<B: Backend>(
    input_ids: &Tensor<B, 2, Int>,
    image_token_id: u32,
) -> Vec<Vec<usize>> {
    let [b, l] = input_ids.dims();
    let ids: Vec<i64> = input_ids.to_data().iter::<i64>().collect();
    (0..b)
        .map(|r| {
            (0..l)
                .filter(|&j| ids[r * l + j] == image_token_id as i64)
                .collect()
        })
        .collect()
}

/// Writes `features` (`[1 or b, n, H]`) over the rows of `seq` (`[b, L, H]`) at the
/// `image_token_id` positions of `input_ids` (`[b, L_t]`, `L_t ≤ L`); each row must hold exactly
/// `n` image tokens, or none (a text-only row of a mixed batch, left as it is) as long as some row
/// holds them. Used before the LLM (embeddings) and after it (UniLIP re-inserts the raw features
/// into the hidden states).
pub fn insert_image_features<B: Backend>(
    seq: Tensor<B, 3>,
    input_ids: &Tensor<B, 2, Int>,
    features: &Tensor<B, 3>,
    image_token_id: u32,
) -> Result<Tensor<B, 3>> {
    let [b, l, h] = seq.dims();
    let [fb, n, fh] = features.dims();
    if fh != h || !(fb == 1 || fb == b) || input_ids.dims()[0] != b || input_ids.dims()[1] > l {
        return Err(UnilipError::Input(format!(
            "image features {:?} / ids {:?} do not fit a sequence {:?}",
            features.dims(),
            input_ids.dims(),
            seq.dims()
        )));
    }
    let dev = seq.device();
    let positions = image_positions(input_ids, image_token_id);
    if positions.iter().all(Vec::is_empty) {
        return Err(UnilipError::Input(format!(
            "the prompt has no image tokens (id {image_token_id}) for the {n} image features"
        )));
    }
    let rows = positions
        .into_iter()
        .enumerate()
        .map(|(r, pos)| {
            if pos.is_empty() {
                // A text-only row of a mixed batch: nothing to write.
                return Ok(seq.clone().narrow(0, r, 1));
            }
            if pos.len() != n {
                return Err(UnilipError::Input(format!(
                    "row {r} has {} image tokens (id {image_token_id}), the image gives {n} features",
                    pos.len()
                )));
            }
            let mut index: Vec<i64> = (0..l as i64).collect();
            for (k, &p) in pos.iter().enumerate() {
                index[p] = (l + k) as i64;
            }
            let feats = features.clone().narrow(0, if fb == 1 { 0 } else { r }, 1);
            let both = Tensor::cat(vec![seq.clone().narrow(0, r, 1), feats], 1).reshape([l + n, h]);
            let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [l]), &dev);
            Ok(both.select(0, index).unsqueeze_dim::<3>(0))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(rows, 0))
}

/// Which sampler [`Unilip::sample`] runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// DPM-Solver++ 2M with the config's `scheduler_config` (UniLIP's sampler).
    DpmSolver,
    /// Flow-matching Euler on sigmas `shift(linspace(1, 1/n, n))`, then 0 (DiT gets `σ·1000`).
    Euler {
        /// Timestep shift (SANA's `flow_shift` is 3).
        shift: f64,
    },
}

/// Where the sampler starts.
#[derive(Debug, Clone)]
pub enum InitLatent<B: Backend> {
    /// `N(0, 1)` noise from `StdRng::seed_from_u64(seed)` (`TensorData::random`).
    Seed(u64),
    /// A given latent `[b, C, h, w]` (DiT latent space).
    Latent(Tensor<B, 4>),
    /// Image-to-image (SDEdit, diffusers' `strength`, ComfyUI's `denoise`): the clean DiT latent
    /// `image` is mixed with `noise` (same shape) at the noise level σ where the last
    /// `round_down(steps · strength)` steps of the schedule begin, `σ·noise + (1 − σ)·image`, and
    /// only those steps run. When every step runs (`strength` 1) the start is the noise itself
    /// and the image is ignored; 0 runs no step and returns the image. Lower strength keeps more
    /// of the image's layout and colours.
    Noised {
        /// Clean DiT latent `[b, C, h, w]`.
        image: Tensor<B, 4>,
        /// Noise of the same shape.
        noise: Tensor<B, 4>,
        /// Fraction of the schedule to run, in `[0, 1]`.
        strength: f32,
    },
}

impl<B: Backend> InitLatent<B> {
    /// The index of the first step to run out of `steps` (diffusers' img2img `t_start`).
    pub fn first_step(&self, steps: usize) -> usize {
        match self {
            Self::Noised { strength, .. } => steps - steps_run(steps, *strength),
            _ => 0,
        }
    }
}

/// How many of `steps` steps a `strength` (fraction of the schedule, clamped to `[0, 1]`) runs:
/// `round_down(steps · strength)`, the last ones of the schedule (image-to-image, FlowEdit).
pub(crate) fn steps_run(steps: usize, strength: f32) -> usize {
    ((steps as f32 * strength.clamp(0.0, 1.0)) as usize).min(steps)
}

/// Settings of [`Unilip::sample`].
#[derive(Debug, Clone)]
pub struct SampleOptions<B: Backend> {
    /// Sampler.
    pub sampler: Sampler,
    /// Number of steps.
    pub steps: usize,
    /// CFG scale `s` in `v_u + s·(v_c − v_u)` (ignored without a negative condition).
    pub guidance_scale: f32,
    /// Guidance applies only at steps whose noise level σ (the DiT timestep over
    /// `num_train_timesteps`) is at most this; the others take the conditional prediction alone.
    /// 1, UniLIP's setting, guides every step. A lower limit (guidance in a limited interval,
    /// Kynkäänniemi et al. 2024) leaves the layout, decided at high σ, to the conditional branch.
    pub guidance_max_sigma: f32,
    /// Initial latent.
    pub init: InitLatent<B>,
    /// The clean DiT latent `[b, C, h, w]` of the image being edited, concatenated to the noisy
    /// latent at every step by a DiT that takes one ([`SanaConfig::takes_source`]); such a
    /// DiT gets zeros without it. UniLIP's own DiT does not use it.
    pub source: Option<Tensor<B, 4>>,
    /// Regional prompts ([`RegionPrompt`]): parts of the canvas that read their own prompt in
    /// the DiT's cross-attention, at every step. Empty samples as UniLIP does.
    pub regions: Vec<RegionPrompt<B>>,
    /// Inpainting ([`Inpaint`]): sample only where its mask is 1 and keep its image elsewhere.
    pub inpaint: Option<Inpaint<B>>,
}

impl<B: Backend> SampleOptions<B> {
    /// UniLIP's defaults: DPM-Solver++, 20 steps, CFG 4.5, noise from `seed`.
    pub fn unilip(seed: u64) -> Self {
        Self {
            sampler: Sampler::DpmSolver,
            steps: 20,
            guidance_scale: 4.5,
            guidance_max_sigma: 1.0,
            init: InitLatent::Seed(seed),
            source: None,
            regions: Vec::new(),
            inpaint: None,
        }
    }
}

/// Flow-matching Euler over `steps` steps for a checkpoint scheduler `cfg`: sigmas
/// `shift(linspace(1, 1/n, n))`, then 0 (the DiT gets `σ · num_train_timesteps`).
pub(crate) fn euler_scheduler(
    cfg: &DpmSolverConfig,
    shift: f64,
    steps: usize,
) -> Result<FlowMatchEulerScheduler> {
    let mut s = FlowMatchEulerScheduler::new(FlowMatchEulerConfig {
        num_train_timesteps: cfg.num_train_timesteps,
        shift,
        ..FlowMatchEulerConfig::default()
    })?;
    let n = steps.max(1) as f64;
    let sigmas: Vec<f64> = (0..steps)
        .map(|i| 1.0 - i as f64 * (1.0 - 1.0 / n) / (n - 1.0).max(1.0))
        .collect();
    s.set_timesteps_with_sigmas(&sigmas)?;
    Ok(s)
}

/// The scheduler driving one trajectory.
enum Stepper<B: Backend> {
    Dpm(DpmSolverMultistepScheduler<B, 4>),
    Euler(FlowMatchEulerScheduler),
}

impl<B: Backend> Stepper<B> {
    /// The scheduler and the DiT timestep of each step.
    fn new(cfg: &DpmSolverConfig, sampler: Sampler, steps: usize) -> Result<(Self, Vec<f32>)> {
        match sampler {
            Sampler::DpmSolver => {
                let mut s = DpmSolverMultistepScheduler::new(cfg.clone())?;
                let ts = s.set_timesteps(steps)?.timesteps;
                Ok((Self::Dpm(s), ts.into_iter().map(|t| t as f32).collect()))
            }
            Sampler::Euler { shift } => {
                let s = euler_scheduler(cfg, shift, steps)?;
                let ts = s.schedule().timesteps.clone();
                Ok((Self::Euler(s), ts))
            }
        }
    }

    /// The noise level at the start of step `i` (0 past the last step).
    fn sigma(&self, i: usize) -> f32 {
        let sigmas = match self {
            Self::Dpm(s) => &s.schedule().sigmas,
            Self::Euler(s) => &s.schedule().sigmas,
        };
        sigmas.get(i).copied().unwrap_or(0.0)
    }

    fn step(&mut self, v: Tensor<B, 4>, i: usize, x: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        Ok(match self {
            Self::Dpm(s) => s.step(v, i, x)?,
            Self::Euler(s) => s.step(v, i, x)?,
        })
    }
}

/// `x` itself when it is `[batch, channels, h, w]`; otherwise an input error naming `what`.
fn check_latent<B: Backend>(
    x: &Tensor<B, 4>,
    batch: usize,
    channels: usize,
    what: &str,
) -> Result<Tensor<B, 4>> {
    let [b, c, _, _] = x.dims();
    if b != batch || c != channels {
        return Err(UnilipError::Input(format!(
            "{what} {:?}, expected [{batch}, {channels}, h, w]",
            x.dims()
        )));
    }
    Ok(x.clone())
}

/// Output of [`Unilip::generate_image`].
#[derive(Debug, Clone)]
pub struct GeneratedImage<B: Backend> {
    /// Final DiT latent (× `unilip_factor`).
    pub latent: Tensor<B, 4>,
    /// Decoder output in [−1, 1] (not clamped).
    pub decoded: Tensor<B, 4>,
    /// [`Unilip::output_image`] of `decoded` (UniLIP: `[b, 3, h·28/32, w·28/32]`) in [0, 1].
    pub image: Tensor<B, 4>,
}

/// Bilinear resize with half-pixel centres and no antialias (`align_corners = False`, cv2
/// `INTER_LINEAR`).
pub fn resize_bilinear<B: Backend>(x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    let options = InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false);
    interpolate(x, size, options)
}

/// UniLIP's output image: `clamp(−1, 1)`, `(x + 1) / 2`, bilinear resize by 28/32 (512 → 448).
pub fn to_image<B: Backend>(decoded: Tensor<B, 4>) -> Tensor<B, 4> {
    to_image_scaled(decoded, 28.0 / 32.0)
}

/// [`to_image`] with another resize factor (`scale = 1` keeps the decoder's size).
pub fn to_image_scaled<B: Backend>(decoded: Tensor<B, 4>, scale: f64) -> Tensor<B, 4> {
    let [_, _, h, w] = decoded.dims();
    let x = (decoded.clamp(-1.0, 1.0) + 1.0) / 2.0;
    let size = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    resize_bilinear(x, [size(h), size(w)])
}

/// Tokenizes `texts` as one right-padded batch → `(input_ids, attention_mask)`, `[b, l]` each.
pub fn encode_prompts<B: Backend>(
    tokenizer: &Tokenizer,
    texts: &[&str],
    device: &B::Device,
) -> Result<(Tensor<B, 2, Int>, Tensor<B, 2, Int>)> {
    let enc = tokenizer.encode_batch(texts)?;
    let (b, l) = (enc.ids.len(), enc.ids.first().map_or(0, Vec::len));
    let flat =
        |rows: Vec<Vec<u32>>| -> Vec<i64> { rows.into_iter().flatten().map(i64::from).collect() };
    let ids = Tensor::from_data(TensorData::new(flat(enc.ids), [b, l]), device);
    let mask = Tensor::from_data(TensorData::new(flat(enc.attention_mask), [b, l]), device);
    Ok((ids, mask))
}

impl<B: Backend> Unilip<B> {
    /// Image features `[b, tokens, H]` of normalised pixels `[b, 3, h, w]` (vision tower, pixel
    /// shuffle, `mlp1`): the LLM image embeddings and the latent head input.
    pub fn image_features(&self, pixel_values: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        Ok(need(&self.vision, "vision")?.image_features(pixel_values)?)
    }

    /// Number of image tokens (`<IMG_CONTEXT>` count) of an `height × width` input.
    pub fn image_tokens(&self, height: usize, width: usize) -> Result<usize> {
        let [r, c] = need(&self.vision, "vision")?.feature_grid(height, width);
        Ok(r * c)
    }

    /// Token embeddings of `input_ids` `[b, l]`, with `image_features` (`[1 or b, n, H]`) written
    /// over the `<IMG_CONTEXT>` rows.
    pub fn embed_prompt(
        &self,
        input_ids: Tensor<B, 2, Int>,
        image_features: Option<&Tensor<B, 3>>,
    ) -> Result<Tensor<B, 3>> {
        let llm = need(&self.language_model, "llm")?;
        let embeds = llm.model.embed(input_ids.clone())?;
        match image_features {
            Some(f) => insert_image_features(embeds, &input_ids, f, self.config.image_token_id),
            None => Ok(embeds),
        }
    }

    /// Appends the learnable queries: embeddings `[b, l, H]` → `[b, l + n, H]`, mask `m ++ 1ⁿ`.
    pub fn append_queries(
        &self,
        embeds: Tensor<B, 3>,
        mask: Tensor<B, 2, Int>,
    ) -> Result<(Tensor<B, 3>, Tensor<B, 2, Int>)> {
        let q = need(&self.latent_queries, "connector")?.val();
        let [b, _, h] = embeds.dims();
        let [_, n, qh] = q.dims();
        if qh != h || mask.dims() != [b, embeds.dims()[1]] {
            return Err(UnilipError::Input(format!(
                "embeddings {:?} / mask {:?} do not fit queries {:?}",
                embeds.dims(),
                mask.dims(),
                q.dims()
            )));
        }
        let dev = embeds.device();
        Ok((
            Tensor::cat(vec![embeds, q.expand([b, n, h])], 1),
            Tensor::cat(vec![mask, Tensor::ones([b, n], &dev)], 1),
        ))
    }

    /// Frozen LLM: causal with the padding `mask`, positions `clamp(cumsum(mask) − 1, 0)`;
    /// returns `hidden_states[-1]` (post-norm) `[b, L, H]`.
    pub fn llm_hidden(
        &self,
        embeds: Tensor<B, 3>,
        mask: Tensor<B, 2, Int>,
    ) -> Result<Tensor<B, 3>> {
        let llm = need(&self.language_model, "llm")?;
        let positions = position_ids_from_mask(mask.clone());
        Ok(llm
            .model
            .forward(embeds, &AttentionMask::Causal(Some(mask)), Some(positions))?)
    }

    /// Connector: bidirectional mask of `mask` `[b, L]`, the given RoPE positions; post-norm output.
    pub fn connect(
        &self,
        hidden: Tensor<B, 3>,
        mask: Tensor<B, 2, Int>,
        position_ids: Tensor<B, 2, Int>,
    ) -> Result<Tensor<B, 3>> {
        let connector = need(&self.llm_connector, "connector")?;
        let bias = AttentionMask::Additive(bidirectional_mask(mask));
        Ok(connector.forward(hidden, &bias, Some(position_ids))?)
    }

    /// `projector`: `[b, L, H]` → `[b, L, caption_channels]`.
    pub fn project(&self, x: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
        Ok(need(&self.projector, "connector")?.forward(x))
    }

    /// The DiT condition of a prompt batch (`input_ids`, `attention_mask` `[b, L_t]`); for
    /// editing, `image_features` go into the `<IMG_CONTEXT>` embeddings and again into the LLM
    /// output before the connector. See [`ConditionMode`] for the masks.
    pub fn condition(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        image_features: Option<&Tensor<B, 3>>,
        mode: ConditionMode,
    ) -> Result<Condition<B>> {
        Ok(self
            .condition_traced(input_ids, attention_mask, image_features, mode)?
            .condition)
    }

    /// [`Self::condition`] returning every intermediate.
    pub fn condition_traced(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        image_features: Option<&Tensor<B, 3>>,
        mode: ConditionMode,
    ) -> Result<ConditionTrace<B>> {
        if input_ids.dims() != attention_mask.dims() {
            return Err(UnilipError::Input(format!(
                "input_ids {:?} and attention_mask {:?} differ",
                input_ids.dims(),
                attention_mask.dims()
            )));
        }
        let text_len = input_ids.dims()[1];
        let embeds = self.embed_prompt(input_ids.clone(), image_features)?;
        let (inputs_embeds, mask) = match mode {
            ConditionMode::HiddenOnly => (embeds, attention_mask),
            ConditionMode::Dual | ConditionMode::QueryOnly => {
                self.append_queries(embeds, attention_mask)?
            }
        };
        let positions = position_ids_from_mask(mask.clone());
        let llm_hidden = self.llm_hidden(inputs_embeds.clone(), mask.clone())?;
        let hidden = match image_features {
            Some(f) => insert_image_features(
                llm_hidden.clone(),
                &input_ids,
                f,
                self.config.image_token_id,
            )?,
            None => llm_hidden.clone(),
        };
        let total = hidden.dims()[1];
        let (start, len) = match mode {
            ConditionMode::QueryOnly => (text_len, total - text_len),
            ConditionMode::Dual | ConditionMode::HiddenOnly => (0, total),
        };
        let connector_input = hidden.narrow(1, start, len);
        let cond_mask = match mode {
            ConditionMode::QueryOnly => Tensor::ones([mask.dims()[0], len], &mask.device()),
            _ => mask.clone().narrow(1, start, len),
        };
        let connector_hidden = self.connect(
            connector_input.clone(),
            cond_mask.clone(),
            positions.clone().narrow(1, start, len),
        )?;
        let embeds = self.project(connector_hidden.clone())?;
        Ok(ConditionTrace {
            inputs_embeds,
            attention_mask: mask,
            position_ids: positions,
            llm_hidden,
            connector_input,
            connector_hidden,
            condition: Condition {
                embeds,
                mask: cond_mask,
            },
        })
    }

    /// The initial latent `[batch, C, S, S]` (`C` = DiT channels, `S` = `sample_size`).
    pub fn initial_latent(
        &self,
        batch: usize,
        init: &InitLatent<B>,
        device: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        let dit = &self.config.dit;
        let channels = dit.out_channels();
        let shape = [batch, channels, dit.sample_size, dit.sample_size];
        match init {
            InitLatent::Seed(seed) => Ok(gaussian_noise(
                shape,
                &mut StdRng::seed_from_u64(*seed),
                device,
            )),
            InitLatent::Latent(x) => check_latent(x, batch, channels, "initial latent"),
            InitLatent::Noised { image, noise, .. } => {
                check_latent(image, batch, channels, "image latent")?;
                if noise.dims() != image.dims() {
                    return Err(UnilipError::Input(format!(
                        "noise {:?} and image latent {:?} differ in shape",
                        noise.dims(),
                        image.dims()
                    )));
                }
                Ok(noise.clone())
            }
        }
    }

    /// Runs the sampler from `opts.init` under `cond` (`[n, l, c]`). With `uncond` (same batch),
    /// each step runs the DiT on `[uncond; cond]` (null first, masks padded to a common length)
    /// and applies CFG. `on_step(done, total, &latent)` is called after every step; an `Err`
    /// from it stops sampling and is returned. Returns the final DiT latent.
    pub fn sample<E: From<UnilipError>>(
        &self,
        cond: &Condition<B>,
        uncond: Option<&Condition<B>>,
        opts: &SampleOptions<B>,
        mut on_step: impl FnMut(usize, usize, &Tensor<B, 4>) -> std::result::Result<(), E>,
    ) -> std::result::Result<Tensor<B, 4>, E> {
        let dit = need(&self.dit, "dit")?;
        let n = cond.batch();
        let dev = cond.embeds.device();
        let mut x = self.initial_latent(n, &opts.init, &dev)?;
        let noise = x.clone();
        let inpaint = match &opts.inpaint {
            Some(p) => Some(p.checked(x.dims())?),
            None => None,
        };
        let (unguided, guided) = self.sampling_captions(cond, uncond, &opts.regions, &x)?;
        let source = match &opts.source {
            Some(s) if s.dims() != x.dims() => {
                return Err(UnilipError::Input(format!(
                    "source latent {:?}, expected the sampled latent's shape {:?}",
                    s.dims(),
                    x.dims()
                ))
                .into())
            }
            source => source.clone(),
        };
        let both_sources = source
            .as_ref()
            .map(|s| Tensor::cat(vec![s.clone(), s.clone()], 0));
        let (mut stepper, timesteps) =
            Stepper::new(&self.config.scheduler, opts.sampler, opts.steps)?;
        let total = timesteps.len();
        let first = opts.init.first_step(total);
        // At strength 1 the run starts from the noise itself, as text-to-image does.
        if let (InitLatent::Noised { image, .. }, 1..) = (&opts.init, first) {
            let sigma = stepper.sigma(first);
            x = x.mul_scalar(sigma) + image.clone().mul_scalar(1.0 - sigma);
        }
        if let Some(p) = inpaint {
            x = p.blend(x, &noise, stepper.sigma(first));
        }
        let train_timesteps = self.config.scheduler.num_train_timesteps as f32;
        for (i, &t) in timesteps.iter().enumerate().skip(first) {
            // Unguided steps (σ above `guidance_max_sigma`) run the positive rows alone.
            let guide_here = guided.as_ref().filter(|_| {
                opts.guidance_max_sigma >= 1.0 || t / train_timesteps <= opts.guidance_max_sigma
            });
            let ((caption, mask), input) = match guide_here {
                Some(both) => (
                    both,
                    dit.input(
                        Tensor::cat(vec![x.clone(), x.clone()], 0),
                        both_sources.as_ref(),
                    ),
                ),
                None => (&unguided, dit.input(x.clone(), source.as_ref())),
            };
            let rows = caption.dims()[0];
            let t = Tensor::from_data(TensorData::new(vec![t; rows], [rows]), &dev);
            let v = dit.forward_token_masked(input, t, caption.clone(), mask.clone());
            let v = if guide_here.is_some() {
                guide(
                    v.clone().narrow(0, 0, n),
                    v.narrow(0, n, n),
                    opts.guidance_scale,
                )
            } else {
                v
            };
            x = stepper.step(v, i, x)?;
            if let Some(p) = inpaint {
                x = p.blend(x, &noise, stepper.sigma(i + 1));
            }
            on_step(i + 1 - first, total - first, &x)?;
        }
        Ok(x)
    }

    /// The DiT captions and masks of a sampling run: the positive rows alone and, with a
    /// negative, `[negative; positive]` stacked for CFG. Masks are `[rows, 1, l]`, or one row per
    /// image token (`[rows, h·w, l]`) with `regions`.
    fn sampling_captions(
        &self,
        cond: &Condition<B>,
        uncond: Option<&Condition<B>>,
        regions: &[RegionPrompt<B>],
        latent: &Tensor<B, 4>,
    ) -> Result<(MaskedCaption<B>, Option<MaskedCaption<B>>)> {
        let n = cond.batch();
        let (caption, mask) = match regions {
            [] => (
                cond.embeds.clone(),
                cond.mask.clone().float().unsqueeze_dim(1),
            ),
            regions => {
                let [_, _, h, w] = latent.dims();
                let p = self.config.dit.patch_size.max(1);
                regional_caption(cond, regions, [h / p, w / p])?
            }
        };
        let Some(u) = uncond else {
            return Ok(((caption, mask), None));
        };
        if u.batch() != n {
            return Err(UnilipError::Input(format!(
                "negative condition has {} rows, positive {n}",
                u.batch()
            )));
        }
        let l = u.embeds.dims()[1].max(caption.dims()[1]);
        let pad = |t: Tensor<B, 3>| {
            let [b, len, c] = t.dims();
            match l - len {
                0 => t,
                extra => {
                    let dev = t.device();
                    Tensor::cat(vec![t, Tensor::zeros([b, extra, c], &dev)], 1)
                }
            }
        };
        let (caption, mask) = (pad(caption), pad(mask.swap_dims(1, 2)).swap_dims(1, 2));
        let u = u.pad_to(l);
        let u_mask = u
            .mask
            .float()
            .unsqueeze_dim::<3>(1)
            .repeat_dim(1, mask.dims()[1]);
        let guided = (
            Tensor::cat(vec![u.embeds, caption.clone()], 0),
            Tensor::cat(vec![u_mask, mask.clone()], 0),
        );
        Ok(((caption, mask), Some(guided)))
    }

    /// DiT latent of a UniLIP latent `[b, C, h, w]`: `(z − unilip_shift) · unilip_factor`.
    pub fn scale(&self, latent: Tensor<B, 4>) -> Tensor<B, 4> {
        let latent = match self.shift_tensor(&latent.device()) {
            Some(shift) => latent - shift,
            None => latent,
        };
        latent.mul_scalar(self.config.unilip_factor as f32)
    }

    /// Decoder input of a DiT latent: `z / unilip_factor + unilip_shift`.
    pub fn unscale(&self, latent: Tensor<B, 4>) -> Tensor<B, 4> {
        let latent = latent.div_scalar(self.config.unilip_factor as f32);
        match self.shift_tensor(&latent.device()) {
            Some(shift) => latent + shift,
            None => latent,
        }
    }

    /// `unilip_shift` as a broadcastable `[1, C, 1, 1]` tensor, `None` when there is none.
    fn shift_tensor(&self, device: &B::Device) -> Option<Tensor<B, 4>> {
        let shift = &self.config.unilip_shift;
        (!shift.is_empty()).then(|| {
            let values: Vec<f32> = shift.iter().map(|&v| v as f32).collect();
            Tensor::<B, 1>::from_floats(values.as_slice(), device).reshape([1, shift.len(), 1, 1])
        })
    }

    /// Decodes a DiT latent: `z / unilip_factor + unilip_shift` → DC-AE decoder → `[b, 3, 32h, 32w]` in about
    /// [−1, 1] (not clamped; see [`to_image`]).
    pub fn decode(&self, latent: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        self.decode_latent(self.unscale(latent))
    }

    /// The output image of a decoder output: [`to_image_scaled`] by the config's `output_scale`.
    pub fn output_image(&self, decoded: Tensor<B, 4>) -> Tensor<B, 4> {
        to_image_scaled(decoded, self.config.output_scale)
    }

    /// DC-AE decoder on a UniLIP latent (not scaled).
    pub fn decode_latent(&self, latent: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        Ok(need(&self.vae_decoder, "decoder")?.decoder.forward(latent))
    }

    /// UniLIP latent `[b, C, rows, cols]` of image features on a `grid = [rows, cols]`
    /// (`vae_decoder.clip_down`).
    pub fn features_to_latent(
        &self,
        features: Tensor<B, 3>,
        grid: [usize; 2],
    ) -> Result<Tensor<B, 4>> {
        Ok(need(&self.vae_decoder, "decoder")?
            .latent_head
            .latent(features, grid)?)
    }

    /// Reconstruction encoder: pixels `[b, 3, h, w]` → features → UniLIP latent.
    pub fn encode_latent(&self, pixel_values: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        let [_, _, h, w] = pixel_values.dims();
        let grid = need(&self.vision, "vision")?.feature_grid(h, w);
        self.features_to_latent(self.image_features(pixel_values)?, grid)
    }

    /// Reconstruction: [`Self::encode_latent`] then [`Self::decode_latent`] (no resize).
    pub fn reconstruct(&self, pixel_values: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        self.decode_latent(self.encode_latent(pixel_values)?)
    }

    /// Whole T2I / edit run on a `[pos, neg]` prompt batch: condition, split (row 0 positive,
    /// row 1 negative), sample with CFG, decode, [`to_image`].
    pub fn generate_image<E: From<UnilipError>>(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        image_features: Option<&Tensor<B, 3>>,
        mode: ConditionMode,
        opts: &SampleOptions<B>,
        on_step: impl FnMut(usize, usize, &Tensor<B, 4>) -> std::result::Result<(), E>,
    ) -> std::result::Result<GeneratedImage<B>, E> {
        if input_ids.dims()[0] != 2 {
            return Err(UnilipError::Input(format!(
                "expected a [positive, negative] prompt batch, got {} rows",
                input_ids.dims()[0]
            ))
            .into());
        }
        let c = self.condition(input_ids, attention_mask, image_features, mode)?;
        let (pos, neg) = (c.rows(0, 1)?, c.rows(1, 1)?);
        let latent = self.sample(&pos, Some(&neg), opts, on_step)?;
        let decoded = self.decode(latent.clone())?;
        Ok(GeneratedImage {
            image: self.output_image(decoded.clone()),
            latent,
            decoded,
        })
    }

    /// Understanding: prompt ids `[b, l]` (with `<IMG_CONTEXT>` tokens when `pixel_values` are
    /// given; `mask` for left-padded batches) → LLM generation with `lm_head`.
    pub fn understand(
        &self,
        input_ids: Tensor<B, 2, Int>,
        mask: Option<Tensor<B, 2, Int>>,
        pixel_values: Option<Tensor<B, 4>>,
        generation: &GenerationConfig,
    ) -> Result<GenerationOutput> {
        let llm = need(&self.language_model, "llm")?;
        if llm.lm_head.is_none() && !self.config.text.tie_word_embeddings {
            return Err(UnilipError::NotLoaded("lm_head"));
        }
        let features = pixel_values.map(|p| self.image_features(p)).transpose()?;
        let embeds = self.embed_prompt(input_ids, features.as_ref())?;
        Ok(llm.generate(embeds, mask, generation)?)
    }

    /// Answers `question` about an optional image `[1, 3, h, w]` with InternVL's chat template
    /// (`system` turn optional) and returns the decoded answer (special tokens skipped).
    pub fn understand_text(
        &self,
        tokenizer: &Tokenizer,
        question: &str,
        pixel_values: Option<Tensor<B, 4>>,
        system: Option<&str>,
        generation: &GenerationConfig,
    ) -> Result<String> {
        let n_image = match &pixel_values {
            Some(p) => {
                let [_, _, h, w] = p.dims();
                self.image_tokens(h, w)?
            }
            None => 0,
        };
        let prompt = understanding_prompt(question, n_image, system);
        let llm = need(&self.language_model, "llm")?;
        let device = match (&pixel_values, &llm.model.embed_tokens) {
            (Some(p), _) => p.device(),
            (None, Some(e)) => e.weight.device(),
            (None, None) => return Err(UnilipError::NotLoaded("llm")),
        };
        let (ids, _) = encode_prompts::<B>(tokenizer, &[&prompt], &device)?;
        let out = self.understand(ids, None, pixel_values, generation)?;
        let tokens = out.tokens.into_iter().next().unwrap_or_default();
        Ok(tokenizer.decode(&tokens, true)?)
    }

    /// How strongly the model's understanding holds each `(question, answer)` about one image
    /// `[1, 3, h, w]`: the log-probability of the answer's tokens after the question (InternVL's
    /// chat template, no system turn, the answer teacher-forced), one value per pair. Summed
    /// over a prompt's questions it ranks candidate images by how well the model thinks they
    /// match (see [`crate::shapesworld::verify`]).
    pub fn answer_log_probs(
        &self,
        tokenizer: &Tokenizer,
        pixel_values: Tensor<B, 4>,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<f32>> {
        let [batch, _, h, w] = pixel_values.dims();
        if batch != 1 {
            return Err(UnilipError::Input(format!(
                "answer scoring takes one image, got a batch of {batch}"
            )));
        }
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let llm = need(&self.language_model, "llm")?;
        let n_image = self.image_tokens(h, w)?;
        let device = pixel_values.device();
        let features = self.image_features(pixel_values)?;
        let rows = pairs
            .iter()
            .map(|(q, a)| {
                let prompt = tokenizer.encode(&understanding_prompt(q, n_image, None))?;
                let answer = tokenizer.encode(a)?;
                Ok((prompt, answer))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(i) = rows.iter().position(|(_, a)| a.is_empty()) {
            return Err(UnilipError::Input(format!(
                "answer {:?} encodes to no tokens",
                pairs[i].1
            )));
        }
        let batch = TextBatch::new(&rows, tokenizer.special().endoftext).tensors::<B>(&device);
        let embeds = self.embed_prompt(batch.inputs, Some(&features))?;
        let logits = llm.logits(self.llm_hidden(embeds, batch.mask)?)?;
        (token_log_probs(logits, batch.targets) * batch.weights)
            .sum_dim(1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| UnilipError::Input(format!("answer scores: {e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{device, B};

    #[test]
    fn key_styles_spell_nested_keys() {
        let legacy = KeyStyle::Legacy;
        assert_eq!(
            legacy.spell("model.language_model.norm.weight"),
            "language_model.model.norm.weight"
        );
        assert_eq!(
            legacy.spell("model.vision_tower.embeddings.patch_embedding.weight"),
            "vision_tower.embeddings.patch_embedding.weight"
        );
        assert_eq!(
            legacy.spell("model.multi_modal_projector.linear_1.weight"),
            "multi_modal_projector.linear_1.weight"
        );
        assert_eq!(
            legacy.spell("lm_head.weight"),
            "language_model.lm_head.weight"
        );
        assert_eq!(
            legacy.spell("model.dit.proj_out.weight"),
            "model.dit.proj_out.weight"
        );
        let nested = "model.language_model.norm.weight";
        assert_eq!(KeyStyle::Nested.spell(nested), nested);
    }

    #[test]
    fn image_features_go_to_rows_with_image_tokens_and_need_at_least_one() {
        let dev = device();
        let seq = Tensor::<B, 3>::zeros([2, 3, 2], &dev);
        let features = Tensor::<B, 3>::ones([2, 1, 2], &dev);
        let ids = |rows: [[i64; 3]; 2]| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(rows.concat(), [2, 3]), &dev)
        };
        // Row 0 holds the image token (id 9) at position 1; row 1 is text only.
        let out =
            insert_image_features(seq.clone(), &ids([[5, 9, 5], [5, 5, 5]]), &features, 9).unwrap();
        let v: Vec<f32> = out.into_data().to_vec().unwrap();
        assert_eq!(v, [0., 0., 1., 1., 0., 0., 0., 0., 0., 0., 0., 0.]);
        let err = insert_image_features(seq, &ids([[5, 5, 5], [5, 5, 5]]), &features, 9);
        assert!(matches!(err, Err(UnilipError::Input(m)) if m.contains("no image tokens")));
    }
}
