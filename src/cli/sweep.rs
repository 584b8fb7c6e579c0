//! `unilip sweep`: runs the cartesian product of param grids with one executor, so results that a
//! grid point does not change (the ViT, the LLM) are computed once; writes `results.csv` and a bar
//! chart per metric. The sweep itself is [`unilip_core::Sweep`], shared with the editor.

use std::path::{Path, PathBuf};

use clap::Args;
use unilip_core::sweep::parse_metric;
use unilip_core::{Axis, Executor, Registry, Sweep, SweepError, SweepOptions};

use super::run::{apply_sets, load_graph};
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
    let sweep = Sweep {
        base,
        axes: args
            .grids
            .iter()
            .map(|g| Axis::parse(g))
            .collect::<Result<_, _>>()
            .map_err(cli_error)?,
        metrics: args
            .metrics
            .iter()
            .map(|m| parse_metric(m))
            .collect::<Result<_, _>>()
            .map_err(cli_error)?,
    };
    let opts = SweepOptions {
        out_dir: args.out.clone(),
        ..Default::default()
    };
    let table = sweep
        .run(
            &mut Executor::default(),
            Registry::global(),
            &opts,
            |_, _, point| {
                let sets: Vec<String> = sweep
                    .axes
                    .iter()
                    .zip(&point.values)
                    .map(|(a, v)| format!("{}={v}", a.name()))
                    .collect();
                println!("{}  executed: {}", sets.join(" "), point.executed.join(","));
            },
        )
        .map_err(cli_error)?;
    std::fs::create_dir_all(&args.out).map_err(|e| CliError::Run(e.to_string()))?;
    unilip_core::atomic_write(&args.out.join("results.csv"), table.to_csv().as_bytes())
        .map_err(|e| CliError::Run(e.to_string()))?;
    for (k, name) in table.metrics.iter().enumerate() {
        bar_chart(
            &args.out.join(format!("{name}.png")),
            &table.metric_column(k),
        )?;
    }
    println!("wrote {}", args.out.join("results.csv").display());
    Ok(())
}

/// Exit codes as before the sweep moved into the core: invalid points exit 2 with every
/// validation error, failed runs exit 1, everything else is a usage error (2).
fn cli_error(e: SweepError) -> CliError {
    match e {
        SweepError::Invalid { errors, .. } => CliError::Invalid(errors),
        SweepError::Run { .. } | SweepError::Cancelled => CliError::Run(e.to_string()),
        other => CliError::Usage(other.to_string()),
    }
}
