//! UniDiff evaluation nodes: Embed Corpus (image and caption embeddings of a dataset), Rank By
//! Cosine (top-K), Recall@K, the spread of embeddings (collapse), and the DiT feature tap.
//! Embeddings travel as [`EmbeddingSet`]s: rows with a label each (the caption), so retrieval
//! counts a hit when the retrieved item carries the query's label.

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use unilip_core::{
    ExecCtx, LatentSpace, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Summary,
    Value,
};

use super::train::data::DatasetValue;
use super::unilip::checkpoint::{model_input, model_port};
use super::unilip::payload::{input, model_err, payload, value, Conditioning, Features, Latent};
use crate::backend::B;
use crate::models::scheduler::{add_noise, gaussian_noise};
use crate::register_node;
use crate::unidiff::eval::{embed_corpus, rows};
use crate::unidiff::retrieval::{cosine_matrix, rank_top_k, recall_at_k_matching, spread};

/// Labelled embedding vectors `[n, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingSet {
    /// One vector per item.
    pub rows: Vec<Vec<f32>>,
    /// One label per item (a caption; equal labels are interchangeable in retrieval).
    pub labels: Vec<String>,
}

payload!(
    EmbeddingSet,
    |s| {
        let flat: Vec<f32> = s.rows.iter().flatten().copied().collect();
        let dim = s.rows.first().map_or(0, Vec::len);
        Some(Summary::of(vec![s.rows.len(), dim], "f32", &flat))
    },
    s.rows.iter().map(Vec::len).sum::<usize>() * 4
);

fn embeddings_port(name: &str, doc: &str) -> PortSpec {
    PortSpec::new(name, PortType::Embeddings { dim: None }, doc)
}

fn schema(
    id: &str,
    description: &str,
    inputs: Vec<PortSpec>,
    outputs: Vec<PortSpec>,
    params: Vec<ParamSpec>,
) -> NodeSchema {
    NodeSchema {
        id: id.into(),
        version: 1,
        category: "unidiff".into(),
        description: description.into(),
        inputs,
        outputs,
        params,
        output_node: false,
    }
}

/// `unidiff.embed_corpus`.
pub struct EmbedCorpus {
    schema: NodeSchema,
}

impl EmbedCorpus {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: schema(
                "unidiff.embed_corpus",
                "Image and caption embeddings of a dataset's first n pairs: pooled mlp1 features \
                 and pooled caption hidden states, through the UniDiff heads when the checkpoint \
                 has them (zero-shot pooled features otherwise). Cached with the dataset's \
                 fingerprint.",
                vec![
                    model_port(),
                    PortSpec::new("data", PortType::Dataset, "Image–caption pairs"),
                ],
                vec![
                    embeddings_port("images", "Image embeddings, labelled by caption"),
                    embeddings_port("texts", "Caption embeddings, labelled by caption"),
                ],
                vec![ParamSpec::int(
                    "n",
                    200,
                    2,
                    1_000_000,
                    "Pairs to embed (at most the dataset's size)",
                )],
            ),
        }
    }
}

impl Node for EmbedCorpus {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let data = input::<DatasetValue>(ctx, "data")?.0.clone();
        let n = ctx.int("n")?.max(0) as usize;
        let corpus = embed_corpus(&handle.model, handle.tokenizer()?, data.as_ref(), n)
            .map_err(NodeError::msg)?;
        let set = |rows: Vec<Vec<f32>>| {
            value(EmbeddingSet {
                rows,
                labels: corpus.captions.clone(),
            })
        };
        Ok(vec![set(corpus.images.clone()), set(corpus.texts.clone())])
    }
}

register_node!(EmbedCorpus);

/// Queries, corpus, their cosine similarities `[queries, corpus]` and the `k` param.
type Retrieval<'a> = (&'a EmbeddingSet, &'a EmbeddingSet, Vec<Vec<f32>>, usize);

fn retrieval<'a>(ctx: &'a ExecCtx<'_>) -> Result<Retrieval<'a>, NodeError> {
    let q = input::<EmbeddingSet>(ctx, "queries")?;
    let c = input::<EmbeddingSet>(ctx, "corpus")?;
    let width = |s: &EmbeddingSet| s.rows.first().map_or(0, Vec::len);
    if c.rows.is_empty() || width(q) != width(c) {
        return Err(NodeError::msg(format!(
            "queries are {}×{} and the corpus {}×{}: need a non-empty corpus of the same width",
            q.rows.len(),
            width(q),
            c.rows.len(),
            width(c)
        )));
    }
    let k = ctx.int("k")?.max(1) as usize;
    Ok((q, c, cosine_matrix(&q.rows, &c.rows), k))
}

fn retrieval_inputs() -> Vec<PortSpec> {
    vec![
        embeddings_port("queries", "Query embeddings"),
        embeddings_port("corpus", "Embeddings to search"),
    ]
}

fn k_param() -> ParamSpec {
    ParamSpec::int("k", 5, 1, 1000, "How many of the nearest to keep")
}

/// `unidiff.rank`.
pub struct RankByCosine {
    schema: NodeSchema,
}

impl RankByCosine {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: schema(
                "unidiff.rank",
                "Ranks the corpus for every query by cosine similarity and lists the top k \
                 labels (✓ = the query's own label).",
                retrieval_inputs(),
                vec![PortSpec::new(
                    "ranking",
                    PortType::Text,
                    "One line per query",
                )],
                vec![k_param()],
            ),
        }
    }
}

