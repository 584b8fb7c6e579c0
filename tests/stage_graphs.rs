//! The shipped UniLIP graphs on a tiny random checkpoint: each runs end to end and equals calling
//! the components directly; condition modes differ; PNG provenance round-trips; bad wiring is
//! refused at validation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use burn::prelude::*;
use unilip_core::{
    validate, Edge, ErrorKind, Executor, GraphDoc, ParamValue, Registry, RunEnv, RunOptions, Value,
};
use unilip_nodes::backend::{device, B};
use unilip_nodes::models::regions::{caption_regions, RegionLayout, RegionPlan};
use unilip_nodes::models::tokenizer::{generation_negative, generation_prompt, Tokenizer};
use unilip_nodes::models::unilip::{
    encode_prompts, to_image, write_random_checkpoint, ComponentSet, ConditionMode, SampleOptions,
    Unilip, UnilipConfig,
};
use unilip_nodes::nodes::unilip::convert::pixel_values;
use unilip_nodes::shapesworld::{SceneSpec, Style};
use unilip_nodes::weights::SaveDtype;

/// A tiny random checkpoint shared by the tests of this file.
fn checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("unilip-stage-{}", std::process::id()));
        let tok = unilip_nodes::fixtures::root().join("tokenizer/tokenizer.json");
        assert!(
            tok.exists(),
            "needs the fixture tokenizer at {}",
            tok.display()
        );
        std::fs::create_dir_all(&dir).unwrap();
        write_random_checkpoint(&dir, UnilipConfig::tiny(), 7, SaveDtype::F32, Some(&tok)).unwrap();
        dir
    })
}

fn shipped(name: &str) -> GraphDoc {
    unilip_nodes::link();
    let mut doc = GraphDoc::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("graphs")
            .join(name),
    )
    .unwrap();
    let ck = doc.nodes.get_mut("ckpt").unwrap();
    ck.params.insert(
        "dir".into(),
        ParamValue::Str(checkpoint().display().to_string()),
    );
    for n in doc.nodes.values_mut() {
        if let Some(ParamValue::Str(p)) = n.params.get_mut("path") {
            *p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(&*p)
                .display()
                .to_string();
        }
    }
    doc
}

fn run(doc: &GraphDoc, target: &str, exec: &mut Executor) -> (Value, unilip_core::RunReport) {
    let g = validate(doc, Registry::global()).unwrap_or_else(|e| panic!("{e:#?}"));
    let out = std::env::temp_dir().join(format!("unilip-stage-out-{}", std::process::id()));
    let opts = RunOptions {
        targets: vec![target.into()],
        env: RunEnv {
            out_dir: out,
            provenance: Some(Arc::new(doc.to_ron())),
        },
        ..Default::default()
    };
    let report = exec.run(&g, &opts).unwrap_or_else(|e| panic!("{e}"));
    let v = report.outputs[target][0].clone();
    (v, report)
}

/// `doc` (a shipped generate graph) without its `unilip.caption_regions` node: the condition
/// wired straight into the DiT, as UniLIP samples.
fn without_planner(mut doc: GraphDoc) -> GraphDoc {
    assert!(
        doc.nodes.remove("plan").is_some(),
        "the graph plans regions"
    );
    doc.edges
        .retain(|e| e.from.node != "plan" && e.to.node != "plan");
    doc.edges.push(
        "condition.conditioning -> dit.conditioning"
            .parse()
            .unwrap(),
    );
    doc
}

