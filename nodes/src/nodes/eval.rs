//! `eval.shapesworld`: scores a model on ShapesWorld's validation split inside a graph, so a
//! sweep over a training graph records generation, editing, reconstruction or VQA quality per
//! point.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::unilip::checkpoint::{model_input, model_port};
use crate::eval::{eval_shapesworld, EvalOptions, EvalTask};
use crate::models::unilip::ConditionMode;
use crate::register_node;
use crate::shapesworld::Domain;

/// `eval.shapesworld`.
pub struct ShapesWorldEval {
    schema: NodeSchema,
}

/// Task names and the metric each reports as its score.
const TASKS: [(&str, EvalTask, &str); 4] = [
    ("recon", EvalTask::Recon, "psnr_db"),
    ("generate", EvalTask::Generate, "geneval"),
    ("edit", EvalTask::Edit, "edit"),
    ("vqa", EvalTask::Vqa, "vqa_accuracy"),
];

impl ShapesWorldEval {
    /// The node.
    pub fn new() -> Self {
        let domains: Vec<&str> = Domain::ALL.iter().map(|d| d.name()).collect();
        let tasks: Vec<&str> = TASKS.iter().map(|t| t.0).collect();
        Self {
            schema: NodeSchema {
                id: "eval.shapesworld".into(),
                version: 1,
                category: "eval".into(),
                description: "Scores the model's checkpoint on n ShapesWorld validation items \
                              with the deterministic scorer: recon → PSNR (dB), generate → \
                              GenEval-like fraction correct, edit → edit score, vqa → accuracy. \
                              `metric` picks another of its measures as the score; `metrics` \
                              lists them all."
                    .into(),
                inputs: vec![model_port()],
                outputs: vec![
                    PortSpec::new("score", PortType::Float, "The task's main metric"),
                    PortSpec::new("metrics", PortType::Text, "Every metric, one per line"),
                ],
                params: vec![
                    ParamSpec::choice("task", "generate", &tasks, "What to measure"),
                    ParamSpec::int("n", 20, 1, 100_000, "Validation items"),
                    ParamSpec::choice("domain", "default", &domains, "Style and vocabulary"),
                    ParamSpec::seed("seed", 0, "Validation stream and sampling seed"),
                    ParamSpec::int("steps", 20, 1, 1000, "Sampler steps (generate, edit)"),
                    ParamSpec::float("guidance", 4.5, 0.0, 50.0, "CFG scale (generate, edit)"),
                    ParamSpec::choice(
                        "condition",
                        "dual",
                        &ConditionMode::NAMES,
                        "DiT condition (generate, edit)",
                    ),
                    ParamSpec::text(
                        "metric",
                        "",
                        "Metric output as `score` (empty = the task's main one, e.g. \
                         geneval_checks, ssim, edit_change_made)",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for ShapesWorldEval {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let dir = model_input(ctx)?.dir.clone();
        let name = ctx.str("task")?;
        let (_, task, main) = TASKS
            .iter()
            .find(|t| t.0 == name)
            .ok_or_else(|| NodeError::msg(format!("unknown task `{name}`")))?;
        let domain_name = ctx.str("domain")?;
        let domain = Domain::ALL
            .into_iter()
            .find(|d| d.name() == domain_name)
            .ok_or_else(|| NodeError::msg(format!("unknown domain `{domain_name}`")))?;
        let mut opts = EvalOptions::new(*task, ctx.int("n")?.max(1) as usize);
        opts.domain = domain;
        opts.seed = ctx.int("seed")? as u64;
        opts.steps = ctx.int("steps")?.max(1) as usize;
        opts.guidance = ctx.float("guidance")? as f32;
        opts.condition = ctx.str("condition")?.parse().map_err(NodeError::msg)?;
        let metrics = eval_shapesworld(&dir, &opts).map_err(NodeError::msg)?;
        let report = metrics
            .iter()
            .map(|(k, v)| format!("{k}: {v:.4}"))
            .collect::<Vec<_>>()
            .join("\n");
        let wanted = match ctx.str("metric")? {
            "" => *main,
            m => m,
        };
        let score = metrics.get(wanted).copied().ok_or_else(|| {
            NodeError::msg(format!(
                "task `{name}` reports no `{wanted}` (it reports {})",
                metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(vec![Value::Float(score), Value::Text(report)])
    }
}

register_node!(ShapesWorldEval);
