//! `unilip sweep` through the real binary: 3 condition modes × 2 seeds re-use the cached MLLM.

use std::path::Path;
use std::process::Command;

use unilip_nodes::models::unilip::{write_random_checkpoint, UnilipConfig};
use unilip_nodes::weights::SaveDtype;

#[test]
fn sweep_runs_the_grid_and_reuses_upstream_results() {
    let dir = std::env::temp_dir().join(format!("unilip-sweep-{}", std::process::id()));
    let ck = dir.join("ckpt");
    std::fs::create_dir_all(&ck).unwrap();
    let tok = unilip_nodes::fixtures::root().join("tokenizer/tokenizer.json");
    write_random_checkpoint(&ck, UnilipConfig::tiny(), 3, SaveDtype::F32, Some(&tok)).unwrap();
    let graph = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs/ablate_condition.ron");
    let out = Command::new(env!("CARGO_BIN_EXE_unilip"))
        .args(["sweep", graph.to_str().unwrap()])
        .args(["--grid", "condition.mode=dual,hidden_only,query_only"])
        .args(["--grid", "dit.seed=1,2", "--set", "dit.steps=4"])
        .args(["--set", &format!("ckpt.dir={}", ck.display())])
        .args(["--out", dir.join("sweep").to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("executed:")).collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let count = |node: &str| {
        lines
            .iter()
            .filter(|l| {
                l.split("executed: ")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .any(|n| n == node)
            })
            .count()
    };
    assert_eq!(
        count("mllm"),
        1,
        "the MLLM runs once for all 6 points:\n{stdout}"
    );
    assert_eq!(count("prompt"), 1);
    assert_eq!(count("condition"), 3, "once per mode:\n{stdout}");
    assert_eq!(count("dit"), 6);
    let csv = std::fs::read_to_string(dir.join("sweep/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(
        csv.starts_with("condition.mode,dit.seed,executed,seconds"),
        "{csv}"
    );
    std::fs::remove_dir_all(dir).ok();
}
