//! `unilip checkpoint reinit` and `graft`: a copy of a checkpoint with some components
//! replaced — drawn afresh at random (`reinit`, optionally under an edited config: a wider DiT, a
//! deeper connector) or taken from another checkpoint with their config fields (`graft`: a DiT
//! trained elsewhere, a wider pixel decoder) — every other tensor kept byte-identical. This is how
//! an ablation swaps a component.

use std::collections::BTreeMap;
use std::path::Path;

use clap::ValueEnum;
use serde_json::Value;
use unilip_nodes::backend::{device, B};
use unilip_nodes::models::unilip::{KeyStyle, Unilip, UnilipConfig};
use unilip_nodes::weights::{self, Checkpoint, HostTensor, SaveDtype};

use super::CliError;

/// A sub-model `reinit` can draw afresh. Keys are named in the nested (transformers 4.52) style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Component {
    /// The InternViT vision tower.
    Vision,
    /// `mlp1`: pixel-shuffled ViT features → LLM width.
    Projector,
    /// The Qwen2 LLM (without `lm_head`).
    Llm,
    /// The LLM's output head.
    LmHead,
    /// The learnable latent queries.
    Queries,
    /// The Qwen2-layer connector and its projector to the DiT's caption width.
    Connector,
    /// The SANA DiT.
    Dit,
    /// The latent head and the DC-AE pixel decoder.
    Decoder,
    /// The DC-AE pixel decoder alone: the latent head is kept, so the latent space, its
    /// calibration and a DiT trained on it stay valid (e.g. a wider decoder).
    PixelDecoder,
}

impl Component {
    /// Key prefixes (nested style) of this component.
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            Self::Vision => &["model.vision_tower."],
            Self::Projector => &["model.multi_modal_projector."],
            Self::Llm => &["model.language_model."],
            Self::LmHead => &["lm_head."],
            Self::Queries => &["model.latent_queries"],
            Self::Connector => &["model.llm_connector.", "model.projector."],
            Self::Dit => &["model.dit."],
            Self::Decoder => &["model.vae_decoder."],
            Self::PixelDecoder => &["model.vae_decoder.decoder."],
        }
    }

    /// Top-level `config.json` fields that describe this component: `graft` takes them from the
    /// donor along with the tensors.
    fn config_fields(self) -> &'static [&'static str] {
        match self {
            Self::Vision => &["vision_config"],
            Self::Projector => &["downsample_ratio", "projector_hidden_act"],
            Self::Llm => &["text_config", "image_token_id"],
            Self::LmHead => &[],
            Self::Queries => &["n_query"],
            Self::Connector => &["connect_layer"],
            Self::Dit => &["dit_config", "dit_pos_embed", "scheduler_config"],
            Self::Decoder => &["vae_config", "unilip_factor", "unilip_shift"],
            Self::PixelDecoder => &["vae_config"],
        }
    }

    /// Whether `key`, spelled in `style`, belongs to this component.
    fn owns(self, key: &str, style: KeyStyle) -> bool {
        self.prefixes()
            .iter()
            .any(|p| key.starts_with(&style.spell(p)))
    }
}

/// Where the replaced components' tensors come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// Drawn at random with this seed (`reinit`).
    Random {
        /// Seed of the random weights.
        seed: u64,
    },
    /// Read from this checkpoint, whose config fields for the components are taken too (`graft`).
    Donor(&'a Path),
}

/// What `reinit` / `graft` does.
pub struct ComposeArgs<'a> {
    /// Checkpoint to start from.
    pub base: &'a Path,
    /// Output directory.
    pub out: &'a Path,
    /// Components replaced.
    pub components: &'a [Component],
    /// `path.to.field=json-value` edits of `config.json`, applied last.
    pub sets: &'a [String],
    /// Where the replacements come from.
    pub source: Source<'a>,
}

