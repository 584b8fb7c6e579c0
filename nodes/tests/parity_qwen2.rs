//! Parity of the Qwen2 port against transformers: the `qwen2` fixture (causal, padded, bidir
//! cases, RoPE table) and the UniLIP LLM + `llm_connector` in `unilip_e2e`. Also checks that
//! KV-cached generation reproduces full recomputation.

use std::sync::Arc;

use burn::prelude::*;
use serde_json::Value;
use unilip_nodes::fixtures::{compare, Fixture};
use unilip_nodes::models::qwen2::{
    bidirectional_mask, position_ids_from_mask, AttentionMask, GenerationConfig, KvCache,
    Qwen2Config, Qwen2ForCausalLM, Qwen2Model, Sampling,
};
use unilip_nodes::weights::{Checkpoint, HostTensor, VarBuilder};

type B = burn::backend::Flex;

fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

/// `(atol, rtol)` from a `tolerance` object (`recommended_*`, else `atol`/`rtol`).
fn tolerance(t: &Value, what: &str) -> (f64, f64) {
    let get = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| t.get(*n).and_then(Value::as_f64))
            .unwrap_or_else(|| panic!("{what}: tolerance has none of {names:?}"))
    };
    (
        get(["recommended_atol", "atol"]),
        get(["recommended_rtol", "rtol"]),
    )
}

