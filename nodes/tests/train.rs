//! Training: each task lowers its loss on a fixed batch, frozen weights stay bit-identical,
//! resume equals an uninterrupted run, parallel micro-batches equal serial ones, NaN stops the run with a named error, bad setups are
//! refused, and a trained model saves in the layout the loader reads.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use unilip_nodes::backend::{device, TrainB};
use unilip_nodes::models::regions::RegionLayout;
use unilip_nodes::models::tokenizer::Tokenizer;
use unilip_nodes::models::unilip::{Unilip, UnilipConfig};
use unilip_nodes::shapesworld::{Domain, GenConfig, SceneSpec, Split, Style};
use unilip_nodes::train::data::{
    CopyEdits, DataError, Dataset, DatasetKind, MixDataset, RegionCaption, Sample,
};
use unilip_nodes::train::loss::LossKind;
use unilip_nodes::train::objective::Task;
use unilip_nodes::train::shapes::ShapesDataset;
use unilip_nodes::train::{train, Hooks, TrainConfig, TrainError, TrainRequest, Trainable};

#[test]
fn encoder_stage1_lowers_reconstruction_and_keeps_the_vit_frozen() {
    let root = temp("enc1");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Captions,
        n: 2,
        poison: None,
    };
    let terms = vec![term(LossKind::PixelMse), term(LossKind::Perceptual)];
    let trainable = Trainable {
        latent_head: true,
        decoder: true,
        ..Trainable::default()
    };
    let cfg = config(terms.clone(), trainable, 12);
    let model = run(&base, &root.join("out"), &data, &cfg);
    let before = eval_loss(&base, Task::Encoder, &terms[..1], &data);
    let after = eval_loss(&model, Task::Encoder, &terms[..1], &data);
    assert!(
        after < 0.7 * before,
        "reconstruction MSE {before} → {after}"
    );
    // Frozen: the vision tower is bit-identical; trained: the decoder moved.
    let vit = "model.vision_tower.encoder.layers.0.mlp.fc1.weight";
    assert_eq!(tensor(&base, vit), tensor(&model, vit));
    let dec = "model.vae_decoder.decoder.conv_out.weight";
    assert_ne!(tensor(&base, dec), tensor(&model, dec));
    // The log and plot exist; every step is logged.
    let csv = std::fs::read_to_string(root.join("out/log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + cfg.steps);
    assert!(csv.starts_with("step,lr,loss,mse,perceptual,grad_norm"));
    assert!(root.join("out/loss.png").exists());
}

#[test]
fn encoder_stage2_distillation_trains_the_vit_at_its_lr_multiplier() {
    let root = temp("enc2");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Captions,
        n: 2,
        poison: None,
    };
    let terms = vec![term(LossKind::PixelMse), term(LossKind::Distill)];
    let trainable = Trainable {
        vision: true,
        latent_head: true,
        decoder: true,
        ..Trainable::default()
    };
    let model = run(
        &base,
        &root.join("out"),
        &data,
        &config(terms, trainable, 4),
    );
    // The ViT moved, but by about a tenth of what the decoder's first step moves (Adam's first
    // step is ±lr per weight).
    let step = |key: &str| {
        let (a, b) = (tensor(&base, key), tensor(&model, key));
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let vit = step("model.vision_tower.encoder.layers.0.mlp.fc1.weight");
    let dec = step("model.vae_decoder.decoder.conv_out.weight");
    assert!(vit > 0.0, "the unfrozen ViT must change");
    assert!(
        vit < 0.3 * dec,
        "ViT moved {vit}, decoder {dec}: lr multiplier not applied"
    );
}

#[test]
fn generation_and_editing_lower_the_flow_matching_loss() {
    for (kind, task) in [
        (DatasetKind::Captions, Task::Generate),
        (DatasetKind::Edits, Task::Edit),
    ] {
        let root = temp(&format!("{task:?}"));
        let base = checkpoint(&root);
        let data = Squares {
            kind,
            n: 2,
            poison: None,
        };
        let terms = vec![term(FLOW)];
        let trainable = Trainable {
            connector: true,
            dit: true,
            ..Trainable::default()
        };
        let model = run(
            &base,
            &root.join("out"),
            &data,
            &config(terms.clone(), trainable, 15),
        );
        let before = eval_loss(&base, task, &terms, &data);
        let after = eval_loss(&model, task, &terms, &data);
        assert!(
            after < 0.8 * before,
            "{task:?}: flow loss {before} → {after}"
        );
        let llm = "model.language_model.layers.0.mlp.up_proj.weight";
        assert_eq!(
            tensor(&base, llm),
            tensor(&model, llm),
            "{task:?}: LLM is frozen"
        );
        let q = "model.latent_queries";
        assert_ne!(
            tensor(&base, q),
            tensor(&model, q),
            "{task:?}: queries train"
        );
    }
}

/// The first one or two of two coloured squares with captions that relate two groups.
#[derive(Debug)]
struct Related(usize);

impl Dataset for Related {
    fn kind(&self) -> DatasetKind {
        DatasetKind::Captions
    }
    fn len(&self) -> usize {
        self.0
    }
    fn get(&self, i: usize) -> Result<Sample, DataError> {
        Ok(Sample {
            image: square(i, 8 * i),
            source: None,
            text: [
                "a red square left of a blue circle",
                "a green circle right of a blue square",
            ][i]
                .into(),
            answer: None,
            regions: Vec::new(),
        })
    }
    fn fingerprint(&self) -> String {
        format!("{self:?}")
    }
    fn describe(&self) -> String {
        format!("{} related captions", self.0)
    }
}

/// A random generation model (and its tokenizer) whose vocabulary holds the relation captions.
fn relation_model(name: &str) -> (Unilip<TrainB>, Tokenizer) {
    let words: Vec<&str> = WORDS
        .iter()
        .copied()
        .chain(["left", "right", "of", "circle"])
        .collect();
    let base = checkpoint_words(&temp(name), &words, |_| {});
    let model = Unilip::<TrainB>::load(&base, Task::Generate.components(), &device()).unwrap();
    let tok = Tokenizer::from_file(base.join("tokenizer.json")).unwrap();
    (model, tok)
}

/// [`Related`]'s samples with `regions(caption)` as their regions.
#[derive(Debug)]
struct Grounded(usize, fn(&str) -> Vec<RegionCaption>);

impl Dataset for Grounded {
    fn kind(&self) -> DatasetKind {
        DatasetKind::Captions
    }
    fn len(&self) -> usize {
        self.0
    }
    fn get(&self, i: usize) -> Result<Sample, DataError> {
        let sample = Related(self.0).get(i)?;
        Ok(Sample {
            regions: (self.1)(&sample.text),
            ..sample
        })
    }
    fn fingerprint(&self) -> String {
        format!("{self:?}")
    }
    fn describe(&self) -> String {
        format!("{} grounded captions", self.0)
    }
}

#[test]
fn grounded_captions_let_each_region_read_its_caption_in_cross_attention() {
    let (model, tok) = relation_model("grounded");
    let flow =
        |data: &dyn Dataset| eval_losses(&model, &tok, Task::Generate, &[term(FLOW)], data)[0];
    let plain = flow(&Grounded(2, |_| Vec::new()));
    assert_eq!(plain, flow(&Related(2)));
    // A region over the whole canvas holding the caption itself, read beside the caption: every
    // key and value appears twice, so cross-attention (and the loss) is unchanged.
    let itself = flow(&Grounded(2, |text| {
        vec![RegionCaption {
            caption: text.into(),
            edges: [0.0, 0.0, 1.0, 1.0],
        }]
    }));
    assert!((itself - plain).abs() < 1e-5 * plain, "{itself} vs {plain}");
    // Each group's caption over its half: the same samples, noise and timesteps, another loss.
    let halves = |text: &str| {
        SceneSpec::parse(text)
            .unwrap()
            .group_regions(&Style::default())
            .into_iter()
            .map(|(caption, edges)| RegionCaption { caption, edges })
            .collect()
    };
    let grounded = flow(&Grounded(2, halves));
    assert!((grounded - plain).abs() > 1e-4, "{grounded} vs {plain}");
    // An empty box is refused, naming the caption.
    let flow_term = [term(FLOW)];
    let mut objective =
        unilip_nodes::train::objective::Objective::new(Task::Generate, &flow_term).unwrap();
    objective.tokenizer = Some(&tok);
    let bad = Grounded(1, |_| {
        vec![RegionCaption {
            caption: "a red square".into(),
            edges: [0.5, 0.0, 0.5, 1.0],
        }]
    });
    let samples = vec![bad.get(0).unwrap()];
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let err = objective
        .losses(&model, &samples, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a red square left of a blue circle"), "{err}");
    // The contrast term's rearranged captions have no regions: the combination is refused.
    let with_contrast = [term(FLOW), term(LossKind::PromptContrast { margin: 0.1 })];
    let mut objective =
        unilip_nodes::train::objective::Objective::new(Task::Generate, &with_contrast).unwrap();
    objective.tokenizer = Some(&tok);
    let samples = vec![Grounded(1, halves).get(0).unwrap()];
    let err = objective
        .losses(&model, &samples, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("prompt_contrast"), "{err}");
    // ShapesWorld grounds exactly its captions that relate two groups; edits refuse it.
    let config = GenConfig {
        resolution: 64,
        seed: 3,
        split: Split::Train,
        domain: Domain::Default,
    };
    let data = ShapesDataset::new(config, DatasetKind::Captions, 40)
        .unwrap()
        .with_regions(RegionLayout::Groups, 1.0)
        .unwrap();
    let generator = data.generator().clone();
    for i in 0..40 {
        let sample = data.get(i).unwrap();
        let spec = generator.caption_item(i as u64).spec;
        assert_eq!(
            sample.regions.len(),
            if spec.second.is_some() { 2 } else { 0 }
        );
        assert_eq!(sample.regions, halves(&sample.text));
    }
    // With the objects layout every caption gets one region per rendered object: its own
    // caption over a box around it.
    let data = ShapesDataset::new(config, DatasetKind::Captions, 40)
        .unwrap()
        .with_regions(RegionLayout::Objects, 1.0)
        .unwrap();
    for i in 0..40 {
        let sample = data.get(i).unwrap();
        let item = generator.caption_item(i as u64);
        assert_eq!(sample.regions.len(), item.scene.objects.len());
        for (region, object) in sample.regions.iter().zip(&item.scene.objects) {
            let spec = SceneSpec::parse(&region.caption).unwrap();
            assert_eq!(spec.object_count(), 1, "{}", region.caption);
            assert!(spec.first.matches(object.shape, object.colour, object.size));
            assert_eq!(spec.first.size, Some(object.size), "{}", region.caption);
            let [x0, y0, x1, y1] = region.edges;
            let (cx, cy) = (object.cx / 64.0, object.cy / 64.0);
            assert!(
                x0 < cx && cx < x1 && y0 < cy && cy < y1,
                "{region:?} {object:?}"
            );
            assert!(x1 - x0 < 0.5 && y1 - y0 < 0.5, "{region:?}");
        }
    }
    // A share grounds about that share of captions, the same ones on every read, and leaves
    // the rest plain; a share of 0 or above 1 is refused by name.
    let captions = |share| {
        let data = ShapesDataset::new(config, DatasetKind::Captions, 400)
            .unwrap()
            .with_regions(RegionLayout::Objects, share)
            .unwrap();
        (0..400)
            .map(|i| !data.get(i).unwrap().regions.is_empty())
            .collect::<Vec<bool>>()
    };
    let half = captions(0.5);
    let grounded = half.iter().filter(|&&g| g).count();
    assert!(
        (160..=240).contains(&grounded),
        "{grounded} of 400 grounded"
    );
    assert_eq!(half, captions(0.5));
    assert!(captions(1.0).iter().all(|&g| g));
    for share in [0.0, 1.5] {
        let err = ShapesDataset::new(config, DatasetKind::Captions, 4)
            .unwrap()
            .with_regions(RegionLayout::Objects, share)
            .unwrap_err();
        assert!(err.contains("region_share"), "{err}");
    }
    assert!(ShapesDataset::new(config, DatasetKind::Edits, 4)
        .unwrap()
        .with_regions(RegionLayout::Groups, 1.0)
        .is_err());
}

#[test]
fn prompt_contrast_is_a_hinge_on_rearranged_captions_only() {
    let (model, tok) = relation_model("contrast");
    let losses = |margin: f64, data: &dyn Dataset| {
        let terms = [term(FLOW), term(LossKind::PromptContrast { margin })];
        eval_losses(&model, &tok, Task::Generate, &terms, data)
    };
    // Captions naming one group have nothing to rearrange: the term is exactly zero.
    let squares = Squares {
        kind: DatasetKind::Captions,
        n: 2,
        poison: None,
    };
    assert_eq!(losses(10.0, &squares)[1], 0.0);
    // Same noise, timesteps and rearrangements at every margin. One sample: relu(m − gap) at
    // m = 10 (an untrained DiT's gap is far below 10) gives the gap, m = 0 clamps it.
    let [flow, wide] = losses(10.0, &Related(1))[..] else {
        panic!("two terms")
    };
    let gap = 10.0 - wide;
    assert!(
        gap.abs() < 1.0 && gap != 0.0,
        "an untrained DiT's gap: {gap}"
    );
    assert!((losses(0.0, &Related(1))[1] - (-gap).max(0.0)).abs() < 1e-5);
    assert_eq!(
        losses(0.0, &Related(1))[0],
        flow,
        "the flow term is unchanged"
    );
    // Two samples: the mean of the per-sample hinges, linear in the margin while all count.
    let shift = losses(10.0, &Related(2))[1] - losses(5.0, &Related(2))[1];
    assert!((shift - 5.0).abs() < 1e-5, "{shift}");
    assert_eq!(
        Task::infer(
            &[term(FLOW), term(LossKind::PromptContrast { margin: 0.1 })],
            DatasetKind::Captions
        )
        .unwrap(),
        Task::Generate
    );
}

#[test]
fn understanding_lowers_the_answer_cross_entropy() {
    let root = temp("und");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Vqa,
        n: 3,
        poison: None,
    };
    let terms = vec![term(LossKind::Text)];
    let trainable = Trainable {
        llm: true,
        ..Trainable::default()
    };
    let model = run(
        &base,
        &root.join("out"),
        &data,
        &config(terms.clone(), trainable, 10),
    );
    let before = eval_loss(&base, Task::Understand, &terms, &data);
    let after = eval_loss(&model, Task::Understand, &terms, &data);
    assert!(
        after < 0.5 * before,
        "answer cross-entropy {before} → {after}"
    );
}

#[test]
fn projector_warm_up_trains_mlp1_alone_at_the_full_rate() {
    let root = temp("projector");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Vqa,
        n: 3,
        poison: None,
    };
    let terms = vec![term(LossKind::Text)];
    let train = |name: &str, trainable: Trainable| {
        run(
            &base,
            &root.join(name),
            &data,
            &config(terms.clone(), trainable, 6),
        )
    };
    let projector = train(
        "projector",
        Trainable {
            projector: true,
            ..Trainable::default()
        },
    );
    let vision = train(
        "vision",
        Trainable {
            vision: true,
            ..Trainable::default()
        },
    );
    let before = eval_loss(&base, Task::Understand, &terms, &data);
    let after = eval_loss(&projector, Task::Understand, &terms, &data);
    assert!(after < before, "answer cross-entropy {before} → {after}");
    // The tower and the LLM stay bit-identical; `mlp1` moves.
    for key in [
        "model.vision_tower.encoder.layers.0.mlp.fc1.weight",
        "model.vision_tower.embeddings.position_embedding",
        "model.language_model.layers.0.mlp.up_proj.weight",
    ] {
        assert_eq!(tensor(&base, key), tensor(&projector, key), "{key}");
    }
    let moved = |model: &Path| {
        let key = "model.multi_modal_projector.1.weight";
        let (a, b) = (tensor(&base, key), tensor(model, key));
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    // Alone, `mlp1` trains at the full rate, not at the vision tower's tenth.
    let (alone, with_tower) = (moved(&projector), moved(&vision));
    assert!(
        alone > 3.0 * with_tower && with_tower > 0.0,
        "mlp1 moved {alone} alone, {with_tower} with the tower"
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let root = temp("resume");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Captions,
        n: 3,
        poison: None,
    };
    let trainable = Trainable {
        latent_head: true,
        decoder: true,
        ..Trainable::default()
    };
    let mut cfg = config(vec![term(LossKind::PixelMse)], trainable, 6);
    cfg.save_every = 2;
    cfg.ema_decay = 0.9;
    cfg.grad_accum = 2;
    cfg.warmup = 2;
    cfg.min_lr = 1e-4;
    let whole = root.join("whole");
    run(&base, &whole, &data, &cfg);

    let split = root.join("split");
    let request = |resume| TrainRequest {
        base: &base,
        data: &data,
        config: &cfg,
        out: &split,
        resume,
    };
    let crashed = train(
        request(false),
        Hooks {
            stop_after: Some(3),
            ..Hooks::default()
        },
    )
    .unwrap();
    assert!(crashed.model_dir.is_none());
    let resumed = train(request(true), Hooks::default()).unwrap();
    assert_eq!(
        resumed.resumed_from,
        Some(2),
        "resumes from the step-2 checkpoint"
    );
    assert_eq!(
        std::fs::read_to_string(whole.join("log.csv")).unwrap(),
        std::fs::read_to_string(split.join("log.csv")).unwrap(),
        "loss curves differ"
    );
    let weights = |d: &Path| std::fs::read(d.join("model/model.safetensors")).unwrap();
    assert!(weights(&whole) == weights(&split), "final weights differ");

    let finished = train(request(true), Hooks::default()).unwrap();
    assert!(finished.log.is_empty(), "a finished run runs no step");
    let last_logged = resumed.log.last().unwrap().loss;
    assert_eq!(finished.final_loss, Some(last_logged));
    assert_eq!(resumed.final_loss, Some(last_logged));
}

#[test]
fn parallel_micro_batches_equal_serial_ones() {
    let root = temp("workers");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Edits,
        n: 4,
        poison: None,
    };
    let trainable = Trainable {
        connector: true,
        dit: true,
        ..Trainable::default()
    };
    let mut cfg = config(vec![term(FLOW)], trainable, 3);
    cfg.grad_accum = 3;
    cfg.caption_dropout = 0.5;
    let outputs: Vec<(String, Vec<u8>)> = [1, 2]
        .into_iter()
        .map(|workers| {
            cfg.workers = workers;
            let out = root.join(format!("workers-{workers}"));
            run(&base, &out, &data, &cfg);
            (
                std::fs::read_to_string(out.join("log.csv")).unwrap(),
                std::fs::read(out.join("model/model.safetensors")).unwrap(),
            )
        })
        .collect();
    assert_ne!(
        outputs[0].1,
        std::fs::read(base.join("model.safetensors")).unwrap()
    );
    // Three micro-batches on two workers: one full wave and one of a single micro-batch.
    assert_eq!(outputs[0].0, outputs[1].0, "loss curves differ");
    assert!(outputs[0].1 == outputs[1].1, "weights differ");
}

