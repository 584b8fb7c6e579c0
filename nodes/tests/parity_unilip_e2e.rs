//! End-to-end parity of the composed UniLIP pipeline against UniLIP's own code (`unilip_e2e/`):
//! the weights go through the checkpoint loader ([`Unilip::load_with_config`]), every
//! hyperparameter comes from the fixture's `config.json`, and each tensor is checked at the
//! tolerance of its `tolerance.per_group` group.

use burn::prelude::*;
use unilip_nodes::fixtures::expect_int_tensor;
use unilip_nodes::fixtures::expect_tensor as read;
use unilip_nodes::fixtures::t2i_condition;
use unilip_nodes::fixtures::unilip_config;
use unilip_nodes::fixtures::{compare, Fixture};
use unilip_nodes::models::scheduler::{DpmSolverMultistepScheduler, Schedule};
use unilip_nodes::models::unilip::{
    to_image, ComponentSet, Condition, ConditionMode, InitLatent, SampleOptions, Sampler, Unilip,
    UnilipError,
};
use unilip_nodes::weights::HostTensor;

type B = burn::backend::Flex;

fn load(fx: &Fixture) -> Unilip<B> {
    let cfg = unilip_config(fx).expect("upstream_config -> UnilipConfig");
    let tiny = &fx.config["tiny"];
    assert_eq!(
        cfg.image_token_id as u64,
        tiny["token_remap"]["img_context_tiny_id"]
            .as_u64()
            .expect("img_context_tiny_id"),
        "image_token_id"
    );
    assert_eq!(
        cfg.n_query as u64,
        tiny["n_query"].as_u64().expect("n_query")
    );
    assert_eq!(Some(cfg.unilip_factor), tiny["unilip_factor"].as_f64());
    Unilip::load_with_config(
        fx.dir.join("weights.safetensors"),
        cfg,
        ComponentSet::ALL,
        &Default::default(),
    )
    .expect("load unilip_e2e weights")
}

/// The fixture's text-to-image condition as (positive, negative) rows.
fn t2i_rows(fx: &Fixture, model: &Unilip<B>) -> (Condition<B>, Condition<B>) {
    let c = t2i_condition(fx, model);
    (c.rows(0, 1).expect("pos"), c.rows(1, 1).expect("neg"))
}

/// UniLIP's sampler settings from `tiny.sampler`, starting at `init`.
fn options(fx: &Fixture, init: Tensor<B, 4>) -> SampleOptions<B> {
    let s = &fx.config["tiny"]["sampler"];
    SampleOptions {
        sampler: Sampler::DpmSolver,
        steps: s["num_inference_steps"].as_u64().expect("steps") as usize,
        guidance_scale: s["guidance_scale"].as_f64().expect("guidance_scale") as f32,
        guidance_max_sigma: 1.0,
        init: InitLatent::Latent(init),
        source: None,
        regions: Vec::new(),
        inpaint: None,
    }
}

fn trace(fx: &Fixture, key: &str) -> HostTensor {
    read(fx.trace.as_ref().expect("trace.safetensors"), key)
}

fn check_host(fx: &Fixture, group: &str, name: &str, got: &HostTensor, want: &HostTensor) -> f64 {
    let (atol, rtol) = fx.group_tolerance(group);
    let diff = compare(name, got, want, atol, rtol).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{name}: max |diff| {diff:.3e} (atol {atol:e}, rtol {rtol:e})");
    diff
}

fn check<const D: usize>(
    fx: &Fixture,
    group: &str,
    name: &str,
    got: Tensor<B, D>,
    want: &HostTensor,
) {
    check_host(fx, group, name, &HostTensor::from_burn(got), want);
}

fn check_ints<const D: usize>(name: &str, got: Tensor<B, D, Int>, want: Tensor<B, D, Int>) {
    let got: Vec<i64> = got.to_data().iter::<i64>().collect();
    let want: Vec<i64> = want.to_data().iter::<i64>().collect();
    assert_eq!(got, want, "{name}");
}

/// Row `i` of a stacked `[n, ...]` host tensor.
fn row(t: &HostTensor, i: usize) -> HostTensor {
    let shape = t.shape[1..].to_vec();
    let n: usize = shape.iter().product();
    HostTensor {
        shape,
        data: t.data[i * n..(i + 1) * n].to_vec(),
    }
}

