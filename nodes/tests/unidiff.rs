//! UniDiff: losses and retrieval measures against values computed by hand; fine-tuning lowers
//! ITC, IS and RSC on a fixed batch; identity heads start from the zero-shot embeddings; a
//! separate text tower leaves the conditioning LLM alone; bad setups are refused.

mod common;

use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;
use common::{checkpoint, config, run, temp, tensor, Squares, FLOW};
use unilip_nodes::backend::{device, TrainB, B};
use unilip_nodes::models::tokenizer::Tokenizer;
use unilip_nodes::models::unilip::{Unilip, UnilipConfig};
use unilip_nodes::train::data::DatasetKind;
use unilip_nodes::train::loss::{LossKind, LossTerm};
use unilip_nodes::train::objective::Task;
use unilip_nodes::train::{train, Hooks, TrainError, TrainRequest, Trainable};
use unilip_nodes::unidiff::embed::image_embeddings;
use unilip_nodes::unidiff::{
    cosine_matrix, info_nce, rank_top_k, recall_at_k, recall_at_k_matching, rsc_loss, spread,
    transpose, RscMode,
};
use unilip_nodes::weights::Checkpoint;

fn t(rows: &[[f32; 3]]) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &device())
}

fn scalar(x: Tensor<B, 1>) -> f64 {
    x.into_scalar().elem::<f64>()
}

#[test]
fn itc_matches_a_hand_computed_3x3_case() {
    // Unit vectors: the similarity matrix is S = A·Bᵀ.
    let a = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let b = [[0.8, 0.6, 0.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.8]];
    let s = [[0.8, 0.0, 0.6], [0.6, 1.0, 0.0], [0.0, 0.0, 0.8]];
    let tau = 0.5f64;
    let ce = |rows: [[f64; 3]; 3]| {
        (0..3)
            .map(|i| {
                let z: f64 = rows[i].iter().map(|v| (v / tau).exp()).sum();
                -(rows[i][i] / tau - z.ln())
            })
            .sum::<f64>()
            / 3.0
    };
    let st = [
        [s[0][0], s[1][0], s[2][0]],
        [s[0][1], s[1][1], s[2][1]],
        [s[0][2], s[1][2], s[2][2]],
    ];
    let want = (ce(s) + ce(st)) / 2.0;
    let got = scalar(info_nce(t(&a), t(&b), tau as f32));
    assert!((got - want).abs() < 1e-5, "ITC {got} vs hand {want}");
    // Scaling the inputs changes nothing (cosine similarities).
    let scaled = [[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.5]];
    let got2 = scalar(info_nce(t(&scaled), t(&b), tau as f32));
    assert!((got2 - want).abs() < 1e-5);
}

#[test]
fn rsc_is_symmetric_in_its_feature_sets_in_every_mode() {
    let d = [[0.3, -1.0, 2.0], [1.5, 0.2, -0.4], [-0.7, 0.9, 0.1]];
    let c = [[0.1, 0.4, 1.0], [2.0, -0.3, 0.5], [0.2, 1.1, -0.6]];
    let x = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.3, 0.3, 1.0]];
    for mode in [RscMode::Contrastive, RscMode::Cosine, RscMode::TextAnchored] {
        let ab = scalar(rsc_loss(t(&d), t(&c), Some(t(&x)), mode, 0.1).unwrap());
        let ba = scalar(rsc_loss(t(&c), t(&d), Some(t(&x)), mode, 0.1).unwrap());
        assert!((ab - ba).abs() < 1e-5, "{mode:?}: {ab} vs {ba}");
        assert!(
            ab > 0.0,
            "{mode:?}: mismatched features must cost something"
        );
    }
    // Identical features cost nothing under the cosine mode.
    let same = scalar(rsc_loss(t(&d), t(&d), None, RscMode::Cosine, 0.1).unwrap());
    assert!(same.abs() < 1e-6);
    let err = rsc_loss(t(&d), t(&c), None, RscMode::TextAnchored, 0.1).unwrap_err();
    assert!(err.contains("text embeddings"));
}

