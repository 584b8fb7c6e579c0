//! `unilip checkpoint grow`: a copy of a checkpoint whose connector or DiT has more layers, the
//! new ones identity at the start, every other tensor byte-identical.
//!
//! Each new layer copies the component's last layer with the projections that write into the
//! residual stream zeroed (a Qwen2 layer's `o_proj` and `down_proj`; a SANA block's two
//! attention outputs and its Mix-FFN's last convolution), so both of its residual branches add
//! exactly zero: the grown model computes what the base did, and training goes on from there
//! with the extra depth (zero-initialised residual branches, as in ReZero, Fixup or depth
//! up-scaling). This asks whether depth limits a trained component without redrawing it.

use std::collections::BTreeMap;
use std::path::Path;

use clap::ValueEnum;
use serde_json::Value;
use unilip_nodes::models::unilip::KeyStyle;
use unilip_nodes::weights::{self, Checkpoint, HostTensor};

use super::compose::{read_all, refuse_overwrite, save_dtype, write_checkpoint};
use super::CliError;

/// A component `grow` can deepen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Deepen {
    /// The Qwen2-layer connector (`connect_layer`).
    Connector,
    /// The SANA DiT (`dit_config.num_layers`).
    Dit,
}

impl Deepen {
    /// How messages name the component.
    fn name(self) -> &'static str {
        match self {
            Self::Connector => "connector",
            Self::Dit => "DiT",
        }
    }

    /// The `config.json` path of the layer count.
    fn config_path(self) -> &'static [&'static str] {
        match self {
            Self::Connector => &["connect_layer"],
            Self::Dit => &["dit_config", "num_layers"],
        }
    }

    /// Key prefix (nested style) of the layers, followed by the layer index.
    fn layer_prefix(self) -> &'static str {
        match self {
            Self::Connector => "model.llm_connector.layers.",
            Self::Dit => "model.dit.transformer_blocks.",
        }
    }

    /// Tensor names within a layer that write into the residual stream: zero in a new layer.
    fn residual_writers(self) -> &'static [&'static str] {
        match self {
            Self::Connector => &[
                "self_attn.o_proj.weight",
                "self_attn.o_proj.bias",
                "mlp.down_proj.weight",
                "mlp.down_proj.bias",
            ],
            Self::Dit => &[
                "attn1.to_out.0.weight",
                "attn1.to_out.0.bias",
                "attn2.to_out.0.weight",
                "attn2.to_out.0.bias",
                "ff.conv_point.weight",
                "ff.conv_point.bias",
            ],
        }
    }
}

/// The layers `layers[count..total]`: copies of layer `count − 1` (the tensors under
/// `prefix{count−1}.`) with the `zeroed` tensors set to zero. Errors when there is no such layer.
pub fn identity_layers(
    tensors: &BTreeMap<String, HostTensor>,
    prefix: &str,
    count: usize,
    total: usize,
    zeroed: &[&str],
) -> Result<BTreeMap<String, HostTensor>, String> {
    let last = format!("{prefix}{}.", count.saturating_sub(1));
    let source: Vec<(&str, &HostTensor)> = tensors
        .iter()
        .filter_map(|(k, t)| k.strip_prefix(&last).map(|rest| (rest, t)))
        .collect();
    if count == 0 || source.is_empty() {
        return Err(format!("no tensors under `{last}` to copy"));
    }
    if !source.iter().any(|(rest, _)| zeroed.contains(rest)) {
        return Err(format!(
            "none of `{last}{{{}}}` found: not the layer layout grow knows",
            zeroed.join(",")
        ));
    }
    let mut out = BTreeMap::new();
    for index in count..total {
        for (rest, tensor) in &source {
            let mut copy = (*tensor).clone();
            if zeroed.contains(rest) {
                copy.data.iter_mut().for_each(|v| *v = 0.0);
            }
            out.insert(format!("{prefix}{index}.{rest}"), copy);
        }
    }
    Ok(out)
}

/// Writes `out`: `base` with `component` grown to `layers` layers by [`identity_layers`] and
/// its layer count set in `config.json`; tokenizer copied.
pub fn grow(base: &Path, component: Deepen, layers: usize, out: &Path) -> Result<(), CliError> {
    let usage = |e: String| CliError::Usage(e);
    refuse_overwrite(out, base, "base")?;
    let config_path = base.join("config.json");
    let mut config = weights::read_json(&config_path).map_err(|e| usage(e.to_string()))?;
    let field = component.config_path().join(".");
    let slot = component
        .config_path()
        .iter()
        .try_fold(&mut config, |node, key| node.get_mut(*key))
        .ok_or_else(|| usage(format!("{} has no `{field}`", config_path.display())))?;
    let count = slot.as_u64().ok_or_else(|| {
        usage(format!(
            "`{field}` in {} is not a layer count",
            config_path.display()
        ))
    })? as usize;
    if layers <= count {
        return Err(usage(format!(
            "--layers {layers}: the {} already has {count} (`{field}`); grow asks for more",
            component.name()
        )));
    }
    *slot = Value::from(layers);

    let ck = Checkpoint::open(base).map_err(|e| usage(e.to_string()))?;
    let prefix = KeyStyle::detect(&ck).spell(component.layer_prefix());
    let mut tensors = read_all(&ck)?;
    let added = identity_layers(
        &tensors,
        &prefix,
        count,
        layers,
        component.residual_writers(),
    )
    .map_err(|e| usage(format!("{}: {e}", base.display())))?;
    let params: usize = added.values().map(|t| t.data.len()).sum();
    tensors.extend(added);

    let text = serde_json::to_string_pretty(&config).expect("config serialises");
    write_checkpoint(out, &tensors, save_dtype(&ck), text.as_bytes(), base)?;
    println!(
        "wrote {}: {} {count} → {layers} layers ({:.3} M parameters added, the new layers \
         identity at the start)",
        out.display(),
        component.name(),
        params as f64 / 1e6
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f32]) -> HostTensor {
        HostTensor {
            shape: vec![values.len()],
            data: values.to_vec(),
        }
    }

    #[test]
    fn new_layers_copy_the_last_one_with_the_residual_writers_zeroed() {
        let mut tensors = BTreeMap::new();
        tensors.insert("l.0.a".to_string(), tensor(&[1.0, 2.0]));
        tensors.insert("l.0.out".to_string(), tensor(&[3.0]));
        tensors.insert("l.1.a".to_string(), tensor(&[4.0, 5.0]));
        tensors.insert("l.1.out".to_string(), tensor(&[6.0]));
        tensors.insert("l.10.a".to_string(), tensor(&[9.0]));
        let added = identity_layers(&tensors, "l.", 2, 4, &["out"]).unwrap();
        assert_eq!(
            added.keys().collect::<Vec<_>>(),
            ["l.2.a", "l.2.out", "l.3.a", "l.3.out"]
        );
        assert_eq!(added["l.3.a"].data, [4.0, 5.0]);
        assert_eq!(added["l.2.out"].data, [0.0]);

        let unknown = identity_layers(&tensors, "l.", 2, 3, &["o_proj"]).unwrap_err();
        assert!(unknown.contains("`l.1.{o_proj}`"), "{unknown}");
        let missing = identity_layers(&tensors, "m.", 1, 2, &["out"]).unwrap_err();
        assert!(missing.contains("`m.0.`"), "{missing}");
    }
}