fn image_of(v: &Value) -> Vec<f32> {
    v.as_image().unwrap().data.clone()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn model(c: ComponentSet) -> Unilip<B> {
    Unilip::load(checkpoint(), c, &device()).unwrap()
}

fn tensor_image(x: Tensor<B, 4>) -> Vec<f32> {
    x.clamp(0.0, 1.0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn reconstruct_graph_equals_direct_component_calls() {
    let doc = shipped("reconstruct.ron");
    let (v, _) = run(&doc, "decode", &mut Executor::default());
    let img = unilip_nodes::nodes::image_io::read_image(Path::new(
        doc.nodes["image"].params["path"].as_str().unwrap(),
    ))
    .unwrap();
    let m = model(ComponentSet::RECONSTRUCTION);
    let direct = to_image(m.reconstruct(pixel_values(&img, 448)).unwrap());
    let d = max_diff(&image_of(&v), &tensor_image(direct));
    assert!(d < 1e-5, "graph vs direct differ by {d}");
}

/// How `doc`'s `plan` node (`unilip.caption_regions`) plans, its params read as the node reads
/// them (defaults where unset).
fn plan_of(doc: &GraphDoc) -> RegionPlan {
    let params = &doc.nodes["plan"].params;
    RegionPlan {
        layout: params
            .get("layout")
            .and_then(ParamValue::as_str)
            .map_or(RegionLayout::Groups, |n| {
                RegionLayout::from_name(n).unwrap()
            }),
        seed: params
            .get("seed")
            .and_then(ParamValue::as_f64)
            .unwrap_or(0.0) as u64,
        layouts: params
            .get("layouts")
            .and_then(ParamValue::as_f64)
            .unwrap_or(1.0) as usize,
        with_base: !matches!(params.get("with_base"), Some(ParamValue::Bool(false))),
    }
}

/// The shipped generate graph's pipeline called directly: its prompt, with the regions
/// `unilip.caption_regions` plans for it as `plan` says.
fn generate_direct(
    mode: ConditionMode,
    seed: u64,
    guidance_max_sigma: f32,
    plan: RegionPlan,
) -> Vec<f32> {
    let m = model(ComponentSet::GENERATION);
    let tok = Tokenizer::from_file(checkpoint().join("tokenizer.json")).unwrap();
    let text = "two red circles left of a blue square";
    let spec = SceneSpec::parse(text).unwrap();
    let regions =
        caption_regions(&m, &tok, &spec, &Style::default(), mode, plan, &device()).unwrap();
    let planned = match plan.layout {
        RegionLayout::Groups => 2,
        RegionLayout::Objects => 3,
    };
    assert_eq!(regions.len(), planned);
    let (ids, mask) = encode_prompts::<B>(
        &tok,
        &[&generation_prompt(text), &generation_negative()],
        &device(),
    )
    .unwrap();
    let out = m
        .generate_image::<unilip_nodes::models::unilip::UnilipError>(
            ids,
            mask,
            None,
            mode,
            &SampleOptions {
                guidance_max_sigma,
                regions,
                ..SampleOptions::unilip(seed)
            },
            |_, _, _| Ok(()),
        )
        .unwrap();
    tensor_image(out.image)
}

#[test]
fn generate_graph_equals_direct_pipeline_and_modes_differ() {
    let mut exec = Executor::default();
    let mut doc = shipped("generate.ron");
    let (dual, _) = run(&doc, "decode", &mut exec);
    let max_sigma = doc.nodes["dit"].params["guidance_max_sigma"]
        .as_f64()
        .expect("generate.ron sets dit.guidance_max_sigma");
    let direct = generate_direct(ConditionMode::Dual, 42, max_sigma as f32, plan_of(&doc));
    let d = max_diff(&image_of(&dual), &direct);
    assert!(d < 1e-4, "graph vs direct pipeline differ by {d}");

    let mut by_mode = vec![image_of(&dual)];
    for mode in ["hidden_only", "query_only"] {
        doc.nodes
            .get_mut("condition")
            .unwrap()
            .params
            .insert("mode".into(), ParamValue::Str(mode.into()));
        let (v, report) = run(&doc, "decode", &mut exec);
        assert!(
            !report.executed.contains(&"mllm".to_string()),
            "changing the mode must not re-run the MLLM: {:?}",
            report.executed
        );
        by_mode.push(image_of(&v));
    }
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let d = max_diff(&by_mode[i], &by_mode[j]);
        assert!(d > 1e-3, "modes {i} and {j} give the same image (diff {d})");
    }
}

#[test]
fn changing_only_the_seed_reruns_only_sampling_and_decoding() {
    let mut exec = Executor::default();
    let mut doc = shipped("generate.ron");
    run(&doc, "decode", &mut exec);
    doc.nodes
        .get_mut("dit")
        .unwrap()
        .params
        .insert("seed".into(), ParamValue::Int(7));
    let (_, report) = run(&doc, "decode", &mut exec);
    let mut ran = report.executed.clone();
    ran.sort();
    assert_eq!(ran, vec!["decode".to_string(), "dit".to_string()]);
}

#[test]
fn edit_and_understand_graphs_run() {
    let mut exec = Executor::default();
    let (img, _) = run(&shipped("edit.ron"), "decode", &mut exec);
    let img = img.as_image().unwrap().clone();
    // Decoder ×f on the DiT's latent grid, then ×28/32 as UniLIP does.
    let cfg = UnilipConfig::tiny();
    let side =
        cfg.dit.sample_size * 2usize.pow(cfg.vae.decoder_block_out_channels.len() as u32 - 1) * 28
            / 32;
    assert_eq!((img.n, img.h, img.w), (1, side, side));
    assert!(img.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let (answer, _) = run(&shipped("understand.ron"), "show", &mut exec);
    assert!(!answer.as_text().unwrap().is_empty());
}

/// FlowEdit's two-prompt graph on the tiny real-architecture checkpoint: it runs, edits the
/// image (the output is not the decoded source), and with one prompt on both sides keeps it.
#[test]
fn flow_edit_prompts_graph_runs_on_any_checkpoint() {
    let mut exec = Executor::default();
    let doc = shipped("flow_edit_prompts.ron");
    let (edited, _) = run(&doc, "decode", &mut exec);
    let mut same = doc.clone();
    for node in ["source_prompt", "target_prompt"] {
        same.nodes
            .get_mut(node)
            .unwrap()
            .params
            .insert("text".into(), ParamValue::Str("a red circle".into()));
    }
    let (kept, _) = run(&same, "decode", &mut exec);
    let mut source = doc.clone();
    source
        .nodes
        .get_mut("edit")
        .unwrap()
        .params
        .insert("strength".into(), ParamValue::Float(0.0));
    let (decoded, _) = run(&source, "decode", &mut exec);
    let pixels = |v: &Value| v.as_image().unwrap().data.clone();
    let gap = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let (edited, kept, decoded) = (pixels(&edited), pixels(&kept), pixels(&decoded));
    assert!(gap(&edited, &decoded) > 1e-3, "the edit changed nothing");
    assert!(gap(&kept, &decoded) < 1e-3, "{}", gap(&kept, &decoded));
    // A prompt without a negative row (the one-row understanding template) cannot be guided:
    // an error naming the node and the port.
    let mut unguided = doc;
    unguided
        .nodes
        .get_mut("source_prompt")
        .unwrap()
        .params
        .insert("template".into(), ParamValue::Str("understand".into()));
    let g = validate(&unguided, Registry::global()).unwrap();
    let opts = RunOptions {
        targets: vec!["decode".into()],
        ..Default::default()
    };
    let err = exec.run(&g, &opts).map(|_| ()).unwrap_err().to_string();
    assert!(
        err.contains("`edit`") && err.contains("`source` has no negative row"),
        "{err}"
    );
}

/// `graphs/flow_edit_located.ron` on a random checkpoint: the output is the source where the
/// located mask is 0 and the decoded edit (resized to the source) where it is 1; a recolour is located on the source
/// only (the target's contrast is the target itself: its map is zero), an add on the edit only.
#[test]
fn flow_edit_located_graph_keeps_the_source_outside_the_located_object() {
    let mut exec = Executor::default();
    let doc = shipped("flow_edit_located.ron");
    let (kept, _) = run(&doc, "keep", &mut exec);
    let (source, _) = run(&doc, "image", &mut exec);
    let (edited, _) = run(&doc, "decode", &mut exec);
    let (mask, _) = run(&doc, "mask", &mut exec);
    // The edit is made at the checkpoint's 56 × 56 and pasted onto the 64 × 64 picture.
    let source = source.as_image().unwrap().clone();
    let edited = unilip_nodes::nodes::image_ops::resize(
        edited.as_image().unwrap(),
        source.w,
        source.h,
        image::imageops::FilterType::CatmullRom,
    );
    let (kept, source, edited, mask) = (
        image_of(&kept),
        source.data.clone(),
        edited.data,
        image_of(&mask),
    );
    assert_eq!(kept.len(), source.len());
    let located = mask.iter().filter(|&&m| m == 1.0).count();
    assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0));
    assert!(
        located > 0 && located < mask.len(),
        "{located} of {}",
        mask.len()
    );
    for i in 0..kept.len() {
        let expected = if mask[i] == 1.0 { edited[i] } else { source[i] };
        assert!((kept[i] - expected).abs() < 1e-6, "pixel value {i}");
    }
    assert!(
        max_diff(&edited, &source) > 1e-3,
        "the edit changed nothing"
    );
    let map_of = |doc: &GraphDoc, node: &str, exec: &mut Executor| {
        let g = validate(doc, Registry::global()).unwrap();
        let opts = RunOptions {
            targets: vec![node.into()],
            ..Default::default()
        };
        let report = exec.run(&g, &opts).unwrap();
        image_of(&report.outputs[node][1])
    };
    let zero = |map: &[f32]| map.iter().all(|&v| v == 0.0);
    assert!(zero(&map_of(&doc, "locate_target", &mut exec)));
    assert!(!zero(&map_of(&doc, "locate_source", &mut exec)));
    let mut add = doc;
    add.nodes
        .get_mut("prompt")
        .unwrap()
        .params
        .insert("text".into(), ParamValue::Str("add a red circle".into()));
    assert!(zero(&map_of(&add, "locate_source", &mut exec)));
    assert!(!zero(&map_of(&add, "locate_target", &mut exec)));
}

#[test]
fn png_provenance_round_trips_to_an_identical_graph() {
    let doc = shipped("reconstruct.ron");
    let (paths, _) = run(&doc, "save", &mut Executor::default());
    let png = PathBuf::from(paths.as_text().unwrap());
    let text = unilip_nodes::nodes::png_meta::read_graph(&png).unwrap();
    let restored = GraphDoc::from_ron(&text, "png").unwrap();
    assert_eq!(restored, doc);
    assert_eq!(restored.to_ron(), doc.to_ron());
}

#[test]
fn features_wired_into_a_latent_input_are_refused_at_validation() {
    let mut doc = shipped("edit.ron");
    doc.edges
        .push("clip.features -> dit.init_latent".parse().unwrap());
    let errors = validate(&doc, Registry::global()).err().expect("invalid");
    let e = errors
        .iter()
        .find(|e| e.kind == ErrorKind::TypeMismatch)
        .expect("type mismatch");
    assert_eq!(
        (e.node.as_str(), e.at.as_deref()),
        ("dit", Some("init_latent"))
    );
    assert!(
        e.message.contains("VisionFeatures") && e.message.contains("Latent"),
        "{}",
        e.message
    );
}

#[test]
fn noise_node_draws_the_same_stream_as_dit_denoise() {
    let mut exec = Executor::default();
    let seeded = shipped("generate.ron");
    let (a, _) = run(&seeded, "decode", &mut exec);
    let mut wired = seeded.clone();
    wired.nodes.insert(
        "noise".into(),
        GraphDoc::from_ron(
            r#"(format: 1, nodes: {"n": (type: "unilip.noise", version: 1, params: {"seed": 42})})"#,
            "n",
        )
        .unwrap()
        .nodes["n"]
            .clone(),
    );
    wired
        .edges
        .push("ckpt.model -> noise.model".parse().unwrap());
    wired
        .edges
        .push("noise.latent -> dit.init_latent".parse().unwrap());
    wired
        .nodes
        .get_mut("dit")
        .unwrap()
        .params
        .insert("seed".into(), ParamValue::Int(999));
    let (b, _) = run(&wired, "decode", &mut exec);
    let d = max_diff(&image_of(&a), &image_of(&b));
    assert!(
        d < 1e-4,
        "noise(42) as init_latent differs from seed 42 by {d}"
    );
}

#[test]
fn distill_is_zero_for_identical_encoders_and_positive_otherwise() {
    let mut doc = shipped("reconstruct.ron");
    let extra = GraphDoc::from_ron(
        r#"(format: 1, nodes: {
            "clip2": (type: "unilip.clip_encode", version: 1, params: {"size": 224}),
            "same": (type: "unilip.distill", version: 1, params: {}),
            "small": (type: "image.resize", version: 1, params: {"width": 224, "height": 224}),
        })"#,
        "extra",
    )
    .unwrap();
    doc.nodes.extend(extra.nodes);
    for e in [
        "ckpt.model -> clip2.model",
        "image.image -> small.image",
        "small.image -> clip2.image",
        "clip.features -> same.student",
        "clip.features -> same.teacher",
    ] {
        doc.edges.push(e.parse().unwrap());
    }
    let (v, _) = run(&doc, "same", &mut Executor::default());
    assert_eq!(v.as_float().unwrap(), 0.0);
    // Different token counts are refused with both shapes named.
    doc.edges
        .retain(|e| e.to.node != "same" || e.to.port != "teacher");
    doc.edges
        .push("clip2.features -> same.teacher".parse().unwrap());
    let g = validate(&doc, Registry::global()).unwrap();
    let err = Executor::default()
        .run(
            &g,
            &RunOptions {
                targets: vec!["same".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.message.contains("differ in shape"), "{}", err.message);
}

#[test]
fn query_count_truncates_with_a_warning_and_refuses_more_than_trained() {
    let mut doc = shipped("generate.ron");
    let trained = UnilipConfig::tiny().n_query as i64;
    doc.nodes
        .get_mut("condition")
        .unwrap()
        .params
        .insert("mode".into(), ParamValue::Str("hidden_only".into()));
    for (n, ok) in [(0, true), (trained - 1, true), (trained + 1, false)] {
        doc.nodes
            .get_mut("queries")
            .unwrap()
            .params
            .insert("queries".into(), ParamValue::Int(n));
        let g = validate(&doc, Registry::global()).unwrap();
        let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = warnings.clone();
        let opts = RunOptions {
            targets: vec!["condition".into()],
            events: Some(Arc::new(move |e: &unilip_core::Event| {
                if let unilip_core::Event::Warning { node, message } = e {
                    sink.lock().unwrap().push(format!("{node}: {message}"));
                }
            })),
            ..Default::default()
        };
        match (Executor::default().run(&g, &opts), ok) {
            (Ok(_), true) => {
                let w = warnings.lock().unwrap();
                assert!(
                    w.iter()
                        .any(|m| m.starts_with("queries:") && m.contains("truncated")),
                    "{w:?}"
                );
            }
            (Err(e), false) => assert!(e.message.contains("queries requested"), "{}", e.message),
            (r, _) => panic!("queries = {n}: unexpected {r:?}"),
        }
    }
}

#[test]
fn dit_feature_tap_outputs_a_blocks_hidden_states_and_their_token_mean() {
    use unilip_nodes::nodes::unidiff::EmbeddingSet;
    use unilip_nodes::nodes::unilip::payload::Features;
    let mut doc = shipped("generate.ron");
    let tap = |block: i64| unilip_core::NodeDoc {
        type_id: "unilip.dit_features".into(),
        version: 1,
        params: [("block".to_string(), ParamValue::Int(block))].into(),
    };
    doc.nodes.insert("tap".into(), tap(0));
    for e in [
        "ckpt.model -> tap.model",
        "dit.latent -> tap.latent",
        "condition.conditioning -> tap.conditioning",
    ] {
        doc.edges.push(e.parse().unwrap());
    }
    let mut exec = Executor::default();
    let (_, report) = run(&doc, "tap", &mut exec);
    let outs = &report.outputs["tap"];
    let f = outs[0].payload::<Features>().unwrap();
    let pooled = outs[1].payload::<EmbeddingSet>().unwrap();
    let config = UnilipConfig::load(&checkpoint().join("config.json")).unwrap();
    let [b, n, d] = f.tokens.dims();
    let side = config.dit.sample_size / config.dit.patch_size;
    assert_eq!((b, n, d), (1, side * side, config.dit.inner_dim()));
    let mean: Vec<f32> = f
        .tokens
        .clone()
        .mean_dim(1)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap();
    assert_eq!(pooled.rows.len(), 1);
    assert!(max_diff(&pooled.rows[0], &mean) < 1e-6);
    // Another block gives other features; a block past the last is an error naming it.
    doc.nodes.insert("tap".into(), tap(1));
    let (_, report) = run(&doc, "tap", &mut exec);
    let other = report.outputs["tap"][1].payload::<EmbeddingSet>().unwrap();
    assert!(max_diff(&other.rows[0], &pooled.rows[0]) > 1e-4);
    let last = config.dit.num_layers as i64;
    doc.nodes.insert("tap".into(), tap(last));
    let g = validate(&doc, Registry::global()).unwrap();
    let opts = RunOptions {
        targets: vec!["tap".into()],
        ..Default::default()
    };
    let err = exec.run(&g, &opts).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("block {last} does not exist")),
        "{err}"
    );
}

