//! `unilip eval unidiff`: UniDiff's evaluation on a held-out ShapesWorld domain split —
//! image→text and text→image Recall@1/5/10, the spread of the image and text embeddings (the
//! collapse measure: near 0 = every embedding alike), and the GenEval-like generation score.

use std::path::Path;

use burn::prelude::*;

use crate::backend::{device, B};
use crate::eval::{eval_shapesworld, EvalOptions, EvalTask, Metrics};
use crate::models::preprocess::normalize;
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{encode_prompts, ComponentSet, Unilip};
use crate::shapesworld::{Domain, GenConfig, Split};
use crate::train::data::{image_batch, Dataset, DatasetKind};
use crate::train::shapes::ShapesDataset;
use crate::unidiff::embed::{image_embeddings, text_embeddings};
use crate::unidiff::retrieval::{cosine_matrix, recall_at_k_matching, spread, transpose};

/// What `eval unidiff` measures.
#[derive(Debug, Clone)]
pub struct UnidiffEvalOptions {
    /// The domain.
    pub domain: Domain,
    /// Held-out image–caption pairs in the retrieval corpus.
    pub n: usize,
    /// Prompts for the generation score (0 = skip generation).
    pub gen_n: usize,
    /// Seed of the validation stream.
    pub seed: u64,
}

/// Embeddings computed per batch of this many items.
const BATCH: usize = 32;

/// Host embeddings of a dataset's first items, one row per item, with each item's caption.
#[derive(Debug, Clone, Default)]
pub struct CorpusEmbeddings {
    /// Image embeddings.
    pub images: Vec<Vec<f32>>,
    /// Caption embeddings.
    pub texts: Vec<Vec<f32>>,
    /// The captions.
    pub captions: Vec<String>,
}

/// Image and caption embeddings of the first `n` items of `data` (see [`crate::unidiff::embed`]).
pub fn embed_corpus(
    model: &Unilip<B>,
    tok: &Tokenizer,
    data: &dyn Dataset,
    n: usize,
) -> Result<CorpusEmbeddings, String> {
    let size = model.config.vision.vision_config.image_size.hw()[0];
    let dev = device();
    let mut out = CorpusEmbeddings::default();
    let n = n.min(data.len());
    for start in (0..n).step_by(BATCH) {
        let samples = (start..(start + BATCH).min(n))
            .map(|i| data.get(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let pixels = normalize(image_batch::<B>(&images, size, &dev));
        let emb = image_embeddings(model, pixels).map_err(|e| e.to_string())?;
        out.images.extend(rows(emb)?);
        let captions: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
        let (ids, mask) = encode_prompts::<B>(tok, &captions, &dev).map_err(|e| e.to_string())?;
        let emb = text_embeddings(model, ids, mask).map_err(|e| e.to_string())?;
        out.texts.extend(rows(emb)?);
        out.captions.extend(samples.into_iter().map(|s| s.text));
    }
    Ok(out)
}

/// The rows of a `[n, d]` tensor.
pub fn rows(x: Tensor<B, 2>) -> Result<Vec<Vec<f32>>, String> {
    let [_, d] = x.dims();
    let flat: Vec<f32> = x
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| format!("{e:?}"))?;
    Ok(flat.chunks(d.max(1)).map(<[f32]>::to_vec).collect())
}

/// Retrieval metrics of paired embeddings whose pairs are labelled by `captions`: a hit is any
/// item with the same caption (ShapesWorld repeats captions).
pub fn retrieval_metrics(images: &[Vec<f32>], texts: &[Vec<f32>], captions: &[&str]) -> Metrics {
    let i2t = cosine_matrix(images, texts);
    let t2i = transpose(&i2t);
    let same = |q: usize, c: usize| captions[q] == captions[c];
    let mut m = Metrics::new();
    let mut rsum = 0.0;
    for k in [1, 5, 10] {
        let a = recall_at_k_matching(&i2t, k, same);
        let b = recall_at_k_matching(&t2i, k, same);
        m.insert(format!("i2t_r{k}"), a);
        m.insert(format!("t2i_r{k}"), b);
        rsum += a + b;
    }
    m.insert("rsum".into(), rsum);
    m.insert("image_spread".into(), spread(images));
    m.insert("text_spread".into(), spread(texts));
    m
}

/// Evaluates the checkpoint in `dir` on `opts.domain`'s validation split.
pub fn eval_unidiff(dir: &Path, opts: &UnidiffEvalOptions) -> Result<Metrics, String> {
    let parts = ComponentSet {
        vision: true,
        llm: true,
        unidiff: true,
        ..ComponentSet::default()
    };
    let model = Unilip::<B>::load(dir, parts, &device()).map_err(|e| e.to_string())?;
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| e.to_string())?;
    let size = model.config.vision.vision_config.image_size.hw()[0];
    let config = GenConfig {
        resolution: size as u32,
        seed: opts.seed,
        split: Split::Val,
        domain: opts.domain,
    };
    let data = ShapesDataset::new(config, DatasetKind::Captions, opts.n)?;
    let corpus = embed_corpus(&model, &tok, &data, opts.n)?;
    let captions: Vec<&str> = corpus.captions.iter().map(String::as_str).collect();
    let mut metrics = retrieval_metrics(&corpus.images, &corpus.texts, &captions);
    let distinct: std::collections::BTreeSet<_> = captions.iter().collect();
    metrics.insert("distinct_captions".into(), distinct.len() as f64);
    if opts.gen_n > 0 {
        let mut gen = EvalOptions::new(EvalTask::Generate, opts.gen_n);
        gen.domain = opts.domain;
        gen.seed = opts.seed;
        metrics.extend(eval_shapesworld(dir, &gen)?);
    }
    Ok(metrics)
}