/// Writes `out`: `base`'s config (with the donor's fields of `components`, then `sets`),
/// `components` from `source`, every other tensor copied from `base` (which must match the new
/// config's shape), and the tokenizer (the donor's when its LLM is grafted).
pub fn compose(args: &ComposeArgs<'_>) -> Result<(), CliError> {
    let usage = |e: String| CliError::Usage(e);
    refuse_overwrite(args.out, args.base, "base")?;
    let donor = match args.source {
        Source::Donor(dir) => {
            refuse_overwrite(args.out, dir, "donor")?;
            Some(Donor::open(dir)?)
        }
        Source::Random { .. } => None,
    };
    let config_path = args.base.join("config.json");
    let mut json = weights::read_json(&config_path).map_err(|e| usage(e.to_string()))?;
    if let Some(donor) = &donor {
        for field in args.components.iter().flat_map(|c| c.config_fields()) {
            donor.copy_config_field(&mut json, field);
        }
    }
    for set in args.sets {
        apply_set(&mut json, set)?;
    }
    let config = UnilipConfig::from_json(json).map_err(|e| {
        usage(format!(
            "{} with the component's config fields and --set edits: {e}",
            config_path.display()
        ))
    })?;
    let base = Checkpoint::open(args.base).map_err(|e| usage(e.to_string()))?;
    let style = KeyStyle::detect(&base);
    let dtype = save_dtype(&base);
    let seed = match args.source {
        Source::Random { seed } => seed,
        Source::Donor(_) => 0,
    };
    // The random model gives every key and shape of the new config (and, for `reinit`, the
    // replacement tensors themselves).
    let (_, random) =
        Unilip::<B>::random(config.clone(), seed, &device()).map_err(|e| usage(e.to_string()))?;

    let mut out: BTreeMap<String, HostTensor> = BTreeMap::new();
    let mut replaced = 0usize;
    for (nested, fresh) in random {
        let key = style.spell(&nested);
        if args.components.iter().any(|c| c.owns(&key, style)) {
            let tensor = match &donor {
                Some(donor) => donor.tensor(&nested, &fresh.shape)?,
                None => fresh,
            };
            replaced += tensor.data.len();
            out.insert(key, tensor);
            continue;
        }
        let kept = base.read(&key).map_err(|e| {
            usage(format!(
                "{e}; replace the component that owns `{key}` (--component) or undo the \
                 --set that changed it"
            ))
        })?;
        if kept.shape != fresh.shape {
            return Err(usage(format!(
                "`{key}` is {:?} in {} but {:?} under the new config; add its component to \
                 --component",
                kept.shape,
                args.base.display(),
                fresh.shape
            )));
        }
        out.insert(key, kept);
    }
    // Tensors the model does not build (e.g. UniDiff heads) travel unchanged; those of the
    // replaced components are dropped.
    for key in base.unread_keys() {
        if out.contains_key(key) || args.components.iter().any(|c| c.owns(key, style)) {
            continue;
        }
        out.insert(
            key.to_string(),
            base.read(key).map_err(|e| usage(e.to_string()))?,
        );
    }

    let text = serde_json::to_string_pretty(&config.to_json()).expect("config serialises");
    let tokenizer_from = match (&donor, args.components.contains(&Component::Llm)) {
        (Some(donor), true) => donor.dir,
        _ => args.base,
    };
    write_checkpoint(args.out, &out, dtype, text.as_bytes(), tokenizer_from)?;
    let total: usize = out.values().map(|t| t.data.len()).sum();
    let origin = match args.source {
        Source::Random { seed } => format!("drawn at random (seed {seed})"),
        Source::Donor(dir) => format!("taken from {}", dir.display()),
    };
    println!(
        "wrote {}: {:.3} M parameters, {:.3} M {origin}",
        args.out.display(),
        total as f64 / 1e6,
        replaced as f64 / 1e6,
    );
    Ok(())
}

/// The checkpoint `graft` takes components from.
struct Donor<'a> {
    dir: &'a Path,
    checkpoint: Checkpoint,
    style: KeyStyle,
    config: Value,
}

impl<'a> Donor<'a> {
    fn open(dir: &'a Path) -> Result<Self, CliError> {
        let usage = |e: String| CliError::Usage(format!("--from: {e}"));
        let config =
            weights::read_json(&dir.join("config.json")).map_err(|e| usage(e.to_string()))?;
        let checkpoint = Checkpoint::open(dir).map_err(|e| usage(e.to_string()))?;
        let style = KeyStyle::detect(&checkpoint);
        Ok(Self {
            dir,
            checkpoint,
            style,
            config,
        })
    }

    /// Sets `json[field]` to the donor's value, or removes it where the donor has none (an
    /// uncalibrated donor has no `unilip_shift`).
    fn copy_config_field(&self, json: &mut Value, field: &str) {
        let Some(obj) = json.as_object_mut() else {
            return;
        };
        match self.config.get(field) {
            Some(v) => {
                obj.insert(field.to_string(), v.clone());
            }
            None => {
                obj.remove(field);
            }
        }
    }

    /// The donor's tensor for the nested-style key `nested`, which must have `shape`.
    fn tensor(&self, nested: &str, shape: &[usize]) -> Result<HostTensor, CliError> {
        let key = self.style.spell(nested);
        let tensor = self.checkpoint.read(&key).map_err(|e| {
            CliError::Usage(format!(
                "--from {}: {e}; graft a component it has",
                self.dir.display()
            ))
        })?;
        if tensor.shape != shape {
            return Err(CliError::Usage(format!(
                "`{key}` is {:?} in {} but {shape:?} under the composed config (base config with \
                 the donor's fields of the grafted components); graft the components it depends \
                 on too",
                tensor.shape,
                self.dir.display(),
            )));
        }
        Ok(tensor)
    }
}

