//! `unilip.relocate`: moves or swaps objects named by a ShapesWorld instruction
//! ([`crate::models::relocate`]), with the mask to paste the result onto the picture.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{mode_of, mode_param, model_input, model_port};
use super::dit_denoise::latent_type;
use super::edit_prompts::edit_kind;
use super::locate::grey;
use super::payload::{input, model_err, value, Latent};
use crate::models::flow_edit::FlowEditOptions;
use crate::models::locate::{pixel_mask, LocateOptions};
use crate::models::relocate::{MOVE_GUIDANCE, MOVE_STRENGTH};
use crate::register_node;
use crate::shapesworld::{EditKind, Style};

/// `unilip.relocate`.
pub struct Relocate {
    schema: NodeSchema,
}

impl Relocate {
    /// The node.
    pub fn new() -> Self {
        let flow = FlowEditOptions::default();
        Self {
            schema: NodeSchema {
                id: "unilip.relocate".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "Moves or swaps objects (\"move the red circle up\", \"swap the red \
                              circle and the blue square\": ShapesWorld's grammar plays the \
                              planner): each object is located by the DiT (its caption against \
                              its other colours, as unilip.locate), then FlowEdit runs between \
                              the captions read only over the located boxes and read over the \
                              boxes the objects go to (a move: a quarter of the canvas towards \
                              its direction; a swap: each other's box). `mask` covers every box, \
                              at `image`'s size, for image.composite. Nowhere located: the \
                              latent comes back unchanged with an empty mask."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new(
                        "image_latent",
                        latent_type(),
                        "The image to edit (unscaled latent)",
                    ),
                    PortSpec::new("image", PortType::Image, "The image (sets the mask's size)"),
                ],
                outputs: vec![
                    PortSpec::new("latent", latent_type(), "Edited latent (unscaled)"),
                    PortSpec::new("mask", PortType::Image, "1 on every box, else 0"),
                ],
                params: vec![
                    ParamSpec::text(
                        "text",
                        "move the red circle up",
                        "A move or swap instruction",
                    ),
                    ParamSpec::int(
                        "steps",
                        flow.steps as i64,
                        1,
                        1000,
                        "Euler steps of the whole schedule",
                    ),
                    ParamSpec::float(
                        "strength",
                        f64::from(MOVE_STRENGTH),
                        0.0,
                        1.0,
                        "Fraction of the schedule that edits (FlowEdit's n_max / T)",
                    ),
                    ParamSpec::float(
                        "guidance_scale",
                        f64::from(MOVE_GUIDANCE),
                        0.0,
                        50.0,
                        "CFG scale of both prompts",
                    ),
                    mode_param(),
                    ParamSpec::seed("seed", 42, "Seed of the locator's and FlowEdit's noise"),
                ],
                output_node: false,
            },
        }
    }
}

/// The locator's and FlowEdit's settings from a node's `seed` (both), `steps`, `strength` and
/// `guidance_scale` (both prompts) params.
fn located_flow_edit(ctx: &ExecCtx<'_>) -> Result<(LocateOptions, FlowEditOptions), NodeError> {
    let seed = ctx.int("seed")? as u64;
    let guidance = ctx.float("guidance_scale")? as f32;
    let locate = LocateOptions {
        seed,
        ..LocateOptions::default()
    };
    let flow = FlowEditOptions {
        steps: ctx.int("steps")? as usize,
        strength: ctx.float("strength")? as f32,
        source_guidance: guidance,
        guidance_scale: guidance,
        seed,
    };
    Ok((locate, flow))
}

impl Node for Relocate {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let model = &handle.model;
        let text = ctx.str("text")?;
        let kind = edit_kind(text)?;
        if !matches!(kind, EditKind::Move { .. } | EditKind::Swap { .. }) {
            return Err(NodeError::msg(format!(
                "`{text}` is a {} edit, not a move or swap (unilip.edit_prompts and \
                 unilip.flow_edit make it)",
                kind.name()
            )));
        }
        let source = model.scale(input::<Latent>(ctx, "image_latent")?.0.clone());
        let image = ctx.input("image")?.as_image().map_err(model_err)?.clone();
        let mode = mode_of(ctx)?;
        let (locate, flow) = located_flow_edit(ctx)?;
        let [_, _, h, w] = source.dims();
        let relocated = model
            .relocate(
                source.clone(),
                (&kind, &Style::default()),
                handle.tokenizer()?,
                mode,
                (&locate, &flow),
            )
            .map_err(model_err)?;
        let (latent, cells) = match relocated {
            Some(r) => (r.latent, r.cells),
            None => (source, vec![false; h * w]),
        };
        let size = [image.h, image.w];
        Ok(vec![
            value(Latent(model.unscale(latent))),
            grey(&pixel_mask(&cells, [h, w], size), size),
        ])
    }
}

register_node!(Relocate);