#[test]
fn nan_in_the_data_stops_with_a_named_error_and_keeps_the_checkpoint() {
    let root = temp("nan");
    let base = checkpoint(&root);
    let data = Squares {
        kind: DatasetKind::Captions,
        n: 8,
        poison: Some(5),
    };
    let trainable = Trainable {
        decoder: true,
        ..Trainable::default()
    };
    let mut cfg = config(vec![term(LossKind::PixelMse)], trainable, 20);
    cfg.save_every = 1;
    let out = root.join("out");
    let err = train(
        TrainRequest {
            base: &base,
            data: &data,
            config: &cfg,
            out: &out,
            resume: false,
        },
        Hooks::default(),
    )
    .expect_err("NaN must stop the run");
    let TrainError::NonFinite {
        step,
        term,
        last_good,
        ..
    } = &err
    else {
        panic!("expected NonFinite, got {err}");
    };
    assert_eq!(term, "loss `mse`");
    assert!(err.to_string().contains(&format!("step {step}")));
    let good = PathBuf::from(last_good);
    assert!(
        good.ends_with(format!("step-{:06}", step - 1)),
        "{last_good}"
    );
    Unilip::<TrainB>::load(&good, Task::Encoder.components(), &device())
        .expect("the last good checkpoint loads");
}