fn float(ck: &Checkpoint, key: &str) -> HostTensor {
    ck.read(key).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn int2(ck: &Checkpoint, key: &str) -> Tensor<B, 2, Int> {
    let (shape, data) = ck.read_i64(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    Tensor::from_data(TensorData::new(data, shape), &dev())
}

fn check<const D: usize>(name: &str, got: Tensor<B, D>, want: &HostTensor, tol: (f64, f64)) {
    let diff = compare(name, &HostTensor::from_burn(got), want, tol.0, tol.1)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{name}: max |diff| {diff:.3e}");
}

fn config(v: &Value, what: &str) -> Qwen2Config {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The first object inside `v` (depth first) whose `model_type` is `qwen2`.
fn find_qwen2(v: &Value) -> Option<&Value> {
    match v {
        Value::Object(m) if m.get("model_type").and_then(Value::as_str) == Some("qwen2") => Some(v),
        Value::Object(m) => m.values().find_map(find_qwen2),
        Value::Array(a) => a.iter().find_map(find_qwen2),
        _ => None,
    }
}

fn load(fx: &Fixture, cfg: &Qwen2Config, prefix: &str) -> Qwen2Model<B> {
    let vb = VarBuilder::<B>::new(Arc::clone(&fx.weights), &dev()).pp(prefix);
    Qwen2Model::load(cfg, &vb).unwrap_or_else(|e| panic!("loading `{prefix}`: {e}"))
}

/// Runs one `qwen2` case and compares every layer, the norm and the final output.
fn qwen2_case(
    fx: &Fixture,
    model: &Qwen2Model<B>,
    case: &str,
    x: Tensor<B, 3>,
    mask: AttentionMask<B>,
    pos: Option<Tensor<B, 2, Int>>,
) {
    let tol = tolerance(&fx.config["tolerance"], "qwen2");
    let trace = fx
        .trace
        .as_ref()
        .expect("qwen2 fixture has trace.safetensors");
    let out = model.forward_traced(x, &mask, pos).expect("forward");
    assert_eq!(out.layers.len(), model.num_layers());
    for (i, layer) in out.layers.into_iter().enumerate() {
        let key = format!("{case}.layers.{i}");
        check(&key, layer, &float(trace, &key), tol);
    }
    check(
        &format!("{case}.norm"),
        out.last_hidden_state.clone(),
        &float(trace, &format!("{case}.norm")),
        tol,
    );
    let key = format!("{case}.last_hidden_state");
    check(&key, out.last_hidden_state, &float(&fx.io, &key), tol);
}

fn qwen2_fixture() -> Option<(Fixture, Qwen2Config, Qwen2Model<B>)> {
    let fx = Fixture::open("qwen2").expect("qwen2 fixture")?;
    let cfg = config(&fx.config["upstream_config"], "qwen2 upstream_config");
    let model = load(&fx, &cfg, "");
    assert_eq!(
        model.num_layers(),
        cfg.num_hidden_layers,
        "qwen2: layers detected"
    );
    Some((fx, cfg, model))
}

#[test]
fn parity_qwen2_rope_inv_freq() {
    let Some((fx, _, model)) = qwen2_fixture() else {
        return;
    };
    let tol = tolerance(&fx.config["tolerance"], "qwen2");
    check(
        "rope.inv_freq",
        model.rotary_emb.inv_freq.clone(),
        &float(&fx.io, "rope.inv_freq"),
        tol,
    );
}

#[test]
fn parity_qwen2_causal() {
    let Some((fx, _, model)) = qwen2_fixture() else {
        return;
    };
    let tol = tolerance(&fx.config["tolerance"], "qwen2");
    let ids = int2(&fx.io, "causal.input_ids");
    let trace = fx.trace.as_ref().expect("trace");
    check(
        "causal.embed_tokens",
        model.embed(ids.clone()).expect("embed"),
        &float(trace, "causal.embed_tokens"),
        tol,
    );
    let x = model.embed(ids.clone()).expect("embed");
    qwen2_case(&fx, &model, "causal", x, AttentionMask::Causal(None), None);
    // forward_ids is embed + forward.
    let via_ids = model
        .forward_ids(ids, &AttentionMask::Causal(None), None)
        .expect("forward_ids");
    check(
        "causal.last_hidden_state (forward_ids)",
        via_ids,
        &float(&fx.io, "causal.last_hidden_state"),
        tol,
    );
}

#[test]
fn parity_qwen2_padded() {
    let Some((fx, _, model)) = qwen2_fixture() else {
        return;
    };
    let mask = int2(&fx.io, "padded.attention_mask");
    let pos = int2(&fx.io, "padded.position_ids");
    let derived = position_ids_from_mask(mask.clone());
    assert_eq!(
        derived.to_data().convert::<i64>(),
        pos.to_data().convert::<i64>(),
        "padded.position_ids"
    );
    let x = float(&fx.io, "padded.inputs_embeds").to_burn::<B, 3>(&dev());
    qwen2_case(
        &fx,
        &model,
        "padded",
        x,
        AttentionMask::Causal(Some(mask)),
        Some(pos),
    );
}

#[test]
fn parity_qwen2_bidir() {
    let Some((fx, _, model)) = qwen2_fixture() else {
        return;
    };
    let mask2d = int2(&fx.io, "padded.attention_mask");
    let mask4d = float(&fx.io, "bidir.attention_mask_4d");
    check(
        "bidir.attention_mask_4d",
        bidirectional_mask(mask2d),
        &mask4d,
        (0.0, 0.0),
    );
    let x = float(&fx.io, "padded.inputs_embeds").to_burn::<B, 3>(&dev());
    let pos = int2(&fx.io, "padded.position_ids");
    qwen2_case(
        &fx,
        &model,
        "bidir",
        x,
        AttentionMask::Additive(mask4d.to_burn(&dev())),
        Some(pos),
    );
}

/// The LLM config inside the e2e fixture's `upstream_config`, the per-group tolerance and rtol.
fn e2e() -> Option<(Fixture, Qwen2Config)> {
    let fx = Fixture::open("unilip_e2e").expect("unilip_e2e fixture")?;
    let llm = find_qwen2(&fx.config["upstream_config"]).expect("a qwen2 config in upstream_config");
    let cfg = config(llm, "unilip_e2e qwen2 config");
    Some((fx, cfg))
}

fn e2e_tol(fx: &Fixture, group: &str) -> (f64, f64) {
    let t = &fx.config["tolerance"];
    let atol = t["per_group"][group]["recommended_atol"]
        .as_f64()
        .unwrap_or_else(|| panic!("tolerance.per_group.{group}.recommended_atol"));
    (atol, tolerance(t, "unilip_e2e").1)
}

#[test]
fn parity_qwen2_e2e_llm() {
    let Some((fx, cfg)) = e2e() else { return };
    let trace = fx.trace.as_ref().expect("trace");
    let model = load(&fx, &cfg, "model.language_model");
    assert_eq!(
        model.num_layers(),
        cfg.num_hidden_layers,
        "language_model layers"
    );
    let tol = e2e_tol(&fx, "llm");
    for run in ["t2i", "edit"] {
        let x = float(trace, &format!("{run}.llm.inputs_embeds")).to_burn::<B, 3>(&dev());
        let mask = int2(trace, &format!("{run}.llm.attention_mask"));
        let pos = int2(trace, &format!("{run}.llm.position_ids"));
        let derived = position_ids_from_mask(mask.clone());
        assert_eq!(
            derived.to_data().convert::<i64>(),
            pos.to_data().convert::<i64>(),
            "{run}.llm.position_ids"
        );
        let out = model
            .forward(x, &AttentionMask::Causal(Some(mask)), Some(pos))
            .expect("llm forward");
        let key = format!("{run}.llm.last_hidden_state");
        check(&key, out, &float(trace, &key), tol);
    }
}

#[test]
fn parity_qwen2_e2e_connector() {
    let Some((fx, cfg)) = e2e() else { return };
    let trace = fx.trace.as_ref().expect("trace");
    let conn = load(&fx, &cfg, "model.llm_connector");
    assert!(conn.embed_tokens.is_none(), "connector has no embed_tokens");
    let k = fx.config["upstream_config"]["unilip"]["connect_layer"].as_u64();
    assert_eq!(
        Some(conn.num_layers() as u64),
        k,
        "connector layers detected vs connect_layer"
    );
    let tol = e2e_tol(&fx, "connector");
    for (run, input) in [
        ("t2i", "t2i.llm.last_hidden_state"),
        ("edit", "edit.connector.inputs_embeds"),
    ] {
        let x = float(trace, input).to_burn::<B, 3>(&dev());
        let mask2d = int2(trace, &format!("{run}.llm.attention_mask"));
        let pos = int2(trace, &format!("{run}.llm.position_ids"));
        let key4d = format!("{run}.connector.attention_mask_4d");
        let mask4d = float(trace, &key4d);
        check(&key4d, bidirectional_mask(mask2d), &mask4d, (0.0, 0.0));
        let out = conn
            .forward(
                x,
                &AttentionMask::Additive(mask4d.to_burn(&dev())),
                Some(pos),
            )
            .expect("connector forward");
        let key = format!("{run}.connector.last_hidden_state");
        check(&key, out, &float(trace, &key), tol);
    }
    let ids = int2(&fx.io, "t2i.input_ids");
    assert!(conn.embed(ids).is_err(), "connector must refuse token ids");
}

fn greedy(n: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: n,
        sampling: Sampling::Greedy,
        eos_token_ids: Vec::new(),
        seed: 0,
        output_logits: true,
    }
}

/// Cached generation vs full recomputation, determinism, nucleus edge case, left padding, eos.
fn generation_checks(lm: &Qwen2ForCausalLM<B>, ids: Tensor<B, 2, Int>, what: &str) {
    let tol = (1e-4, 1e-4);
    let [b, s] = ids.dims();
    let n = 6;
    let out = lm
        .generate(
            lm.model.embed(ids.clone()).expect("embed"),
            None,
            &greedy(n),
        )
        .expect("generate");
    assert_eq!(out.logits.len(), n, "{what}: steps");
    let gen: Vec<i64> = out.tokens.iter().flatten().map(|&t| t as i64).collect();
    let gen = Tensor::<B, 2, Int>::from_data(TensorData::new(gen, [b, n]), &dev());
    for (t, step) in out.logits.iter().enumerate() {
        let seq = if t == 0 {
            ids.clone()
        } else {
            Tensor::cat(vec![ids.clone(), gen.clone().narrow(1, 0, t)], 1)
        };
        let h = lm
            .model
            .forward_ids(seq, &AttentionMask::Causal(None), None)
            .expect("full forward");
        let full = lm
            .logits(h.narrow(1, s + t - 1, 1))
            .expect("logits")
            .reshape([b, step.shape[1]]);
        check(
            &format!("{what}: cached vs full logits, step {t}"),
            full,
            step,
            tol,
        );
    }
    let again = lm
        .generate(
            lm.model.embed(ids.clone()).expect("embed"),
            None,
            &greedy(n),
        )
        .expect("generate");
    assert_eq!(
        out.tokens, again.tokens,
        "{what}: greedy decoding is deterministic"
    );

    let sample = |seed, top_p| GenerationConfig {
        sampling: Sampling::Sample {
            temperature: 0.8,
            top_p,
        },
        seed,
        output_logits: false,
        ..greedy(n)
    };
    let x = || lm.model.embed(ids.clone()).expect("embed");
    let s1 = lm.generate(x(), None, &sample(7, 0.9)).expect("sample");
    let s2 = lm.generate(x(), None, &sample(7, 0.9)).expect("sample");
    assert_eq!(
        s1.tokens, s2.tokens,
        "{what}: seeded sampling is reproducible"
    );
    let nucleus = lm.generate(x(), None, &sample(3, 1e-9)).expect("sample");
    assert_eq!(
        nucleus.tokens, out.tokens,
        "{what}: top_p -> 0 keeps only the argmax"
    );
    let bad = GenerationConfig {
        sampling: Sampling::Sample {
            temperature: 0.0,
            top_p: 0.9,
        },
        ..greedy(1)
    };
    assert!(
        lm.generate(x(), None, &bad).is_err(),
        "{what}: temperature 0 rejected"
    );

    // Row 1 left-padded by 2 (its first two tokens dropped) vs the same prompt alone.
    let short = ids.clone().slice(s![1..2, 2..]);
    let padded = Tensor::cat(vec![Tensor::zeros([1, 2], &dev()), short.clone()], 1);
    let batch = Tensor::cat(vec![ids.clone().slice(s![0..1, ..]), padded], 0);
    let mask = Tensor::cat(
        vec![
            Tensor::ones([1, s], &dev()),
            Tensor::cat(
                vec![
                    Tensor::zeros([1, 2], &dev()),
                    Tensor::ones([1, s - 2], &dev()),
                ],
                1,
            ),
        ],
        0,
    );
    let pb = lm
        .generate(
            lm.model.embed(batch).expect("embed"),
            Some(mask),
            &greedy(n),
        )
        .expect("padded generate");
    let alone = lm
        .generate(lm.model.embed(short).expect("embed"), None, &greedy(n))
        .expect("alone");
    for (t, (a, p)) in alone.logits.iter().zip(&pb.logits).enumerate() {
        let row = HostTensor {
            shape: vec![1, a.shape[1]],
            data: p.data[a.shape[1]..].to_vec(),
        };
        compare(
            &format!("{what}: left-padded row, step {t}"),
            &row,
            a,
            tol.0,
            tol.1,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        pb.tokens[0], out.tokens[0],
        "{what}: unpadded row unchanged by batching"
    );

    // Stop on eos: row 0's first greedy token ends row 0 at once.
    let eos = GenerationConfig {
        eos_token_ids: vec![out.tokens[0][0]],
        ..greedy(n)
    };
    let stopped = lm.generate(x(), None, &eos).expect("eos");
    assert_eq!(
        stopped.tokens[0],
        vec![out.tokens[0][0]],
        "{what}: eos stops the row"
    );
}

#[test]
fn parity_qwen2_kv_cache_generation() {
    if let Some((fx, cfg, _)) = qwen2_fixture() {
        let vb = VarBuilder::<B>::new(Arc::clone(&fx.weights), &dev());
        let lm = Qwen2ForCausalLM::load(&cfg, &vb, &vb.pp("lm_head")).expect("tied lm");
        assert!(
            lm.lm_head.is_none() == cfg.tie_word_embeddings,
            "qwen2: tied lm_head"
        );
        generation_checks(&lm, int2(&fx.io, "causal.input_ids"), "qwen2 (tied)");
        // A cache fed one token at a time equals one full pass.
        let x = lm
            .model
            .embed(int2(&fx.io, "causal.input_ids"))
            .expect("embed");
        let full = lm
            .model
            .forward(x.clone(), &AttentionMask::Causal(None), None)
            .expect("full");
        let mut cache = KvCache::default();
        let steps: Vec<_> = (0..x.dims()[1])
            .map(|t| {
                lm.model
                    .forward_cached(
                        x.clone().narrow(1, t, 1),
                        &AttentionMask::Causal(None),
                        None,
                        &mut cache,
                    )
                    .expect("step")
            })
            .collect();
        assert_eq!(cache.seq_len(), x.dims()[1]);
        check(
            "qwen2: token-by-token cache vs full",
            Tensor::cat(steps, 1),
            &HostTensor::from_burn(full),
            (1e-4, 1e-4),
        );
    }
    if let Some((fx, cfg)) = e2e() {
        let vb = VarBuilder::<B>::new(Arc::clone(&fx.weights), &dev());
        let lm = Qwen2ForCausalLM::load(&cfg, &vb.pp("model.language_model"), &vb.pp("lm_head"))
            .expect("untied lm");
        assert!(lm.lm_head.is_some(), "unilip: untied lm_head");
        let ids = int2(&fx.io, "t2i.input_ids").slice(s![0..1, ..]);
        let ids = Tensor::cat(vec![ids.clone(), ids], 0);
        generation_checks(&lm, ids, "unilip llm (untied)");
    }
}
