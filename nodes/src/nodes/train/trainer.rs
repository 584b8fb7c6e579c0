//! `train.run`: trains a UniLIP checkpoint on a dataset with the connected loss terms.

use std::path::PathBuf;

use unilip_core::{
    ExecCtx, ModelKind, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value,
};

use super::data::DatasetValue;
use super::loss::LossValue;
use crate::models::unilip::ConditionMode;
use crate::nodes::unilip::checkpoint::{load_resident, model_input, model_port};
use crate::nodes::unilip::payload::input;
use crate::register_node;
use crate::train::{
    train, Hooks, TrainConfig, TrainError, TrainRequest, Trainable, DEFAULT_VISION_LR_MULT,
};

/// `train.run`.
pub struct Train {
    schema: NodeSchema,
}

const FLAGS: [(&str, bool, &str); 8] = [
    (
        "train_vision",
        false,
        "Train InternViT + mlp1 (at vision_lr_mult)",
    ),
    (
        "train_projector",
        false,
        "Train mlp1 alone over the frozen InternViT, at the full lr (InternVL's projector warm-up)",
    ),
    ("train_llm", false, "Train the LLM"),
    (
        "train_connector",
        false,
        "Train the queries, connector and projector",
    ),
    ("train_dit", false, "Train the DiT"),
    ("train_latent_head", false, "Train the latent head"),
    ("train_decoder", false, "Train the DC-AE pixel decoder"),
    (
        "train_heads",
        false,
        "Train UniDiff's heads, temperature and separate text tower",
    ),
];

impl Train {
    /// The node.
    pub fn new() -> Self {
        let mut params = vec![
            ParamSpec::dir(
                "out",
                "runs/train",
                "Run directory (checkpoints, model/, log.csv, loss.png); empty = OUTPUT/train, \
                 so each sweep point trains into its own directory",
            ),
            ParamSpec::int("steps", 100, 1, 10_000_000, "Optimizer steps"),
            ParamSpec::int("batch_size", 4, 1, 4096, "Samples per micro-batch"),
            ParamSpec::int("grad_accum", 1, 1, 1024, "Micro-batches per step"),
            ParamSpec::int(
                "workers",
                0,
                0,
                1024,
                "Threads computing micro-batches at once (0 = one per core, at most grad_accum); \
                 the result does not depend on it",
            ),
            ParamSpec::float("lr", 1e-4, 1e-8, 1.0, "Peak learning rate"),
            ParamSpec::float("min_lr", 1e-5, 0.0, 1.0, "Final learning rate (cosine)"),
            ParamSpec::int("warmup", 0, 0, 1_000_000, "Linear warmup steps"),
            ParamSpec::float(
                "weight_decay",
                0.0,
                0.0,
                1.0,
                "AdamW weight decay (not on norms, biases, embeddings)",
            ),
            ParamSpec::float(
                "grad_clip",
                1.0,
                0.0,
                1e6,
                "Global gradient-norm clip (0 = off)",
            ),
            ParamSpec::float(
                "ema_decay",
                0.0,
                0.0,
                0.99999,
                "EMA decay of the weights (0 = off)",
            ),
            ParamSpec::int(
                "save_every",
                100,
                1,
                10_000_000,
                "Checkpoint interval in steps",
            ),
            ParamSpec::seed("seed", 0, "Data order, noise and timestep seed"),
            ParamSpec::bool(
                "resume",
                false,
                "Continue from the run directory's newest checkpoint",
            ),
            ParamSpec::float(
                "vision_lr_mult",
                DEFAULT_VISION_LR_MULT,
                0.0,
                10.0,
                "Learning-rate multiplier of the vision tower",
            ),
            ParamSpec::float(
                "caption_dropout",
                0.1,
                0.0,
                1.0,
                "Null-prompt probability (generation/editing)",
            ),
            ParamSpec::choice("condition", "dual", &ConditionMode::NAMES, "DiT condition"),
        ];
        params.extend(FLAGS.iter().map(|(n, d, doc)| ParamSpec::bool(n, *d, doc)));
        Self {
            schema: NodeSchema {
                id: "train.run".into(),
                version: 1,
                category: "train".into(),
                description: "Trains the input checkpoint with the connected loss terms (AdamW, \
                              warmup + cosine, global clipping, EMA, gradient accumulation) and \
                              outputs the trained model. Checkpoints are HF-layout directories \
                              every `save_every` steps; `resume` continues exactly."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new("data", PortType::Dataset, "Training data"),
                    PortSpec::new("loss", PortType::Loss, "Loss terms"),
                ],
                outputs: vec![
                    PortSpec::new(
                        "model",
                        PortType::Model(ModelKind::Unilip),
                        "The trained model (OUT/model)",
                    ),
                    PortSpec::new("loss", PortType::Float, "Loss of the last step"),
                ],
                params,
                output_node: true,
            },
        }
    }
}

