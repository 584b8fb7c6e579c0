//! The embedded default model (`models/shapesworld`, trained by `unilip train-recipe shapesworld`):
//! the shipped graphs run on it with no checkpoint flag, and its scores on a few fixed ShapesWorld
//! validation items stay above the random-init model's (README lists both), so a broken stage
//! fails here. Evaluation is deterministic (fixed seeds), so the thresholds are not flaky.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use unilip_nodes::eval::{eval_shapesworld, EditMethod, EvalOptions, EvalTask, RegionMode};
use unilip_nodes::models::flow_edit::FlowEditOptions;
use unilip_nodes::models::regions::RegionLayout;

fn scores(task: EvalTask, n: usize) -> BTreeMap<String, f64> {
    let dir = unilip_nodes::default_model::dir().expect("the default model ships in the repo");
    let mut opts = EvalOptions::new(task, n);
    opts.steps = 10;
    if task == EvalTask::Generate {
        // As `graphs/generate.ron` samples: the regions `unilip.caption_regions` plans, one per
        // object of a layout drawn for the prompt (the session-28 model was trained with them).
        opts.regions = RegionMode::WithBase;
        opts.layout = RegionLayout::Objects;
    }
    eval_shapesworld(&dir, &opts).expect("evaluation runs")
}

#[test]
fn default_model_reconstructs_far_better_than_random_weights() {
    // Random init: 10.1 dB; the session-3 default 24.8 dB on 50 items; the session-8 decoder
    // 29.7 dB on these 8, the session-15 one 32.4 dB, the shipped (session-16) one 33.3 dB (32.4 on
    // 100). Its reconstructions pass 0.92 of the GenEval-like checks of their captions here
    // (session 8: 0.67, session 15: 0.85) and keep 16 of the 20 objects with their shape (session
    // 8: 12, every star a pentagon; session 15: 15).
    let metrics = scores(EvalTask::Recon, 8);
    let psnr = metrics["psnr_db"];
    assert!(psnr > 30.0, "reconstruction PSNR {psnr:.2} dB");
    let checks = metrics["recon_geneval_checks"];
    assert!(
        checks >= 0.75,
        "reconstructions pass {checks:.2} of their captions' checks"
    );
    let found = metrics["recon_objects_found"];
    assert!(found >= 0.95, "{found:.2} of the objects found in place");
    let kept = metrics["recon_shapes_kept"];
    assert!(kept >= 0.7, "{kept:.2} of the objects keep their shape");
}

#[test]
fn default_model_answers_better_than_random_weights() {
    // Random init: 0 %; the session-10 model (an LLM that read colour only): 32.5 % on these 40
    // items; the session-11 model 67.5 % here, 73.4 % on 500; the session-18 one 85 % here,
    // 87.4 % on 500; the shipped (session-19) one 97.5 % here, 91.4 % on 500 (README).
    let metrics = scores(EvalTask::Vqa, 40);
    let acc = metrics["vqa_accuracy"];
    assert!(acc >= 0.55, "VQA accuracy {acc:.2}");
    // Shape is read from the image, not guessed from the question: the most common answer scores
    // 0.26 and the session-10 model 0.22 (n = 500); the shipped model answers all 9 of these.
    let shape = metrics["vqa_shape"];
    assert!(shape >= 0.6, "VQA shape accuracy {shape:.2}");
    // The per-kind accuracies break the overall one down: weighted by their item counts, which
    // add up to the items asked, they give the overall accuracy back.
    let (mut items, mut right) = (0.0, 0.0);
    for kind in ["count", "colour", "shape", "position", "relation"] {
        if let Some(n) = metrics.get(&format!("vqa_{kind}_items")) {
            items += n;
            right += n * metrics[&format!("vqa_{kind}")];
        }
    }
    assert_eq!(items, 40.0, "{metrics:?}");
    assert!((right / items - acc).abs() < 1e-9, "{metrics:?}");
    // So do the accuracies per number of objects in the scene (1–4).
    let (mut items, mut right) = (0.0, 0.0);
    for k in 1..=4 {
        if let Some(n) = metrics.get(&format!("vqa_objects_{k}_items")) {
            items += n;
            right += n * metrics[&format!("vqa_objects_{k}")];
        }
    }
    assert_eq!(items, 40.0, "{metrics:?}");
    assert!((right / items - acc).abs() < 1e-9, "{metrics:?}");
}