/// `[1, 3, h, w]` → the `[h, w, 3]` HWC layout of `generate_image`'s return value.
fn hwc(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [_, c, h, w] = x.dims();
    x.permute([0, 2, 3, 1]).reshape([h, w, c])
}

#[test]
fn parity_unilip_e2e_text_to_image() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let model = load(&fx);
    let ids = expect_int_tensor::<B, 2>(&fx.io, "t2i.input_ids");
    let mask = expect_int_tensor::<B, 2>(&fx.io, "t2i.attention_mask");
    let tr = model
        .condition_traced(ids, mask, None, ConditionMode::Dual)
        .expect("t2i condition");
    check(
        &fx,
        "llm",
        "t2i.llm.inputs_embeds",
        tr.inputs_embeds,
        &trace(&fx, "t2i.llm.inputs_embeds"),
    );
    let tr_ck = fx.trace.as_ref().expect("trace");
    check_ints(
        "t2i.llm.attention_mask",
        tr.attention_mask,
        expect_int_tensor::<B, _>(tr_ck, "t2i.llm.attention_mask"),
    );
    check_ints(
        "t2i.llm.position_ids",
        tr.position_ids,
        expect_int_tensor::<B, _>(tr_ck, "t2i.llm.position_ids"),
    );
    check(
        &fx,
        "llm",
        "t2i.llm.last_hidden_state",
        tr.llm_hidden,
        &trace(&fx, "t2i.llm.last_hidden_state"),
    );
    check(
        &fx,
        "connector",
        "t2i.connector.last_hidden_state",
        tr.connector_hidden,
        &trace(&fx, "t2i.connector.last_hidden_state"),
    );
    check(
        &fx,
        "projector",
        "t2i.projector",
        tr.condition.embeds.clone(),
        &trace(&fx, "t2i.projector"),
    );
    check_ints(
        "t2i.condition.mask",
        tr.condition.mask.clone(),
        expect_int_tensor::<B, _>(tr_ck, "t2i.llm.attention_mask"),
    );

    // Sampling: row 0 positive, row 1 negative; the DiT sees [neg, pos].
    let cond = tr.condition.rows(0, 1).expect("positive row");
    let uncond = tr.condition.rows(1, 1).expect("negative row");
    let init = read(&fx.io, "t2i.init_latent").to_burn::<B, 4>(&Default::default());
    let latents = trace(&fx, "t2i.latents");
    let mut seen = 0;
    let final_latent = model
        .sample(
            &cond,
            Some(&uncond),
            &options(&fx, init),
            |step, total, x| {
                assert_eq!(total, latents.shape[0] - 1, "step count");
                let name = format!("t2i.latents[{step}]");
                check_host(
                    &fx,
                    "latents",
                    &name,
                    &HostTensor::from_burn(x.clone()),
                    &row(&latents, step),
                );
                seen = step;
                Ok::<(), UnilipError>(())
            },
        )
        .expect("t2i sampling");
    assert_eq!(seen, latents.shape[0] - 1, "callback saw every step");
    check(
        &fx,
        "final_latent",
        "t2i.final_latent",
        final_latent.clone(),
        &read(&fx.io, "t2i.final_latent"),
    );
    check(
        &fx,
        "final_latent",
        "t2i.decoder_input",
        model.unscale(final_latent.clone()),
        &trace(&fx, "t2i.decoder_input"),
    );
    let decoded = model.decode(final_latent).expect("decode");
    check(
        &fx,
        "decoded",
        "t2i.decoded",
        decoded.clone(),
        &read(&fx.io, "t2i.decoded"),
    );
    check(
        &fx,
        "image",
        "t2i.image",
        hwc(to_image(decoded)),
        &read(&fx.io, "t2i.image"),
    );
}

