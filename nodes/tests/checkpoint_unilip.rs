//! UniLIP checkpoint directories: a bf16, 3-shard HF-layout copy of the `unilip_e2e` weights
//! (with a serialised [`UnilipConfig`]) loads through [`Unilip::load`] in both key styles and
//! reproduces the fp32 reference to bf16 precision; partial component sets, broken files and
//! bad configs give the right [`WeightError`] (never a panic); the config presets round-trip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use unilip_nodes::fixtures::expect_int_tensor;
use unilip_nodes::fixtures::t2i_condition;
use unilip_nodes::fixtures::unilip_config;
use unilip_nodes::fixtures::Fixture;
use unilip_nodes::models::qwen2::{GenerationConfig, Sampling};
use unilip_nodes::models::scheduler::DpmSolverConfig;
use unilip_nodes::models::unilip::{
    ComponentSet, Condition, KeyStyle, SampleOptions, Unilip, UnilipConfig, UnilipError,
};
use unilip_nodes::weights::{write_safetensors, Checkpoint, HostTensor, SaveDtype, WeightError};

type B = burn::backend::Flex;

/// Every tensor of the fixture's `weights.safetensors`, renamed by `rename`.
fn tensors(fx: &Fixture, rename: impl Fn(&str) -> String) -> BTreeMap<String, HostTensor> {
    fx.weights
        .keys()
        .into_iter()
        .map(|k| {
            (
                rename(k),
                fx.weights.read(k).unwrap_or_else(|e| panic!("{k}: {e}")),
            )
        })
        .collect()
}

/// The transformers spelling with the conversion mapping reversed (spec §4.2).
fn legacy_key(k: &str) -> String {
    let map = [
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.", "vision_tower."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
        ("lm_head.", "language_model.lm_head."),
    ];
    map.iter()
        .find_map(|(from, to)| k.strip_prefix(from).map(|r| format!("{to}{r}")))
        .unwrap_or_else(|| k.to_string())
}

/// A fresh directory under the system temp dir (removed first if left over).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unilip_ck_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Shard file names, `model-0000i-of-0000n.safetensors`.
fn shard_name(i: usize, n: usize) -> String {
    format!("model-{:05}-of-{n:05}.safetensors", i + 1)
}

/// Writes `config.json`, the tensors in bf16 split into `n` shards, and the shard index.
fn write_checkpoint(
    dir: &Path,
    cfg: &UnilipConfig,
    tensors: &BTreeMap<String, HostTensor>,
    n: usize,
) {
    let config = serde_json::to_string_pretty(cfg).expect("serialise config");
    std::fs::write(dir.join("config.json"), config).expect("write config.json");
    let per_shard = tensors.len().div_ceil(n);
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    let entries: Vec<_> = tensors.iter().collect();
    for (i, chunk) in entries.chunks(per_shard).enumerate() {
        let name = shard_name(i, n);
        let shard: BTreeMap<String, HostTensor> = chunk
            .iter()
            .map(|(k, t)| ((*k).clone(), (*t).clone()))
            .collect();
        for (k, t) in &shard {
            weight_map.insert(k.clone(), name.clone().into());
            total += 2 * t.data.len();
        }
        write_safetensors(&dir.join(&name), &shard, SaveDtype::Bf16, None).expect("write shard");
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())
        .expect("write index");
}

/// The t2i projector output (UniLIP's dual condition) of a loaded model.
fn t2i_projector(fx: &Fixture, model: &Unilip<B>) -> HostTensor {
    HostTensor::from_burn(t2i_condition(fx, model).embeds)
}

/// `max |got - want|`, asserted `<= rel · max |want|` (bf16 weights vs the fp32 reference).
fn check_scaled(name: &str, got: &HostTensor, want: &HostTensor, rel: f32) -> f32 {
    assert_eq!(got.shape, want.shape, "{name}: shape");
    let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .data
        .iter()
        .zip(&want.data)
        .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    eprintln!("{name}: max |diff| {diff:.3e}, output scale {scale:.3}");
    assert!(
        diff <= rel * scale,
        "{name}: max |diff| {diff} > {rel} x scale {scale}"
    );
    diff
}

fn load(dir: &Path, c: ComponentSet) -> Result<Unilip<B>, WeightError> {
    Unilip::load(dir, c, &Default::default())
}

