//! Helpers shared by the training tests: a random `shapes` checkpoint with a tiny word-level
//! tokenizer, a dataset of coloured squares, run settings and loss evaluation.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use unilip_nodes::backend::{device, TrainB};
use unilip_nodes::models::tokenizer::{build_word_level, Tokenizer, TEMPLATE_WORDS};
use unilip_nodes::models::unilip::{write_random_checkpoint, ConditionMode, Unilip, UnilipConfig};
use unilip_nodes::train::data::{DataError, Dataset, DatasetKind, HostImage, Sample};
use unilip_nodes::train::loss::{LossKind, LossTerm};
use unilip_nodes::train::objective::{Objective, Task};
use unilip_nodes::train::{train, Hooks, TrainConfig, TrainRequest, Trainable};
use unilip_nodes::weights::{Checkpoint, SaveDtype};

pub const WORDS: [&str; 9] = [
    "a", "red", "green", "blue", "square", "make", "it", "what", "colour",
];
pub const COLOURS: [(&str, [f32; 3]); 3] = [
    ("red", [0.9, 0.1, 0.1]),
    ("green", [0.1, 0.8, 0.2]),
    ("blue", [0.1, 0.2, 0.9]),
];

/// A random `shapes` checkpoint with a word-level tokenizer in `dir`.
pub fn checkpoint(dir: &Path) -> PathBuf {
    checkpoint_with(dir, |_| {})
}

/// [`checkpoint`] with `edit` applied to the `shapes` config first.
pub fn checkpoint_with(dir: &Path, edit: impl FnOnce(&mut UnilipConfig)) -> PathBuf {
    checkpoint_words(dir, &WORDS, edit)
}

/// [`checkpoint_with`] whose tokenizer knows `words` (besides the chat template's).
pub fn checkpoint_words(
    dir: &Path,
    words: &[&str],
    edit: impl FnOnce(&mut UnilipConfig),
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let vocab: Vec<&str> = TEMPLATE_WORDS.iter().chain(words).copied().collect();
    let tok_path = dir.join("tok.json");
    let inner = build_word_level(&vocab, &[]).unwrap();
    let tok = Tokenizer::from_inner(inner, "test").unwrap();
    tok.save(&tok_path).unwrap();
    let mut config = UnilipConfig::shapes(tok.vocab_size(), tok.special());
    edit(&mut config);
    let ck = dir.join("base");
    write_random_checkpoint(&ck, config, 7, SaveDtype::F32, Some(&tok_path)).unwrap();
    ck
}

/// `n` 64×64 images of a coloured square on grey; sample `poison` (if any) holds a NaN.
#[derive(Debug)]
pub struct Squares {
    pub kind: DatasetKind,
    pub n: usize,
    pub poison: Option<usize>,
}

pub fn square(colour: usize, offset: usize) -> HostImage {
    let (h, w) = (64, 64);
    let mut data = vec![0.5; h * w * 3];
    let rgb = COLOURS[colour % 3].1;
    for y in 16..40 {
        for x in (8 + offset)..(32 + offset) {
            data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&rgb);
        }
    }
    HostImage {
        height: h,
        width: w,
        data,
    }
}

impl Dataset for Squares {
    fn kind(&self) -> DatasetKind {
        self.kind
    }
    fn len(&self) -> usize {
        self.n
    }
    fn get(&self, i: usize) -> Result<Sample, DataError> {
        let (name, _) = COLOURS[i % 3];
        let mut image = square(i, 8 * (i % 2));
        if self.poison == Some(i) {
            image.data[5] = f32::NAN;
        }
        Ok(match self.kind {
            DatasetKind::Captions => Sample {
                image,
                source: None,
                text: format!("a {name} square"),
                answer: None,
                regions: Vec::new(),
            },
            DatasetKind::Edits => Sample {
                source: Some(square(i + 1, 0)),
                image,
                text: format!("make it {name}"),
                answer: None,
                regions: Vec::new(),
            },
            DatasetKind::Vqa => Sample {
                image,
                source: None,
                text: "what colour ?".into(),
                answer: Some(name.into()),
                regions: Vec::new(),
            },
        })
    }
    fn fingerprint(&self) -> String {
        format!("{:?}", self)
    }
    fn describe(&self) -> String {
        format!("{} squares", self.n)
    }
}

pub fn config(losses: Vec<LossTerm>, trainable: Trainable, steps: usize) -> TrainConfig {
    TrainConfig {
        losses,
        steps,
        batch_size: 2,
        grad_accum: 1,
        workers: 1,
        lr: 3e-3,
        min_lr: 3e-3,
        warmup: 0,
        weight_decay: 0.0,
        grad_clip: 1.0,
        ema_decay: 0.0,
        save_every: 100,
        seed: 3,
        trainable,
        vision_lr_mult: 0.1,
        caption_dropout: 0.0,
        condition_mode: ConditionMode::Dual,
    }
}

pub fn term(kind: LossKind) -> LossTerm {
    LossTerm { kind, weight: 1.0 }
}

pub const FLOW: LossKind = LossKind::FlowMatching {
    logit_mean: 0.0,
    logit_std: 1.0,
};

pub fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unilip-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The objective's loss of the model in `dir` on samples `0..n`, at fixed noise and timesteps.
pub fn eval_loss(dir: &Path, task: Task, terms: &[LossTerm], data: &Squares) -> f64 {
    let model =
        Unilip::<TrainB>::load(dir, task.components(), &device()).expect("trained model loads");
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    eval_losses(&model, &tok, task, terms, data)[0]
}

/// Every term of the objective for `model` on all samples of `data`, at fixed noise and
/// timesteps (the model is its own frozen teacher).
pub fn eval_losses(
    model: &Unilip<TrainB>,
    tok: &Tokenizer,
    task: Task,
    terms: &[LossTerm],
    data: &dyn Dataset,
) -> Vec<f64> {
    let mut objective = Objective::new(task, terms).unwrap();
    objective.tokenizer = Some(tok);
    objective.teacher = Some(model);
    let samples: Vec<Sample> = (0..data.len()).map(|i| data.get(i).unwrap()).collect();
    let mut rng = StdRng::seed_from_u64(99);
    objective
        .losses(model, &samples, &mut rng)
        .unwrap()
        .into_iter()
        .map(|t| t.into_scalar().elem::<f64>())
        .collect()
}

pub fn run(base: &Path, out: &Path, data: &Squares, cfg: &TrainConfig) -> PathBuf {
    let report = train(
        TrainRequest {
            base,
            data,
            config: cfg,
            out,
            resume: false,
        },
        Hooks::default(),
    )
    .expect("training runs");
    assert_eq!(report.steps_done, cfg.steps);
    report.model_dir.expect("a finished run exports its model")
}

pub fn tensor(dir: &Path, key: &str) -> Vec<f32> {
    Checkpoint::open(dir).unwrap().read(key).unwrap().data
}
