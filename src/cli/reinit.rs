//! `unilip checkpoint reinit`: a copy of a checkpoint with some components re-initialised at
//! random, optionally with a changed config (a wider DiT, a deeper connector), the rest of the
//! weights kept. This is how an ablation swaps a component before retraining it.

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
        }
    }

    /// Whether `key`, spelled in `style`, belongs to this component.
    fn owns(self, key: &str, style: KeyStyle) -> bool {
        self.prefixes()
            .iter()
            .any(|p| key.starts_with(&style.spell(p)))
    }
}

/// What `reinit` does.
pub struct ReinitArgs<'a> {
    /// Checkpoint to start from.
    pub base: &'a Path,
    /// Output directory.
    pub out: &'a Path,
    /// Components drawn at random.
    pub components: &'a [Component],
    /// `path.to.field=json-value` edits of `config.json`.
    pub sets: &'a [String],
    /// Seed of the random weights.
    pub seed: u64,
}

/// Writes `out`: `base`'s config with `sets` applied, `components` at random (seed), every other
/// tensor copied from `base` (which must match the new config's shape), and `base`'s tokenizer.
pub fn reinit(args: &ReinitArgs<'_>) -> Result<(), CliError> {
    let usage = |e: String| CliError::Usage(e);
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if same(args.out, args.base) {
        return Err(usage(format!(
            "--out {} is the base checkpoint; write the re-initialised copy elsewhere",
            args.out.display()
        )));
    }
    let config_path = args.base.join("config.json");
    let mut json = weights::read_json(&config_path).map_err(|e| usage(e.to_string()))?;
    for set in args.sets {
        apply_set(&mut json, set)?;
    }
    let config = UnilipConfig::from_json(json).map_err(|e| {
        usage(format!(
            "{} with the --set edits: {e}",
            config_path.display()
        ))
    })?;
    let base = Checkpoint::open(args.base).map_err(|e| usage(e.to_string()))?;
    let style = KeyStyle::detect(&base);
    let dtype = save_dtype(&base);
    let (_, random) = Unilip::<B>::random(config.clone(), args.seed, &device())
        .map_err(|e| usage(e.to_string()))?;

    let mut out: BTreeMap<String, HostTensor> = BTreeMap::new();
    let mut drawn = 0usize;
    for (nested, fresh) in random {
        let key = style.spell(&nested);
        if args.components.iter().any(|c| c.owns(&key, style)) {
            drawn += fresh.data.len();
            out.insert(key, fresh);
            continue;
        }
        let kept = base.read(&key).map_err(|e| {
            usage(format!(
                "{e}; re-initialise the component that owns `{key}` (--component) or undo the \
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
    // re-initialised components are dropped.
    for key in base.unread_keys() {
        if out.contains_key(key) || args.components.iter().any(|c| c.owns(key, style)) {
            continue;
        }
        out.insert(
            key.to_string(),
            base.read(key).map_err(|e| usage(e.to_string()))?,
        );
    }

    std::fs::create_dir_all(args.out)
        .map_err(|e| CliError::Run(format!("{}: {e}", args.out.display())))?;
    let write = |e: weights::WeightError| CliError::Run(e.to_string());
    weights::write_safetensors(&args.out.join("model.safetensors"), &out, dtype, None)
        .map_err(write)?;
    let text = serde_json::to_string_pretty(&config.to_json()).expect("config serialises");
    weights::atomic_write(&args.out.join("config.json"), text.as_bytes()).map_err(write)?;
    let tok = args.base.join("tokenizer.json");
    if tok.exists() {
        let bytes =
            std::fs::read(&tok).map_err(|e| CliError::Run(format!("{}: {e}", tok.display())))?;
        weights::atomic_write(&args.out.join("tokenizer.json"), &bytes).map_err(write)?;
    }
    let total: usize = out.values().map(|t| t.data.len()).sum();
    println!(
        "wrote {}: {:.3} M parameters, {:.3} M drawn at random (seed {})",
        args.out.display(),
        total as f64 / 1e6,
        drawn as f64 / 1e6,
        args.seed
    );
    Ok(())
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

/// bf16 when the base stores any bf16 tensor (released checkpoints), f32 otherwise.
fn save_dtype(ck: &Checkpoint) -> SaveDtype {
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
}