#[test]
fn checkpoint_bf16_sharded_directory_matches_reference() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let dir = temp_dir("sharded");
    write_checkpoint(
        &dir,
        &unilip_config(&fx).unwrap(),
        &tensors(&fx, str::to_string),
        3,
    );
    let model = load(&dir, ComponentSet::ALL).expect("load the sharded bf16 directory");
    assert_eq!(model.components, ComponentSet::ALL);
    assert!(model.vision.is_some() && model.dit.is_some() && model.vae_decoder.is_some());
    let llm = model.language_model.as_ref().expect("llm");
    assert!(llm.lm_head.is_some(), "lm_head loaded");
    let vocab = fx.config["tiny"]["llm_qwen2"]["vocab_size"]
        .as_u64()
        .expect("vocab_size") as usize;
    let rows = llm
        .model
        .embed_tokens
        .as_ref()
        .expect("embed_tokens")
        .weight
        .dims()[0];
    assert_eq!(rows, vocab, "vocabulary rows read from the tensor shape");

    let trace = fx.trace.as_ref().expect("trace");
    let want = trace.read("t2i.projector").expect("t2i.projector");
    check_scaled(
        "t2i.projector (bf16 checkpoint)",
        &t2i_projector(&fx, &model),
        &want,
        5e-2,
    );
    let pixels = fx
        .io
        .read("input.pixel_values")
        .expect("pixel_values")
        .to_burn(&Default::default());
    let latent = HostTensor::from_burn(model.encode_latent(pixels).expect("encode"));
    let want = fx.io.read("recon.latent").expect("recon.latent");
    check_scaled("recon.latent (bf16 checkpoint)", &latent, &want, 5e-2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoint_legacy_key_style_loads_the_same_model() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let (nested_dir, legacy_dir) = (temp_dir("nested"), temp_dir("legacy"));
    write_checkpoint(
        &nested_dir,
        &unilip_config(&fx).unwrap(),
        &tensors(&fx, str::to_string),
        3,
    );
    write_checkpoint(
        &legacy_dir,
        &unilip_config(&fx).unwrap(),
        &tensors(&fx, legacy_key),
        3,
    );
    let ck = Checkpoint::open(&legacy_dir).expect("open legacy");
    assert_eq!(KeyStyle::detect(&ck), KeyStyle::Legacy);
    assert!(ck.contains("language_model.lm_head.weight"));
    let nested_ck = Checkpoint::open(&nested_dir).expect("open nested");
    assert_eq!(KeyStyle::detect(&nested_ck), KeyStyle::Nested);

    let nested = load(&nested_dir, ComponentSet::ALL).expect("load nested");
    let legacy = load(&legacy_dir, ComponentSet::ALL).expect("load legacy");
    assert_eq!(
        t2i_projector(&fx, &nested),
        t2i_projector(&fx, &legacy),
        "same projector output"
    );

    // Understanding through lm_head: image tokens + prompt, greedy.
    let ids = expect_int_tensor::<B, _>(&fx.io, "edit.input_ids").narrow(0, 0, 1);
    let pixels: Tensor<B, 4> = fx
        .io
        .read("input.pixel_values")
        .expect("pixel_values")
        .to_burn::<B, 4>(&Default::default())
        .narrow(0, 0, 1);
    let generation = GenerationConfig {
        max_new_tokens: 4,
        sampling: Sampling::Greedy,
        eos_token_ids: Vec::new(),
        seed: 0,
        output_logits: false,
    };
    let answer = |m: &Unilip<B>| {
        m.understand(ids.clone(), None, Some(pixels.clone()), &generation)
            .expect("understand")
            .tokens
    };
    let tokens = answer(&nested);
    assert_eq!(tokens[0].len(), 4, "4 new tokens");
    assert_eq!(
        tokens,
        answer(&legacy),
        "same generated tokens in both key styles"
    );
    std::fs::remove_dir_all(&nested_dir).ok();
    std::fs::remove_dir_all(&legacy_dir).ok();
}

