//! UniDiff's losses and retrieval measures (arXiv 2306.00813, `spec/unidiff.md`): image–text
//! contrastive (ITC), reciprocal semantic consistency (RSC) and the Recall@K / collapse measures of
//! its evaluation. The losses are generic over the backend so they train on the autodiff backend.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Rows scaled to unit L2 norm.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// Mean cross-entropy of `logits` `[n, n]` with the diagonal as the target of every row.
fn diagonal_cross_entropy<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    let n = logits.dims()[0];
    let logp = log_softmax(logits, 1);
    let eye = Tensor::<B, 2>::eye(n, &logp.device());
    (logp * eye).sum().neg().div_scalar(n as f32)
}

/// Symmetric InfoNCE between paired rows of `a` and `b` (`[n, d]` each): cosine similarities
/// divided by `temperature`, cross-entropy towards the pair in both directions, averaged — CLIP's
/// loss, and UniDiff's ITC with `a` = images, `b` = texts.
pub fn info_nce<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>, temperature: f32) -> Tensor<B, 1> {
    let logits = l2_normalize(a)
        .matmul(l2_normalize(b).transpose())
        .div_scalar(temperature);
    (diagonal_cross_entropy(logits.clone()) + diagonal_cross_entropy(logits.transpose()))
        .div_scalar(2.0)
}

/// How RSC ties the diffusion model's visual features to the CLIP image embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RscMode {
    /// Symmetric in-batch InfoNCE between the two feature sets (spec §3.3's default).
    Contrastive,
    /// `1 − cos` of each pair, averaged (no negatives).
    Cosine,
    /// Each feature set is pulled to its caption's text embedding with InfoNCE; the mean of both.
    TextAnchored,
}

/// Reciprocal semantic consistency between `diffusion` and `clip` features (`[n, d]`, already
/// projected and pooled). `text` (`[n, d]`) is only read by [`RscMode::TextAnchored`]. Every mode
/// is symmetric in its two feature sets.
pub fn rsc_loss<B: Backend>(
    diffusion: Tensor<B, 2>,
    clip: Tensor<B, 2>,
    text: Option<Tensor<B, 2>>,
    mode: RscMode,
    temperature: f32,
) -> Result<Tensor<B, 1>, String> {
    match mode {
        RscMode::Contrastive => Ok(info_nce(diffusion, clip, temperature)),
        RscMode::Cosine => {
            let cos = (l2_normalize(diffusion) * l2_normalize(clip)).sum_dim(1);
            Ok(cos.neg().add_scalar(1.0).mean())
        }
        RscMode::TextAnchored => {
            let t = text.ok_or("the text-anchored RSC needs text embeddings")?;
            Ok(
                (info_nce(diffusion, t.clone(), temperature) + info_nce(clip, t, temperature))
                    .div_scalar(2.0),
            )
        }
    }
}

/// Cosine similarity matrix `[queries, corpus]` of host embeddings.
pub fn cosine_matrix(queries: &[Vec<f32>], corpus: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let unit = |v: &Vec<f32>| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let c: Vec<Vec<f32>> = corpus.iter().map(unit).collect();
    queries
        .iter()
        .map(|q| {
            let q = unit(q);
            c.iter()
                .map(|v| v.iter().zip(&q).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect()
}

/// The `k` corpus indices most similar to each query, best first (ties keep corpus order).
pub fn rank_top_k(similarity: &[Vec<f32>], k: usize) -> Vec<Vec<usize>> {
    similarity
        .iter()
        .map(|row| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            idx.truncate(k);
            idx
        })
        .collect()
}

/// Fraction of queries whose ground-truth corpus index `truth[q]` is among their top `k`.
pub fn recall_at_k(similarity: &[Vec<f32>], truth: &[usize], k: usize) -> f64 {
    let top = rank_top_k(similarity, k);
    let hits = top
        .iter()
        .zip(truth)
        .filter(|(t, gt)| t.contains(gt))
        .count();
    hits as f64 / truth.len().max(1) as f64
}

/// Spread of a set of embeddings: `1 −` the mean cosine similarity of distinct pairs. Near 0 means
/// collapse (all embeddings alike); unrelated random directions give about 1.
pub fn spread(embeddings: &[Vec<f32>]) -> f64 {
    let sim = cosine_matrix(embeddings, embeddings);
    let n = embeddings.len();
    if n < 2 {
        return 0.0;
    }
    let off: f64 = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| f64::from(sim[i][j]))
        .sum();
    1.0 - off / (n * (n - 1)) as f64
}