/// Applies one `a.b.c=value` edit; `value` is JSON (`4`, `true`, `[1,2]`) or else a string.
fn apply_set(json: &mut Value, set: &str) -> Result<(), CliError> {
    let (path, raw) = set.split_once('=').ok_or_else(|| {
        CliError::Usage(format!(
            "--set `{set}`: expected FIELD=VALUE, e.g. dit_config.num_layers=4"
        ))
    })?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let mut node = json;
    let fields: Vec<&str> = path.split('.').collect();
    for (i, field) in fields.iter().enumerate() {
        let obj = node.as_object_mut().ok_or_else(|| {
            CliError::Usage(format!(
                "--set `{set}`: `{}` is not an object in config.json",
                fields[..i].join(".")
            ))
        })?;
        if i + 1 == fields.len() {
            if !obj.contains_key(*field) {
                return Err(CliError::Usage(format!(
                    "--set `{set}`: config.json has no field `{path}`"
                )));
            }
            obj.insert((*field).to_string(), value);
            return Ok(());
        }
        node = obj.get_mut(*field).ok_or_else(|| {
            CliError::Usage(format!(
                "--set `{set}`: config.json has no field `{}`",
                fields[..=i].join(".")
            ))
        })?;
    }
    Ok(())
}

/// Every tensor of `ck`, by key, as f32.
pub(super) fn read_all(ck: &Checkpoint) -> Result<BTreeMap<String, HostTensor>, CliError> {
    ck.keys()
        .iter()
        .map(|key| {
            ck.read(key)
                .map(|t| (key.to_string(), t))
                .map_err(|e| CliError::Usage(e.to_string()))
        })
        .collect()
}

/// Writes the checkpoint directory `out`: `tensors` as `model.safetensors` in `dtype`, `config`
/// as `config.json`, and `tokenizer_from`'s `tokenizer.json` where it has one (each file written
/// to a temporary name, then renamed).
pub(super) fn write_checkpoint(
    out: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: SaveDtype,
    config: &[u8],
    tokenizer_from: &Path,
) -> Result<(), CliError> {
    std::fs::create_dir_all(out).map_err(|e| CliError::Run(format!("{}: {e}", out.display())))?;
    let write = |e: weights::WeightError| CliError::Run(e.to_string());
    weights::write_safetensors(&out.join("model.safetensors"), tensors, dtype, None)
        .map_err(write)?;
    weights::atomic_write(&out.join("config.json"), config).map_err(write)?;
    let tok = tokenizer_from.join("tokenizer.json");
    if tok.exists() {
        let bytes =
            std::fs::read(&tok).map_err(|e| CliError::Run(format!("{}: {e}", tok.display())))?;
        weights::atomic_write(&out.join("tokenizer.json"), &bytes).map_err(write)?;
    }
    Ok(())
}

/// A usage error when `out` is the checkpoint `what` (`base`, `donor`) read from `dir`: a copy
/// is never written over what it is made from.
pub(super) fn refuse_overwrite(out: &Path, dir: &Path, what: &str) -> Result<(), CliError> {
    if same_dir(out, dir) {
        return Err(CliError::Usage(format!(
            "--out {} is the {what} checkpoint; write the new checkpoint elsewhere",
            out.display()
        )));
    }
    Ok(())
}

/// Whether two paths name the same directory (compared canonically where both exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The dtype to write a copy of `ck` in: bf16 where it holds any bf16 tensor, else f32.
pub(super) fn save_dtype(ck: &Checkpoint) -> SaveDtype {
    let bf16 = ck.keys().iter().any(|k| {
        ck.meta(k)
            .is_some_and(|m| m.dtype == safetensors::Dtype::BF16)
    });
    if bf16 {
        SaveDtype::Bf16
    } else {
        SaveDtype::F32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_edits_nested_fields_and_rejects_unknown_ones() {
        let mut json = serde_json::json!({"dit_config": {"num_layers": 2}, "n_query": 16});
        assert!(apply_set(&mut json, "dit_config.num_layers=4").is_ok());
        assert!(apply_set(&mut json, "n_query=8").is_ok());
        assert_eq!(json["dit_config"]["num_layers"], 4);
        assert_eq!(json["n_query"], 8);
        assert!(matches!(
            apply_set(&mut json, "dit_config.num_layer=4"),
            Err(CliError::Usage(m)) if m.contains("no field `dit_config.num_layer`")
        ));
        assert!(matches!(
            apply_set(&mut json, "n_query.x=1"),
            Err(CliError::Usage(m)) if m.contains("`n_query` is not an object")
        ));
        assert!(apply_set(&mut json, "n_query").is_err());
    }

    #[test]
    fn the_pixel_decoder_leaves_the_latent_head_to_the_base() {
        for style in [KeyStyle::Nested, KeyStyle::Legacy] {
            let decoder = "model.vae_decoder.decoder.conv_in.weight";
            let head = "model.vae_decoder.down_mlp.1.weight";
            assert!(Component::PixelDecoder.owns(decoder, style));
            assert!(!Component::PixelDecoder.owns(head, style));
            assert!(Component::Decoder.owns(decoder, style));
            assert!(Component::Decoder.owns(head, style));
        }
    }
}
