//! `unilip bench models`: one real-size block of each UniLIP-1B component on the selected device
//! (the CPU, or the GPU in `--features cuda` builds), with random weights, timed (and on the CPU
//! compared with the machine's FMA peak), and optionally with the same block in PyTorch eager on
//! the same device (`--torch PYTHON`, the reference transformers / diffusers classes).
//! A few single ops at block sizes follow, so a gap can be traced to a kernel.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Distribution;
use serde_json::{json, Value};
use unilip_nodes::backend::{device, B};
use unilip_nodes::models::dcae::{DcAeConfig, DcAeDecoder};
use unilip_nodes::models::internvit::InternVisionModel;
use unilip_nodes::models::qwen2::{AttentionMask, Qwen2Model};
use unilip_nodes::models::sana::SanaTransformer;
use unilip_nodes::models::unilip::UnilipConfig;
use unilip_nodes::weights::VarBuilder;

use super::bench::ON_GPU;
use super::CliError;

/// The PyTorch side, run as `PYTHON -c SCRIPT` with the block list on stdin.
const TORCH_SCRIPT: &str = include_str!("bench_torch.py");

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

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// f32 FLOP per cycle per core with AVX2 + 2 FMA units (16 lanes × 2), times cores and clock.
fn peak_gflops() -> (f64, String) {
    let cores = cores();
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

/// One timed block: its Burn time, its FLOP count and what the PyTorch side needs to build it.
struct Block {
    name: &'static str,
    ms: f64,
    flop: f64,
    torch: Value,
}

/// Times one block of each component in Burn.
fn burn_blocks(reps: usize) -> Result<Vec<Block>, CliError> {
    let dev = device();
    let cfg = UnilipConfig::one_b();
    let json = cfg.to_json();
    let mut blocks = Vec::new();

    // InternViT: one layer at 448 px → 1,025 tokens, width 1,024.
    let mut vcfg = cfg.vision.vision_config.clone();
    vcfg.num_hidden_layers = 1;
    let vit =
        InternVisionModel::<B>::load(&vcfg, &VarBuilder::random(1, |_| None, &dev)).map_err(err)?;
    let px = Tensor::<B, 4>::random([1, 3, 448, 448], Distribution::Normal(0.0, 1.0), &dev);
    let ms = time(reps, || sync(vit.forward(px.clone()).expect("valid input")));
    let (n, d, m) = (1025.0, 1024.0, 4096.0);
    let mut torch_cfg = json["vision_config"].clone();
    torch_cfg["num_hidden_layers"] = 1.into();
    blocks.push(Block {
        name: "InternViT layer (1,025 tok, 1,024)",
        ms,
        flop: 2.0 * n * (4.0 * d * d + 2.0 * d * m) + 4.0 * n * n * d,
        torch: json!({"kind": "internvit", "config": torch_cfg, "reps": reps}),
    });

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
    let mut torch_cfg = json["text_config"].clone();
    torch_cfg["num_hidden_layers"] = 1.into();
    blocks.push(Block {
        name: "Qwen2 layer (300 tok, 896)",
        ms,
        flop: 2.0 * n * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * f) + 4.0 * n * n * d,
        torch: json!({"kind": "qwen2", "config": torch_cfg, "tokens": 300, "reps": reps}),
    });

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
    let mut torch_cfg = json["dit_config"].clone();
    torch_cfg["num_layers"] = 1.into();
    blocks.push(Block {
        name: "SANA block (256 tok, 1,152, cross 300)",
        ms,
        flop: 2.0 * n * (6.0 * d * d + 3.0 * d * h)
            + 2.0 * l * 2.0 * d * d
            + 4.0 * n * l * d
            + 2.0 * l * 2304.0 * d,
        torch: json!({"kind": "sana", "config": torch_cfg, "latent": 16, "caption_tokens": 300,
            "reps": reps}),
    });

    // DC-AE: one ResBlock stage (3 blocks, 512 channels) at 128×128.
    let dcae_json = json!({
        "latent_channels": 32,
        "decoder_block_types": ["ResBlock"],
        "decoder_block_out_channels": [512],
        "decoder_layers_per_block": [3],
        "decoder_qkv_multiscales": [[]],
    });
    let dcfg: DcAeConfig = serde_json::from_value(dcae_json.clone()).map_err(err)?;
    let dec = DcAeDecoder::<B>::load(&dcfg, &VarBuilder::random(4, |_| None, &dev)).map_err(err)?;
    let z = Tensor::<B, 4>::random([1, 32, 128, 128], Distribution::Normal(0.0, 1.0), &dev);
    let dcae_reps = reps.min(3);
    let ms = time(dcae_reps, || sync(dec.forward(z.clone())));
    let hw = 128.0 * 128.0;
    blocks.push(Block {
        name: "DC-AE stage (3 ResBlocks, 512 ch, 128²)",
        ms,
        flop: 2.0 * 9.0 * hw * (32.0 * 512.0 + 6.0 * 512.0 * 512.0 + 512.0 * 3.0),
        torch: json!({"kind": "dcae", "config": dcae_json, "latent": 128, "reps": dcae_reps}),
    });
    blocks.extend(single_ops(reps)?);
    Ok(blocks)
}

