//! Parity of the InternViT tower, pixel shuffle, `mlp1`, the UniLIP latent head and image
//! preprocessing against the `internvit/` and `unilip_e2e/` fixtures.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::prelude::*;
use unilip_nodes::fixtures::expect_tensor as read;
use unilip_nodes::fixtures::{compare, Fixture};
use unilip_nodes::models::internvit::{
    Config, InternVisionModel, InternVlVision, Size2, VisionConfig,
};
use unilip_nodes::models::latent_head::LatentHead;
use unilip_nodes::models::preprocess::{denormalize, preprocess, to_u8_images, RgbU8};
use unilip_nodes::weights::{
    write_safetensors, Checkpoint, HostTensor, SaveDtype, VarBuilder, WeightError,
};

type B = burn::backend::Flex;

fn device() -> burn::tensor::Device<B> {
    Default::default()
}

/// Compares `got` with `want`, prints the max diff, panics with the tensor name on failure.
fn check<const D: usize>(name: &str, got: Tensor<B, D>, want: &HostTensor, tol: (f64, f64)) {
    let got = HostTensor::from_burn(got);
    match compare(name, &got, want, tol.0, tol.1) {
        Ok(d) => println!("{name}: max |diff| {d:.3e}"),
        Err(msg) => panic!("{msg}"),
    }
}

fn input<const D: usize>(ck: &Checkpoint, key: &str) -> Tensor<B, D> {
    read(ck, key).to_burn(&device())
}

/// `tolerance.recommended_{atol,rtol}` of the `internvit` fixture.
fn internvit_tol(fx: &Fixture) -> (f64, f64) {
    let t = &fx.config["tolerance"];
    let get = |k: &str| {
        t[k].as_f64()
            .unwrap_or_else(|| panic!("tolerance.{k} missing"))
    };
    (get("recommended_atol"), get("recommended_rtol"))
}

/// The `per_group.<group>` atol and the global rtol of the `unilip_e2e` fixture.
fn e2e_tol(fx: &Fixture, group: &str) -> (f64, f64) {
    let t = &fx.config["tolerance"];
    let atol = t["per_group"][group]["recommended_atol"]
        .as_f64()
        .unwrap_or_else(|| panic!("tolerance.per_group.{group} missing"));
    (
        atol,
        t["recommended_rtol"]
            .as_f64()
            .expect("tolerance.recommended_rtol"),
    )
}

fn internvit_config(fx: &Fixture) -> Config {
    serde_json::from_value(fx.config["upstream_config"].clone()).expect("internvit upstream_config")
}

/// Runs every `internvit` io/trace comparison for one loaded model.
fn check_internvit(fx: &Fixture, model: &InternVlVision<B>, tag: &str) {
    let tol = internvit_tol(fx);
    let trace = fx.trace.as_ref().expect("internvit trace.safetensors");
    let pixels: Tensor<B, 4> = input(&fx.io, "pixel_values");
    let [_, _, h, w] = pixels.dims();
    let tower = &model.vision_tower;

    let mut x = tower.embeddings.forward(pixels.clone());
    check(
        &format!("{tag} trace embeddings"),
        x.clone(),
        &read(trace, "embeddings"),
        tol,
    );
    for (i, layer) in tower.encoder.layers.iter().enumerate() {
        x = layer.forward(x);
        let key = format!("layers.{i}");
        check(
            &format!("{tag} trace {key}"),
            x.clone(),
            &read(trace, &key),
            tol,
        );
    }
    let last = tower.forward(pixels.clone()).expect("vision forward");
    check(
        &format!("{tag} last_hidden_state"),
        last.clone(),
        &read(&fx.io, "last_hidden_state"),
        tol,
    );
    let shuffled = model.shuffle(last, h, w).expect("pixel shuffle");
    check(
        &format!("{tag} pixel_shuffled"),
        shuffled,
        &read(&fx.io, "pixel_shuffled"),
        tol,
    );
    let feats = model.image_features(pixels).expect("image features");
    check(
        &format!("{tag} image_features"),
        feats,
        &read(&fx.io, "image_features"),
        tol,
    );

    let p84: Tensor<B, 4> = input(&fx.io, "pixel_values_84");
    let out84 = tower.forward(p84).expect("vision forward 84");
    check(
        &format!("{tag} last_hidden_state_84"),
        out84,
        &read(&fx.io, "last_hidden_state_84"),
        tol,
    );
}

#[test]
fn parity_internvit_original_weights() {
    let Some(fx) = Fixture::open("internvit").expect("open internvit fixture") else {
        return;
    };
    let cfg = internvit_config(&fx);
    let vb = VarBuilder::<B>::new(fx.weights.clone(), &device());
    let tower = InternVisionModel::load(&cfg.vision_config, &vb).expect("load original tower");
    let model = InternVlVision::with_tower(&cfg, tower, &vb.pp("mlp1")).expect("load mlp1");
    check_internvit(&fx, &model, "original");
}

#[test]
fn parity_internvit_transformers_weights() {
    let Some(fx) = Fixture::open("internvit").expect("open internvit fixture") else {
        return;
    };
    let cfg = internvit_config(&fx);
    let ck = Checkpoint::open(fx.dir.join("weights_hf.safetensors")).expect("open weights_hf");
    let vb = VarBuilder::<B>::new(Arc::new(ck), &device());
    let model = InternVlVision::load_from_root(&cfg, &vb).expect("load transformers-style weights");
    check_internvit(&fx, &model, "transformers");
}