#[test]
fn bad_setups_are_refused_with_reasons() {
    let root = temp("bad");
    let base = checkpoint(&root);
    let captions = Squares {
        kind: DatasetKind::Captions,
        n: 2,
        poison: None,
    };
    let all = Trainable {
        dit: true,
        decoder: true,
        ..Trainable::default()
    };
    let submit = |cfg: &TrainConfig, resume: bool| {
        train(
            TrainRequest {
                base: &base,
                data: &captions,
                config: cfg,
                out: &root.join("out"),
                resume,
            },
            Hooks::default(),
        )
    };
    let attempt =
        |cfg: &TrainConfig, resume: bool| submit(cfg, resume).expect_err("refused").to_string();
    let mixed = config(vec![term(LossKind::PixelMse), term(FLOW)], all, 2);
    assert!(attempt(&mixed, false).contains("mix tasks"));
    let frozen = config(vec![term(LossKind::PixelMse)], Trainable::default(), 2);
    assert!(attempt(&frozen, false).contains("nothing to train"));
    // A finished run, then a resume with a different learning rate.
    let ok = config(vec![term(LossKind::PixelMse)], all, 1);
    run(&base, &root.join("out"), &captions, &ok);
    let mut changed = ok.clone();
    changed.lr = 1e-4;
    changed.min_lr = 1e-4;
    let refusal = attempt(&changed, true);
    assert!(refusal.contains("settings differ"), "{refusal}");
    assert!(
        refusal.contains(&format!("`lr` {} in the checkpoint, 0.0001 now", ok.lr))
            && refusal.contains("`min_lr`")
            && !refusal.contains("`warmup`"),
        "the refusal names exactly what changed: {refusal}"
    );
    // The vision tower's learning-rate multiplier changes nothing while the tower is frozen, so
    // a resume may differ in it (the finished run then trains no further step)...
    let mut frozen_vision_mult = ok.clone();
    frozen_vision_mult.vision_lr_mult = 1.0;
    let resumed = submit(&frozen_vision_mult, true)
        .expect("a frozen tower's multiplier does not block a resume");
    assert_eq!(resumed.steps_done, 1);
    // ... but not once the tower trains.
    let mut trained_vision = frozen_vision_mult.clone();
    trained_vision.trainable.vision = true;
    let refusal = attempt(&trained_vision, true);
    assert!(
        refusal.contains("`train_vision` false in the checkpoint, true now")
            && refusal.contains("`vision_lr_mult` unset in the checkpoint, 1 now"),
        "{refusal}"
    );
    // Checkpoints written before the settings were stored by name resume by their hash.
    let state_file = root.join("out/checkpoints/step-000001/train_state/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    state.as_object_mut().unwrap().remove("settings_by_name");
    std::fs::write(&state_file, state.to_string()).unwrap();
    assert!(attempt(&changed, true).contains("settings differ"));
    let mut longer = ok.clone();
    longer.steps = 2;
    let resumed = submit(&longer, true).expect("same settings, more steps");
    assert_eq!(resumed.steps_done, 2);
}

#[test]
fn saved_tensors_are_the_loaded_keys_and_values() {
    let config = UnilipConfig::tiny();
    let (model, made) = Unilip::<TrainB>::random(config, 5, &device()).unwrap();
    let saved = model.tensors().expect("every parameter has a key");
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        made.keys().collect::<Vec<_>>()
    );
    assert!(saved == made, "values or Linear orientation differ");
}

