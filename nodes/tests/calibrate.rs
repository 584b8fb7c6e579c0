//! Latent calibration on the embedded default model: after `calibrate`, the DiT sees latents with
//! zero channel means and unit variance on the measured images; `unscale` inverts `scale`; a
//! config without `unilip_shift` (released checkpoints) scales by the factor alone; a shift of the
//! wrong length is refused.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use unilip_nodes::backend::{device, B};
use unilip_nodes::models::preprocess::normalize;
use unilip_nodes::models::unilip::{ComponentSet, Unilip, UnilipConfig};
use unilip_nodes::shapesworld::GenConfig;
use unilip_nodes::train::calibrate::calibrate;
use unilip_nodes::train::data::{image_batch, Dataset, DatasetKind};
use unilip_nodes::train::shapes::ShapesDataset;
use unilip_nodes::weights::read_json;

const N: usize = 32;

fn copy_default_model(name: &str) -> PathBuf {
    let src = unilip_nodes::default_model::dir().unwrap();
    let dir = std::env::temp_dir().join(format!("unilip_calib_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    dir
}

fn latents(model: &Unilip<B>, data: &ShapesDataset) -> Tensor<B, 4> {
    let samples: Vec<_> = (0..N).map(|i| data.get(i).unwrap()).collect();
    let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
    model
        .encode_latent(normalize(image_batch::<B>(&images, 64, &device())))
        .unwrap()
}

fn values(t: Tensor<B, 4>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn load(dir: &Path) -> Unilip<B> {
    Unilip::<B>::load(dir, ComponentSet::RECONSTRUCTION, &device()).unwrap()
}

#[test]
fn calibrated_latents_have_zero_channel_means_and_unit_variance() {
    let dir = copy_default_model("unit");
    let data = ShapesDataset::new(GenConfig::default(), DatasetKind::Captions, N).unwrap();
    let stats = calibrate(&dir, &data, N).unwrap();
    let model = load(&dir);
    let channels = model.config.vae.latent_channels;
    assert_eq!(model.config.unilip_shift.len(), channels);
    for (m, s) in stats.channel_means.iter().zip(&model.config.unilip_shift) {
        assert!((m - s).abs() < 1e-12, "{m} vs {s}");
    }
    assert!((model.config.unilip_factor - 1.0 / stats.std).abs() < 1e-9);

    let z = latents(&model, &data);
    let x = model.scale(z.clone());
    let means = values(x.clone().mean_dim(0).mean_dim(2).mean_dim(3));
    assert!(means.iter().all(|m| m.abs() < 1e-3), "{means:?}");
    let var = values(x.clone().powi_scalar(2).mean().reshape([1, 1, 1, 1]))[0];
    assert!((var.sqrt() - 1.0).abs() < 1e-3, "std {}", var.sqrt());

    let back = values(model.unscale(x));
    let z = values(z);
    let worst = back
        .iter()
        .zip(&z)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "unscale(scale(z)) differs by {worst}");
}

#[test]
fn without_a_shift_the_factor_alone_scales() {
    let dir = unilip_nodes::default_model::dir().unwrap();
    let mut model = load(&dir);
    model.config.unilip_shift.clear();
    let factor = model.config.unilip_factor as f32;
    let z = Tensor::<B, 4>::from_floats([[[[0.5, -1.0]], [[2.0, 0.25]]]], &device());
    let mut want = vec![0.5f32, -1.0, 2.0, 0.25];
    want.iter_mut().for_each(|v| *v *= factor);
    assert_eq!(values(model.scale(z)), want);
}

#[test]
fn a_shift_of_the_wrong_length_is_refused() {
    let dir = unilip_nodes::default_model::dir().unwrap();
    let mut json = read_json(&dir.join("config.json")).unwrap();
    json["unilip_shift"] = serde_json::json!([0.1, 0.2, 0.3]);
    let err = UnilipConfig::from_json(json.clone()).unwrap_err();
    assert!(err.contains("unilip_shift has 3 values"), "{err}");
    json["unilip_shift"] = serde_json::json!([]);
    let config = UnilipConfig::from_json(json).unwrap();
    assert!(config.unilip_shift.is_empty());
    assert!(config.to_json().get("unilip_shift").is_none());
}
