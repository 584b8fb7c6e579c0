//! Parity of the flow schedulers against diffusers (`scheduler_flow_euler/`, `scheduler_dpm_flow/`),
//! the e2e sampler tables, a full 20-step DPM-Solver++ + CFG run on the e2e DiT (`unilip_e2e/`),
//! and the training helpers (tables for SANA's config, logit-normal sampling, `add_noise`).

use burn::prelude::*;
use unilip_nodes::fixtures::expect_tensor as read;
use unilip_nodes::fixtures::{compare, Fixture};
use unilip_nodes::models::sana::{PosEmbed, SanaConfig, SanaTransformer};
use unilip_nodes::models::scheduler::{
    add_noise, cfg, velocity_target, DpmSolverConfig, DpmSolverMultistepScheduler,
    FlowMatchEulerConfig, FlowMatchEulerScheduler,
};
use unilip_nodes::weights::{Checkpoint, HostTensor, VarBuilder};

type B = burn::backend::Flex;

fn check_host(name: &str, got: &HostTensor, want: &HostTensor, tol: (f64, f64)) -> f64 {
    let diff = compare(name, got, want, tol.0, tol.1).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{name}: max |diff| {diff:.3e}");
    diff
}

fn check<const D: usize>(name: &str, got: Tensor<B, D>, want: &HostTensor, tol: (f64, f64)) -> f64 {
    check_host(name, &HostTensor::from_burn(got), want, tol)
}

fn vec1(data: Vec<f32>) -> HostTensor {
    HostTensor {
        shape: vec![data.len()],
        data,
    }
}

/// Row `i` of a stacked `[n, ...]` tensor as a `D`-dim host tensor.
fn row(t: &HostTensor, i: usize) -> HostTensor {
    let shape = t.shape[1..].to_vec();
    let n: usize = shape.iter().product();
    HostTensor {
        shape,
        data: t.data[i * n..(i + 1) * n].to_vec(),
    }
}

/// The fixtures' fixed "model": `v = einsum('oc,bchw->bohw', W, x) + (t/1000)·b`.
struct LinearModel {
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
}

impl LinearModel {
    fn load(io: &Checkpoint) -> Self {
        let dev = Default::default();
        Self {
            w: read(io, "model.W").to_burn(&dev),
            b: read(io, "model.b").to_burn(&dev),
        }
    }

    fn forward(&self, x: Tensor<B, 4>, t: f32) -> Tensor<B, 4> {
        let [o, _] = self.w.dims();
        let y = x
            .permute([0, 2, 3, 1])
            .matmul(self.w.clone().transpose().unsqueeze())
            .permute([0, 3, 1, 2]);
        y + self.b.clone().mul_scalar(t / 1000.0).reshape([1, o, 1, 1])
    }
}

/// `numpy.linspace(start, stop, n)`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            if i + 1 == n {
                stop
            } else {
                i as f64 * step + start
            }
        })
        .collect()
}

/// Runs `model` through a schedule with `step`, comparing every model output and latent.
fn run_loop(
    prefix: &str,
    io: &Checkpoint,
    timesteps: &[f32],
    tol: (f64, f64),
    mut step: impl FnMut(Tensor<B, 4>, usize, Tensor<B, 4>) -> Tensor<B, 4>,
) {
    let dev = Default::default();
    let model = LinearModel::load(io);
    let latents = read(io, &format!("{prefix}latents"));
    let outputs = read(io, &format!("{prefix}model_outputs"));
    let mut x: Tensor<B, 4> = read(io, "x_init").to_burn(&dev);
    check(
        &format!("{prefix}latents[0]"),
        x.clone(),
        &row(&latents, 0),
        tol,
    );
    for (i, &t) in timesteps.iter().enumerate() {
        let v = model.forward(x.clone(), t);
        check(
            &format!("{prefix}model_outputs[{i}]"),
            v.clone(),
            &row(&outputs, i),
            tol,
        );
        x = step(v, i, x);
        check(
            &format!("{prefix}latents[{}]", i + 1),
            x.clone(),
            &row(&latents, i + 1),
            tol,
        );
    }
}

#[test]
fn parity_flow_euler_default_and_unilip_sigmas() {
    let Some(fx) = Fixture::open("scheduler_flow_euler").expect("open scheduler_flow_euler") else {
        return;
    };
    let config: FlowMatchEulerConfig =
        serde_json::from_value(fx.config["upstream_config"].clone()).expect("upstream_config");
    let n = fx.config["tiny"]["num_inference_steps"]
        .as_u64()
        .expect("tiny.num_inference_steps") as usize;
    let tol = fx.tolerance();
    let mut sched = FlowMatchEulerScheduler::new(config).expect("supported config");

    for case in ["default", "unilip_sigmas"] {
        let schedule = if case == "default" {
            sched.set_timesteps(n)
        } else {
            sched.set_timesteps_with_sigmas(&linspace(1.0, 1.0 / n as f64, n))
        }
        .expect("schedule");
        let p = format!("{case}.");
        check_host(
            &format!("{p}timesteps"),
            &vec1(schedule.timesteps.clone()),
            &read(&fx.io, &format!("{p}timesteps")),
            tol,
        );
        check_host(
            &format!("{p}sigmas"),
            &vec1(schedule.sigmas.clone()),
            &read(&fx.io, &format!("{p}sigmas")),
            tol,
        );
        run_loop(&p, &fx.io, &schedule.timesteps, tol, |v, i, x| {
            sched.step(v, i, x).expect("euler step")
        });
    }
    assert!(sched
        .step(
            Tensor::<B, 1>::zeros([1], &Default::default()),
            n,
            Tensor::zeros([1], &Default::default())
        )
        .is_err());
}