#[test]
fn checkpoint_generation_needs_no_lm_head() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let dir = temp_dir("no_lm_head");
    let mut t = tensors(&fx, str::to_string);
    t.remove("lm_head.weight")
        .expect("fixture has lm_head.weight");
    write_checkpoint(&dir, &unilip_config(&fx).unwrap(), &t, 3);

    let model = load(&dir, ComponentSet::GENERATION).expect("generation components load");
    assert!(model.vision.is_none(), "vision not requested");
    assert!(model
        .language_model
        .as_ref()
        .expect("llm")
        .lm_head
        .is_none());
    let generation = GenerationConfig {
        max_new_tokens: 1,
        sampling: Sampling::Greedy,
        eos_token_ids: Vec::new(),
        seed: 0,
        output_logits: false,
    };
    let ids = expect_int_tensor::<B, _>(&fx.io, "t2i.input_ids").narrow(0, 0, 1);
    let err = model
        .understand(ids, None, None, &generation)
        .expect_err("no lm_head");
    assert!(matches!(err, UnilipError::NotLoaded("lm_head")), "{err}");
    let err = model.image_features(Tensor::zeros([1, 3, 84, 84], &Default::default()));
    assert!(matches!(err, Err(UnilipError::NotLoaded("vision"))));

    match load(&dir, ComponentSet::ALL) {
        Err(WeightError::MissingKey { key, .. }) => assert_eq!(key, "lm_head.weight"),
        other => panic!("expected MissingKey(lm_head.weight), got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoint_errors_name_the_key_or_file() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let cfg = unilip_config(&fx).unwrap();

    // A missing tensor.
    let dir = temp_dir("missing_key");
    let mut t = tensors(&fx, str::to_string);
    t.remove("model.projector.weight")
        .expect("fixture has the projector");
    write_checkpoint(&dir, &cfg, &t, 3);
    match load(&dir, ComponentSet::ALL) {
        Err(WeightError::MissingKey { key, .. }) => assert_eq!(key, "model.projector.weight"),
        other => panic!("expected MissingKey(model.projector.weight), got {other:?}"),
    }
    load(&dir, ComponentSet::RECONSTRUCTION).expect("components without the projector still load");
    std::fs::remove_dir_all(&dir).ok();

    let dir = temp_dir("broken");
    write_checkpoint(&dir, &cfg, &tensors(&fx, str::to_string), 3);
    // A truncated shard.
    let shard = dir.join(shard_name(1, 3));
    let bytes = std::fs::read(&shard).expect("read shard");
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).expect("truncate");
    match load(&dir, ComponentSet::ALL) {
        Err(WeightError::Corrupt { file, .. }) => assert_eq!(file, shard),
        other => panic!("expected Corrupt({}), got {other:?}", shard.display()),
    }
    std::fs::write(&shard, &bytes).expect("restore shard");
    load(&dir, ComponentSet::RECONSTRUCTION).expect("restored directory loads");

    // An index pointing at a missing shard.
    let index_path = dir.join("model.safetensors.index.json");
    let good_index = std::fs::read_to_string(&index_path).expect("read index");
    let mut index: serde_json::Value = serde_json::from_str(&good_index).expect("index json");
    index["weight_map"]["model.projector.bias"] = "model-00009-of-00009.safetensors".into();
    std::fs::write(&index_path, index.to_string()).expect("write index");
    match load(&dir, ComponentSet::ALL) {
        Err(WeightError::ShardIndex { file, reason }) => {
            assert_eq!(file, index_path);
            assert!(
                reason.contains("model-00009-of-00009.safetensors"),
                "{reason}"
            );
        }
        other => panic!("expected ShardIndex, got {other:?}"),
    }
    std::fs::write(&index_path, &good_index).expect("restore index");

    // A malformed config.json, then a well-formed one that is not a UniLIP config.
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, "{\"n_query\": 8,").expect("write config");
    match load(&dir, ComponentSet::ALL) {
        Err(WeightError::Config { file, .. }) => assert_eq!(file, config_path),
        other => panic!("expected Config, got {other:?}"),
    }
    std::fs::write(&config_path, "{\"n_query\": 8}").expect("write config");
    match load(&dir, ComponentSet::ALL) {
        Err(WeightError::Config { file, reason }) => {
            assert_eq!(file, config_path);
            assert!(reason.contains("vision_config"), "{reason}");
        }
        other => panic!("expected Config, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoint_config_presets_and_defaults() {
    let one = UnilipConfig::one_b();
    assert_eq!(
        (one.dit.num_layers, one.dit.num_attention_heads),
        (28, 36),
        "SANA-600M"
    );
    assert_eq!(one.dit.caption_channels, 2304);
    assert_eq!(
        (one.n_query, one.connect_layer, one.unilip_factor),
        (256, 6, 10.6)
    );
    assert!(
        one.text.rope_scaling.is_none(),
        "dynamic rope scaling dropped"
    );
    assert_eq!(one.scheduler, DpmSolverConfig::sana());
    assert_eq!(
        one.vae.decoder_block_out_channels,
        vec![128, 256, 512, 512, 1024, 1024]
    );
    assert_eq!(one.image_token_id, 151667);

    let three = UnilipConfig::three_b();
    assert_eq!(
        (three.dit.num_layers, three.dit.inner_dim()),
        (20, 2240),
        "SANA-1.6B"
    );
    assert_eq!((three.hidden_size(), three.unilip_factor), (1536, 9.5));

    // A released-style config.json without dit/vae/scheduler sections gets the defaults.
    let mut bare = one.to_json();
    for k in [
        "dit_config",
        "vae_config",
        "scheduler_config",
        "unilip_factor",
    ] {
        bare.as_object_mut().expect("object").remove(k);
    }
    let parsed = UnilipConfig::from_json(bare).expect("bare 1B config");
    assert_eq!(
        parsed.to_json(),
        one.to_json(),
        "defaults fill the same values"
    );

    // Serialisation round trip, and a width without a default DiT.
    let tiny = UnilipConfig::tiny();
    let text = serde_json::to_string(&tiny).expect("serialise");
    let back: UnilipConfig = serde_json::from_str(&text).expect("deserialise");
    assert_eq!(back.to_json(), tiny.to_json());
    assert_eq!(back.dit.caption_channels, 24);
    let mut no_dit = tiny.to_json();
    no_dit.as_object_mut().expect("object").remove("dit_config");
    let err = UnilipConfig::from_json(no_dit).expect_err("no default DiT for width 64");
    assert!(err.contains("dit_config"), "{err}");
}

/// A DiT whose `in_channels` is twice the latent's (`checkpoint add-source-input`) sees the edit
/// source at every sampling step: different sources give different latents, no source samples
/// as a zero one does, a source of another shape is an input error, and any other channel count
/// is refused when the model is built.
#[test]
fn a_dit_taking_the_source_samples_from_it() {
    let mut json = UnilipConfig::tiny().to_json();
    let latent = json["dit_config"]["out_channels"].as_u64().unwrap() as usize;
    json["dit_config"]["in_channels"] = (2 * latent).into();
    let config = UnilipConfig::from_json(json.clone()).expect("a source-taking DiT's config");
    let dev = Default::default();
    let (model, _) = Unilip::<B>::random(config.clone(), 3, &dev).expect("source-taking DiT");
    let cond = Condition {
        embeds: Tensor::<B, 3>::random(
            [1, 5, config.dit.caption_channels],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &dev,
        ),
        mask: Tensor::ones([1, 5], &dev),
    };
    let size = config.dit.sample_size;
    let run = |source: Option<Tensor<B, 4>>| {
        let mut opts = SampleOptions::<B>::unilip(1);
        opts.steps = 2;
        opts.source = source;
        model.sample(&cond, None, &opts, |_, _, _| Ok::<(), UnilipError>(()))
    };
    let image = |shape: [usize; 4]| {
        Tensor::<B, 4>::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), &dev)
    };
    let sampled = |source| HostTensor::from_burn(run(source).expect("samples"));
    let [a, b] = [0, 1].map(|_| sampled(Some(image([1, latent, size, size]))));
    assert_ne!(a, b, "the source reaches the DiT");
    assert_eq!(
        sampled(None),
        sampled(Some(Tensor::zeros([1, latent, size, size], &dev)))
    );
    let wrong = run(Some(image([1, latent, size / 2, size / 2])));
    assert!(
        matches!(&wrong, Err(UnilipError::Input(m)) if m.contains("source latent")),
        "{wrong:?}"
    );

    json["dit_config"]["in_channels"] = (latent + 1).into();
    let odd = UnilipConfig::from_json(json).expect("parses");
    let refused = Unilip::<B>::random(odd, 3, &dev).map(|_| ()).unwrap_err();
    assert!(refused.to_string().contains("in_channels"), "{refused}");
}
