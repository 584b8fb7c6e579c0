//! Latent calibration: UniLIP's `unilip_factor` makes the DiT's target latents roughly
//! unit-variance (10.6 for UniLIP-1B). After training an encoder, the scale must be measured
//! again: with latents much smaller than the noise, flow matching learns to ignore the content.
//!
//! Encoders trained here also give latents with large per-channel means (the background), which
//! a single factor would count as variance: the content then sits far below the noise and the
//! sampler fixes the layout from the noise instead of the prompt. Calibration therefore also sets
//! `unilip_shift` (the per-channel means) and scales the deviation from them to unit variance.

use std::path::Path;

use burn::prelude::*;

use super::data::{image_batch, Dataset};
use crate::backend::{device, B};
use crate::models::preprocess::normalize;
use crate::models::unilip::{ComponentSet, Unilip};
use crate::weights::{read_json, WeightError};

/// Per-channel statistics of UniLIP latents.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentStats {
    /// Mean of every latent channel.
    pub channel_means: Vec<f64>,
    /// Standard deviation about the channel means, over all channels.
    pub std: f64,
}

/// Statistics of the (unscaled) UniLIP latents of the first `n` images of `data` under the
/// checkpoint in `dir`.
pub fn latent_stats(dir: &Path, data: &dyn Dataset, n: usize) -> Result<LatentStats, String> {
    let model = Unilip::<B>::load(dir, ComponentSet::RECONSTRUCTION, &device())
        .map_err(|e| e.to_string())?;
    let size = model.config.vision.vision_config.image_size.hw()[0];
    let n = n.min(data.len());
    let mut latents = Vec::new();
    for start in (0..n).step_by(16) {
        let samples = (start..(start + 16).min(n))
            .map(|i| data.get(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let latent = model
            .encode_latent(normalize(image_batch::<B>(&images, size, &device())))
            .map_err(|e| e.to_string())?;
        latents.push(latent);
    }
    if latents.is_empty() {
        return Err("no images to measure".into());
    }
    let all = Tensor::cat(latents, 0);
    let [_, c, _, _] = all.dims();
    let means = all.clone().mean_dim(0).mean_dim(2).mean_dim(3);
    let variance = (all - means.clone()).powi_scalar(2).mean();
    let to_vec = |t: Tensor<B, 1>| -> Result<Vec<f64>, String> {
        t.into_data()
            .convert::<f64>()
            .to_vec()
            .map_err(|e| format!("{e:?}"))
    };
    Ok(LatentStats {
        channel_means: to_vec(means.reshape([c]))?,
        std: to_vec(variance)?[0].sqrt(),
    })
}

/// Sets `unilip_shift` = the channel means and `unilip_factor = 1 / std` about them in
/// `dir/config.json` (written atomically); returns the statistics.
pub fn calibrate(dir: &Path, data: &dyn Dataset, n: usize) -> Result<LatentStats, String> {
    let stats = latent_stats(dir, data, n)?;
    if !(stats.std.is_finite() && stats.std > 0.0) {
        return Err(format!(
            "latent standard deviation {} cannot be normalised",
            stats.std
        ));
    }
    let path = dir.join("config.json");
    let mut json = read_json(&path).map_err(|e: WeightError| e.to_string())?;
    json["unilip_factor"] = (1.0 / stats.std).into();
    json["unilip_shift"] = stats.channel_means.clone().into();
    let text = serde_json::to_string_pretty(&json).expect("config serialises");
    unilip_core::atomic_write(&path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(stats)
}
