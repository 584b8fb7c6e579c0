//! UniDiff through the real binary on the embedded default model: `graphs/train_unidiff.ron`
//! fine-tunes with ITC + IS + RSC inside a sweep (each point in its own run directory) and
//! records retrieval, collapse and generation metrics; `eval unidiff --json` reports them.

use std::collections::BTreeMap;
mod common;

use common::{ok, s, temp, unilip};

#[test]
fn unidiff_graph_fine_tunes_per_sweep_point_and_records_metrics() {
    let out = temp("sweep");
    ok(&unilip(&[
        "sweep",
        "graphs/train_unidiff.ron",
        "--set",
        "train.steps=2",
        "--set",
        "train.batch_size=4",
        "--set",
        "data.n=8",
        "--set",
        "val.n=12",
        "--set",
        "embed.n=12",
        "--set",
        "gen.n=1",
        "--set",
        "gen.steps=2",
        "--grid",
        "rsc.weight=0,0.5",
        "--metric",
        "i2t_r1.recall",
        "--metric",
        "t2i_r5.recall",
        "--metric",
        "spread.spread",
        "--metric",
        "gen.score",
        "--out",
        s(&out),
    ]));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(5).map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csv}");
    for r in &rows {
        assert!(r[1..].iter().all(|v| (0.0..=1.0).contains(v)), "{csv}");
        assert!(r[3] > 0.0, "spread of the image embeddings: {csv}");
    }
    let chart = std::fs::read_to_string(out.join("i2t_r1.recall.svg")).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains(">0.5</text>"),
        "{chart}"
    );
    std::fs::remove_file(out.join("gen.score.svg")).unwrap();
    ok(&unilip(&[
        "sweep-chart",
        s(&out.join("results.csv")),
        "--metric",
        "i2t_r1.recall",
        "--metric",
        "gen.score",
    ]));
    assert!(out.join("gen.score.svg").exists());
    for (point, rsc) in [("point_000", 0.0), ("point_001", 0.5)] {
        let run = out.join(point).join("train");
        let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
        assert!(
            log.starts_with("step,lr,loss,itc,flow_matching,rsc,"),
            "{log}"
        );
        let last: Vec<f64> = log
            .lines()
            .last()
            .unwrap()
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        let total = last[3] + last[4] + rsc * last[5];
        assert!(
            (last[2] - total).abs() < 1e-4 * total.abs().max(1.0),
            "{log}"
        );
        let inspect = ok(&unilip(&["checkpoint", "inspect", s(&run.join("model"))]));
        assert!(inspect.contains("UniDiff heads"), "{inspect}");
    }
}

#[test]
fn eval_unidiff_reports_recall_spread_and_generation_as_json() {
    let stdout = ok(&unilip(&[
        "eval", "unidiff", "--domain", "dark", "--n", "16", "--gen-n", "1", "--json",
    ]));
    let m: BTreeMap<String, f64> = serde_json::from_str(stdout.trim()).unwrap();
    for dir in ["i2t", "t2i"] {
        let r = |k: u32| m[&format!("{dir}_r{k}")];
        assert!(r(1) <= r(5) && r(5) <= r(10) && r(10) <= 1.0, "{m:?}");
    }
    assert!(m["image_spread"] > 0.0 && m["text_spread"] > 0.0, "{m:?}");
    assert!((0.0..=1.0).contains(&m["geneval"]), "{m:?}");
    assert!(m["distinct_captions"] >= 2.0, "{m:?}");
    let bad = unilip(&["eval", "unidiff", "--domain", "dark", "--n", "1"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--n must be at least 2"));
}