#[test]
fn parity_unilip_e2e_vision_and_latent_head() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e fixture") else {
        return;
    };
    let trace = fx.trace.as_ref().expect("unilip_e2e trace.safetensors");
    let upstream = &fx.config["upstream_config"];
    let cfg: Config = serde_json::from_value(upstream["unilip"].clone()).expect("unilip config");
    let mut original: VisionConfig =
        serde_json::from_value(upstream["internvit"].clone()).expect("original InternViT config");
    original.image_size = Size2::Rect(original.image_size.hw());
    original.patch_size = Size2::Rect(original.patch_size.hw());
    assert_eq!(
        original, cfg.vision_config,
        "original and transformers vision configs disagree"
    );
    let root = VarBuilder::<B>::new(fx.weights.clone(), &device());
    let model = InternVlVision::load_from_root(&cfg, &root).expect("load vision");
    let vb = root.pp("model");
    let tol = e2e_tol(&fx, "vision");

    let pixels: Tensor<B, 4> = input(&fx.io, "input.pixel_values");
    let [_, _, h, w] = pixels.dims();
    let emb = model.vision_tower.embeddings.forward(pixels.clone());
    check(
        "recon.vision.embeddings",
        emb,
        &read(trace, "recon.vision.embeddings"),
        tol,
    );
    let last = model
        .vision_tower
        .forward(pixels.clone())
        .expect("vision forward");
    check(
        "recon.vision.last_hidden_state",
        last.clone(),
        &read(trace, "recon.vision.last_hidden_state"),
        tol,
    );
    let shuffled = model.shuffle(last, h, w).expect("pixel shuffle");
    check(
        "recon.vision.pixel_shuffled",
        shuffled,
        &read(trace, "recon.vision.pixel_shuffled"),
        tol,
    );
    let feats = model.image_features(pixels).expect("image features");
    check(
        "recon.vision.image_features",
        feats.clone(),
        &read(trace, "recon.vision.image_features"),
        tol,
    );

    let head = LatentHead::load(&vb.pp("vae_decoder"), cfg.text_config.hidden_size)
        .expect("load latent head");
    assert_eq!(head.down_blocks.len(), 3, "UniLIP has 3 down_blocks");
    let tol = e2e_tol(&fx, "recon_latent");
    let mut x = feats.clone();
    for (i, block) in head.down_blocks.iter().enumerate() {
        x = block.forward(x);
        let key = format!("recon.down_blocks.{i}");
        check(&key, x.clone(), &read(trace, &key), tol);
    }
    check(
        "recon.down_mlp",
        head.down_mlp.forward(x),
        &read(trace, "recon.down_mlp"),
        tol,
    );
    let latent = head
        .latent(feats, model.feature_grid(h, w))
        .expect("latent");
    check("recon.latent", latent, &read(&fx.io, "recon.latent"), tol);
}

fn fixture_images(fx: &Fixture) -> Vec<RgbU8> {
    let (shape, bytes) = fx
        .io
        .read_i64("input.images_uint8")
        .expect("input.images_uint8");
    let [b, h, w, _] = shape[..] else {
        panic!("input.images_uint8: unexpected shape {shape:?}")
    };
    let bytes: Vec<u8> = bytes.iter().map(|&v| v as u8).collect();
    let n = h * w * 3;
    (0..b)
        .map(|i| RgbU8::new(h, w, bytes[i * n..(i + 1) * n].to_vec()).expect("image buffer"))
        .collect()
}

#[test]
fn parity_unilip_e2e_preprocess() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e fixture") else {
        return;
    };
    let images = fixture_images(&fx);
    let size = [images[0].height, images[0].width];
    let got = preprocess::<B>(&images, size, &device()).expect("preprocess");
    check(
        "input.pixel_values",
        got,
        &read(&fx.io, "input.pixel_values"),
        e2e_tol(&fx, "vision"),
    );
}

#[test]
fn parity_unilip_e2e_denormalize_to_u8_roundtrip() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e fixture") else {
        return;
    };
    let images = fixture_images(&fx);
    let pixels: Tensor<B, 4> = input(&fx.io, "input.pixel_values");
    let unit = denormalize(pixels);
    let back = to_u8_images(unit * 2.0 - 1.0).expect("to_u8_images");
    for (i, (got, want)) in back.iter().zip(&images).enumerate() {
        let bad = got
            .data
            .iter()
            .zip(&want.data)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            bad, 0,
            "input.images_uint8[{i}]: {bad} bytes differ after denormalize → to_u8_images"
        );
    }
}

#[test]
fn parity_shape_mismatch_names_key() {
    let cfg = VisionConfig {
        hidden_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 16,
        ..serde_json::from_str(r#"{"image_size": 28, "patch_size": 14}"#).expect("config")
    };
    let dir = std::env::temp_dir().join(format!("parity_internvit_bad_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.safetensors");
    let mut tensors = BTreeMap::new();
    let bad = HostTensor {
        shape: vec![1, 1, 7],
        data: vec![0.0; 7],
    };
    tensors.insert("embeddings.class_embedding".to_string(), bad);
    write_safetensors(&path, &tensors, SaveDtype::F32, None).expect("write bad safetensors");
    let ck = Checkpoint::open(&path).expect("open bad safetensors");
    let err = InternVisionModel::<B>::load(&cfg, &VarBuilder::new(Arc::new(ck), &device()))
        .expect_err("wrong-shaped class_embedding must fail");
    std::fs::remove_dir_all(&dir).ok();
    match err {
        WeightError::ShapeMismatch {
            key,
            expected,
            found,
            ..
        } => {
            assert_eq!(key, "embeddings.class_embedding");
            assert_eq!(expected, vec![1, 1, 8]);
            assert_eq!(found, vec![1, 1, 7]);
        }
        other => panic!("expected ShapeMismatch for embeddings.class_embedding, got {other}"),
    }
}