#[test]
fn default_model_features_carry_colour_and_size_to_a_linear_probe() {
    // The shipped encoder on 1,500 scenes: colour 0.96 (majority 0.14), size 0.80 (0.62); shape
    // 0.21 and grid row / column 0.21 / 0.19 sit at their majority baselines (README, session 10).
    let metrics = scores(EvalTask::Probe, 100);
    let colour = metrics["probe_colour"];
    assert!(colour >= 0.9, "{metrics:?}");
    assert!(metrics["probe_colour_majority"] < 0.3, "{metrics:?}");
    assert!(
        metrics["probe_size"] > metrics["probe_size_majority"],
        "{metrics:?}"
    );
}

#[test]
fn default_model_draws_the_colours_the_prompt_asks_for() {
    // Random init: 0.01 of prompts with every requested colour; the session-5 model 0.27 (n = 100);
    // the session-11 model 0.50 on these 24 items (10 sampler steps), 0.56 on 100 (20 steps); the
    // session-18 one 0.75 here and 0.76 on 100; the session-19 one 0.62 here and 0.69 on 100; the
    // session-20 one 0.75 here and 0.81 on 100 (0.85 at seed 1); the session-21 one 0.79 here and
    // 0.79 on 100 (0.85 at seed 1); the session-22 one 0.79 here and 0.86 on 100 (0.84 at seed
    // 1); the session-27 one, with its planned regions, 0.71 here and 0.88 on 100 (0.96 at seed
    // 1); the shipped (session-28) one, with one planned region per object, 0.92 here and 0.99 on
    // 100 (0.98 at seed 1).
    let metrics = scores(EvalTask::Generate, 24);
    let colours = metrics["geneval_colours"];
    assert!(
        colours >= 0.4,
        "prompts with every colour drawn: {colours:.2}"
    );
    // The strict GenEval checks (shape, count, relation): random weights 0.01, the session-5
    // model 0.09 (n = 100), the session-10 model 0.19 on these 24 and 0.168 on 100 (20 steps),
    // the session-11 model 0.097 here and 0.162 on 100, the session-12 model 0.125 here and
    // 0.163, the session-16 model 0.28 here and 0.248 on 100, the session-18 one 0.215 here and
    // 0.238 on 100, the session-19 one 0.194 here and 0.235 on 100, the session-20 one 0.417 here
    // and 0.430 on 100, the session-21 one 0.493 here and 0.433 on 100, the session-22 one 0.563
    // here and 0.562 on 100, the session-27 one with its planned regions 0.618 here and 0.705 on
    // 100 (plainly 0.514 here), the shipped (session-28) one with a planned region per object
    // 0.819 here and 0.868 on 100. The threshold sits below the last five and above every
    // earlier one, so losing session 20's gain fails here.
    let checks = metrics["geneval_checks"];
    assert!(checks >= 0.25, "mean GenEval-like checks {checks:.2}");
    // It draws about as many objects as asked (shipped, with its regions: 2.71 found for 2.83
    // asked, one of the 24 canvases empty; the session-27 model 3.04, and sampled plainly 4.71;
    // a random DiT and connector: 0.12 found, 21 of 24 empty), rather than blank canvases or
    // scattered specks.
    let (found, asked) = (
        metrics["geneval_objects_found"],
        metrics["geneval_objects_asked"],
    );
    assert!(
        (found - asked).abs() < 1.0,
        "{found:.2} objects found for {asked:.2} asked"
    );
    let empty = metrics["geneval_empty"];
    assert!(empty <= 0.25, "empty canvases: {empty:.2}");
}

#[test]
fn default_model_edits_come_out_as_clean_scenes() {
    // The edit skill itself is still far from the target (README: edit 0.15 over 200), so this
    // guards the edit path's pictures instead: outputs are clean ShapesWorld scenes, close to the
    // source and target in pixels. Random weights: 9.1 / 9.2 dB on these 8 items; the session-16
    // model 14.1 dB against the source and 18.2 dB against the target (most of these edits remove
    // or shrink an object, and it draws sparse scenes); the session-18 one 13.7 / 14.7 dB, the
    // session-19 one 14.2 / 19.0 dB, the session-20 one 13.8 / 15.0 dB, the session-21 one 13.7 /
    // 18.6 dB, the session-22 one 13.6 / 18.5 dB, the shipped (session-28) one 13.5 / 15.0 dB.
    let metrics = scores(EvalTask::Edit, 8);
    let (source, target) = (
        metrics["edit_source_psnr_db"],
        metrics["edit_target_psnr_db"],
    );
    assert!(source >= 12.0, "edit output vs source {source:.2} dB");
    assert!(target >= 14.0, "edit output vs target {target:.2} dB");
}