#[test]
fn parity_dpm_flow_20_steps() {
    let Some(fx) = Fixture::open("scheduler_dpm_flow").expect("open scheduler_dpm_flow") else {
        return;
    };
    let config: DpmSolverConfig =
        serde_json::from_value(fx.config["upstream_config"].clone()).expect("upstream_config");
    let n = fx.config["tiny"]["num_inference_steps"]
        .as_u64()
        .expect("tiny.num_inference_steps") as usize;
    let tol = fx.tolerance();
    let mut sched = DpmSolverMultistepScheduler::<B, 4>::new(config).expect("supported config");
    let schedule = sched.set_timesteps(n).expect("schedule");
    let (_, want_ts) = fx.io.read_i64("timesteps").expect("timesteps");
    assert_eq!(schedule.timesteps, want_ts, "timesteps");
    check_host(
        "sigmas",
        &vec1(schedule.sigmas.clone()),
        &read(&fx.io, "sigmas"),
        tol,
    );
    let ts: Vec<f32> = schedule.timesteps.iter().map(|&t| t as f32).collect();
    run_loop("", &fx.io, &ts, tol, |v, i, x| {
        sched.step(v, i, x).expect("dpm step")
    });
}

#[test]
fn parity_unilip_e2e_sampler_tables() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let config: DpmSolverConfig =
        serde_json::from_value(fx.config["upstream_config"]["scheduler"].clone())
            .expect("upstream_config.scheduler");
    assert_eq!(
        config,
        DpmSolverConfig::sana(),
        "the e2e sampler is SANA's config"
    );
    let n = fx.config["tiny"]["sampler"]["num_inference_steps"]
        .as_u64()
        .expect("steps") as usize;
    let mut sched = DpmSolverMultistepScheduler::<B, 4>::new(config).expect("supported config");
    let schedule = sched.set_timesteps(n).expect("schedule");
    let (_, want_ts) = fx
        .io
        .read_i64("sampler.timesteps")
        .expect("sampler.timesteps");
    assert_eq!(schedule.timesteps, want_ts, "sampler.timesteps");
    check_host(
        "sampler.sigmas",
        &vec1(schedule.sigmas),
        &read(&fx.io, "sampler.sigmas"),
        (0.0, 0.0),
    );
}

#[test]
fn parity_unilip_e2e_sampling_20_steps_cfg() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let dev = Default::default();
    let tiny = &fx.config["tiny"]["sampler"];
    let n = tiny["num_inference_steps"].as_u64().expect("steps") as usize;
    let scale = tiny["guidance_scale"].as_f64().expect("guidance_scale") as f32;
    let dit_cfg: SanaConfig = serde_json::from_value(fx.config["upstream_config"]["dit"].clone())
        .expect("upstream_config.dit");
    let vb = VarBuilder::<B>::new(fx.weights.clone(), &dev)
        .pp("model")
        .pp("dit");
    let dit = SanaTransformer::load(&dit_cfg, &vb)
        .expect("load model.dit")
        .with_pos_embed(PosEmbed::SinCosBf16);
    let sched_cfg: DpmSolverConfig =
        serde_json::from_value(fx.config["upstream_config"]["scheduler"].clone())
            .expect("scheduler");
    let mut sched = DpmSolverMultistepScheduler::<B, 4>::new(sched_cfg).expect("supported config");
    let schedule = sched.set_timesteps(n).expect("schedule");

    let trace = fx.trace.as_ref().expect("unilip_e2e trace.safetensors");
    let proj: Tensor<B, 3> = read(trace, "t2i.projector").to_burn(&dev);
    let caption = Tensor::cat(vec![proj.clone().narrow(0, 1, 1), proj.narrow(0, 0, 1)], 0);
    let (mshape, mdata) = trace
        .read_i64("t2i.dit.encoder_attention_mask")
        .expect("mask");
    let mask = Tensor::<B, 2>::from_data(
        TensorData::new(mdata.iter().map(|&v| v as f32).collect::<Vec<_>>(), mshape),
        &dev,
    );

    let latents = read(trace, "t2i.latents");
    let tol = fx.group_tolerance("latents");
    let mut x: Tensor<B, 4> = read(&fx.io, "t2i.init_latent").to_burn(&dev);
    check("t2i.latents[0]", x.clone(), &row(&latents, 0), tol);
    for (i, &t) in schedule.timesteps.iter().enumerate() {
        let input = Tensor::cat(vec![x.clone(), x.clone()], 0);
        let tt = Tensor::<B, 1>::from_data(TensorData::new(vec![t as f32; 2], [2]), &dev);
        let v = dit.forward(input, tt, caption.clone(), mask.clone());
        let guided = cfg(v.clone().narrow(0, 0, 1), v.narrow(0, 1, 1), scale);
        x = sched.step(guided, i, x).expect("dpm step");
        check(
            &format!("t2i.latents[{}]", i + 1),
            x.clone(),
            &row(&latents, i + 1),
            tol,
        );
    }
    let tol = fx.group_tolerance("final_latent");
    check(
        "t2i.final_latent",
        x,
        &read(&fx.io, "t2i.final_latent"),
        tol,
    );
}

