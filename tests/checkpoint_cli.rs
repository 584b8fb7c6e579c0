//! `unilip checkpoint reinit`, `graft`, `grow`, `add-position` and `add-source-input` through the
//! real binary, on the
//! embedded default model:
//! the chosen components are drawn afresh under the edited config (or taken from the donor with
//! its config fields), everything else is byte-identical, the result loads, and bad requests name
//! the key or field at fault.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{ok, s, temp, tensors, unilip};

const BASE: &str = "models/shapesworld";

/// `unilip checkpoint reinit BASE --out OUT --component dit EXTRA...`.
fn reinit(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "checkpoint",
        "reinit",
        BASE,
        "--out",
        s(out),
        "--component",
        "dit",
    ];
    args.extend_from_slice(extra);
    unilip(&args)
}

/// `unilip checkpoint graft BASE --from DONOR --out OUT --component COMPONENT`.
fn graft(donor: &Path, out: &Path, component: &str) -> std::process::Output {
    unilip(&[
        "checkpoint",
        "graft",
        BASE,
        "--from",
        s(donor),
        "--out",
        s(out),
        "--component",
        component,
    ])
}

/// A usage error naming the connector's projector and `--component`, with nothing written.
fn assert_refused_for_the_projector(output: &std::process::Output, out: &Path) {
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("`model.projector.") && err.contains("--component"),
        "{err}"
    );
    assert!(!out.join("model.safetensors").exists());
}