#[test]
fn editing_mixed_with_captions_lowers_both_and_mixing_checks_kinds() {
    let root = temp("mix");
    let base = checkpoint(&root);
    let edits = Squares {
        kind: DatasetKind::Edits,
        n: 2,
        poison: None,
    };
    let captions = Squares {
        kind: DatasetKind::Captions,
        n: 2,
        poison: None,
    };
    let mix = MixDataset::new(Arc::new(edits), Arc::new(captions)).unwrap();
    assert_eq!((mix.kind(), mix.len()), (DatasetKind::Edits, 4));
    assert!(mix.get(1).unwrap().source.is_some() && mix.get(2).unwrap().source.is_none());
    let vqa = Squares {
        kind: DatasetKind::Vqa,
        n: 1,
        poison: None,
    };
    let err = MixDataset::new(
        Arc::new(Squares {
            kind: DatasetKind::Edits,
            n: 1,
            poison: None,
        }),
        Arc::new(vqa),
    )
    .unwrap_err();
    assert!(err.contains("cannot mix"), "{err}");

    let terms = vec![term(FLOW)];
    let trainable = Trainable {
        connector: true,
        dit: true,
        ..Trainable::default()
    };
    let mut cfg = config(terms.clone(), trainable, 20);
    cfg.batch_size = 4;
    let report = train(
        TrainRequest {
            base: &base,
            data: &mix,
            config: &cfg,
            out: &root.join("out"),
            resume: false,
        },
        Hooks::default(),
    )
    .expect("a mixed batch trains");
    let model = report.model_dir.unwrap();
    for (kind, task) in [
        (DatasetKind::Edits, Task::Edit),
        (DatasetKind::Captions, Task::Generate),
    ] {
        let part = Squares {
            kind,
            n: 2,
            poison: None,
        };
        let before = eval_loss(&base, task, &terms, &part);
        let after = eval_loss(&model, task, &terms, &part);
        assert!(after < 0.8 * before, "{task:?}: {before} → {after}");
    }
}