#[test]
fn edit_graph_strength_starts_from_the_wired_image_latent() {
    let mut exec = Executor::default();
    let mut doc = shipped("edit.ron");
    let node = |ty: &str| {
        let text = format!(r#"(format: 1, nodes: {{"n": (type: "{ty}", version: 1)}})"#);
        GraphDoc::from_ron(&text, "n").unwrap().nodes["n"].clone()
    };
    let set_strength = |doc: &mut GraphDoc, v: f64| {
        let dit = doc.nodes.get_mut("dit").unwrap();
        dit.params.insert("strength".into(), ParamValue::Float(v));
    };
    // Below 1 without an image to start from: an error naming the port, not a panic.
    let wired: Edge = "latent.latent -> dit.image_latent".parse().unwrap();
    doc.edges.retain(|e| *e != wired);
    set_strength(&mut doc, 0.5);
    let g = validate(&doc, Registry::global()).unwrap();
    let opts = RunOptions {
        targets: vec!["decode".into()],
        ..Default::default()
    };
    let err = exec.run(&g, &opts).unwrap_err().to_string();
    assert!(err.contains("dit") && err.contains("image_latent"), "{err}");
    // Strength 0 with the source's latent wired, as edit.ron does: the edit is the source's
    // reconstruction.
    doc.edges.push(wired);
    doc.nodes
        .insert("recon".into(), node("unilip.pixel_decode"));
    for edge in ["ckpt.model -> recon.model", "latent.latent -> recon.latent"] {
        doc.edges.push(edge.parse().unwrap());
    }
    set_strength(&mut doc, 0.0);
    let (edited, _) = run(&doc, "decode", &mut exec);
    let (recon, _) = run(&doc, "recon", &mut exec);
    // (Up to the round trip through the DiT's latent scaling.)
    assert!(max_diff(&image_of(&edited), &image_of(&recon)) < 1e-4);
    // Half the schedule from the source: neither the reconstruction nor the run from noise.
    set_strength(&mut doc, 0.5);
    let (half, _) = run(&doc, "decode", &mut exec);
    set_strength(&mut doc, 1.0);
    let (full, _) = run(&doc, "decode", &mut exec);
    assert!(max_diff(&image_of(&half), &image_of(&recon)) > 1e-3);
    assert!(max_diff(&image_of(&half), &image_of(&full)) > 1e-3);
}

/// `generate_regions.ron`: each half of the canvas reads its group's prompt beside the whole
/// one. Regions holding the base prompt itself read the same tokens as no regions at all (alone,
/// or twice over beside the base), so they give `generate.ron`'s image exactly; an empty box is
/// an error naming the node and its params.
#[test]
fn region_graph_reads_each_regions_prompt_in_its_box() {
    let mut exec = Executor::default();
    let (plain, _) = run(
        &without_planner(shipped("generate.ron")),
        "decode",
        &mut exec,
    );
    let mut doc = shipped("generate_regions.ron");
    let (regional, _) = run(&doc, "decode", &mut exec);
    let d = max_diff(&image_of(&regional), &image_of(&plain));
    assert!(d > 1e-3, "the group prompts change nothing ({d})");
    let base_text = doc.nodes["prompt"].params["text"].clone();
    for node in ["prompt_left", "prompt_right"] {
        let params = &mut doc.nodes.get_mut(node).unwrap().params;
        params.insert("text".into(), base_text.clone());
    }
    for with_base in [false, true] {
        for node in ["left", "right"] {
            let params = &mut doc.nodes.get_mut(node).unwrap().params;
            params.insert("with_base".into(), ParamValue::Bool(with_base));
        }
        let (same, _) = run(&doc, "decode", &mut exec);
        let d = max_diff(&image_of(&same), &image_of(&plain));
        assert!(d < 1e-4, "with_base {with_base}: {d}");
    }
    let left = doc.nodes.get_mut("left").unwrap();
    left.params.insert("x1".into(), ParamValue::Float(0.0));
    let g = validate(&doc, Registry::global()).unwrap();
    let opts = RunOptions {
        targets: vec!["decode".into()],
        ..Default::default()
    };
    let err = exec.run(&g, &opts).unwrap_err().to_string();
    assert!(err.contains("left") && err.contains("x0..x1"), "{err}");
}

/// `unilip.caption_regions` (in `generate.ron`) plans from the prompt's text what
/// `generate_regions.ron` wires by hand (each group's caption over its half), so the two give
/// the same image; a prompt naming
/// one group, or outside the caption grammar, passes the conditioning through (with a warning
/// for the latter).
#[test]
fn caption_regions_plan_the_groups_halves_from_the_prompt() {
    let mut exec = Executor::default();
    let (by_hand, _) = run(&shipped("generate_regions.ron"), "decode", &mut exec);
    let mut doc = shipped("generate.ron");
    let plan = &mut doc.nodes.get_mut("plan").unwrap().params;
    plan.insert("layout".into(), ParamValue::Str("groups".into()));
    let (planned, _) = run(&doc, "decode", &mut exec);
    let d = max_diff(&image_of(&planned), &image_of(&by_hand));
    assert!(d < 1e-4, "planned vs hand-wired regions differ by {d}");
    for (text, warns) in [("two red circles", false), ("a photo of a dog", true)] {
        let set = |doc: &mut GraphDoc| {
            let params = &mut doc.nodes.get_mut("prompt").unwrap().params;
            params.insert("text".into(), ParamValue::Str(text.into()));
        };
        set(&mut doc);
        let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = warnings.clone();
        let opts = RunOptions {
            targets: vec!["decode".into()],
            events: Some(Arc::new(move |e: &unilip_core::Event| {
                if let unilip_core::Event::Warning { node, .. } = e {
                    sink.lock().unwrap().push(node.clone());
                }
            })),
            ..Default::default()
        };
        let g = validate(&doc, Registry::global()).unwrap();
        let report = exec.run(&g, &opts).unwrap();
        let with_plan = report.outputs["decode"][0].clone();
        let mut plain = without_planner(doc.clone());
        set(&mut plain);
        let (without, _) = run(&plain, "decode", &mut exec);
        assert!(
            max_diff(&image_of(&with_plan), &image_of(&without)) < 1e-6,
            "{text}"
        );
        let warned = warnings.lock().unwrap().iter().any(|n| n == "plan");
        assert_eq!(warned, warns, "{text}");
    }
}

/// With `layout = objects`, `unilip.caption_regions` lays out every prompt it parses, one-group
/// ones too: the graph equals the direct pipeline under the same plan, the layout seed moves
/// the objects, and a one-group prompt gets regions (unlike with `groups`).
#[test]
fn object_layout_plans_a_region_per_object_for_every_prompt() {
    let mut exec = Executor::default();
    let mut doc = shipped("generate.ron");
    let set = |doc: &mut GraphDoc, node: &str, key: &str, v: ParamValue| {
        let params = &mut doc.nodes.get_mut(node).unwrap().params;
        params.insert(key.into(), v);
    };
    set(
        &mut doc,
        "plan",
        "layout",
        ParamValue::Str("objects".into()),
    );
    set(&mut doc, "plan", "seed", ParamValue::Int(3));
    let (planned, _) = run(&doc, "decode", &mut exec);
    let max_sigma = doc.nodes["dit"].params["guidance_max_sigma"]
        .as_f64()
        .unwrap();
    let direct = generate_direct(ConditionMode::Dual, 42, max_sigma as f32, plan_of(&doc));
    let d = max_diff(&image_of(&planned), &direct);
    assert!(d < 1e-4, "graph vs direct pipeline differ by {d}");
    set(&mut doc, "plan", "seed", ParamValue::Int(4));
    let (moved, _) = run(&doc, "decode", &mut exec);
    assert!(max_diff(&image_of(&moved), &image_of(&planned)) > 1e-2);
    let text = ParamValue::Str("two red circles".into());
    set(&mut doc, "prompt", "text", text.clone());
    let (one_group, _) = run(&doc, "decode", &mut exec);
    let mut plain = without_planner(doc.clone());
    set(&mut plain, "prompt", "text", text);
    let (unplanned, _) = run(&plain, "decode", &mut exec);
    assert!(max_diff(&image_of(&one_group), &image_of(&unplanned)) > 1e-2);
}

/// `generate_best_of.ron`: `dit.batch` samples several candidates under one prompt, each under
/// its own planned layout (the first from batch 1's noise and the plan's first layout, so it is
/// `generate.ron`'s image), and `unilip.rank_by_answers` passes
/// on exactly the candidate whose answers to the prompt's questions the model rates highest.
/// A prompt outside the caption grammar, with no questions listed, is an error naming the node
/// and the param to fill in.
#[test]
fn best_of_graph_keeps_the_candidate_its_own_answers_rate_highest() {
    use unilip_core::ImageBatch;
    use unilip_nodes::nodes::unilip::checkpoint::input_size;
    use unilip_nodes::shapesworld::verify::spec_questions;
    use unilip_nodes::shapesworld::{SceneSpec, Style};

    let mut exec = Executor::default();
    let mut doc = shipped("generate_best_of.ron");
    let batch = doc.nodes["dit"].params["batch"]
        .as_f64()
        .expect("dit.batch") as usize;
    assert!(batch > 1, "the shipped graph samples several candidates");
    let (candidates, _) = run(&doc, "decode", &mut exec);
    let candidates = candidates.as_image().unwrap().clone();
    assert_eq!(candidates.n, batch);
    let len = 3 * candidates.h * candidates.w;
    let row = |i: usize| ImageBatch {
        n: 1,
        h: candidates.h,
        w: candidates.w,
        data: candidates.data[i * len..(i + 1) * len].to_vec(),
    };
    let max_sigma = doc.nodes["dit"].params["guidance_max_sigma"]
        .as_f64()
        .unwrap();
    let d = max_diff(
        &row(0).data,
        &generate_direct(
            ConditionMode::Dual,
            42,
            max_sigma as f32,
            RegionPlan {
                layouts: 1,
                ..plan_of(&doc)
            },
        ),
    );
    assert!(
        d < 1e-4,
        "the first candidate is the batch-1 image (diff {d})"
    );
    assert!(
        max_diff(&row(0).data, &row(1).data) > 1e-3,
        "candidates differ"
    );

    let (_, report) = run(&doc, "rank", &mut exec);
    let outputs = &report.outputs["rank"];
    let index = outputs[1].as_int().unwrap() as usize;
    let rating = outputs[2].as_float().unwrap();
    assert_eq!(
        image_of(&outputs[0]),
        row(index).data,
        "passes the chosen row on"
    );

    let m = model(ComponentSet::ALL);
    let tok = Tokenizer::from_file(checkpoint().join("tokenizer.json")).unwrap();
    let prompt = doc.nodes["prompt"].params["text"].as_str().unwrap();
    let questions = spec_questions(&SceneSpec::parse(prompt).unwrap(), &Style::default());
    let pairs: Vec<(&str, &str)> = questions
        .iter()
        .map(|q| (q.question.as_str(), q.answer.as_str()))
        .collect();
    let ratings: Vec<f64> = (0..batch)
        .map(|i| {
            let px = pixel_values(&row(i), input_size(&m, 0));
            let lp = m.answer_log_probs(&tok, px, &pairs).unwrap();
            lp.into_iter().map(f64::from).sum()
        })
        .collect();
    let best = (0..batch).fold(0, |b, i| if ratings[i] > ratings[b] { i } else { b });
    assert_eq!(index, best, "ratings {ratings:?}");
    assert!(
        (rating - ratings[best]).abs() < 1e-3,
        "{rating} vs {ratings:?}"
    );

    doc.nodes
        .get_mut("prompt")
        .unwrap()
        .params
        .insert("text".into(), ParamValue::Str("a photo of a dog".into()));
    let g = validate(&doc, Registry::global()).unwrap();
    let opts = RunOptions {
        targets: vec!["rank".into()],
        ..Default::default()
    };
    let err = exec.run(&g, &opts).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("rank") && err.contains("`questions`"), "{err}");
}