#[test]
fn parity_unilip_e2e_edit() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let model = load(&fx);
    let dev = Default::default();
    let pixels = read(&fx.io, "input.pixel_values")
        .to_burn::<B, 4>(&dev)
        .narrow(0, 0, 1);
    let features = model.image_features(pixels).expect("image features");
    let want_features = row(&trace(&fx, "recon.vision.image_features"), 0);
    let got_features = HostTensor::from_burn(
        features
            .clone()
            .reshape([features.dims()[1], features.dims()[2]]),
    );
    check_host(
        &fx,
        "vision",
        "edit.image_features",
        &got_features,
        &want_features,
    );

    let ids = expect_int_tensor::<B, 2>(&fx.io, "edit.input_ids");
    let mask = expect_int_tensor::<B, 2>(&fx.io, "edit.attention_mask");
    let tr = model
        .condition_traced(
            ids.clone(),
            mask.clone(),
            Some(&features),
            ConditionMode::Dual,
        )
        .expect("edit condition");
    let tr_ck = fx.trace.as_ref().expect("trace");
    check(
        &fx,
        "llm",
        "edit.llm.inputs_embeds",
        tr.inputs_embeds,
        &trace(&fx, "edit.llm.inputs_embeds"),
    );
    check_ints(
        "edit.llm.position_ids",
        tr.position_ids,
        expect_int_tensor::<B, _>(tr_ck, "edit.llm.position_ids"),
    );
    check(
        &fx,
        "llm",
        "edit.llm.last_hidden_state",
        tr.llm_hidden,
        &trace(&fx, "edit.llm.last_hidden_state"),
    );
    check(
        &fx,
        "llm",
        "edit.connector.inputs_embeds",
        tr.connector_input,
        &trace(&fx, "edit.connector.inputs_embeds"),
    );
    check(
        &fx,
        "connector",
        "edit.connector.last_hidden_state",
        tr.connector_hidden,
        &trace(&fx, "edit.connector.last_hidden_state"),
    );
    check(
        &fx,
        "projector",
        "edit.projector",
        tr.condition.embeds,
        &trace(&fx, "edit.projector"),
    );

    // The one-call API: condition, split, CFG sampling, decode, resize.
    let init = read(&fx.io, "edit.init_latent").to_burn::<B, 4>(&dev);
    let mut steps = 0;
    let out = model
        .generate_image(
            ids,
            mask,
            Some(&features),
            ConditionMode::Dual,
            &options(&fx, init),
            |s, _, _| {
                steps = s;
                Ok::<(), UnilipError>(())
            },
        )
        .expect("edit generation");
    assert_eq!(steps, options(&fx, out.latent.clone()).steps, "edit steps");
    check(
        &fx,
        "final_latent",
        "edit.final_latent",
        out.latent,
        &read(&fx.io, "edit.final_latent"),
    );
    check(
        &fx,
        "decoded",
        "edit.decoded",
        out.decoded,
        &read(&fx.io, "edit.decoded"),
    );
    check(
        &fx,
        "image",
        "edit.image",
        hwc(out.image),
        &read(&fx.io, "edit.image"),
    );
}

#[test]
fn parity_unilip_e2e_reconstruction() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let model = load(&fx);
    let pixels = read(&fx.io, "input.pixel_values").to_burn::<B, 4>(&Default::default());
    let features = model.image_features(pixels.clone()).expect("features");
    check(
        &fx,
        "vision",
        "recon.vision.image_features",
        features,
        &trace(&fx, "recon.vision.image_features"),
    );
    let latent = model.encode_latent(pixels.clone()).expect("encode");
    check(
        &fx,
        "recon_latent",
        "recon.latent",
        latent.clone(),
        &read(&fx.io, "recon.latent"),
    );
    let decoded = model.decode_latent(latent).expect("decode");
    check(
        &fx,
        "decoded",
        "recon.decoded",
        decoded,
        &read(&fx.io, "recon.decoded"),
    );
    let again = model.reconstruct(pixels).expect("reconstruct");
    check(
        &fx,
        "decoded",
        "recon.decoded (reconstruct)",
        again,
        &read(&fx.io, "recon.decoded"),
    );
}

