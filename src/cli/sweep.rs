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

/// A horizontal bar chart (SVG) of one metric: one bar per grid point, labelled with the point's
/// values and the value itself. Bars start at zero; negative or non-finite values get no bar.
fn bar_chart_svg(title: &str, labels: &[String], values: &[f64]) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
    let (row, bar_max) = (22usize, 320.0f64);
    let label_w = 16 + 7 * labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let top = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let (w, h) = (label_w + bar_max as usize + 90, 40 + row * values.len());
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"monospace\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"20\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    );
    for (i, (label, v)) in labels.iter().zip(values).enumerate() {
        let y = 32 + row * i;
        let len = if v.is_finite() && *v > 0.0 {
            bar_max * v / top
        } else {
            0.0
        };
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{len:.1}\" height=\"{}\" fill=\"#3c6ec8\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{v:.3}</text>\n",
            label_w - 8,
            y + 13,
            esc(label),
            row - 6,
            label_w as f64 + len + 4.0,
            y + 13,
        );
    }
    svg + "</svg>\n"
}

fn write_chart(dir: &Path, name: &str, labels: &[String], values: &[f64]) -> Result<(), CliError> {
    let path = dir.join(format!("{name}.svg"));
    unilip_core::atomic_write(&path, bar_chart_svg(name, labels, values).as_bytes())
        .map_err(|e| CliError::Run(format!("{}: {e}", path.display())))
}

/// Arguments of `unilip sweep-chart`.
#[derive(Args)]
pub struct ChartArgs {
    /// A sweep's `results.csv`.
    results: PathBuf,
    /// A metric column to chart (repeatable); the columns before the first one label the bars.
    #[arg(long = "metric", value_name = "NODE.OUTPUT", required = true)]
    metrics: Vec<String>,
}

/// Splits one CSV line written by [`unilip_core::SweepTable::to_csv`] (quotes only around
/// fields with a comma, quote or line break).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// `unilip sweep-chart`: redraws the charts of a finished sweep from its `results.csv`.
pub fn chart(args: ChartArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.results)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.results.display())))?;
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or_default());
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            CliError::Usage(format!(
                "{}: no column `{name}` (columns: {})",
                args.results.display(),
                header.join(", ")
            ))
        })
    };
    let cols = args
        .metrics
        .iter()
        .map(|m| column(m))
        .collect::<Result<Vec<_>, _>>()?;
    let first = cols.iter().copied().min().unwrap_or(0);
    let labels: Vec<String> = rows
        .iter()
        .map(|r| r[..first.min(r.len())].join(" · "))
        .collect();
    let dir = args.results.parent().unwrap_or(Path::new("."));
    for (name, &c) in args.metrics.iter().zip(&cols) {
        let values: Vec<f64> = rows
            .iter()
            .map(|r| r.get(c).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
            .collect();
        write_chart(dir, name, &labels, &values)?;
        println!("wrote {}", dir.join(format!("{name}.svg")).display());
    }
    Ok(())
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
    let labels: Vec<String> = table.rows.iter().map(|r| r.values.join(" · ")).collect();
    for (k, name) in table.metrics.iter().enumerate() {
        write_chart(&args.out, name, &labels, &table.metric_column(k))?;
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
