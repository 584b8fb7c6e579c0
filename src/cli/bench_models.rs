//! `unilip bench models`: one real-size block of each UniLIP-1B component on the CPU, with
//! random weights, timed and compared with the machine's FMA peak.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use unilip_nodes::backend::{device, B};
use unilip_nodes::models::dcae::{DcAeConfig, DcAeDecoder};
use unilip_nodes::models::internvit::InternVisionModel;
use unilip_nodes::models::qwen2::{AttentionMask, Qwen2Model};
use unilip_nodes::models::sana::SanaTransformer;
use unilip_nodes::models::unilip::UnilipConfig;
use unilip_nodes::weights::VarBuilder;

use super::CliError;

fn err(e: impl std::fmt::Display) -> CliError {
    CliError::Run(e.to_string())
}

/// Median wall time in ms of `f` over `reps` runs after one warm-up.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    f();
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sync<const D: usize>(t: Tensor<B, D>) -> f32 {
    t.sum().into_scalar()
}

/// f32 FLOP per cycle per core with AVX2 + 2 FMA units (16 lanes × 2), times cores and clock.
fn peak_gflops() -> (f64, String) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mhz = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(2000.0);
    (
        cores as f64 * 32.0 * mhz / 1e3,
        format!("{cores} cores × 32 FLOP/cycle × {mhz:.0} MHz"),
    )
}

fn report(name: &str, ms: f64, flop: f64, peak: f64) {
    let gflops = flop / ms / 1e6;
    println!(
        "{name:<44} {ms:>9.1} ms {gflops:>7.1} GFLOP/s {:>5.1}% of peak",
        100.0 * gflops / peak
    );
}

/// Runs the model benchmark.
pub fn bench_models(reps: usize) -> Result<(), CliError> {
    let dev = device();
    let cfg = UnilipConfig::one_b();
    let (peak, how) = peak_gflops();
    println!("CPU peak ≈ {peak:.0} GFLOP/s ({how}); median of {reps} runs, random weights");

    // InternViT: one layer at 448 px → 1,025 tokens, width 1,024.
    let mut vcfg = cfg.vision.vision_config.clone();
    vcfg.num_hidden_layers = 1;
    let vit =
        InternVisionModel::<B>::load(&vcfg, &VarBuilder::random(1, |_| None, &dev)).map_err(err)?;
    let px = Tensor::<B, 4>::random([1, 3, 448, 448], Distribution::Normal(0.0, 1.0), &dev);
    let ms = time(reps, || sync(vit.forward(px.clone()).expect("valid input")));
    let (n, d, m) = (1025.0, 1024.0, 4096.0);
    report(
        "InternViT layer (1,025 tok, 1,024)",
        ms,
        2.0 * n * (4.0 * d * d + 2.0 * d * m) + 4.0 * n * n * d,
        peak,
    );

    // Qwen2: one decoder layer of width 896 at 300 tokens.
    let mut tcfg = cfg.text.clone();
    tcfg.num_hidden_layers = 1;
    let qwen = Qwen2Model::<B>::load(
        &tcfg,
        &VarBuilder::random(2, |k: &str| k.starts_with("layers.0.").then(Vec::new), &dev),
    )
    .map_err(err)?;
    let x = Tensor::<B, 3>::random([1, 300, 896], Distribution::Normal(0.0, 1.0), &dev);
    let ms = time(reps, || {
        sync(
            qwen.forward(x.clone(), &AttentionMask::Causal(None), None)
                .expect("valid"),
        )
    });
    let (n, d, kv, f) = (300.0, 896.0, 128.0, 4864.0);
    report(
        "Qwen2 layer (300 tok, 896)",
        ms,
        2.0 * n * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * f) + 4.0 * n * n * d,
        peak,
    );

    // SANA: one block of width 1,152 on 256 tokens, cross-attention to 300 caption tokens.
    let mut scfg = cfg.dit.clone();
    scfg.num_layers = 1;
    let dit =
        SanaTransformer::<B>::load(&scfg, &VarBuilder::random(3, |_| None, &dev)).map_err(err)?;
    let lat = Tensor::<B, 4>::random([1, 32, 16, 16], Distribution::Normal(0.0, 1.0), &dev);
    let cap = Tensor::<B, 3>::random(
        [1, 300, scfg.caption_channels],
        Distribution::Normal(0.0, 1.0),
        &dev,
    );
    let t = Tensor::<B, 1>::from_floats([500.0], &dev);
    let mask = Tensor::<B, 2>::ones([1, 300], &dev);
    let ms = time(reps, || {
        sync(dit.forward(lat.clone(), t.clone(), cap.clone(), mask.clone()))
    });
    let (n, l, d, h) = (256.0, 300.0, 1152.0, 2880.0);
    let flop = 2.0 * n * (6.0 * d * d + 3.0 * d * h)
        + 2.0 * l * 2.0 * d * d
        + 4.0 * n * l * d
        + 2.0 * l * 2304.0 * d;
    report("SANA block (256 tok, 1,152, cross 300)", ms, flop, peak);

    // DC-AE: one ResBlock stage (3 blocks, 512 channels) at 128×128.
    let dcfg: DcAeConfig = serde_json::from_value(serde_json::json!({
        "latent_channels": 32,
        "decoder_block_types": ["ResBlock"],
        "decoder_block_out_channels": [512],
        "decoder_layers_per_block": [3],
        "decoder_qkv_multiscales": [[]],
    }))
    .map_err(err)?;
    let dec = DcAeDecoder::<B>::load(&dcfg, &VarBuilder::random(4, |_| None, &dev)).map_err(err)?;
    let z = Tensor::<B, 4>::random([1, 32, 128, 128], Distribution::Normal(0.0, 1.0), &dev);
    let ms = time(reps.min(3), || sync(dec.forward(z.clone())));
    let hw = 128.0 * 128.0;
    let flop = 2.0 * 9.0 * hw * (32.0 * 512.0 + 6.0 * 512.0 * 512.0 + 512.0 * 3.0);
    report("DC-AE stage (3 ResBlocks, 512 ch, 128²)", ms, flop, peak);
    Ok(())
}