#[test]
fn recall_at_k_on_a_constructed_corpus() {
    // Query i's match is corpus i; query 1 is closer to corpus 2 than to its own item.
    let corpus = vec![
        vec![1.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0],
        vec![0.0, 0.7, 0.7],
        vec![0.0, 0.0, 1.0],
    ];
    let queries = vec![
        vec![0.9, 0.1, 0.0],
        vec![0.0, 0.6, 0.8],
        vec![0.0, 0.5, 0.5],
        vec![0.1, 0.0, 1.0],
    ];
    let sim = cosine_matrix(&queries, &corpus);
    assert_eq!(rank_top_k(&sim, 2)[1], vec![2, 3]);
    let truth = [0, 1, 2, 3];
    assert_eq!(recall_at_k(&sim, &truth, 1), 0.75);
    assert_eq!(recall_at_k(&sim, &truth, 2), 0.75);
    assert_eq!(recall_at_k(&sim, &truth, 3), 1.0);
}

#[test]
fn spread_detects_collapse() {
    let collapsed = vec![
        vec![1.0, 0.01, 0.0],
        vec![1.0, 0.0, 0.02],
        vec![0.99, 0.0, 0.0],
    ];
    let orthogonal = vec![
        vec![1.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ];
    assert!(spread(&collapsed) < 0.01);
    assert!((spread(&orthogonal) - 1.0).abs() < 1e-6);
}

const ITC: LossKind = LossKind::Itc {
    separate_text: false,
};
const RSC: LossKind = LossKind::Rsc {
    mode: RscMode::Contrastive,
    tap_block: 1,
    t_max: 1000.0,
    temperature: 0.07,
};

fn terms(kinds: &[LossKind]) -> Vec<LossTerm> {
    kinds
        .iter()
        .map(|&kind| LossTerm { kind, weight: 1.0 })
        .collect()
}

/// The base checkpoint plus the heads a run initialised in `out`.
fn with_init_heads(base: &Path, out: &Path) -> Unilip<TrainB> {
    let ck = Checkpoint::from_files(&[
        base.join("model.safetensors"),
        out.join("unidiff_init.safetensors"),
    ])
    .unwrap();
    let config = UnilipConfig::load(&base.join("config.json")).unwrap();
    Unilip::from_checkpoint(Arc::new(ck), config, Task::Unidiff.components(), &device()).unwrap()
}

#[test]
fn recall_counts_any_item_with_the_query_label_and_transposes() {
    // Queries 0 and 1 share a label; corpus items 1 and 2 carry it.
    let sim = vec![
        vec![0.9, 0.1, 0.0],
        vec![0.8, 0.7, 0.2],
        vec![0.1, 0.2, 0.3],
    ];
    let labels = ["x", "x", "y"];
    let corpus = ["z", "x", "x"];
    let same = |q: usize, c: usize| labels[q] == corpus[c];
    // Top-1: 0 → 0 (z, miss), 1 → 0 (miss), 2 → 2 (x ≠ y, miss).
    assert_eq!(recall_at_k_matching(&sim, 1, same), 0.0);
    // Top-2: 0 → {0, 1} hit, 1 → {0, 1} hit, 2 → {2, 1} miss.
    assert!((recall_at_k_matching(&sim, 2, same) - 2.0 / 3.0).abs() < 1e-12);
    let t = transpose(&sim);
    assert_eq!(t[0], vec![0.9, 0.8, 0.1]);
    assert_eq!(t[2], vec![0.0, 0.2, 0.3]);
}

#[test]
fn unidiff_fine_tuning_lowers_itc_is_and_rsc_on_a_fixed_batch() {
    let root = temp("unidiff");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Captions,
        n: 3,
        poison: None,
    };
    let losses = terms(&[ITC, FLOW, RSC]);
    let trainable = Trainable {
        vision: true,
        llm: true,
        connector: true,
        dit: true,
        heads: true,
        ..Trainable::default()
    };
    let mut cfg = config(losses.clone(), trainable, 25);
    cfg.batch_size = 3;
    let out = root.join("out");
    let model_dir = run(&base, &out, &data, &cfg);
    let tok = Tokenizer::from_file(base.join("tokenizer.json")).unwrap();
    let before = common::eval_losses(
        &with_init_heads(&base, &out),
        &tok,
        Task::Unidiff,
        &losses,
        &data,
    );
    let trained =
        Unilip::<TrainB>::load(&model_dir, Task::Unidiff.components(), &device()).unwrap();
    let after = common::eval_losses(&trained, &tok, Task::Unidiff, &losses, &data);
    for ((name, b), a) in ["itc", "is", "rsc"].iter().zip(&before).zip(&after) {
        assert!(a < &(0.9 * b), "{name}: {b} → {a}");
    }
    // The heads were saved with the model, in its key layout, and the temperature learned.
    let scale = "model.unidiff.logit_scale";
    assert_ne!(
        tensor(&model_dir, scale),
        Checkpoint::open(out.join("unidiff_init.safetensors"))
            .unwrap()
            .read(scale)
            .unwrap()
            .data
    );
}

