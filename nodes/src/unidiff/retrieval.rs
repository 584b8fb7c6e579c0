//! Retrieval and collapse measures on host embeddings: cosine similarity, top-K ranking,
//! Recall@K and the spread of a set of embeddings.

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
    recall_at_k_matching(similarity, k, |q, c| truth.get(q) == Some(&c))
}

/// Fraction of queries with a matching corpus item (`is_match(query, corpus)`) among their top
/// `k` — e.g. the same caption, so duplicate captions in a corpus count as hits.
pub fn recall_at_k_matching(
    similarity: &[Vec<f32>],
    k: usize,
    is_match: impl Fn(usize, usize) -> bool,
) -> f64 {
    let top = rank_top_k(similarity, k);
    let hits = top
        .iter()
        .enumerate()
        .filter(|(q, t)| t.iter().any(|&c| is_match(*q, c)))
        .count();
    hits as f64 / similarity.len().max(1) as f64
}

/// The transpose of a similarity matrix (text→image from image→text).
pub fn transpose(similarity: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let cols = similarity.first().map_or(0, Vec::len);
    (0..cols)
        .map(|j| similarity.iter().map(|row| row[j]).collect())
        .collect()
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
