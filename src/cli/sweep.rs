//! `unilip sweep`: runs the cartesian product of param grids with one executor, so results that a
//! grid point does not change (the ViT, the LLM) are computed once; writes `results.csv` and a bar
//! chart per metric.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use unilip_core::{Executor, RunEnv, RunOptions, Value};

use super::run::{apply_sets, effective_doc, load_graph, validated};
use super::CliError;

/// Arguments of `unilip sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// Graph file.
    graph: PathBuf,
    /// A grid axis `NODE.PARAM=V1,V2,...` (repeatable; the product is run).
    #[arg(long = "grid", value_name = "NODE.PARAM=V1,V2")]
    grids: Vec<String>,
    /// A Float output to record, `NODE.OUTPUT` (repeatable).
    #[arg(long = "metric", value_name = "NODE.OUTPUT")]
    metrics: Vec<String>,
    /// Fixed overrides applied to every point.
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    sets: Vec<String>,
    /// Output directory (one sub-directory per point, results.csv, charts).
    #[arg(long, default_value = "sweep")]
    out: PathBuf,
}

fn axes(grids: &[String]) -> Result<Vec<(String, Vec<String>)>, CliError> {
    grids
        .iter()
        .map(|g| {
            let (lhs, values) = g.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("--grid `{g}`: expected NODE.PARAM=V1,V2"))
            })?;
            let values: Vec<String> = values.split(',').map(str::to_string).collect();
            Ok((lhs.to_string(), values))
        })
        .collect()
}

/// Every combination of the axes' values, first axis slowest.
fn product(axes: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    axes.iter().fold(vec![vec![]], |acc, (_, values)| {
        acc.iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect()
    })
}

/// A bar chart of `values` (one bar per grid point, in CSV row order), no text.
fn bar_chart(path: &Path, values: &[f64]) -> Result<(), CliError> {
    let (w, h, bar) = (40 + 30 * values.len() as u32, 240u32, 20u32);
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(0f64, f64::min);
    let hi = finite
        .iter()
        .copied()
        .fold(f64::MIN, f64::max)
        .max(lo + 1e-12);
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for (i, v) in values.iter().enumerate() {
        let frac = if v.is_finite() {
            (v - lo) / (hi - lo)
        } else {
            0.0
        };
        let top = h - 20 - ((h - 40) as f64 * frac) as u32;
        let x0 = 20 + 30 * i as u32;
        for x in x0..x0 + bar {
            for y in top..h - 20 {
                img.put_pixel(x, y, image::Rgb([60, 110, 200]));
            }
        }
    }
    for x in 10..w - 10 {
        img.put_pixel(x, h - 20, image::Rgb([0, 0, 0]));
    }
    img.save(path)
        .map_err(|e| CliError::Run(format!("{}: {e}", path.display())))
}

/// `unilip sweep`.
pub fn sweep(args: SweepArgs) -> Result<(), CliError> {
    let mut base = load_graph(&args.graph)?;
    apply_sets(&mut base, &args.sets)?;
    let axes = axes(&args.grids)?;
    let metrics: Vec<(String, String)> = args
        .metrics
        .iter()
        .map(|m| {
            m.split_once('.')
                .map(|(n, o)| (n.to_string(), o.to_string()))
                .ok_or_else(|| CliError::Usage(format!("--metric `{m}`: expected NODE.OUTPUT")))
        })
        .collect::<Result<_, _>>()?;
    let mut exec = Executor::default();
    let mut csv = axes.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    csv.extend(metrics.iter().map(|(n, o)| format!("{n}.{o}")));
    csv.extend(["executed".to_string(), "seconds".to_string()]);
    let mut rows = vec![csv.join(",")];
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); metrics.len()];
    for (i, point) in product(&axes).iter().enumerate() {
        let mut doc = base.clone();
        let sets: Vec<String> = axes
            .iter()
            .zip(point)
            .map(|((name, _), v)| format!("{name}={v}"))
            .collect();
        apply_sets(&mut doc, &sets)?;
        let graph = validated(&doc)?;
        let opts = RunOptions {
            targets: metrics.iter().map(|(n, _)| n.clone()).collect(),
            env: RunEnv {
                out_dir: args.out.join(format!("point_{i:03}")),
                provenance: Some(Arc::new(effective_doc(&doc, &graph).to_ron())),
            },
            ..Default::default()
        };
        let report = exec
            .run(&graph, &opts)
            .map_err(|e| CliError::Run(format!("point {}: {e}", sets.join(" "))))?;
        let mut row: Vec<String> = point.clone();
        for (k, (node, port)) in metrics.iter().enumerate() {
            let v = match report.output(&graph, node, port) {
                Some(Value::Float(f)) => *f,
                Some(Value::Int(n)) => *n as f64,
                other => {
                    return Err(CliError::Usage(format!(
                        "--metric {node}.{port}: not a number output ({other:?})"
                    )))
                }
            };
            columns[k].push(v);
            row.push(format!("{v}"));
        }
        row.push(report.executed.len().to_string());
        row.push(format!("{:.3}", report.total.as_secs_f64()));
        println!(
            "{}  executed: {}",
            sets.join(" "),
            report.executed.join(",")
        );
        rows.push(row.join(","));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| CliError::Run(e.to_string()))?;
    unilip_core::atomic_write(
        &args.out.join("results.csv"),
        (rows.join("\n") + "\n").as_bytes(),
    )
    .map_err(|e| CliError::Run(e.to_string()))?;
    for ((node, port), values) in metrics.iter().zip(&columns) {
        bar_chart(&args.out.join(format!("{node}.{port}.png")), values)?;
    }
    println!("wrote {}", args.out.join("results.csv").display());
    Ok(())
}
