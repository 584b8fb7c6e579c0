//! `unilip.flow_edit`: FlowEdit ([`crate::models::flow_edit`]) between a source and a target
//! prompt, starting from the image's own latent.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::dit_denoise::latent_type;
use super::payload::{input, value, Conditioning, Latent};
use crate::backend::B;
use crate::models::flow_edit::{EditPrompts, FlowEditOptions};
use crate::models::unilip::Condition;
use crate::register_node;

/// `unilip.flow_edit`.
pub struct FlowEdit {
    schema: NodeSchema,
}

impl FlowEdit {
    /// The node.
    pub fn new() -> Self {
        let defaults = FlowEditOptions::default();
        Self {
            schema: NodeSchema {
                id: "unilip.flow_edit".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "FlowEdit (Kulikov et al. 2024): edits the image latent by \
                              integrating the difference of the DiT's velocities under the \
                              `target` and the `source` prompt (each guided against its own \
                              negative), both taken at the source noised to the current level, \
                              over the last `strength` of an Euler schedule. No inversion and \
                              no training: where the prompts agree the source is kept. Prompts \
                              may describe the whole image or only what changes (\"a red \
                              circle\" → \"a blue circle\"; unilip.edit_prompts writes such \
                              pairs from an instruction). Reports every step."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new("image_latent", latent_type(), "The image to edit (unscaled latent)"),
                    PortSpec::new(
                        "source",
                        PortType::Conditioning { dim: None },
                        "What the image shows (+ negative)",
                    ),
                    PortSpec::new(
                        "target",
                        PortType::Conditioning { dim: None },
                        "What it should show (+ negative)",
                    ),
                ],
                outputs: vec![PortSpec::new("latent", latent_type(), "Edited latent (unscaled)")],
                params: vec![
                    ParamSpec::int("steps", defaults.steps as i64, 1, 1000, "Euler steps of the whole schedule"),
                    ParamSpec::float(
                        "strength",
                        f64::from(defaults.strength),
                        0.0,
                        1.0,
                        "Fraction of the schedule that edits (FlowEdit's n_max / T): higher changes \
                         more; 0 returns the image",
                    ),
                    ParamSpec::float(
                        "source_guidance",
                        f64::from(defaults.source_guidance),
                        0.0,
                        50.0,
                        "CFG scale of the source prompt (equal to the target's when the prompts \
                         describe only what changes, so the rest cancels)",
                    ),
                    ParamSpec::float(
                        "guidance_scale",
                        f64::from(defaults.guidance_scale),
                        0.0,
                        50.0,
                        "CFG scale of the target prompt",
                    ),
                    ParamSpec::seed("seed", 42, "Seed of the noise drawn at every step"),
                ],
                output_node: false,
            },
        }
    }
}

/// The one-row positive and negative of `port`'s conditioning; an error naming the port when it
/// has no negative or several rows.
fn prompt_rows(ctx: &ExecCtx<'_>, port: &str) -> Result<(Condition<B>, Condition<B>), NodeError> {
    let c = input::<Conditioning>(ctx, port)?;
    let negative = c
        .uncond
        .clone()
        .ok_or_else(|| NodeError::msg(format!("`{port}` has no negative row to guide against")))?;
    if c.cond.batch() != 1 || negative.batch() != 1 {
        return Err(NodeError::msg(format!(
            "`{port}` has {} rows; FlowEdit takes one prompt and its negative",
            c.cond.batch()
        )));
    }
    if !c.regions.is_empty() {
        return Err(NodeError::msg(format!(
            "`{port}` carries regional prompts, which FlowEdit does not read"
        )));
    }
    Ok((c.cond.clone(), negative))
}

impl Node for FlowEdit {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let model = &handle.model;
        let (source, source_negative) = prompt_rows(ctx, "source")?;
        let (target, target_negative) = prompt_rows(ctx, "target")?;
        let image = model.scale(input::<Latent>(ctx, "image_latent")?.0.clone());
        let opts = FlowEditOptions {
            steps: ctx.int("steps")? as usize,
            strength: ctx.float("strength")? as f32,
            source_guidance: ctx.float("source_guidance")? as f32,
            guidance_scale: ctx.float("guidance_scale")? as f32,
            seed: ctx.int("seed")? as u64,
        };
        let prompts = EditPrompts {
            source,
            source_negative,
            target,
            target_negative,
        };
        let z = model.flow_edit::<NodeError>(image, &prompts, &opts, |step, total, _| {
            ctx.progress(step as u64, total as u64, None)
        })?;
        Ok(vec![value(Latent(model.unscale(z)))])
    }
}

register_node!(FlowEdit);