/// The single tensor ops the blocks are made of, so a Burn/PyTorch gap can be traced to a kernel:
/// matmul, 3×3 convolution, softmax and SiLU at block sizes.
fn single_ops(reps: usize) -> Result<Vec<Block>, CliError> {
    let dev = device();
    let normal = |shape: &[usize]| {
        Tensor::<B, 4>::random(
            [shape[0], shape[1], shape[2], shape[3]],
            Distribution::Normal(0.0, 1.0),
            &dev,
        )
    };
    let op = |name, op: &str, shape: [usize; 4], flop: f64, ms: f64| Block {
        name,
        ms,
        flop,
        torch: json!({"kind": "op", "op": op, "shape": shape, "reps": reps}),
    };
    let mut ops = Vec::new();

    let shape = [1, 1, 1024, 1024];
    let x = normal(&shape);
    let ms = time(reps, || sync(x.clone().matmul(x.clone())));
    ops.push(op(
        "op: matmul 1024³",
        "matmul",
        shape,
        2.0 * 1024f64.powi(3),
        ms,
    ));

    let shape = [1, 256, 64, 64];
    let x = normal(&shape);
    let w = normal(&[256, 256, 3, 3]);
    let conv = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let ms = time(reps, || {
        sync(conv2d(x.clone(), w.clone(), None, conv.clone()))
    });
    let flop = 2.0 * 256.0 * 256.0 * 9.0 * 64.0 * 64.0;
    ops.push(op("op: conv 3×3 256→256 @64²", "conv3x3", shape, flop, ms));

    let shape = [1, 16, 1025, 1025];
    let x = normal(&shape);
    let ms = time(reps, || sync(softmax(x.clone(), 3)));
    ops.push(op("op: softmax 16×1025×1025", "softmax", shape, 0.0, ms));

    let shape = [1, 512, 128, 128];
    let x = normal(&shape);
    let ms = time(reps, || sync(silu(x.clone())));
    ops.push(op("op: SiLU 512×128²", "silu", shape, 0.0, ms));
    Ok(ops)
}

/// What the PyTorch side reported for each block, in block order (`Err` = its error text).
fn torch_times(python: &Path, blocks: &[Block]) -> Result<Vec<Result<f64, String>>, CliError> {
    let job = json!({
        "threads": cores(),
        "device": unilip_nodes::backend::DeviceKind::native().name(),
        "blocks": blocks
            .iter()
            .map(|b| {
                let mut spec = b.torch.clone();
                spec["name"] = b.name.into();
                spec
            })
            .collect::<Vec<_>>(),
    });
    let mut child = Command::new(python)
        .args(["-c", TORCH_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Run(format!("--torch {}: cannot start: {e}", python.display())))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(job.to_string().as_bytes())
        .map_err(|e| CliError::Run(format!("--torch {}: {e}", python.display())))?;
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::Run(format!("--torch {}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(CliError::Run(format!(
            "--torch {}: the PyTorch side failed ({}):\n{}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )));
    }
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if let Some(header) = lines.iter().find(|v| v.get("torch").is_some()) {
        println!(
            "PyTorch {} eager on {}, {} CPU threads",
            header["torch"].as_str().unwrap_or("?"),
            header["device"].as_str().unwrap_or("cpu"),
            header["threads"]
        );
    }
    Ok(blocks
        .iter()
        .map(|b| {
            let line = lines
                .iter()
                .find(|v| v["name"] == b.name)
                .ok_or_else(|| "no result".to_string())?;
            match (line["ms"].as_f64(), line["error"].as_str()) {
                (Some(ms), _) => Ok(ms),
                (None, Some(e)) => Err(e.to_string()),
                (None, None) => Err("no result".into()),
            }
        })
        .collect())
}

/// Checks, before minutes of Burn timing, that `python` starts and imports what the PyTorch side
/// needs.
fn check_python(python: &Path) -> Result<(), CliError> {
    let out = Command::new(python)
        .args(["-c", "import torch, transformers, diffusers"])
        .output()
        .map_err(|e| CliError::Run(format!("--torch {}: cannot start: {e}", python.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(CliError::Run(format!(
        "--torch {}: cannot import torch, transformers and diffusers \
         (install ../shared/fixtures/requirements.txt into that environment):\n{}",
        python.display(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )))
}

/// Runs the model benchmark; with `torch`, the same blocks in PyTorch side by side.
pub fn bench_models(reps: usize, torch: Option<&Path>) -> Result<(), CliError> {
    if let Some(python) = torch {
        check_python(python)?;
    }
    // The CPU's FMA peak; no peak is printed for the GPU, whose f32 rate depends on the kernels
    // (CUDA cores or tensor cores) the backend picks.
    let peak = if ON_GPU {
        println!("CUDA device 0; median of {reps} runs, random weights, f32");
        None
    } else {
        let (peak, how) = peak_gflops();
        println!(
            "CPU peak ≈ {peak:.0} GFLOP/s ({how}); median of {reps} runs, random weights, f32"
        );
        Some(peak)
    };
    let blocks = burn_blocks(reps)?;
    let torch = torch.map(|py| torch_times(py, &blocks)).transpose()?;
    print!(
        "{:<42} {:>10} {:>8} {:>7}",
        "block", "Burn ms", "GFLOP/s", "% peak"
    );
    if torch.is_some() {
        print!(" {:>10} {:>12}", "torch ms", "Burn/torch");
    }
    println!();
    for (i, b) in blocks.iter().enumerate() {
        let gflops = b.flop / b.ms / 1e6;
        if b.flop > 0.0 {
            print!("{:<42} {:>10.2} {gflops:>8.1}", b.name, b.ms);
            match peak {
                Some(peak) => print!(" {:>6.1}%", 100.0 * gflops / peak),
                None => print!(" {:>7}", "-"),
            }
        } else {
            print!("{:<42} {:>10.2} {:>8} {:>7}", b.name, b.ms, "-", "-");
        }
        match torch.as_ref().map(|t| &t[i]) {
            Some(Ok(ms)) => print!(" {ms:>10.2} {:>11.2}×", b.ms / ms),
            Some(Err(e)) => print!("  torch failed: {e}"),
            None => {}
        }
        println!();
    }
    Ok(())
}
