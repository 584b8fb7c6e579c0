//! `unilip checkpoint add-position`: a copy of a checkpoint whose InternViT position table has a
//! fixed 2-D sin-cos table added to its patch rows, every other tensor byte-identical.
//!
//! A CLIP-pretrained InternViT has learned absolute position into its features; a ViT drawn at
//! random (as the miniature recipe's is) has almost none, because its position table is about 1 %
//! of a patch embedding. Adding a sin-cos table of a chosen scale gives the features an
//! absolute-position signal of known strength, so that an ablation can ask what position in the
//! features changes (`eval --task probe` measures how much of it reaches the features).

use std::path::Path;

use unilip_nodes::models::sana::sincos_pos_embed;
use unilip_nodes::models::unilip::KeyStyle;
use unilip_nodes::weights::{Checkpoint, HostTensor};

use super::compose::{read_all, refuse_overwrite, save_dtype, write_checkpoint};
use super::CliError;

/// The InternViT's learned position table, `[1, 1 + grid², width]` (CLS row first).
const POSITION_TABLE: &str = "model.vision_tower.embeddings.position_embedding";

/// The patch rows of `table` (`[1, 1 + grid², width]`) plus `scale` × the 2-D sin-cos table
/// of the `grid × grid` patch grid; the CLS row is kept.
pub fn add_sincos(table: &HostTensor, scale: f32) -> Result<HostTensor, String> {
    let [1, rows, width] = table.shape[..] else {
        return Err(format!(
            "is {:?}; expected [1, 1 + grid², width]",
            table.shape
        ));
    };
    let grid = (rows.saturating_sub(1) as f64).sqrt().round() as usize;
    if grid == 0 || grid * grid + 1 != rows || width % 4 != 0 {
        return Err(format!(
            "is {:?}; a 2-D sin-cos table needs 1 + grid² rows and a width divisible by 4",
            table.shape
        ));
    }
    let sincos = sincos_pos_embed(width, grid, grid, grid, 1.0);
    let mut out = table.clone();
    for (value, add) in out.data[width..].iter_mut().zip(&sincos) {
        *value += scale * add;
    }
    Ok(out)
}

/// Writes `out`: `base` with [`add_sincos`] applied to its InternViT position table, config and
/// tokenizer copied.
pub fn add_position(base: &Path, scale: f32, out: &Path) -> Result<(), CliError> {
    let usage = |e: String| CliError::Usage(e);
    if !scale.is_finite() {
        return Err(usage(format!("--scale {scale} is not a finite number")));
    }
    refuse_overwrite(out, base, "base")?;
    let ck = Checkpoint::open(base).map_err(|e| usage(e.to_string()))?;
    let key = KeyStyle::detect(&ck).spell(POSITION_TABLE);
    let mut tensors = read_all(&ck)?;
    let table = tensors.get(&key).ok_or_else(|| {
        usage(format!(
            "{} has no `{key}`: no InternViT position table to add to",
            base.display()
        ))
    })?;
    let table = add_sincos(table, scale)
        .map_err(|e| usage(format!("`{key}` in {}: {e}", base.display())))?;
    let rms =
        |t: &HostTensor| (t.data.iter().map(|v| v * v).sum::<f32>() / t.data.len() as f32).sqrt();
    let before = rms(&tensors[&key]);
    let after = rms(&table);
    tensors.insert(key, table);

    let config = std::fs::read(base.join("config.json"))
        .map_err(|e| usage(format!("{}: {e}", base.join("config.json").display())))?;
    write_checkpoint(out, &tensors, save_dtype(&ck), &config, base)?;
    println!(
        "wrote {}: ViT position table rms {before:.4} → {after:.4} ({scale} × 2-D sin-cos added)",
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_is_added_to_the_patch_rows_only() {
        let width = 8;
        let table = HostTensor {
            shape: vec![1, 5, width],
            data: (0..5 * width).map(|i| i as f32).collect(),
        };
        let out = add_sincos(&table, 2.0).unwrap();
        // CLS row untouched.
        assert_eq!(out.data[..width], table.data[..width]);
        // Patch (0, 0): sin 0 = 0 and cos 0 = 1 for both axes, times 2.
        let first: Vec<f32> = (0..width)
            .map(|c| out.data[width + c] - table.data[width + c])
            .collect();
        assert_eq!(first, [0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 2.0, 2.0]);
        // Patch (0, 1) differs from patch (1, 0): the table tells columns from rows.
        let row = |r: usize| &out.data[(1 + r) * width..(2 + r) * width];
        assert_ne!(row(1), row(2));
        assert!(matches!(
            add_sincos(&HostTensor { shape: vec![1, 4, 8], data: vec![0.0; 32] }, 1.0),
            Err(m) if m.contains("1 + grid² rows")
        ));
    }
}
