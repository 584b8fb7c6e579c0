//! Reconstruction metrics on 8-bit RGB images.

use image::RgbImage;
use thiserror::Error;

/// Side of the SSIM gaussian window.
const SSIM_WINDOW: usize = 11;
/// Standard deviation of the SSIM gaussian window.
const SSIM_SIGMA: f64 = 1.5;
/// SSIM stabiliser constants (K1, K2) for dynamic range 255.
const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;
/// Peak value of 8-bit samples.
const PEAK: f64 = 255.0;

/// Why a metric cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricError {
    /// The images differ in size.
    #[error("image sizes differ: {a:?} vs {b:?}")]
    SizeMismatch {
        /// Size of the first image.
        a: (u32, u32),
        /// Size of the second image.
        b: (u32, u32),
    },
    /// The images are smaller than the SSIM window (11 × 11) or empty.
    #[error("images of size {0:?} are too small")]
    TooSmall((u32, u32)),
}

fn check_sizes(a: &RgbImage, b: &RgbImage, min_side: u32) -> Result<(), MetricError> {
    if a.dimensions() != b.dimensions() {
        return Err(MetricError::SizeMismatch {
            a: a.dimensions(),
            b: b.dimensions(),
        });
    }
    if a.width().min(a.height()) < min_side.max(1) {
        return Err(MetricError::TooSmall(a.dimensions()));
    }
    Ok(())
}

/// Peak signal-to-noise ratio in dB over all pixels and channels with peak 255:
/// `10 log10(255² / MSE)`; `f64::INFINITY` for identical images.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> Result<f64, MetricError> {
    check_sizes(a, b, 1)?;
    let squared: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let mse = squared / a.as_raw().len() as f64;
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (PEAK * PEAK / mse).log10()
    })
}

/// Structural similarity (Wang et al. 2004): 11 × 11 gaussian window with σ = 1.5,
/// K1 = 0.01, K2 = 0.03, L = 255, evaluated at every window position fully inside the
/// image ("valid" filtering), computed per RGB channel and averaged over positions and
/// the three channels. Identical images give 1.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> Result<f64, MetricError> {
    check_sizes(a, b, SSIM_WINDOW as u32)?;
    let (width, height) = (a.width() as usize, a.height() as usize);
    let kernel = gaussian_kernel();
    let total: f64 = (0..3)
        .map(|c| {
            let x = channel(a, c);
            let y = channel(b, c);
            ssim_channel(&x, &y, width, height, &kernel)
        })
        .sum();
    Ok(total / 3.0)
}

fn channel(image: &RgbImage, c: usize) -> Vec<f64> {
    image.pixels().map(|p| p.0[c] as f64).collect()
}

fn gaussian_kernel() -> Vec<f64> {
    let centre = (SSIM_WINDOW / 2) as f64;
    let weights: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-((i as f64 - centre).powi(2)) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    weights.iter().map(|w| w / sum).collect()
}

/// Separable "valid" filtering of a `width × height` plane with `kernel`.
fn filter(plane: &[f64], width: usize, height: usize, kernel: &[f64]) -> Vec<f64> {
    let k = kernel.len();
    let (out_w, out_h) = (width + 1 - k, height + 1 - k);
    let rows: Vec<f64> = (0..height)
        .flat_map(|y| (0..out_w).map(move |x| (x, y)))
        .map(|(x, y)| {
            kernel
                .iter()
                .enumerate()
                .map(|(i, w)| w * plane[y * width + x + i])
                .sum()
        })
        .collect();
    (0..out_h)
        .flat_map(|y| (0..out_w).map(move |x| (x, y)))
        .map(|(x, y)| {
            kernel
                .iter()
                .enumerate()
                .map(|(i, w)| w * rows[(y + i) * out_w + x])
                .sum()
        })
        .collect()
}

fn ssim_channel(x: &[f64], y: &[f64], width: usize, height: usize, kernel: &[f64]) -> f64 {
    let product =
        |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(a, b)| a * b).collect() };
    let mu_x = filter(x, width, height, kernel);
    let mu_y = filter(y, width, height, kernel);
    let xx = filter(&product(x, x), width, height, kernel);
    let yy = filter(&product(y, y), width, height, kernel);
    let xy = filter(&product(x, y), width, height, kernel);
    let c1 = (SSIM_K1 * PEAK).powi(2);
    let c2 = (SSIM_K2 * PEAK).powi(2);
    let values: Vec<f64> = (0..mu_x.len())
        .map(|i| {
            let (mx, my) = (mu_x[i], mu_y[i]);
            let (vx, vy, cov) = (xx[i] - mx * mx, yy[i] - my * my, xy[i] - mx * my);
            ((2.0 * mx * my + c1) * (2.0 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        })
        .collect();
    values.iter().sum::<f64>() / values.len() as f64
}