/// `HiddenOnly` / `QueryOnly` reuse the same LLM states as UniLIP's dual condition: the causal LLM
/// gives the prompt positions the same states without queries, and the query outputs are the
/// last `n_query` positions of the dual run.
#[test]
fn parity_unilip_e2e_condition_modes() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let model = load(&fx);
    let ids = expect_int_tensor::<B, 2>(&fx.io, "t2i.input_ids");
    let mask = expect_int_tensor::<B, 2>(&fx.io, "t2i.attention_mask");
    let [b, lt] = ids.dims();
    let n = model.config.n_query;
    let want = trace(&fx, "t2i.llm.last_hidden_state");
    let want = want.to_burn::<B, 3>(&Default::default());

    let hidden = model
        .condition_traced(ids.clone(), mask.clone(), None, ConditionMode::HiddenOnly)
        .expect("hidden-only condition");
    let want_text = HostTensor::from_burn(want.clone().narrow(1, 0, lt));
    check(
        &fx,
        "llm",
        "hidden_only.llm (prompt positions)",
        hidden.llm_hidden,
        &want_text,
    );
    assert_eq!(
        hidden.condition.embeds.dims(),
        [b, lt, model.config.dit.caption_channels]
    );
    check_ints("hidden_only.mask", hidden.condition.mask, mask.clone());

    let query = model
        .condition_traced(ids, mask, None, ConditionMode::QueryOnly)
        .expect("query-only condition");
    let want_query = HostTensor::from_burn(want.narrow(1, lt, n));
    check(
        &fx,
        "llm",
        "query_only.connector_input",
        query.connector_input,
        &want_query,
    );
    assert_eq!(
        query.condition.embeds.dims(),
        [b, n, model.config.dit.caption_channels]
    );
    check_ints(
        "query_only.mask",
        query.condition.mask,
        Tensor::ones([b, n], &Default::default()),
    );
}

/// Seeded noise is reproducible, the Euler sampler runs, and an error from the step callback
/// stops sampling and is returned.
#[test]
fn parity_unilip_e2e_sampling_options() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let model = load(&fx);
    let (pos, neg) = t2i_rows(&fx, &model);
    let noise = |seed| HostTensor::from_burn(seeded_noise(&model, seed));
    assert_eq!(noise(7), noise(7), "same seed, same noise");
    assert_ne!(noise(7), noise(8), "different seeds differ");

    let mut opts = SampleOptions::<B>::unilip(7);
    opts.steps = 4;
    opts.sampler = Sampler::Euler {
        shift: model.config.scheduler.flow_shift,
    };
    let euler = model
        .sample(&pos, Some(&neg), &opts, |_, _, _| Ok::<(), UnilipError>(()))
        .expect("euler sampling");
    let values = HostTensor::from_burn(euler);
    assert!(
        values.data.iter().all(|v| v.is_finite()),
        "euler latent is finite"
    );

    let mut calls = 0;
    let stopped = model.sample(&pos, None, &opts, |step, _, _| {
        calls += 1;
        if step == 2 {
            Err(UnilipError::Input("cancelled".into()))
        } else {
            Ok(())
        }
    });
    assert!(matches!(stopped, Err(UnilipError::Input(m)) if m == "cancelled"));
    assert_eq!(calls, 2, "sampling stops at the callback's error");
}

#[test]
fn guidance_interval_guides_only_the_low_noise_steps() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let model = load(&fx);
    let (pos, neg) = t2i_rows(&fx, &model);
    // Every step's latent, for a negative condition or none.
    let run = |max_sigma: f32, negative: Option<&Condition<B>>| {
        let mut opts = SampleOptions::<B>::unilip(3);
        opts.steps = 6;
        opts.guidance_max_sigma = max_sigma;
        let mut steps = Vec::new();
        model
            .sample(&pos, negative, &opts, |_, _, x| {
                steps.push(HostTensor::from_burn(x.clone()));
                Ok::<(), UnilipError>(())
            })
            .expect("sampling");
        steps
    };
    let unguided = run(1.0, None);
    let guided = run(1.0, Some(&neg));
    assert_ne!(unguided[0], guided[0], "CFG 4.5 moves the first step");
    // No step at σ ≤ 0: the negative condition is never used.
    assert_eq!(run(0.0, Some(&neg)), unguided);
    // DPM-Solver++ at shift 3 over 6 steps: the first steps are at σ > 0.8, the last below.
    let sigmas: Vec<f32> = step_sigmas(&model, 6);
    let cut = sigmas
        .iter()
        .position(|&s| s <= 0.8)
        .expect("a step below 0.8");
    assert!(cut > 0 && cut < 6, "{sigmas:?}");
    let interval = run(0.8, Some(&neg));
    assert_eq!(interval[..cut], unguided[..cut], "unguided above σ = 0.8");
    assert_ne!(interval[cut], unguided[cut], "guided from σ = 0.8 down");
}

/// UniLIP's DPM-Solver++ schedule of `steps` steps under the model's scheduler config.
fn dpm_schedule(model: &Unilip<B>, steps: usize) -> Schedule<i64> {
    DpmSolverMultistepScheduler::<B, 4>::new(model.config.scheduler.clone())
        .and_then(|mut s| s.set_timesteps(steps))
        .expect("schedule")
}

