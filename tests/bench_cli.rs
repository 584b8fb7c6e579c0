//! `unilip bench models --torch PYTHON` refuses an interpreter that cannot run the PyTorch side
//! before it spends minutes timing the Burn blocks.

mod common;
use common::unilip;

#[test]
fn bench_torch_names_a_missing_interpreter() {
    let out = unilip(&["bench", "models", "--torch", "/nonexistent/python3"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--torch /nonexistent/python3") && err.contains("cannot start"),
        "{err}"
    );
}

#[test]
fn bench_torch_names_missing_packages() {
    // `false` starts and exits 1 whatever it is given: it stands in for a Python without torch.
    let out = unilip(&["bench", "models", "--torch", "false"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot import torch, transformers and diffusers"),
        "{err}"
    );
}