#[test]
fn default_model_dit_reads_its_prompt() {
    // The session-22 DiT's flow-matching loss on 16 caption items (5 noise levels): 0.18 with its
    // own prompt, 0.35 with another item's, 0.21 with the negative one, the prompt's saving
    // largest at σ = 0.9 (0.55 against 0.04 at σ = 0.1) where the layout is decided (the
    // session-19 DiT saved 0.10 here, 0.32 at σ = 0.9; the session-20 one 0.17, the session-21 one
    // 0.15; the shipped session-28 one 0.175 / 0.39 / 0.21, saving 0.58 at σ = 0.9). A DiT or connector that lost its condition would save nothing. On 16 edit items the
    // source image saves a few hundredths (README, session 16).
    let metrics = scores(EvalTask::Flow, 16);
    let delta = |name: &str| (metrics[name], metrics[&format!("{name}_se")]);
    let (prompt, se) = delta("flow_prompt_delta");
    assert!(prompt > 0.08 && prompt > 3.0 * se, "{metrics:?}");
    let (unconditional, _) = delta("flow_condition_delta");
    assert!(unconditional > 0.01, "{metrics:?}");
    assert!(
        metrics["flow_prompt_delta_sigma_0.9"] > metrics["flow_prompt_delta_sigma_0.1"],
        "{metrics:?}"
    );
    // The deltas are paired differences of the reported losses.
    let gap = metrics["flow_loss_other_prompt"] - metrics["flow_loss"];
    assert!((gap - prompt).abs() < 1e-9, "{metrics:?}");
    let gap = metrics["flow_edit_loss_other_source"] - metrics["flow_edit_loss"];
    assert!(
        (gap - metrics["flow_edit_source_delta"]).abs() < 1e-9,
        "{metrics:?}"
    );
}