#[test]
fn parity_training_helpers() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("open unilip_e2e") else {
        return;
    };
    let dev = Default::default();
    // UniLIP builds its training scheduler from SANA's DPM config, which spells the shift
    // `flow_shift`: FlowMatchEuler ignores it and trains with shift 1 (spec §2.8).
    let text = fx.config["upstream_config"]["scheduler"]
        .to_string()
        .replace("\"-inf\"", "-Infinity");
    let config = FlowMatchEulerConfig::from_json_str(&text).expect("python-style json");
    assert_eq!(
        config,
        FlowMatchEulerConfig::default(),
        "SANA config read as FlowMatchEuler"
    );
    let dpm = DpmSolverConfig::from_json_str(&text).expect("python-style json");
    assert_eq!(
        dpm,
        DpmSolverConfig::sana(),
        "SANA config read as DPM-Solver"
    );

    let sched = FlowMatchEulerScheduler::new(config).expect("supported config");
    let n = sched.config().num_train_timesteps;
    assert_eq!(sched.train_timesteps().len(), n, "train_timesteps length");
    // torch: sigmas = arange(N, 0, -1) / N and timesteps = sigmas * N, both in f32 (so e.g.
    // index 489 gives 510.99997, not 511).
    for (i, (&t, &s)) in sched
        .train_timesteps()
        .iter()
        .zip(sched.train_sigmas())
        .enumerate()
    {
        assert_eq!(s, (n - i) as f32 / n as f32, "train_sigmas[{i}]");
        assert_eq!(t, s * n as f32, "train_timesteps[{i}]");
        assert!(
            (t - (n - i) as f32).abs() < 1e-4,
            "train_timesteps[{i}] = {t}"
        );
    }

    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let draw = sched.sample_training(512, 0.0, 1.0, &mut rng);
    assert!(draw.indices.iter().all(|&i| i < n), "indices in range");
    let mean = draw.indices.iter().sum::<usize>() as f64 / 512.0;
    assert!(
        (mean - n as f64 / 2.0).abs() < n as f64 * 0.05,
        "logit-normal indices centred: mean {mean}"
    );
    for (k, &i) in draw.indices.iter().enumerate() {
        assert_eq!(
            draw.timesteps[k],
            sched.train_timesteps()[i],
            "training timestep {k}"
        );
        assert_eq!(
            draw.sigmas[k],
            sched.train_sigmas()[i],
            "training sigma {k}"
        );
    }
    // The draw indexes the descending table, as diffusers' training scripts do: a positive
    // logit mean trains at less noise, a negative one at more.
    let mut mean_sigma = |m: f64| {
        let d = sched.sample_training(512, m, 1.0, &mut rng);
        d.sigmas.iter().sum::<f32>() / 512.0
    };
    let (less, more) = (mean_sigma(1.5), mean_sigma(-1.5));
    assert!(
        less < 0.3 && more > 0.7,
        "σ at m = 1.5: {less}, m = -1.5: {more}"
    );

    let x0 = Tensor::<B, 2>::from_data([[1.0, 2.0], [3.0, 4.0]], &dev);
    let eps = Tensor::<B, 2>::from_data([[0.5, -1.0], [2.0, 0.0]], &dev);
    let sig = Tensor::<B, 1>::from_data([0.25, 1.0], &dev);
    let xt = add_noise(x0.clone(), eps.clone(), sig);
    let want = HostTensor {
        shape: vec![2, 2],
        data: vec![0.875, 1.25, 2.0, 0.0],
    };
    check("add_noise", xt, &want, (1e-7, 0.0));
    let want = HostTensor {
        shape: vec![2, 2],
        data: vec![-0.5, -3.0, -1.0, -4.0],
    };
    check(
        "velocity_target",
        velocity_target(x0.clone(), eps.clone()),
        &want,
        (0.0, 0.0),
    );
    let want = HostTensor {
        shape: vec![2, 2],
        data: vec![-1.25, -11.5, -1.5, -14.0],
    };
    check("cfg", cfg(x0, eps, 4.5), &want, (1e-6, 0.0));
}
