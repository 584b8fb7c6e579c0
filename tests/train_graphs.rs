//! The shipped training graphs through the real binary: each trains a few steps on a tiny model
//! and folder data, writes an HF-layout model the inference graphs load, and `--resume` continues.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ok, unilip};

use unilip_nodes::models::tokenizer::{build_word_level, Tokenizer, TEMPLATE_WORDS};
use unilip_nodes::models::unilip::{write_random_checkpoint, UnilipConfig};
use unilip_nodes::weights::SaveDtype;

fn root() -> PathBuf {
    let d = std::env::temp_dir().join(format!("unilip-train-graphs-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn checkpoint(dir: &Path) -> PathBuf {
    let vocab: Vec<&str> = TEMPLATE_WORDS
        .iter()
        .copied()
        .chain(["a", "red", "blue", "square", "make", "it"])
        .collect();
    let tok = Tokenizer::from_inner(build_word_level(&vocab, &[]).unwrap(), "test").unwrap();
    let tok_path = dir.join("tokenizer.json");
    tok.save(&tok_path).unwrap();
    let ck = dir.join("base");
    let config = UnilipConfig::shapes(tok.vocab_size(), tok.special());
    write_random_checkpoint(&ck, config, 1, SaveDtype::F32, Some(&tok_path)).unwrap();
    ck
}

fn square_png(path: &Path, rgb: [u8; 3]) {
    let img = image::RgbImage::from_fn(64, 64, |x, y| {
        if (16..40).contains(&x) && (16..40).contains(&y) {
            image::Rgb(rgb)
        } else {
            image::Rgb([128, 128, 128])
        }
    });
    img.save(path).unwrap();
}

/// Two captioned images and two edit triplets.
fn folders(dir: &Path) -> (PathBuf, PathBuf) {
    let (caps, edits) = (dir.join("captions"), dir.join("edits"));
    std::fs::create_dir_all(&caps).unwrap();
    std::fs::create_dir_all(&edits).unwrap();
    for (i, (name, rgb)) in [("red", [220, 30, 30]), ("blue", [30, 30, 220])]
        .into_iter()
        .enumerate()
    {
        square_png(&caps.join(format!("{i}.png")), rgb);
        std::fs::write(caps.join(format!("{i}.txt")), format!("a {name} square")).unwrap();
        square_png(&edits.join(format!("{i}.source.png")), [rgb[2], 30, rgb[0]]);
        square_png(&edits.join(format!("{i}.target.png")), rgb);
        std::fs::write(edits.join(format!("{i}.txt")), format!("make it {name}")).unwrap();
    }
    (caps, edits)
}

fn train(graph: &str, sets: &[(&str, String)], extra: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("graphs")
        .join(graph);
    let mut args = vec!["train".to_string(), path.display().to_string()];
    for (k, v) in sets {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    unilip(&args)
}

fn common(ck: &Path, data: &Path, out: &Path, steps: usize) -> Vec<(&'static str, String)> {
    vec![
        ("ckpt.dir", ck.display().to_string()),
        ("data.dir", data.display().to_string()),
        ("train.out", out.display().to_string()),
        ("train.steps", steps.to_string()),
        ("train.batch_size", "2".into()),
        ("train.save_every", "1".into()),
        ("train.warmup", "0".into()),
    ]
}

#[test]
fn shipped_training_graphs_train_chain_and_resume() {
    let dir = root();
    let ck = checkpoint(&dir);
    let (caps, edits) = folders(&dir);

    let stage1 = dir.join("stage1");
    let stdout = ok(&train(
        "train_encoder_stage1.ron",
        &common(&ck, &caps, &stage1, 2),
        &[],
    ));
    assert!(stdout.contains("train.loss:"), "{stdout}");
    for f in [
        "model/model.safetensors",
        "model/config.json",
        "model/tokenizer.json",
    ] {
        assert!(stage1.join(f).exists(), "{f} missing");
    }
    // Stage 2 starts from stage 1's model.
    let mut sets = common(&stage1.join("model"), &caps, &dir.join("stage2"), 1);
    sets.push(("train.ema_decay", "0".into()));
    ok(&train("train_encoder_stage2.ron", &sets, &[]));

    ok(&train(
        "train_generate.ron",
        &common(&ck, &caps, &dir.join("gen"), 2),
        &[],
    ));
    let edit_out = dir.join("edit");
    ok(&train(
        "train_edit.ron",
        &common(&ck, &edits, &edit_out, 2),
        &[],
    ));
    // Resume with more steps continues from step 2.
    ok(&train(
        "train_edit.ron",
        &common(&ck, &edits, &edit_out, 3),
        &["--resume"],
    ));
    let log = std::fs::read_to_string(edit_out.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4, "{log}");

    // The trained generator runs in the shipped inference graph.
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs/generate.ron");
    let out = unilip(&[
        "run".into(),
        gen.display().to_string(),
        "--set".into(),
        format!("ckpt.dir={}", dir.join("gen/model").display()),
        "--set".into(),
        "dit.steps=2".into(),
        "--out".into(),
        dir.join("images").display().to_string(),
    ]);
    ok(&out);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn train_refuses_graphs_without_a_trainer() {
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs/generate.ron");
    let out = unilip(&["train".into(), gen.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `train.run` node"));
}