impl Node for RankByCosine {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let (q, c, sim, k) = retrieval(ctx)?;
        let lines: Vec<String> = rank_top_k(&sim, k)
            .iter()
            .enumerate()
            .map(|(i, top)| {
                let label = q.labels.get(i).map_or("", String::as_str);
                let hits: Vec<String> = top
                    .iter()
                    .map(|&j| {
                        let mark = if c.labels.get(j).map(String::as_str) == Some(label) {
                            "✓"
                        } else {
                            ""
                        };
                        format!("{mark}{} ({:.3})", c.labels[j], sim[i][j])
                    })
                    .collect();
                format!("{label} → {}", hits.join(" | "))
            })
            .collect();
        Ok(vec![Value::Text(lines.join("\n"))])
    }
}

register_node!(RankByCosine);

/// `unidiff.recall_at_k`.
pub struct RecallAtK {
    schema: NodeSchema,
}

impl RecallAtK {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: schema(
                "unidiff.recall_at_k",
                "Fraction of queries with an item of their own label among the k most similar \
                 corpus items (image→text: queries = images, corpus = texts).",
                retrieval_inputs(),
                vec![PortSpec::new(
                    "recall",
                    PortType::Float,
                    "Recall@k in [0, 1]",
                )],
                vec![k_param()],
            ),
        }
    }
}

impl Node for RecallAtK {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let (q, c, sim, k) = retrieval(ctx)?;
        let r = recall_at_k_matching(&sim, k, |i, j| q.labels.get(i) == c.labels.get(j));
        Ok(vec![Value::Float(r)])
    }
}

register_node!(RecallAtK);

/// `unidiff.spread`.
pub struct Spread {
    schema: NodeSchema,
}

impl Spread {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: schema(
                "unidiff.spread",
                "Collapse measure: 1 − the mean cosine similarity of distinct pairs (near 0 = \
                 every embedding alike; unrelated directions ≈ 1).",
                vec![embeddings_port("embeddings", "A set of embeddings")],
                vec![PortSpec::new("spread", PortType::Float, "Spread")],
                vec![],
            ),
        }
    }
}

impl Node for Spread {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let set = input::<EmbeddingSet>(ctx, "embeddings")?;
        Ok(vec![Value::Float(spread(&set.rows))])
    }
}

register_node!(Spread);

/// `unilip.dit_features`.
pub struct DitFeatures {
    schema: NodeSchema,
}

impl DitFeatures {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.dit_features".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "DiT feature tap: noises a UniLIP latent to `timestep` (flow \
                              matching, seeded), runs the DiT with the positive condition up to \
                              `block` and outputs that block's hidden states, plus their \
                              token-mean per image (what UniDiff's RSC compares; DIFT-style \
                              inspection)."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new(
                        "latent",
                        PortType::Latent {
                            space: LatentSpace::Unilip,
                            channels: None,
                            downscale: None,
                        },
                        "Clean UniLIP latent (unscaled)",
                    ),
                    PortSpec::new(
                        "conditioning",
                        PortType::Conditioning { dim: None },
                        "DiT condition (its positive prompt is used)",
                    ),
                ],
                outputs: vec![
                    PortSpec::new(
                        "features",
                        PortType::VisionFeatures { dim: None },
                        "Hidden states [b, tokens, width] of the block",
                    ),
                    embeddings_port("pooled", "Token-mean per image"),
                ],
                params: vec![
                    ParamSpec::int("block", 1, 0, 1000, "DiT block to tap (0-based)"),
                    ParamSpec::float("timestep", 261.0, 0.0, 1000.0, "Noise level (0–1000)"),
                    ParamSpec::seed("seed", 0, "Noise seed"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for DitFeatures {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let latent = input::<Latent>(ctx, "latent")?.0.clone();
        let conditioning = input::<Conditioning>(ctx, "conditioning")?;
        if !conditioning.regions.is_empty() {
            return Err(NodeError::msg(
                "input `conditioning` has regional prompts, which the feature tap does not \
                 apply: wire the conditioning from before the region nodes",
            ));
        }
        let cond = &conditioning.cond;
        let block = ctx.int("block")?.max(0) as usize;
        let t = ctx.float("timestep")? as f32;
        let seed = ctx.int("seed")? as u64;
        let dit = model
            .dit
            .as_ref()
            .ok_or_else(|| NodeError::msg("the checkpoint was loaded without its DiT"))?;
        let x0 = model.scale(latent);
        let [b, c, h, w] = x0.dims();
        let dev = x0.device();
        let noise = gaussian_noise::<B, 4, _>([b, c, h, w], &mut StdRng::seed_from_u64(seed), &dev);
        let sigmas = Tensor::<B, 1>::from_floats(vec![t / 1000.0; b].as_slice(), &dev);
        let xt = add_noise(x0, noise, sigmas);
        let cond = cond.broadcast(b).map_err(model_err)?;
        let timesteps = Tensor::<B, 1>::from_floats(vec![t; b].as_slice(), &dev);
        let features = dit
            .features(xt, timesteps, cond.embeds, cond.mask.float(), block)
            .ok_or_else(|| {
                NodeError::msg(format!(
                    "block {block} does not exist: the DiT has {} blocks (0-based)",
                    model.config.dit.num_layers
                ))
            })?;
        let pooled = rows(features.clone().mean_dim(1).squeeze_dim::<2>(1)).map_err(model_err)?;
        let labels = (0..b).map(|i| format!("image {i}")).collect();
        Ok(vec![
            value(Features {
                tokens: features,
                grid: [h, w],
            }),
            value(EmbeddingSet {
                rows: pooled,
                labels,
            }),
        ])
    }
}

register_node!(DitFeatures);