#[test]
fn copy_edits_keep_the_source_as_target_under_one_instruction() {
    let config = GenConfig {
        resolution: 32,
        seed: 3,
        split: Split::Train,
        domain: Domain::Default,
    };
    let edits = Arc::new(ShapesDataset::new(config, DatasetKind::Edits, 4).unwrap());
    let copies = CopyEdits::new(edits.clone(), " make nothing ").unwrap();
    assert_eq!((copies.kind(), copies.len()), (DatasetKind::Edits, 4));
    for i in 0..4 {
        let (edit, copy) = (edits.get(i).unwrap(), copies.get(i).unwrap());
        let source = edit.source.unwrap();
        assert_ne!(source, edit.image, "edit {i} changes nothing");
        assert_eq!(copy.source.as_ref(), Some(&source));
        assert_eq!(copy.image, source);
        assert_eq!(copy.text, "make nothing");
    }
    assert_ne!(copies.fingerprint(), edits.fingerprint());

    let captions = Arc::new(ShapesDataset::new(config, DatasetKind::Captions, 2).unwrap());
    let copy = CopyEdits::new(captions.clone(), "make nothing")
        .unwrap()
        .get(1)
        .unwrap();
    assert_eq!(copy.image, captions.get(1).unwrap().image);
    assert_eq!(copy.source, Some(copy.image.clone()));

    let vqa = Arc::new(ShapesDataset::new(config, DatasetKind::Vqa, 2).unwrap());
    assert!(CopyEdits::new(vqa, "make nothing")
        .unwrap_err()
        .contains("VQA"));
    assert!(CopyEdits::new(edits, "  ").unwrap_err().contains("empty"));
}

