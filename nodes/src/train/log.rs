//! Per-step training log: `log.csv` (appended as the run goes, trimmed on resume) and `loss.png`.

use std::io::Write;
use std::path::Path;

/// What one optimizer step logged.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLog {
    /// 1-based step number.
    pub step: usize,
    /// Learning rate used (before group multipliers).
    pub lr: f64,
    /// Weighted total loss.
    pub loss: f64,
    /// Each term's unweighted value, in the order of the objective's terms.
    pub terms: Vec<f64>,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// CSV header for an objective with the given term names.
pub fn header(terms: &[&str]) -> String {
    let mut cols = vec!["step", "lr", "loss"];
    cols.extend(terms);
    cols.push("grad_norm");
    cols.join(",")
}

/// One CSV row (full precision, so logs of resumed and uninterrupted runs compare exactly).
pub fn row(log: &StepLog) -> String {
    let mut cells = vec![
        log.step.to_string(),
        format!("{:e}", log.lr),
        format!("{:e}", log.loss),
    ];
    cells.extend(log.terms.iter().map(|t| format!("{t:e}")));
    cells.push(format!("{:e}", log.grad_norm));
    cells.join(",")
}

/// Opens `path` for appending after keeping the header and the rows of steps `≤ keep_steps`
/// (what a resumed run has not redone). A fresh run (`keep_steps = 0`) starts a new file.
pub fn open(path: &Path, header_line: &str, keep_steps: usize) -> Result<std::fs::File, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut kept = vec![header_line.to_string()];
    if keep_steps > 0 {
        if let Ok(text) = std::fs::read_to_string(path) {
            kept.extend(
                text.lines()
                    .skip(1)
                    .filter(|l| {
                        l.split(',')
                            .next()
                            .and_then(|s| s.parse::<usize>().ok())
                            .is_some_and(|s| s <= keep_steps)
                    })
                    .map(str::to_string),
            );
        }
    }
    let mut body = kept.join("\n");
    body.push('\n');
    unilip_core::atomic_write(path, body.as_bytes()).map_err(err)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(err)
}

/// Appends one row and flushes.
pub fn append(file: &mut std::fs::File, log: &StepLog) -> Result<(), String> {
    writeln!(file, "{}", row(log))
        .and_then(|_| file.flush())
        .map_err(|e| format!("log.csv: {e}"))
}

/// The `loss` column of a `log.csv`, by step.
pub fn read_losses(path: &Path) -> Result<Vec<(usize, f64)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cells = l.split(',');
            let step = cells.next()?.parse().ok()?;
            let loss = cells.nth(1)?.parse().ok()?;
            Some((step, loss))
        })
        .collect())
}

/// Draws the loss curve (blue, log scale, with its running mean in black) to a PNG.
pub fn plot(points: &[(usize, f64)], path: &Path) -> Result<(), String> {
    const W: u32 = 640;
    const H: u32 = 360;
    const PAD: i64 = 24;
    let mut img = image::RgbImage::from_pixel(W, H, image::Rgb([255, 255, 255]));
    let finite: Vec<(usize, f64)> = points
        .iter()
        .copied()
        .filter(|(_, l)| l.is_finite() && *l > 0.0)
        .collect();
    if finite.len() >= 2 {
        let (s0, s1) = (finite[0].0 as f64, finite[finite.len() - 1].0 as f64);
        let logs: Vec<f64> = finite.iter().map(|(_, l)| l.log10()).collect();
        let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = logs
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
            .max(lo + 1e-6);
        let to_px = |step: f64, v: f64| {
            let x = PAD as f64 + (step - s0) / (s1 - s0).max(1.0) * (W as f64 - 2.0 * PAD as f64);
            let y = H as f64 - PAD as f64 - (v - lo) / (hi - lo) * (H as f64 - 2.0 * PAD as f64);
            (x as i64, y as i64)
        };
        draw_axes(&mut img, PAD);
        let raw: Vec<(i64, i64)> = finite
            .iter()
            .zip(&logs)
            .map(|((s, _), v)| to_px(*s as f64, *v))
            .collect();
        polyline(&mut img, &raw, [90, 140, 230]);
        let window = (finite.len() / 20).max(1);
        let smooth: Vec<(i64, i64)> = (0..logs.len())
            .map(|i| {
                let a = i.saturating_sub(window);
                let mean = logs[a..=i].iter().sum::<f64>() / (i - a + 1) as f64;
                to_px(finite[i].0 as f64, mean)
            })
            .collect();
        polyline(&mut img, &smooth, [0, 0, 0]);
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    unilip_core::atomic_write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_axes(img: &mut image::RgbImage, pad: i64) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    polyline(
        img,
        &[(pad, pad), (pad, h - pad), (w - pad, h - pad)],
        [120, 120, 120],
    );
}

fn polyline(img: &mut image::RgbImage, points: &[(i64, i64)], colour: [u8; 3]) {
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        let n = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for i in 0..=n {
            let x = x0 + (x1 - x0) * i / n;
            let y = y0 + (y1 - y0) * i / n;
            if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
                img.put_pixel(x as u32, y as u32, image::Rgb(colour));
            }
        }
    }
}
