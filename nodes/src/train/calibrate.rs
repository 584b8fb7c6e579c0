//! Latent-scale calibration: UniLIP's `unilip_factor` makes the DiT's target latents roughly
//! unit-variance (10.6 for UniLIP-1B). After training an encoder, the factor must be measured
//! again: with latents much smaller than the noise, flow matching learns to ignore the content.

use std::path::Path;

use super::data::{image_batch, Dataset};
use crate::backend::{device, B};
use crate::models::preprocess::normalize;
use crate::models::unilip::{ComponentSet, Unilip};
use crate::weights::{read_json, WeightError};

/// Standard deviation of the (unscaled) UniLIP latents of the first `n` images of `data` under the
/// checkpoint in `dir`.
pub fn latent_std(dir: &Path, data: &dyn Dataset, n: usize) -> Result<f64, String> {
    let model = Unilip::<B>::load(dir, ComponentSet::RECONSTRUCTION, &device())
        .map_err(|e| e.to_string())?;
    let size = model.config.vision.vision_config.image_size.hw()[0];
    let (mut sum, mut sq, mut count) = (0.0f64, 0.0f64, 0usize);
    for start in (0..n.min(data.len())).step_by(16) {
        let samples = (start..(start + 16).min(n.min(data.len())))
            .map(|i| data.get(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let latent = model
            .encode_latent(normalize(image_batch::<B>(&images, size, &device())))
            .map_err(|e| e.to_string())?;
        let values: Vec<f32> = latent
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| format!("{e:?}"))?;
        count += values.len();
        sum += values.iter().map(|&v| f64::from(v)).sum::<f64>();
        sq += values
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>();
    }
    if count == 0 {
        return Err("no images to measure".into());
    }
    let mean = sum / count as f64;
    Ok((sq / count as f64 - mean * mean).max(0.0).sqrt())
}

/// Sets `unilip_factor = 1 / std` in `dir/config.json` (written atomically); returns the factor.
pub fn calibrate(dir: &Path, data: &dyn Dataset, n: usize) -> Result<f64, String> {
    let std = latent_std(dir, data, n)?;
    if !(std.is_finite() && std > 0.0) {
        return Err(format!(
            "latent standard deviation {std} cannot be normalised"
        ));
    }
    let path = dir.join("config.json");
    let mut json = read_json(&path).map_err(|e: WeightError| e.to_string())?;
    let factor = 1.0 / std;
    json["unilip_factor"] = factor.into();
    let text = serde_json::to_string_pretty(&json).expect("config serialises");
    unilip_core::atomic_write(&path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(factor)
}