fn config(
    ctx: &ExecCtx<'_>,
    losses: Vec<crate::train::loss::LossTerm>,
) -> Result<TrainConfig, NodeError> {
    let count = |n: &str| -> Result<usize, NodeError> { Ok(ctx.int(n)?.max(0) as usize) };
    let condition_mode: ConditionMode = ctx.str("condition")?.parse().map_err(NodeError::msg)?;
    Ok(TrainConfig {
        losses,
        steps: count("steps")?,
        batch_size: count("batch_size")?,
        grad_accum: count("grad_accum")?,
        workers: count("workers")?,
        lr: ctx.float("lr")?,
        min_lr: ctx.float("min_lr")?,
        warmup: count("warmup")?,
        weight_decay: ctx.float("weight_decay")?,
        grad_clip: ctx.float("grad_clip")?,
        ema_decay: ctx.float("ema_decay")?,
        save_every: count("save_every")?,
        seed: ctx.int("seed")? as u64,
        trainable: Trainable {
            vision: ctx.bool("train_vision")?,
            projector: ctx.bool("train_projector")?,
            llm: ctx.bool("train_llm")?,
            connector: ctx.bool("train_connector")?,
            dit: ctx.bool("train_dit")?,
            latent_head: ctx.bool("train_latent_head")?,
            decoder: ctx.bool("train_decoder")?,
            heads: ctx.bool("train_heads")?,
        },
        vision_lr_mult: ctx.float("vision_lr_mult")?,
        caption_dropout: ctx.float("caption_dropout")?,
        condition_mode,
    })
}

impl Node for Train {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let data = input::<DatasetValue>(ctx, "data")?.0.clone();
        let losses = input::<LossValue>(ctx, "loss")?.0.clone();
        let cfg = config(ctx, losses)?;
        let out = match ctx.str("out")? {
            "" => ctx.env().out_dir.join("train"),
            dir => PathBuf::from(dir),
        };
        let resume = ctx.bool("resume")?;
        let ctx_ref: &ExecCtx<'_> = ctx;
        let mut on_step = |log: &crate::train::log::StepLog, total: usize| {
            ctx_ref
                .progress(log.step as u64, total as u64, None)
                .map_err(|e| match e {
                    NodeError::Cancelled => TrainError::Cancelled { step: log.step },
                    other => TrainError::Io(other.to_string()),
                })
        };
        let report = train(
            TrainRequest {
                base: &handle.dir,
                data: data.as_ref(),
                config: &cfg,
                out: &out,
                resume,
            },
            Hooks {
                on_step: Some(&mut on_step),
                stop_after: None,
            },
        )
        .map_err(|e| NodeError::msg(e.to_string()))?;
        let dir = report
            .model_dir
            .ok_or_else(|| NodeError::msg("training stopped before the end"))?;
        let trained = load_resident(&dir, handle.model.components).map_err(NodeError::msg)?;
        let last = report
            .final_loss
            .ok_or_else(|| NodeError::msg("the run's log.csv has no step"))?;
        Ok(vec![Value::Data(trained), Value::Float(last)])
    }
}

register_node!(Train);
