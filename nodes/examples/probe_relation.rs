//! Is the relation of a two-group prompt ("A left of B") in what the DiT is given? Fits linear
//! probes (4 relations) on 600 validation prompts to the LLM hidden states, the connector output
//! and the DiT condition at A's and B's shape words, and to the mean of the query outputs.
//!
//! `cargo run --release -p unilip-nodes --example probe_relation [CHECKPOINT_DIR]` (default: the
//! embedded ShapesWorld model).

use std::error::Error;
use std::path::PathBuf;

use burn::prelude::*;
use unilip_nodes::backend::{device, B};
use unilip_nodes::models::tokenizer::{generation_prompt, Tokenizer};
use unilip_nodes::models::unilip::{ComponentSet, ConditionMode, Unilip};
use unilip_nodes::probe::linear_probe;
use unilip_nodes::shapesworld::{Domain, GenConfig, Generator, Relation, Split};

/// Prompts probed.
const PROMPTS: usize = 600;

/// Token `pos` of `[1, l, d]`.
fn row(t: &Tensor<B, 3>, pos: usize) -> Result<Vec<f32>, Box<dyn Error>> {
    let d = t.dims()[2];
    let data = t.clone().narrow(1, pos, 1).reshape([d]).into_data();
    Ok(data.to_vec().map_err(|e| format!("{e:?}"))?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("models/shapesworld"), PathBuf::from);
    let model = Unilip::<B>::load(&dir, ComponentSet::GENERATION, &device())?;
    let tok = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    let generator = Generator::new(GenConfig {
        resolution: 64,
        seed: 0,
        split: Split::Val,
        domain: Domain::Default,
    })?;
    let style = generator.style();
    // Per place probed: one feature vector per prompt.
    let places = [
        "LLM hidden state at A's shape word",
        "LLM hidden state at B's shape word",
        "connector output at A's shape word",
        "connector output at B's shape word",
        "DiT condition at A's shape word",
        "DiT condition at B's shape word",
        "DiT condition, mean of the query outputs",
    ];
    let mut features: Vec<Vec<Vec<f32>>> = vec![Vec::new(); places.len()];
    let mut labels = Vec::new();
    for item in (0..).map(|i| generator.caption_item(i)) {
        if labels.len() == PROMPTS {
            break;
        }
        let Some(related) = item.spec.second else {
            continue;
        };
        let ids = tok.encode(&generation_prompt(&item.caption))?;
        let caption = tok.encode(&item.caption)?;
        let start = (0..ids.len())
            .find(|&s| ids[s..].starts_with(&caption))
            .ok_or("the caption's tokens are not in the prompt's")?;
        let a_words = item.spec.first.phrase(&style).split(' ').count();
        let (a, b) = (start + a_words - 1, start + caption.len() - 1);
        let n = ids.len();
        let ids: Vec<i64> = ids.iter().map(|&v| i64::from(v)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &device());
        let mask = Tensor::<B, 2, Int>::ones([1, n], &device());
        let trace = model.condition_traced(ids, mask, None, ConditionMode::Dual)?;
        let condition = &trace.condition.embeds;
        let queries = condition
            .clone()
            .narrow(1, n, condition.dims()[1] - n)
            .mean_dim(1);
        let rows = [
            row(&trace.llm_hidden, a)?,
            row(&trace.llm_hidden, b)?,
            row(&trace.connector_hidden, a)?,
            row(&trace.connector_hidden, b)?,
            row(condition, a)?,
            row(condition, b)?,
            row(&queries, 0)?,
        ];
        for (f, r) in features.iter_mut().zip(rows) {
            f.push(r);
        }
        let relation = Relation::ALL.iter().position(|r| *r == related.relation);
        labels.push(relation.ok_or("unknown relation")?);
    }
    for (place, f) in places.iter().zip(&features) {
        let s = linear_probe(f, &labels, Relation::ALL.len()).ok_or("too few prompts")?;
        println!(
            "{place}: relation probe {:.3} (majority {:.3})",
            s.accuracy, s.majority
        );
    }
    Ok(())
}