/// σ of each sampler step: the DiT timesteps of UniLIP's DPM-Solver++ over `num_train_timesteps`.
fn step_sigmas(model: &Unilip<B>, steps: usize) -> Vec<f32> {
    let n = model.config.scheduler.num_train_timesteps as f32;
    dpm_schedule(model, steps)
        .timesteps
        .iter()
        .map(|&t| t as f32 / n)
        .collect()
}

/// The model's seeded start noise (`InitLatent::Seed`) for one row.
fn seeded_noise(model: &Unilip<B>, seed: u64) -> Tensor<B, 4> {
    model
        .initial_latent(1, &InitLatent::Seed(seed), &Default::default())
        .expect("noise")
}

/// Image-to-image: strength 0 returns the image without a DiT pass, strength 1 is the plain run
/// from the same noise, and in between only the tail of the schedule runs, from the image mixed
/// with the noise at that step's σ.
#[test]
fn strength_runs_the_tail_of_the_schedule_from_the_noised_image() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let model = load(&fx);
    let (pos, neg) = t2i_rows(&fx, &model);
    let noise = seeded_noise(&model, 5);
    let image = seeded_noise(&model, 6);
    // Every step's (done, total) and the final latent.
    let run = |init: InitLatent<B>| {
        let mut opts = SampleOptions::<B>::unilip(0);
        opts.steps = 6;
        opts.init = init;
        let mut calls = Vec::new();
        let x = model
            .sample(&pos, Some(&neg), &opts, |done, total, _| {
                calls.push((done, total));
                Ok::<(), UnilipError>(())
            })
            .expect("sampling");
        (HostTensor::from_burn(x), calls)
    };
    let noised = |strength| InitLatent::Noised {
        image: image.clone(),
        noise: noise.clone(),
        strength,
    };
    let (kept, calls) = run(noised(0.0));
    assert!(
        kept == HostTensor::from_burn(image.clone()),
        "strength 0 keeps the image"
    );
    assert!(calls.is_empty(), "strength 0 runs no step: {calls:?}");
    let (full, calls) = run(noised(1.0));
    let plain = run(InitLatent::Latent(noise.clone())).0;
    assert!(full == plain, "strength 1 ignores the image");
    assert_eq!(calls.len(), 6);
    let (half, calls) = run(noised(0.5));
    assert_eq!(calls, vec![(1, 3), (2, 3), (3, 3)], "the last 3 of 6 steps");
    assert!(half != full && half != kept);
    // The same tail started by hand: the image noised to the σ of step 3, then the last 3 steps
    // (DPM-Solver++ restarts at first order, as it does on a fresh trajectory).
    let sigma = dpm_schedule(&model, 6).sigmas[3];
    let start = noise.clone().mul_scalar(sigma) + image.clone().mul_scalar(1.0 - sigma);
    let (same, _) = run(InitLatent::Noised {
        image: start.clone(),
        noise: start,
        strength: 0.5,
    });
    // Mixing the start with itself leaves it as it is.
    compare("strength 0.5", &same, &half, 1e-5, 1e-5).unwrap_or_else(|e| panic!("{e}"));
    let bad = InitLatent::Noised {
        image: image.clone(),
        noise: noise.clone().narrow(1, 0, 1),
        strength: 0.5,
    };
    let err = model
        .initial_latent(1, &bad, &Default::default())
        .expect_err("shape mismatch");
    assert!(matches!(err, UnilipError::Input(m) if m.contains("noise")));
}

#[test]
fn first_step_of_a_strength_rounds_down_the_steps_run() {
    let noised = |strength| InitLatent::<B>::Noised {
        image: Tensor::zeros([1, 1, 1, 1], &Default::default()),
        noise: Tensor::zeros([1, 1, 1, 1], &Default::default()),
        strength,
    };
    assert_eq!(noised(1.0).first_step(20), 0);
    assert_eq!(noised(0.8).first_step(20), 4);
    assert_eq!(
        noised(0.55).first_step(20),
        9,
        "11 steps run: 20 · 0.55 = 11"
    );
    assert_eq!(noised(0.04).first_step(20), 20, "under one step: none run");
    assert_eq!(noised(0.0).first_step(20), 20);
    assert_eq!(InitLatent::<B>::Seed(1).first_step(20), 0);
}
