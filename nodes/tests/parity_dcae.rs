//! Parity of the DC-AE decoder against diffusers (`dcae_decoder/`) and against UniLIP's own
//! decoder call inside the end-to-end fixture (`unilip_e2e/`).

use std::collections::BTreeSet;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use unilip_nodes::fixtures::expect_tensor as read;
use unilip_nodes::fixtures::{compare, Fixture};
use unilip_nodes::models::dcae::{DcAeConfig, DcAeDecoder};
use unilip_nodes::weights::{Checkpoint, HostTensor, VarBuilder};

type B = burn::backend::Flex;

/// `(atol, rtol)` for one check.
type Tol = (f64, f64);

fn number(v: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or_else(|| panic!("config.json has no number at {}", path.join(".")))
}

fn load(fx: &Fixture, cfg_path: &[&str], prefix: &str) -> DcAeDecoder<B> {
    let cfg_json = cfg_path.iter().fold(&fx.config, |v, k| &v[*k]).clone();
    let cfg: DcAeConfig = serde_json::from_value(cfg_json).expect("DC-AE config parses");
    let vb = VarBuilder::<B>::new(fx.weights.clone(), &Default::default()).pp(prefix);
    DcAeDecoder::load(&cfg, &vb).expect("DC-AE decoder loads")
}

fn check(name: &str, got: Tensor<B, 4>, want: &HostTensor, (atol, rtol): Tol) {
    let got = HostTensor::from_burn(got);
    match compare(name, &got, want, atol, rtol) {
        Ok(d) => eprintln!("{name}: max |diff| {d:.3e}"),
        Err(msg) => panic!("{msg}"),
    }
}

/// Runs the decoder on `input`, comparing the output and the named trace tensors
/// (`{trace_prefix}conv_in`, `…up_blocks.{s}`, `…norm_out` where present).
fn run_and_check(
    dec: &DcAeDecoder<B>,
    input: &HostTensor,
    want: (&str, &HostTensor),
    trace: Option<(&Checkpoint, &str)>,
    tol: Tol,
) {
    let t = dec.forward_trace(input.to_burn::<B, 4>(&Default::default()));
    if let Some((ck, prefix)) = trace {
        let mut stages = vec![("conv_in".to_string(), t.conv_in.clone())];
        for (s, x) in &t.up_blocks {
            stages.push((format!("up_blocks.{s}"), x.clone()));
        }
        stages.push(("norm_out".to_string(), t.norm_out.clone()));
        let mut checked = 0;
        for (name, x) in stages {
            let key = format!("{prefix}{name}");
            if ck.contains(&key) {
                check(&key, x, &read(ck, &key), tol);
                checked += 1;
            }
        }
        assert!(
            checked > dec.up_blocks.len(),
            "trace {prefix}*: only {checked} tensors found"
        );
    }
    check(want.0, t.sample, want.1, tol);
}

/// Collects parameter paths, leaving out enum variant names (`up_blocks.3.0.Vit.attn…` →
/// `up_blocks.3.0.attn…`), i.e. the paths burn-store uses with `skip_enum_variants`.
#[derive(Default)]
struct Paths {
    stack: Vec<Option<String>>,
    paths: BTreeSet<String>,
}

impl ModuleVisitor<B> for Paths {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        let variant = container_type.starts_with("Enum:");
        self.stack.push((!variant).then(|| name.to_string()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<B, D>>) {
        let path: Vec<&str> = self.stack.iter().flatten().map(String::as_str).collect();
        self.paths.insert(path.join("."));
    }
}

#[test]
fn parity_dcae_decoder() {
    let Some(fx) = Fixture::open("dcae_decoder").expect("fixture opens") else {
        return;
    };
    let tol = (
        number(&fx.config, &["tolerance", "recommended_atol"]),
        number(&fx.config, &["tolerance", "recommended_rtol"]),
    );
    let dec = load(&fx, &["upstream_config"], "decoder");
    let latent = read(&fx.io, "latent");
    let sample = read(&fx.io, "sample");
    assert_eq!(
        sample.shape[2],
        latent.shape[2] * dec.upsample_factor(),
        "upsample factor vs fixture sample height"
    );
    let trace = fx
        .trace
        .as_ref()
        .expect("dcae_decoder has trace.safetensors");
    run_and_check(&dec, &latent, ("sample", &sample), Some((trace, "")), tol);

    // The module tree is the checkpoint key tree.
    let mut visitor = Paths::default();
    dec.visit(&mut visitor);
    let keys: BTreeSet<String> = fx
        .weights
        .keys()
        .iter()
        .filter_map(|k| k.strip_prefix("decoder."))
        .map(str::to_string)
        .collect();
    assert_eq!(
        visitor.paths, keys,
        "module parameter paths vs checkpoint keys"
    );
}

#[test]
fn parity_dcae_unilip_e2e() {
    let Some(fx) = Fixture::open("unilip_e2e").expect("fixture opens") else {
        return;
    };
    let tol = (
        number(
            &fx.config,
            &["tolerance", "per_group", "decoded", "recommended_atol"],
        ),
        number(&fx.config, &["tolerance", "recommended_rtol"]),
    );
    let dec = load(
        &fx,
        &["upstream_config", "dcae"],
        "model.vae_decoder.decoder",
    );
    let trace = fx.trace.as_ref().expect("unilip_e2e has trace.safetensors");

    // Text-to-image: the decoder input is recorded (final latent / unilip_factor).
    let t2i_in = read(trace, "t2i.decoder_input");
    run_and_check(
        &dec,
        &t2i_in,
        ("t2i.decoded", &read(&fx.io, "t2i.decoded")),
        None,
        tol,
    );

    // Editing: only the final latent is stored; UniLIP divides by unilip_factor in fp32.
    let factor = number(&fx.config, &["upstream_config", "unilip", "unilip_factor"]) as f32;
    let mut edit_in = read(&fx.io, "edit.final_latent");
    edit_in.data.iter_mut().for_each(|v| *v /= factor);
    run_and_check(
        &dec,
        &edit_in,
        ("edit.decoded", &read(&fx.io, "edit.decoded")),
        None,
        tol,
    );

    // Reconstruction, with the per-stage decoder trace.
    let recon_in = read(&fx.io, "recon.latent");
    let recon_out = read(&fx.io, "recon.decoded");
    run_and_check(
        &dec,
        &recon_in,
        ("recon.decoded", &recon_out),
        Some((trace, "recon.decoder.")),
        tol,
    );
}