fn config(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn reinit_redraws_the_dit_under_a_new_config_and_keeps_the_rest() {
    let out = temp("reinit");
    let stdout = ok(&reinit(
        &out,
        &["--set", "dit_config.num_layers=5", "--seed", "7"],
    ));
    assert!(stdout.contains("drawn at random (seed 7)"), "{stdout}");
    ok(&unilip(&["checkpoint", "inspect", s(&out)]));

    assert_eq!(config(&out)["dit_config"]["num_layers"], 5);
    assert!(out.join("tokenizer.json").exists());

    let before = tensors(Path::new(env!("CARGO_MANIFEST_DIR")).join(BASE).as_path());
    let after = tensors(&out);
    let dit_blocks = |t: &BTreeMap<String, _>| {
        t.keys()
            .filter(|k| {
                k.starts_with("model.dit.transformer_blocks.") && k.ends_with(".attn1.to_q.weight")
            })
            .count()
    };
    assert_ne!(dit_blocks(&before), 5);
    assert_eq!(dit_blocks(&after), 5);
    let mut kept = 0;
    for (key, value) in &after {
        if key.starts_with("model.dit.") {
            if let Some(old) = before.get(key) {
                assert_ne!(old, value, "{key} was not re-drawn");
            }
        } else {
            assert_eq!(before.get(key), Some(value), "{key} changed");
            kept += 1;
        }
    }
    assert_eq!(
        kept,
        before
            .keys()
            .filter(|k| !k.starts_with("model.dit."))
            .count()
    );
}

#[test]
fn reinit_names_what_blocks_the_request() {
    let out = temp("reinit-bad");
    // A wider caption width changes the connector's projector, which is not being redrawn.
    let narrow = reinit(&out, &["--set", "dit_config.caption_channels=48"]);
    assert_refused_for_the_projector(&narrow, &out);

    let typo = reinit(&out, &["--set", "dit_config.num_layer=3"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("no field `dit_config.num_layer`"));

    let onto_itself = unilip(&[
        "checkpoint",
        "reinit",
        BASE,
        "--out",
        BASE,
        "--component",
        "dit",
    ]);
    assert_eq!(onto_itself.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&onto_itself.stderr).contains("is the base checkpoint"));
}

#[test]
fn graft_takes_the_donors_dit_and_its_config_and_keeps_the_rest() {
    let donor = temp("graft-donor");
    ok(&reinit(
        &donor,
        &["--set", "dit_config.num_layers=3", "--seed", "3"],
    ));
    let out = temp("graft");
    let stdout = ok(&graft(&donor, &out, "dit"));
    assert!(stdout.contains("taken from"), "{stdout}");
    ok(&unilip(&["checkpoint", "inspect", s(&out)]));
    assert_eq!(config(&out)["dit_config"], config(&donor)["dit_config"]);

    let base = tensors(Path::new(env!("CARGO_MANIFEST_DIR")).join(BASE).as_path());
    let from = tensors(&donor);
    let after = tensors(&out);
    let (dit, rest): (Vec<_>, Vec<_>) =
        after.iter().partition(|(k, _)| k.starts_with("model.dit."));
    assert_eq!(
        dit.len(),
        from.keys().filter(|k| k.starts_with("model.dit.")).count()
    );
    for (key, value) in dit {
        assert_eq!(from.get(key), Some(value), "{key} is not the donor's");
    }
    for (key, value) in rest {
        assert_eq!(base.get(key), Some(value), "{key} is not the base's");
    }
}

#[test]
fn graft_names_the_tensor_that_does_not_fit() {
    // The donor's DiT reads 48-wide captions; the base's connector projector writes 128.
    let donor = temp("graft-narrow-donor");
    ok(&reinit(
        &donor,
        &[
            "--component",
            "connector",
            "--set",
            "dit_config.caption_channels=48",
        ],
    ));
    let out = temp("graft-bad");
    assert_refused_for_the_projector(&graft(&donor, &out, "dit"), &out);

    let missing = graft(&out.join("nowhere"), &out, "dit");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--from"));
}

/// The metrics of `unilip eval shapesworld --task TASK --n N --json` on `dir`.
fn eval_metrics(dir: &Path, task: &str, n: &str) -> serde_json::Value {
    let stdout = ok(&unilip(&[
        "eval",
        "shapesworld",
        "--task",
        task,
        "--n",
        n,
        "--json",
        "--checkpoint",
        s(dir),
    ]));
    serde_json::from_str(&stdout).unwrap()
}

/// `feature_position_share` from `--task probe` on `dir`.
fn position_share(dir: &Path) -> f64 {
    eval_metrics(dir, "probe", "40")["feature_position_share"]
        .as_f64()
        .unwrap()
}

#[test]
fn add_position_puts_absolute_position_into_the_features_and_keeps_the_rest() {
    let out = temp("add-position");
    let stdout = ok(&unilip(&[
        "checkpoint",
        "add-position",
        BASE,
        "--scale",
        "2",
        "--out",
        s(&out),
    ]));
    assert!(stdout.contains("2 × 2-D sin-cos added"), "{stdout}");
    let base_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(BASE);
    let (base, after) = (tensors(&base_dir), tensors(&out));
    let table = "model.vision_tower.embeddings.position_embedding";
    assert_eq!(
        base.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (key, value) in &after {
        assert_eq!(key == table, base[key] != *value, "{key}");
    }
    assert_eq!(config(&out), config(&base_dir));
    // Blank-background tokens now differ by position (the shipped ViT's barely do).
    let (before, now) = (position_share(&base_dir), position_share(&out));
    assert!(
        before < 0.02 && now > 0.06,
        "position share {before} → {now}"
    );

    let refused = unilip(&[
        "checkpoint",
        "add-position",
        BASE,
        "--scale",
        "1",
        "--out",
        BASE,
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is the base checkpoint"));
}

/// `flow_loss` and `flow_prompt_delta` from `--task flow` on `dir`.
fn flow(dir: &Path) -> (f64, f64) {
    let metrics = eval_metrics(dir, "flow", "4");
    let get = |name: &str| metrics[name].as_f64().unwrap();
    (get("flow_loss"), get("flow_prompt_delta"))
}

/// `unilip checkpoint grow BASE --component COMPONENT --layers N --out OUT`.
fn grow(base: &Path, component: &str, layers: &str, out: &Path) -> std::process::Output {
    unilip(&[
        "checkpoint",
        "grow",
        s(base),
        "--component",
        component,
        "--layers",
        layers,
        "--out",
        s(out),
    ])
}

#[test]
fn grow_adds_identity_layers_that_leave_the_model_unchanged() {
    let base_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(BASE);
    let connector = temp("grow-connector");
    let stdout = ok(&grow(&base_dir, "connector", "3", &connector));
    assert!(stdout.contains("connector 1 → 3 layers"), "{stdout}");
    let both = temp("grow-both");
    ok(&grow(&connector, "dit", "6", &both));
    ok(&unilip(&["checkpoint", "inspect", s(&both)]));
    assert_eq!(config(&both)["connect_layer"], 3);
    assert_eq!(config(&both)["dit_config"]["num_layers"], 6);

    let (base, after) = (tensors(&base_dir), tensors(&both));
    for (key, value) in &base {
        assert_eq!(after.get(key), Some(value), "{key} changed");
    }
    let last_block = |key: &str| key.replace("transformer_blocks.5.", "transformer_blocks.3.");
    let new_block: Vec<_> = after
        .keys()
        .filter(|k| k.starts_with("model.dit.transformer_blocks.5."))
        .collect();
    assert_eq!(
        new_block.len(),
        base.keys()
            .filter(|k| k.starts_with("model.dit.transformer_blocks.3."))
            .count()
    );
    for key in new_block {
        let (shape, bytes) = &after[key];
        let zeroed = key.contains(".to_out.0.") || key.contains(".conv_point.");
        assert_eq!(shape, &base[&last_block(key)].0, "{key}");
        assert_eq!(bytes.iter().all(|b| *b == 0), zeroed, "{key}");
    }
    // The deeper model computes exactly what the base did.
    assert_eq!(flow(&both), flow(&base_dir));

    let shrink = grow(&base_dir, "dit", "4", &temp("grow-bad"));
    assert_eq!(shrink.status.code(), Some(2));
    let err = String::from_utf8_lossy(&shrink.stderr);
    assert!(
        err.contains("already has 4 (`dit_config.num_layers`)"),
        "{err}"
    );
    let onto_itself = grow(&base_dir, "connector", "2", &base_dir);
    assert_eq!(onto_itself.status.code(), Some(2));
}

#[test]
fn add_source_input_widens_the_dit_input_and_leaves_the_model_unchanged() {
    let base_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(BASE);
    let out = temp("source-input");
    let add = |base: &Path, out: &Path| {
        unilip(&["checkpoint", "add-source-input", s(base), "--out", s(out)])
    };
    let stdout = ok(&add(&base_dir, &out));
    ok(&unilip(&["checkpoint", "inspect", s(&out)]));
    let latent = config(&base_dir)["dit_config"]["in_channels"]
        .as_u64()
        .unwrap();
    assert!(
        stdout.contains(&format!("{latent} → {} input channels", 2 * latent)),
        "{stdout}"
    );
    assert_eq!(config(&out)["dit_config"]["in_channels"], 2 * latent);
    assert_eq!(config(&out)["dit_config"]["out_channels"], latent);

    let (base, after) = (tensors(&base_dir), tensors(&out));
    let patch = "model.dit.patch_embed.proj.weight";
    for (key, value) in &base {
        assert_eq!(key == patch, after.get(key) != Some(value), "{key}");
    }
    // Each output channel's row: the base's weights, then as many zero bytes.
    let ((old_shape, old), (new_shape, new)) = (&base[patch], &after[patch]);
    assert_eq!(new_shape[1], 2 * old_shape[1]);
    let row = old.len() / old_shape[0];
    for (o, n) in old.chunks(row).zip(new.chunks(2 * row)) {
        assert_eq!(&n[..row], o);
        assert!(n[row..].iter().all(|b| *b == 0));
    }
    // The DiT sees the source now, with zero weight: every flow loss is the base's.
    let (before, now) = (
        eval_metrics(&base_dir, "flow", "4"),
        eval_metrics(&out, "flow", "4"),
    );
    for name in ["flow_loss", "flow_edit_loss", "flow_edit_source_delta"] {
        let (b, n) = (before[name].as_f64().unwrap(), now[name].as_f64().unwrap());
        assert!(
            (b - n).abs() <= 1e-6 * b.abs().max(1.0),
            "{name}: {b} vs {n}"
        );
    }

    // The edit graph passes the source to such a DiT (its `image_latent` wire) and, with zero
    // weight on it, edits as the base does.
    let edited = |ckpt: &Path, name: &str| {
        let dir = temp(name);
        ok(&unilip(&[
            "run",
            "graphs/edit.ron",
            "--set",
            &format!("ckpt.dir={}", s(ckpt)),
            "--set",
            "dit.steps=2",
            "--out",
            s(&dir),
        ]));
        image::open(dir.join("edit.png")).unwrap().to_rgb8()
    };
    let (a, b) = (edited(&base_dir, "edit-base"), edited(&out, "edit-source"));
    let most = a.iter().zip(b.iter()).map(|(x, y)| x.abs_diff(*y)).max();
    assert!(most <= Some(1), "pixels differ by {most:?}");

    let again = add(&out, &temp("source-input-twice"));
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already takes"), "{err}");
    let onto_itself = add(&base_dir, &base_dir);
    assert_eq!(onto_itself.status.code(), Some(2));
}
