//! Linear probes: how much of a property a linear classifier reads from feature vectors. `unilip
//! eval shapesworld --task probe` uses them on the encoder's image features at each object's
//! token (shape, colour, size, grid row and column), the standard way to ask what an encoder
//! keeps — e.g. whether understanding training or self-distillation threw shape away.

use std::collections::BTreeMap;

use burn::prelude::*;

use crate::backend::B;
use crate::shapesworld::{Colour, Object, Shape, Size};

/// Held-out accuracy of a probe, next to always answering the most common class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeScore {
    /// Accuracy of the linear classifier on the held-out examples.
    pub accuracy: f64,
    /// Accuracy of answering the training split's most common class on the held-out examples.
    pub majority: f64,
}

/// Fraction of the examples the probe trains on; the rest (the last ones) score it.
const TRAIN_FRACTION: f64 = 0.8;
/// Full-batch gradient-descent iterations of the softmax regression.
const ITERATIONS: usize = 300;
/// Step size on standardised features.
const STEP: f32 = 0.5;
/// L2 weight penalty.
const L2: f32 = 1e-3;

/// Fits a softmax regression from `features` (one vector per example, all the same length) to
/// `labels` (each `< classes`) on the first 80 % of the examples (features standardised with that
/// split's mean and standard deviation) and scores it on the rest. Deterministic. `None` when
/// either split would be empty.
pub fn linear_probe(features: &[Vec<f32>], labels: &[usize], classes: usize) -> Option<ProbeScore> {
    let n = features.len().min(labels.len());
    let split = (n as f64 * TRAIN_FRACTION).round() as usize;
    if split == 0 || split == n || classes == 0 {
        return None;
    }
    let dim = features[0].len();
    let (mean, scale) = standardisation(&features[..split], dim);
    let x: Vec<Vec<f32>> = features[..n]
        .iter()
        .map(|f| {
            let mut z: Vec<f32> = f
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| (v - m) * s)
                .collect();
            z.push(1.0);
            z
        })
        .collect();
    let weights = fit(&x[..split], &labels[..split], classes);
    let held_out = &x[split..];
    let truth = &labels[split..n];
    let right = held_out
        .iter()
        .zip(truth)
        .filter(|(xi, &y)| argmax(&logits(&weights, xi)) == y)
        .count();
    let mut counts = vec![0usize; classes];
    for &y in &labels[..split] {
        counts[y] += 1;
    }
    let common = argmax(&counts.iter().map(|&c| c as f32).collect::<Vec<_>>());
    let majority = truth.iter().filter(|&&y| y == common).count();
    let m = truth.len() as f64;
    Some(ProbeScore {
        accuracy: right as f64 / m,
        majority: majority as f64 / m,
    })
}

