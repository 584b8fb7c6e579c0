//! UniDiff losses and retrieval measures against values computed by hand.

use burn::prelude::*;
use unilip_nodes::backend::{device, B};
use unilip_nodes::unidiff::{
    cosine_matrix, info_nce, rank_top_k, recall_at_k, rsc_loss, spread, RscMode,
};

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