/// `config` with a DiT that also takes the source latent (`in_channels` = 2 × latent).
fn takes_source(config: &UnilipConfig) -> UnilipConfig {
    let mut json = config.to_json();
    let latent = config.dit.out_channels();
    json["dit_config"]["in_channels"] = (2 * latent).into();
    json["dit_config"]["out_channels"] = latent.into();
    UnilipConfig::from_json(json).unwrap()
}

/// A DiT that takes the edit source beside the noisy latent (`in_channels` = 2 × latent) is
/// trained on it: edit rows pass the source latent, so the source channels' patch weights get a
/// gradient, while caption rows pass zeros and leave them exactly as they were (no weight decay).
#[test]
fn a_dit_taking_the_source_is_trained_on_the_edit_source_and_zeros_for_captions() {
    let root = temp("source-input");
    let base = checkpoint_with(&root, |c| *c = takes_source(c));
    let key = "model.dit.patch_embed.proj.weight";
    let shape = unilip_nodes::weights::Checkpoint::open(&base)
        .unwrap()
        .read(key)
        .unwrap()
        .shape;
    // [width, 2·latent, p, p]: the source's weights are the second half of each row.
    let source_part = |w: Vec<f32>| -> Vec<f32> {
        let row = w.len() / shape[0];
        w.chunks(row).flat_map(|r| r[row / 2..].to_vec()).collect()
    };
    let before = source_part(tensor(&base, key));
    assert!(before.iter().any(|v| *v != 0.0));
    let trainable = Trainable {
        dit: true,
        ..Trainable::default()
    };
    let cfg = config(vec![term(FLOW)], trainable, 2);
    for (kind, changes) in [(DatasetKind::Edits, true), (DatasetKind::Captions, false)] {
        let data = Squares {
            kind,
            n: 2,
            poison: None,
        };
        let out = root.join(format!("{kind:?}"));
        let after = source_part(tensor(&run(&base, &out, &data, &cfg), key));
        assert_eq!(after != before, changes, "{kind:?}");
    }
}