/// Per-dimension mean and inverse standard deviation (1 where a dimension is constant).
fn standardisation(rows: &[Vec<f32>], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = rows.len() as f32;
    let mean: Vec<f32> = (0..dim)
        .map(|k| rows.iter().map(|r| r[k]).sum::<f32>() / n)
        .collect();
    let scale = (0..dim)
        .map(|k| {
            let var = rows.iter().map(|r| (r[k] - mean[k]).powi(2)).sum::<f32>() / n;
            if var > 1e-12 {
                1.0 / var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    (mean, scale)
}

/// Class scores `W x` for weights `[classes][dim + 1]`.
fn logits(weights: &[Vec<f32>], x: &[f32]) -> Vec<f32> {
    weights
        .iter()
        .map(|w| w.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Softmax regression by full-batch gradient descent from zero weights.
fn fit(x: &[Vec<f32>], y: &[usize], classes: usize) -> Vec<Vec<f32>> {
    let dim = x[0].len();
    let n = x.len() as f32;
    let mut w = vec![vec![0.0f32; dim]; classes];
    for _ in 0..ITERATIONS {
        let mut grad = vec![vec![0.0f32; dim]; classes];
        for (xi, &yi) in x.iter().zip(y) {
            let z = logits(&w, xi);
            let top = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = z.iter().map(|v| (v - top).exp()).collect();
            let total: f32 = e.iter().sum();
            for (c, g) in grad.iter_mut().enumerate() {
                let p = e[c] / total - if c == yi { 1.0 } else { 0.0 };
                for (gk, xk) in g.iter_mut().zip(xi) {
                    *gk += p * xk;
                }
            }
        }
        for (wc, gc) in w.iter_mut().zip(&grad) {
            for (wk, gk) in wc.iter_mut().zip(gc) {
                *wk -= STEP * (gk / n + L2 * *wk);
            }
        }
    }
    w
}

/// Image features of one picture as a `rows × cols` grid of `width`-vectors.
pub struct TokenGrid<'a> {
    /// Grid rows.
    pub rows: usize,
    /// Grid columns.
    pub cols: usize,
    /// Feature width.
    pub width: usize,
    /// `rows · cols · width` values, row-major.
    pub flat: &'a [f32],
}

impl TokenGrid<'_> {
    fn token(&self, row: usize, col: usize) -> Vec<f32> {
        let at = (row * self.cols + col) * self.width;
        self.flat[at..at + self.width].to_vec()
    }

    /// The 3 × 3 tokens around `(row, col)`, concatenated; zeros outside the grid.
    fn neighbourhood(&self, row: usize, col: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(9 * self.width);
        for r in row as isize - 1..=row as isize + 1 {
            for c in col as isize - 1..=col as isize + 1 {
                let inside =
                    (0..self.rows as isize).contains(&r) && (0..self.cols as isize).contains(&c);
                if inside {
                    out.extend(self.token(r as usize, c as usize));
                } else {
                    out.extend(std::iter::repeat_n(0.0, self.width));
                }
            }
        }
        out
    }
}

/// Position of `v` in `all` (every ShapesWorld attribute is in its `ALL` list).
fn class_of<T: PartialEq>(all: &[T], v: T) -> usize {
    all.iter().position(|x| *x == v).unwrap_or(0)
}

/// The examples of `--task probe`: per object, the feature vector of its token and of the 3 × 3
/// tokens around it, and its attribute classes.
#[derive(Default)]
pub struct ObjectProbes {
    tokens: Vec<Vec<f32>>,
    neighbourhoods: Vec<Vec<f32>>,
    shape: Vec<usize>,
    colour: Vec<usize>,
    size: Vec<usize>,
    row: Vec<usize>,
    column: Vec<usize>,
    grid: [usize; 2],
}

impl ObjectProbes {
    /// Adds `object`, whose centre lies in token `(row, col)` of `grid`.
    pub fn add(&mut self, object: &Object, grid: &TokenGrid<'_>, row: usize, col: usize) {
        self.tokens.push(grid.token(row, col));
        self.neighbourhoods.push(grid.neighbourhood(row, col));
        self.shape.push(class_of(&Shape::ALL, object.shape));
        self.colour.push(class_of(&Colour::ALL, object.colour));
        self.size.push(class_of(&Size::ALL, object.size));
        self.row.push(row);
        self.column.push(col);
        self.grid = [grid.rows, grid.cols];
    }

    /// Fits and scores every probe: `probe_<name>` and `probe_<name>_majority`.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>, String> {
        let [rows, cols] = self.grid;
        let mut metrics = BTreeMap::new();
        for (name, features, labels, classes) in [
            ("shape", &self.tokens, &self.shape, Shape::ALL.len()),
            ("colour", &self.tokens, &self.colour, Colour::ALL.len()),
            ("size", &self.tokens, &self.size, Size::ALL.len()),
            ("row", &self.tokens, &self.row, rows),
            ("column", &self.tokens, &self.column, cols),
            (
                "shape_neighbourhood",
                &self.neighbourhoods,
                &self.shape,
                Shape::ALL.len(),
            ),
        ] {
            let score = linear_probe(features, labels, classes)
                .ok_or_else(|| format!("too few objects to probe {name}: raise --n"))?;
            metrics.insert(format!("probe_{name}"), score.accuracy);
            metrics.insert(format!("probe_{name}_majority"), score.majority);
        }
        Ok(metrics)
    }
}

/// How much image features `[1, n, H]` of a uniform image vary with token position: the RMS
/// distance of the tokens from their mean, over their RMS norm. Near 0, the features carry no
/// absolute position, so only attention with relative positions (the LLM's and connector's RoPE)
/// can tell where an object is — the DiT's cross-attention, which copies the source layout when
/// editing, has no position of its own on the condition side. The InternViT position table is
/// what puts position into the features.
pub fn feature_position_share(features: Tensor<B, 3>) -> Result<f64, String> {
    let tokens = features.squeeze_dim::<2>(0);
    let centred = tokens.clone() - tokens.clone().mean_dim(0);
    let spread = centred.powf_scalar(2.0).sum_dim(1).mean().into_scalar();
    let norm = tokens.powf_scalar(2.0).sum_dim(1).mean().into_scalar();
    let (spread, norm): (f64, f64) = (spread.elem(), norm.elem());
    if norm > 0.0 {
        Ok((spread / norm).sqrt())
    } else {
        Err("image features are all zero".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::device;

    /// A tiny deterministic generator (no rand dependency in the test).
    fn noise(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// 300 examples of 3 classes; the class adds 2 to its own feature when `separable`.
    fn data(separable: bool) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut s = 7;
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let label = (i * 7 + i / 5) % 3;
            let mut f: Vec<f32> = (0..8).map(|_| noise(&mut s)).collect();
            if separable {
                f[label] += 2.0;
            }
            features.push(f);
            labels.push(label);
        }
        (features, labels)
    }

    #[test]
    fn a_linearly_coded_label_is_read_and_noise_is_not() {
        let (x, y) = data(true);
        let coded = linear_probe(&x, &y, 3).unwrap();
        assert!(coded.accuracy > 0.95, "{coded:?}");
        let (x, y) = data(false);
        let uncoded = linear_probe(&x, &y, 3).unwrap();
        assert!(uncoded.accuracy < 0.55, "{uncoded:?}");
        assert!(
            uncoded.majority > 0.2 && uncoded.majority < 0.5,
            "{uncoded:?}"
        );
    }

    #[test]
    fn too_few_examples_give_no_score() {
        let (x, y) = data(true);
        assert_eq!(linear_probe(&x[..1], &y[..1], 3), None);
    }

    fn share(tokens: &[[f32; 2]]) -> Result<f64, String> {
        let flat: Vec<f32> = tokens.iter().flatten().copied().collect();
        let t =
            Tensor::<B, 1>::from_floats(flat.as_slice(), &device()).reshape([1, tokens.len(), 2]);
        feature_position_share(t)
    }

    #[test]
    fn position_share_is_the_spread_over_the_norm() {
        // Identical tokens: no position at all.
        assert!(share(&[[0.5, -1.0]; 4]).unwrap().abs() < 1e-6);
        // Opposite tokens: all of the norm is spread.
        assert!((share(&[[1.0, 0.0], [-1.0, 0.0]]).unwrap() - 1.0).abs() < 1e-6);
        // Mean [1, 0]: spread² 1, norm² (4 + 0) / 2 = 2.
        let half = share(&[[2.0, 0.0], [0.0, 0.0]]).unwrap();
        assert!((half - 0.5f64.sqrt()).abs() < 1e-6, "{half}");
        assert!(share(&[[0.0, 0.0]; 3]).is_err());
    }
}