#[test]
fn shipped_graphs_run_on_the_default_model_without_flags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("unilip-default-{}", std::process::id()));
    for (graph, sets) in [
        ("generate.ron", vec!["dit.steps=4"]),
        ("generate_best_of.ron", vec!["dit.steps=4"]),
        ("edit.ron", vec!["dit.steps=4"]),
        ("flow_edit.ron", vec!["edit.steps=4"]),
        ("flow_edit_prompts.ron", vec!["edit.steps=4"]),
        ("flow_edit_located.ron", vec!["edit.steps=4"]),
        ("flow_move.ron", vec!["move.steps=4"]),
        ("edit_object.ron", vec!["edit.steps=4"]),
        ("compose.ron", vec!["compose.steps=8"]),
        ("reconstruct.ron", vec![]),
        ("understand.ron", vec![]),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_unilip"));
        cmd.arg("run")
            .arg(root.join("graphs").join(graph))
            .arg("--out")
            .arg(&out);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{graph}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for png in [
        "generate.png",
        "generate_best_of.png",
        "edit.png",
        "flow_edit.png",
        "flow_edit_prompts.png",
        "flow_edit_located.png",
        "flow_move.png",
        "edit_object.png",
        "compose.png",
        "reconstruct.png",
    ] {
        let img = image::open(out.join(png)).expect(png).to_rgb8();
        assert_eq!(img.dimensions(), (64, 64), "{png}");
    }
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn default_model_edit_at_strength_zero_returns_the_source() {
    // Strength 0 runs no sampler step: the output is the source's own latent decoded, i.e. its
    // reconstruction (30.3 dB against the source on these 4 items, 32.9 dB on 50, change made on
    // none), while from pure noise the shipped model's edits are 13.6 dB from the source.
    let dir = unilip_nodes::default_model::dir().expect("the default model ships in the repo");
    let mut opts = EvalOptions::new(EvalTask::Edit, 4);
    opts.strength = 0.0;
    let metrics = eval_shapesworld(&dir, &opts).expect("evaluation runs");
    let source = metrics["edit_source_psnr_db"];
    assert!(source >= 28.0, "strength-0 edit vs source {source:.2} dB");
    assert_eq!(metrics["edit_change_made"], 0.0, "{metrics:?}");
}

/// The default model's understanding half as a judge of images: the answer scores are the
/// log-probabilities generation computes (teacher forcing equals the greedy steps' logits, and
/// a batch of questions of different lengths scores as each alone), and the prompt's questions
/// ([`spec_questions`]) rate a scene that matches the caption above other captions' scenes.
/// `--edit-method flow-edit` on the default model (FlowEdit between the one-object prompts the
/// instruction is rewritten into): far closer to the source than UniLIP's own edit, and it makes
/// changes UniLIP's edit does not. Moves and swaps, which no prompt pair says, are never made.
/// `flow-edit-located`, the same edits kept only where the DiT locates the named object, keeps
/// more of the rest of the scene.
#[test]
fn default_model_flow_edit_keeps_the_scene_and_makes_the_change() {
    let dir = unilip_nodes::default_model::dir().expect("the default model ships in the repo");
    let dumps = std::env::temp_dir().join(format!("unilip-flow-edit-eval-{}", std::process::id()));
    let run = |method, name: &str| {
        let mut opts = EvalOptions::new(EvalTask::Edit, 24);
        opts.edit_method = method;
        opts.strength = FlowEditOptions::default().strength;
        opts.guidance = 3.0;
        opts.steps = 10;
        opts.dump = Some(dumps.join(name));
        eval_shapesworld(&dir, &opts).expect("evaluation runs")
    };
    // PSNR from the source of each move and swap item of a dump.
    let relocations = |name: &str| -> Vec<f64> {
        std::fs::read_to_string(dumps.join(name).join("items.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| ["move", "swap"].contains(&r["edit"]["kind"].as_str().unwrap()))
            .map(|r| r["source_psnr_db"].as_f64().unwrap())
            .collect()
    };
    let metrics = run(EditMethod::FlowEdit, "plain");
    // Measured on these 24 items at 10 steps: edit 0.333 (change made 0.625, rest kept 0.167),
    // 20.5 dB from the source; UniLIP's edit 0.146 (0.25 / 0.083), 14.6 dB.
    assert!(metrics["edit_source_psnr_db"] >= 18.0, "{metrics:?}");
    assert!(metrics["edit"] >= 0.25, "{metrics:?}");
    for kind in ["move", "swap"] {
        assert_eq!(metrics[&format!("edit_{kind}")], 0.0, "{metrics:?}");
    }
    let items: f64 = unilip_nodes::shapesworld::EDIT_KIND_NAMES
        .iter()
        .map(|k| {
            metrics
                .get(&format!("edit_{k}_items"))
                .copied()
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(items, 24.0, "{metrics:?}");
    // Located: edit 0.396 (0.583 / 0.333), 22.7 dB from the source (23.3 dB without the
    // moves and swaps, which plain FlowEdit returns unchanged: 30.0 dB on these items).
    let located = run(EditMethod::FlowEditLocated, "located");
    assert!(
        located["edit_preserved"] >= metrics["edit_preserved"] + 0.1,
        "{located:?}"
    );
    assert!(
        located["edit_source_psnr_db"] >= metrics["edit_source_psnr_db"] + 1.0,
        "{located:?}"
    );
    assert!(located["edit"] >= 0.3, "{located:?}");
    // Moves and swaps (1 move, 2 swaps here): plain FlowEdit returns the decoded source
    // (32.5, 27.7, 33.3 dB from it); located, their boxes are redrawn over the source's own
    // pixels (37.7, 18.3, 22.9 dB).
    let (decoded, moved) = (relocations("plain"), relocations("located"));
    assert_eq!(moved.len(), 3);
    for (d, m) in decoded.iter().zip(&moved) {
        assert!((m - d).abs() > 2.0, "{decoded:?} vs {moved:?}");
    }
    std::fs::remove_dir_all(dumps).ok();
}

/// `graphs/flow_edit.ron` as shipped ("make the red circle blue" on a red circle and a green
/// star): the circle turns blue where it was, and `graphs/flow_edit_prompts.ron`, which writes
/// the same two prompts in its own prompt → MLLM → condition chains, gives the same pixels.
/// Instructions the planner cannot express are refused by node name.
#[test]
fn flow_edit_graph_recolours_the_named_object_and_refuses_moves() {
    use unilip_nodes::shapesworld::{detected_objects, Colour, Shape, Style};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("unilip-flow-edit-{}", std::process::id()));
    let run = |text: &str| {
        Command::new(env!("CARGO_BIN_EXE_unilip"))
            .current_dir(root)
            .args(["run", "graphs/flow_edit.ron", "--out"])
            .arg(&out)
            .args(["--set", &format!("prompt.text={text}")])
            .output()
            .unwrap()
    };
    let o = run("make the red circle blue");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(out.join("flow_edit.png")).unwrap().to_rgb8();
    let found = detected_objects(&img, &Style::default());
    let at = |colour, shape| {
        found
            .iter()
            .filter(|o| o.colour == colour && o.shape == shape)
            .map(|o| (o.cx, o.cy))
            .collect::<Vec<_>>()
    };
    // The source's red circle is centred at (17, 47).
    let blue = at(Colour::Blue, Shape::Circle);
    assert!(
        blue.iter().any(|(x, y)| (x - 17.0).hypot(y - 47.0) < 6.0),
        "{found:?}"
    );
    assert!(at(Colour::Red, Shape::Circle).is_empty(), "{found:?}");
    let o = Command::new(env!("CARGO_BIN_EXE_unilip"))
        .current_dir(root)
        .args(["run", "graphs/flow_edit_prompts.ron", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let chains = image::open(out.join("flow_edit_prompts.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(chains, img);
    let o = run("move the red circle up");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("node `prompt`") && err.contains("is a move edit"),
        "{err}"
    );
    std::fs::remove_dir_all(out).ok();
}

/// `graphs/flow_edit_located.ron` as shipped: FlowEdit turns the star blue with the circle, but
/// the DiT locates the red circle, so the output is the source's own pixels everywhere but a
/// few cells around it: a blue circle where the red one was, the green star untouched.
#[test]
fn flow_edit_located_graph_recolours_only_the_named_object() {
    use unilip_nodes::shapesworld::{detected_objects, Colour, Shape, Style};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("unilip-located-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_unilip"))
        .current_dir(root)
        .args(["run", "graphs/flow_edit_located.ron", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(out.join("flow_edit_located.png"))
        .unwrap()
        .to_rgb8();
    let source = image::open(root.join("graphs/assets/red_circle_green_star.png"))
        .unwrap()
        .to_rgb8();
    let style = Style::default();
    let found = detected_objects(&img, &style);
    let star = detected_objects(&source, &style)
        .into_iter()
        .find(|o| o.shape == Shape::Star)
        .expect("the source has a star");
    assert!(
        found.iter().any(|o| o.colour == Colour::Blue
            && o.shape == Shape::Circle
            && (o.cx - 17.0).hypot(o.cy - 47.0) < 6.0),
        "{found:?}"
    );
    assert!(found.contains(&star), "{found:?} lacks {star:?}");
    // Measured: 490 of 4,096 pixels differ, all within the 3 × 3 cells (576 pixels) around the
    // circle.
    let changed = img
        .pixels()
        .zip(source.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!((100..=1200).contains(&changed), "{changed} pixels changed");
    std::fs::remove_dir_all(out).ok();
}

/// `graphs/flow_move.ron` as shipped ("move the red circle up"): the red circle leaves its
/// place for one higher up, the rest of the picture is the source's own pixels; edits that do
/// not move objects are refused by node name.
#[test]
fn flow_move_graph_moves_the_named_object() {
    use unilip_nodes::shapesworld::{detected_objects, Colour, Style};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("unilip-move-{}", std::process::id()));
    let run = |text: &str| {
        Command::new(env!("CARGO_BIN_EXE_unilip"))
            .current_dir(root)
            .args(["run", "graphs/flow_move.ron", "--out"])
            .arg(&out)
            .args(["--set", &format!("move.text={text}")])
            .output()
            .unwrap()
    };
    let o = run("move the red circle up");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(out.join("flow_move.png")).unwrap().to_rgb8();
    let source = image::open(root.join("graphs/assets/red_circle_green_star.png"))
        .unwrap()
        .to_rgb8();
    let found = detected_objects(&img, &Style::default());
    // Measured: a red object at (20, 22), blurred (read as a diamond), nothing left at the old
    // place, the green star kept; 956 of 4,096 pixels changed (the boxes).
    let red: Vec<_> = found.iter().filter(|o| o.colour == Colour::Red).collect();
    // The source's red circle is centred at (17, 47).
    assert!(!red.is_empty(), "{found:?}");
    assert!(red.iter().all(|o| o.cy < 40.0), "{found:?}");
    let star = detected_objects(&source, &Style::default())
        .into_iter()
        .find(|o| o.colour == Colour::Green)
        .unwrap();
    // The star keeps its shape and size, and its place within the scorer's tolerance (0.08 ×
    // 64 px): the moved circle's box overlaps its lower left, which moves its centre 1.5 px.
    assert!(
        found.iter().any(
            |o| (o.shape, o.colour, o.size) == (star.shape, star.colour, star.size)
                && (o.cx - star.cx).hypot(o.cy - star.cy) < 0.08 * 64.0
        ),
        "{found:?} lacks {star:?}"
    );
    let changed = img
        .pixels()
        .zip(source.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!((100..=2048).contains(&changed), "{changed} pixels changed");
    let o = run("make the red circle blue");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("node `move`") && err.contains("not a move or swap"),
        "{err}"
    );
    std::fs::remove_dir_all(out).ok();
}

/// `graphs/edit_object.ron` on the shipped picture (a red circle at (17, 47), a green star):
/// every kind of edit, each checked by what the scorer detects afterwards.
#[test]
fn edit_object_graph_makes_every_kind_of_edit() {
    use unilip_nodes::shapesworld::{detected_objects, Colour, Object, Shape, Size, Style};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("unilip-edit-object-{}", std::process::id()));
    let style = Style::default();
    let source = image::open(root.join("graphs/assets/red_circle_green_star.png"))
        .unwrap()
        .to_rgb8();
    let before = detected_objects(&source, &style);
    let find = |found: &[Object], colour: Colour, shape: Shape| {
        found
            .iter()
            .find(|o| (o.colour, o.shape) == (colour, shape))
            .copied()
    };
    let circle = find(&before, Colour::Red, Shape::Circle).expect("a red circle");
    let star = find(&before, Colour::Green, Shape::Star).expect("a green star");
    let near = |o: &Object, at: &Object| (o.cx - at.cx).hypot(o.cy - at.cy) < 0.08 * 64.0;
    // As the edit scorer keeps an object: same shape, colour and size, within its tolerance.
    let kept = |found: &[Object], at: &Object| {
        found
            .iter()
            .any(|o| (o.shape, o.colour, o.size) == (at.shape, at.colour, at.size) && near(o, at))
    };
    let edit_of = |picture: &Path, text: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_unilip"))
            .current_dir(root)
            .args(["run", "graphs/edit_object.ron", "--out"])
            .arg(&out)
            .args(["--set", &format!("edit.text={text}")])
            .arg("--set")
            .arg(format!("image.path={}", picture.display()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{text}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let img = image::open(out.join("edit_object.png")).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), source.dimensions());
        let found = detected_objects(&img, &style);
        let changed = img
            .pixels()
            .zip(source.pixels())
            .filter(|(a, b)| a != b)
            .count();
        (found, changed)
    };
    let edit = |text: &str| edit_of(&root.join("graphs/assets/red_circle_green_star.png"), text);
    // Remove: only the star is left, and only pixels around the circle changed.
    let (found, changed) = edit("remove the red circle");
    assert_eq!(found, vec![star], "remove");
    assert!(
        (50..=600).contains(&changed),
        "remove: {changed} pixels changed"
    );
    // Move: the same circle higher up, the star where it was.
    let (found, _) = edit("move the red circle up");
    let moved = find(&found, Colour::Red, Shape::Circle).expect("move: a red circle");
    assert!(
        moved.cy < circle.cy - 0.1 * 64.0 && (moved.cx - circle.cx).abs() < 2.0,
        "{found:?}"
    );
    assert!(kept(&found, &star), "move: {found:?}");
    // Swap: each where the other was.
    let (found, _) = edit("swap the red circle and the green star");
    let (c, s) = (
        find(&found, Colour::Red, Shape::Circle).expect("swap: a red circle"),
        find(&found, Colour::Green, Shape::Star).expect("swap: a green star"),
    );
    assert!(near(&c, &star) && near(&s, &circle), "swap: {found:?}");
    // Recolour: a blue circle where the red one was, the star untouched.
    let (found, _) = edit("make the red circle blue");
    let blue = find(&found, Colour::Blue, Shape::Circle).expect("recolour: a blue circle");
    assert!(near(&blue, &circle), "recolour: {found:?}");
    assert!(
        find(&found, Colour::Red, Shape::Circle).is_none(),
        "recolour: {found:?}"
    );
    assert!(kept(&found, &star), "recolour: {found:?}");
    // Resize: the circle in the other size class, where it was, the star untouched.
    let (found, _) = edit(match circle.size {
        Size::Small => "make the red circle larger",
        Size::Large => "make the red circle smaller",
    });
    let resized = find(&found, Colour::Red, Shape::Circle).expect("resize: a red circle");
    assert!(
        resized.size != circle.size && near(&resized, &circle),
        "resize: {found:?}"
    );
    assert!(kept(&found, &star), "resize: {found:?}");
    // Add: a blue square (sampled alone, pasted in the emptiest box, the right of the lower
    // half), the two objects there kept.
    let (found, _) = edit("add a blue square");
    assert!(
        find(&found, Colour::Blue, Shape::Square).is_some(),
        "add: {found:?}"
    );
    assert!(
        kept(&found, &star) && kept(&found, &circle),
        "add: {found:?}"
    );
    // On a ground that is not plain (a striped frame), the object is where the DiT locates
    // it: the remove still takes the circle alone.
    std::fs::create_dir_all(&out).unwrap();
    let framed_path = out.join("framed.png");
    let mut framed = source.clone();
    let (w, h) = framed.dimensions();
    for (x, y) in (0..w).flat_map(|x| (0..h).map(move |y| (x, y))) {
        if (x == 0 || y == 0 || x + 1 == w || y + 1 == h) && (x + y) % 2 == 0 {
            framed.put_pixel(x, y, image::Rgb([20, 20, 20]));
        }
    }
    framed.save(&framed_path).unwrap();
    let (found, _) = edit_of(&framed_path, "remove the red circle");
    assert!(
        find(&found, Colour::Red, Shape::Circle).is_none() && kept(&found, &star),
        "remove on a framed picture: {found:?}"
    );
    std::fs::remove_dir_all(out).ok();
}

/// `graphs/compose.ron` draws the README's prompt object by object: the scorer finds two red
/// circles left of a blue square; a caption outside the grammar is refused by node and text.
#[test]
fn compose_graph_draws_every_object_of_the_caption() {
    use unilip_nodes::shapesworld::{geneval_score, SceneSpec, Style};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("unilip-compose-{}", std::process::id()));
    let run = |text: &str| {
        Command::new(env!("CARGO_BIN_EXE_unilip"))
            .current_dir(root)
            .args(["run", "graphs/compose.ron", "--out"])
            .arg(&out)
            .args(["--set", &format!("compose.text={text}")])
            .output()
            .unwrap()
    };
    let prompt = "two red circles left of a blue square";
    let o = run(prompt);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(out.join("compose.png")).unwrap().to_rgb8();
    let spec = SceneSpec::parse(prompt).unwrap();
    let score = geneval_score(&img, &spec, &Style::default());
    assert!(score.correct, "{score:?}");
    let o = run("two dogs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("compose") && err.contains("two dogs"), "{err}");
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn default_model_rates_the_scene_its_caption_describes_highest() {
    use unilip_nodes::backend::{device, B};
    use unilip_nodes::models::preprocess::{preprocess, RgbU8};
    use unilip_nodes::models::qwen2::{GenerationConfig, Sampling};
    use unilip_nodes::models::tokenizer::{understanding_prompt, Tokenizer};
    use unilip_nodes::models::unilip::{encode_prompts, ComponentSet, Unilip, UnilipError};
    use unilip_nodes::shapesworld::verify::spec_questions;
    use unilip_nodes::shapesworld::{GenConfig, Generator, Split};

    let dir = unilip_nodes::default_model::dir().expect("the default model ships in the repo");
    let model = Unilip::<B>::load(&dir, ComponentSet::UNDERSTANDING, &device()).expect("loads");
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer");
    let generator = Generator::new(GenConfig {
        resolution: 64,
        seed: 0,
        split: Split::Val,
        domain: Default::default(),
    })
    .expect("generator");
    let pixels = |img: &image::RgbImage| {
        let rgb = RgbU8 {
            height: img.height() as usize,
            width: img.width() as usize,
            data: img.as_raw().clone(),
        };
        preprocess(&[rgb], [64, 64], &device()).expect("preprocess")
    };

    // Teacher forcing against the greedy answer's own step logits (two tokens: the answer
    // word and `<|im_end|>`).
    let item = generator.caption_item(0);
    let question = "how many objects are there ?";
    let generation = GenerationConfig {
        max_new_tokens: 2,
        sampling: Sampling::Greedy,
        eos_token_ids: Vec::new(),
        seed: 0,
        output_logits: true,
    };
    let n_img = model.image_tokens(64, 64).expect("grid");
    let (ids, _) = encode_prompts::<B>(
        &tok,
        &[&understanding_prompt(question, n_img, None)],
        &device(),
    )
    .expect("encode");
    let out = model
        .understand(ids, None, Some(pixels(&item.image)), &generation)
        .expect("understands");
    let expected: f32 = out.tokens[0]
        .iter()
        .zip(&out.logits)
        .map(|(&token, step)| {
            let logits = step.data.clone();
            let max = logits.iter().copied().fold(f32::MIN, f32::max);
            let log_z = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
            logits[token as usize] - log_z
        })
        .sum();
    let answer = tok.decode(&out.tokens[0], false).expect("decode");
    let got = model
        .answer_log_probs(&tok, pixels(&item.image), &[(question, answer.as_str())])
        .expect("scores");
    assert!((got[0] - expected).abs() < 1e-4, "{got:?} vs {expected}");

    // Batched questions of different lengths score as each alone.
    let pairs = [
        ("what colour is the circle ?", "red"),
        ("how many blue objects are there ?", "two"),
        ("is the star above the square ?", "no"),
    ];
    let together = model
        .answer_log_probs(&tok, pixels(&item.image), &pairs)
        .expect("scores");
    for (pair, joint) in pairs.iter().zip(&together) {
        let alone = model
            .answer_log_probs(&tok, pixels(&item.image), &[*pair])
            .expect("scores")[0];
        assert!((alone - joint).abs() < 1e-4, "{pair:?}: {alone} vs {joint}");
        assert!(*joint < 0.0);
    }
    let two = burn::tensor::Tensor::cat(vec![pixels(&item.image), pixels(&item.image)], 0);
    let refused = model.answer_log_probs(&tok, two, &pairs);
    assert!(
        matches!(&refused, Err(UnilipError::Input(m)) if m.contains("one image")),
        "{refused:?}"
    );

    // Each caption's questions rate its own scene above the next caption's scene.
    let items: Vec<_> = (0..16).map(|i| generator.caption_item(i)).collect();
    let rating = |questions: &[unilip_nodes::shapesworld::VqaQuestion], img| {
        let pairs: Vec<(&str, &str)> = questions
            .iter()
            .map(|q| (q.question.as_str(), q.answer.as_str()))
            .collect();
        let scores = model
            .answer_log_probs(&tok, pixels(img), &pairs)
            .expect("scores");
        scores.iter().sum::<f32>()
    };
    let style = generator.style();
    let preferred = (0..items.len())
        .filter(|&i| {
            let questions = spec_questions(&items[i].spec, &style);
            let other = &items[(i + 1) % items.len()];
            rating(&questions, &items[i].image) > rating(&questions, &other.image)
        })
        .count();
    assert!(
        preferred >= 14,
        "own scene rated higher for {preferred} of 16 captions"
    );
}

/// `eval --task generate --best-of 4`: the first candidate is the plain sampler's image, and
/// keeping the candidate the model's own answers rate best does not lose prompts (on these 24
/// prompts at 10 steps: 0.375 → 0.417 of prompts fully right, 0.50 with some candidate right;
/// README: +0.10 ± 0.03 over 200 prompts at 20 steps).
#[test]
fn default_model_best_of_four_keeps_a_candidate_at_least_as_good_as_the_first() {
    let dir = unilip_nodes::default_model::dir().expect("the default model ships in the repo");
    let mut opts = EvalOptions::new(EvalTask::Generate, 24);
    opts.steps = 10;
    let plain = eval_shapesworld(&dir, &opts).expect("evaluation runs");
    opts.best_of = 4;
    let best = eval_shapesworld(&dir, &opts).expect("evaluation runs");
    assert_eq!(best["best_of"], 4.0);
    assert_eq!(
        best["geneval_first_candidate"], plain["geneval"],
        "{best:?}"
    );
    let (chosen, first, any) = (
        best["geneval"],
        best["geneval_first_candidate"],
        best["geneval_any_candidate"],
    );
    assert!(
        first <= chosen && chosen <= any,
        "{first} / {chosen} / {any}"
    );

    opts.task = EvalTask::Edit;
    let refused = eval_shapesworld(&dir, &opts).unwrap_err();
    assert!(refused.contains("--best-of"), "{refused}");
}
