//! `unilip checkpoint add-source-input`: a copy of a checkpoint whose DiT also takes the edit
//! source's latent, concatenated on channels after the noisy latent, with the new input
//! channels' patch-embedding weights zero, so the copy computes exactly what the base did.
//!
//! UniLIP's DiT sees the image being edited only through its condition (the source's ViT
//! features at the prompt's image tokens, read by cross-attention), so to keep what an edit must
//! not change it has to learn to copy a layout through attention. InstructPix2Pix (Brooks et
//! al. 2023) instead concatenates the source latent to the noisy latent and zero-initialises the
//! added input channels: each DiT token then sees the source at its own place. This command
//! makes that variant from a trained checkpoint, so an ablation can ask how much of the editing
//! gap is copying; training (`shapes_5_edit.ron`) and sampling (`unilip.dit_denoise` with
//! `image_latent` wired, `eval --task edit`) pass the source to such a DiT by themselves.

use std::path::Path;

use serde_json::Value;
use unilip_nodes::models::unilip::KeyStyle;
use unilip_nodes::weights::{self, Checkpoint, HostTensor};

use super::compose::{read_all, refuse_overwrite, save_dtype, write_checkpoint};
use super::CliError;

/// The DiT's patchifying convolution, `[width, in_channels, p, p]`.
const PATCH_EMBED: &str = "model.dit.patch_embed.proj.weight";

/// `weight` (`[out, in, kh, kw]`) with `added` zero input channels after its own.
pub fn zero_input_channels(weight: &HostTensor, added: usize) -> Result<HostTensor, String> {
    let [out, inp, kh, kw] = weight.shape[..] else {
        return Err(format!(
            "is {:?}; expected a convolution [out, in, kh, kw]",
            weight.shape
        ));
    };
    let (old, new) = (inp * kh * kw, (inp + added) * kh * kw);
    let mut data = vec![0.0; out * new];
    for (row, dst) in weight.data.chunks(old).zip(data.chunks_mut(new)) {
        dst[..old].copy_from_slice(row);
    }
    Ok(HostTensor {
        shape: vec![out, inp + added, kh, kw],
        data,
    })
}

/// Writes `out`: `base` whose DiT takes `latent_channels` more input channels (the source
/// latent; `dit_config.in_channels` doubled, `out_channels` kept), their patch-embedding
/// weights zero; every other tensor and the tokenizer copied.
pub fn add_source_input(base: &Path, out: &Path) -> Result<(), CliError> {
    let usage = |e: String| CliError::Usage(e);
    refuse_overwrite(out, base, "base")?;
    let config_path = base.join("config.json");
    let mut config = weights::read_json(&config_path).map_err(|e| usage(e.to_string()))?;
    let dit = config
        .get_mut("dit_config")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| usage(format!("{} has no `dit_config`", config_path.display())))?;
    let channel_count = |v: Option<&Value>| v.and_then(Value::as_u64).map(|c| c as usize);
    let inp = channel_count(dit.get("in_channels")).ok_or_else(|| {
        usage(format!(
            "`dit_config.in_channels` in {} is not a channel count",
            config_path.display()
        ))
    })?;
    let latent = channel_count(dit.get("out_channels")).unwrap_or(inp);
    if inp != latent {
        return Err(usage(format!(
            "{}: the DiT already takes {} channels for {latent} latent channels \
             (`dit_config.in_channels` ≠ `out_channels`)",
            base.display(),
            inp
        )));
    }
    dit.insert("in_channels".into(), Value::from(2 * latent));
    dit.insert("out_channels".into(), Value::from(latent));

    let ck = Checkpoint::open(base).map_err(|e| usage(e.to_string()))?;
    let key = KeyStyle::detect(&ck).spell(PATCH_EMBED);
    let mut tensors = read_all(&ck)?;
    let weight = tensors
        .get(&key)
        .ok_or_else(|| usage(format!("{} has no `{key}`: no DiT", base.display())))?;
    if weight.shape.get(1) != Some(&latent) {
        return Err(usage(format!(
            "`{key}` in {} is {:?}, not the {latent} input channels `dit_config` names",
            base.display(),
            weight.shape
        )));
    }
    let grown = zero_input_channels(weight, latent)
        .map_err(|e| usage(format!("`{key}` in {}: {e}", base.display())))?;
    tensors.insert(key, grown);

    let text = serde_json::to_string_pretty(&config).expect("config serialises");
    write_checkpoint(out, &tensors, save_dtype(&ck), text.as_bytes(), base)?;
    println!(
        "wrote {}: the DiT takes the source latent beside the noisy one ({latent} → {} input \
         channels, the new ones zero: unchanged until trained)",
        out.display(),
        2 * latent
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_input_channels_are_zero_and_the_old_ones_kept() {
        // [out 2, in 2, 1, 2]
        let weight = HostTensor {
            shape: vec![2, 2, 1, 2],
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        };
        let grown = zero_input_channels(&weight, 2).unwrap();
        assert_eq!(grown.shape, [2, 4, 1, 2]);
        assert_eq!(
            grown.data,
            [
                1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0, //
                5.0, 6.0, 7.0, 8.0, 0.0, 0.0, 0.0, 0.0
            ]
        );
        let flat = HostTensor {
            shape: vec![4],
            data: vec![0.0; 4],
        };
        assert!(zero_input_channels(&flat, 2)
            .unwrap_err()
            .contains("[out, in, kh, kw]"));
    }
}