#[test]
fn identity_heads_start_from_the_zero_shot_embeddings() {
    let root = temp("unidiff-identity");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Captions,
        n: 2,
        poison: None,
    };
    let mut cfg = config(terms(&[ITC]), Trainable::default(), 1);
    cfg.trainable.heads = true;
    let out = root.join("out");
    run(&base, &out, &data, &cfg);
    let with_heads = with_init_heads(&base, &out);
    let plain = Unilip::<TrainB>::load(&base, Task::Unidiff.components(), &device()).unwrap();
    assert!(plain.unidiff.is_none() && with_heads.unidiff.is_some());
    let x = Tensor::<TrainB, 4>::random(
        [2, 3, 64, 64],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &device(),
    );
    let a = image_embeddings(&with_heads, x.clone()).unwrap();
    let b = image_embeddings(&plain, x).unwrap();
    let diff: f32 = (a - b).abs().max().into_scalar();
    assert!(diff < 1e-5, "identity head changed the embedding by {diff}");
}

#[test]
fn a_separate_text_tower_trains_while_the_conditioning_llm_stays_fixed() {
    let root = temp("unidiff-separate");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Captions,
        n: 3,
        poison: None,
    };
    let separate = LossKind::Itc {
        separate_text: true,
    };
    let mut cfg = config(terms(&[separate]), Trainable::default(), 5);
    cfg.trainable.heads = true;
    cfg.batch_size = 3;
    let out = root.join("out");
    let model_dir = run(&base, &out, &data, &cfg);
    let llm = "model.language_model.layers.0.mlp.up_proj.weight";
    let tower = "model.unidiff.text_tower.layers.0.mlp.up_proj.weight";
    let init = Checkpoint::open(out.join("unidiff_init.safetensors")).unwrap();
    assert_eq!(init.read(tower).unwrap().data, tensor(&base, llm));
    assert_eq!(tensor(&model_dir, llm), tensor(&base, llm));
    assert_ne!(tensor(&model_dir, tower), tensor(&base, llm));
}

#[test]
fn unidiff_terms_need_caption_data_and_refuse_other_tasks() {
    let root = temp("unidiff-refuse");
    let base = checkpoint(&root);
    let vqa = Squares {
        kind: DatasetKind::Vqa,
        n: 2,
        poison: None,
    };
    let cfg = config(terms(&[ITC]), Trainable::default(), 1);
    let err = train(
        TrainRequest {
            base: &base,
            data: &vqa,
            config: &cfg,
            out: &root.join("out"),
            resume: false,
        },
        Hooks::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TrainError::Setup(m) if m.contains("image–caption")),
        "{err}"
    );
    let mixed = terms(&[ITC, LossKind::PixelMse]);
    assert!(Task::infer(&mixed, DatasetKind::Captions).is_err());
}
