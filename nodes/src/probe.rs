//! Linear probes: how much of a property a linear classifier reads from feature vectors. `unilip
//! eval shapesworld --task probe` uses them on the encoder's image features at each object's
//! token (shape, colour, size, grid row and column), the standard way to ask what an encoder
//! keeps — e.g. whether understanding training or self-distillation threw shape away.

use std::collections::BTreeMap;

use burn::prelude::*;

use crate::backend::B;
use crate::shapesworld::{Colour, Object, Shape, Size};

/// A labelled set of feature vectors (all the same length), in a fixed order.
#[derive(Debug, Clone, Default)]
pub struct ProbeData {
    /// One feature vector per example.
    pub features: Vec<Vec<f32>>,
    /// The class of each example, `< classes`.
    pub labels: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

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

/// Fits a softmax regression on the first 80 % of `data` (features standardised with that split's
/// mean and standard deviation) and scores it on the rest. Deterministic. `None` when either split
/// would be empty.
pub fn linear_probe(data: &ProbeData) -> Option<ProbeScore> {
    let n = data.features.len();
    let split = (n as f64 * TRAIN_FRACTION).round() as usize;
    if split == 0 || split == n || data.classes == 0 {
        return None;
    }
    let dim = data.features[0].len();
    let (mean, scale) = standardisation(&data.features[..split], dim);
    let x: Vec<Vec<f32>> = data
        .features
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
    let weights = fit(&x[..split], &data.labels[..split], data.classes);
    let held_out = &x[split..];
    let truth = &data.labels[split..];
    let right = held_out
        .iter()
        .zip(truth)
        .filter(|(xi, &y)| argmax(&logits(&weights, xi)) == y)
        .count();
    let mut counts = vec![0usize; data.classes];
    for &y in &data.labels[..split] {
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

/// The probe datasets of `--task probe`, one example per object.
#[derive(Default)]
pub struct ObjectProbes {
    shape: ProbeData,
    colour: ProbeData,
    size: ProbeData,
    row: ProbeData,
    column: ProbeData,
    shape_neighbourhood: ProbeData,
}

impl ObjectProbes {
    /// Adds `object`, whose centre lies in token `(row, col)` of `grid`.
    pub fn add(&mut self, object: &Object, grid: &TokenGrid<'_>, row: usize, col: usize) {
        let token = grid.token(row, col);
        for (set, label, classes) in [
            (
                &mut self.shape,
                class_of(&Shape::ALL, object.shape),
                Shape::ALL.len(),
            ),
            (
                &mut self.colour,
                class_of(&Colour::ALL, object.colour),
                Colour::ALL.len(),
            ),
            (
                &mut self.size,
                class_of(&Size::ALL, object.size),
                Size::ALL.len(),
            ),
            (&mut self.row, row, grid.rows),
            (&mut self.column, col, grid.cols),
        ] {
            set.features.push(token.clone());
            set.labels.push(label);
            set.classes = classes;
        }
        let n = &mut self.shape_neighbourhood;
        n.features.push(grid.neighbourhood(row, col));
        n.labels.push(class_of(&Shape::ALL, object.shape));
        n.classes = Shape::ALL.len();
    }

    /// Fits and scores every probe: `probe_<name>` and `probe_<name>_majority`.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>, String> {
        let mut metrics = BTreeMap::new();
        for (name, set) in [
            ("shape", &self.shape),
            ("colour", &self.colour),
            ("size", &self.size),
            ("row", &self.row),
            ("column", &self.column),
            ("shape_neighbourhood", &self.shape_neighbourhood),
        ] {
            let score = linear_probe(set)
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

    fn data(separable: bool) -> ProbeData {
        let mut s = 7;
        let mut d = ProbeData {
            classes: 3,
            ..Default::default()
        };
        for i in 0..300 {
            let label = (i * 7 + i / 5) % 3;
            let mut f: Vec<f32> = (0..8).map(|_| noise(&mut s)).collect();
            if separable {
                f[label] += 2.0;
            }
            d.features.push(f);
            d.labels.push(label);
        }
        d
    }

    #[test]
    fn a_linearly_coded_label_is_read_and_noise_is_not() {
        let coded = linear_probe(&data(true)).unwrap();
        assert!(coded.accuracy > 0.95, "{coded:?}");
        let uncoded = linear_probe(&data(false)).unwrap();
        assert!(uncoded.accuracy < 0.55, "{uncoded:?}");
        assert!(
            uncoded.majority > 0.2 && uncoded.majority < 0.5,
            "{uncoded:?}"
        );
    }

    #[test]
    fn too_few_examples_give_no_score() {
        let mut d = data(true);
        d.features.truncate(1);
        d.labels.truncate(1);
        assert_eq!(linear_probe(&d), None);
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