/// `unilip.dit_denoise` with a `mask` inpaints: where the mask is 0 the sampled latent is the
/// wired `image_latent` itself (up to the DiT scaling's round trip), where it is 1 it is drawn;
/// a mask without `image_latent` is an error naming both.
#[test]
fn dit_denoise_mask_keeps_the_image_latent_outside_it() {
    use unilip_nodes::nodes::unilip::payload::Latent;
    let mut exec = Executor::default();
    let mut doc = shipped("edit.ron");
    // A 64 × 64 mask: left half drawn, right half kept.
    let dir = std::env::temp_dir().join(format!("unilip-mask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("left.png");
    image::GrayImage::from_fn(64, 64, |x, _| image::Luma([if x < 32 { 255 } else { 0 }]))
        .save(&path)
        .unwrap();
    let text = format!(
        r#"(format: 1, nodes: {{"n": (type: "image.load", version: 1, params: {{"path": "{}"}})}})"#,
        path.display()
    );
    let load = GraphDoc::from_ron(&text, "n").unwrap().nodes["n"].clone();
    doc.nodes.insert("mask".into(), load);
    doc.edges.push("mask.image -> dit.mask".parse().unwrap());
    let latent = |v: &Value| v.payload::<Latent>().unwrap().0.clone();
    let (drawn, _) = run(&doc, "dit", &mut exec);
    let (source, _) = run(&doc, "latent", &mut exec);
    let (drawn, source) = (latent(&drawn), latent(&source));
    let [_, _, _, w] = drawn.dims();
    let half = |x: Tensor<B, 4>, from: usize, len: usize| x.narrow(3, from, len);
    let kept = (half(drawn.clone(), w / 2 + 1, w / 2 - 1)
        - half(source.clone(), w / 2 + 1, w / 2 - 1))
    .abs()
    .max()
    .into_scalar();
    assert!(kept < 1e-4, "kept half moved by {kept}");
    let redrawn = (half(drawn, 0, w / 2 - 1) - half(source, 0, w / 2 - 1))
        .abs()
        .max()
        .into_scalar();
    assert!(redrawn > 1e-2, "masked half not drawn ({redrawn})");
    let wired: Edge = "latent.latent -> dit.image_latent".parse().unwrap();
    doc.edges.retain(|e| *e != wired);
    let g = validate(&doc, Registry::global()).unwrap();
    let opts = RunOptions {
        targets: vec!["dit".into()],
        ..Default::default()
    };
    let err = exec.run(&g, &opts).unwrap_err().to_string();
    assert!(
        err.contains("dit") && err.contains("mask") && err.contains("image_latent"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}
