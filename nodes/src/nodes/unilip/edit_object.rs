//! `unilip.edit_object`: any ShapesWorld edit of one named object, each kind by the operation
//! that makes it ([`crate::models::edit_object`]), on a picture of any size.

use std::sync::Arc;

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::dit_denoise::latent_type;
use super::edit_prompts::edit_kind;
use super::locate::grey;
use super::payload::{input, model_err, Latent};
use super::relocate::located_flow_edit;
use crate::models::edit_object::{ObjectEditOptions, ADD_GUIDANCE, ADD_TRIES};
use crate::models::flow_edit::FlowEditOptions;
use crate::models::unilip::ConditionMode;
use crate::nodes::image_io::{from_rgb8, to_rgb8};
use crate::register_node;
use crate::shapesworld::Style;

/// `unilip.edit_object`.
pub struct EditObject {
    schema: NodeSchema,
}

impl EditObject {
    /// The node.
    pub fn new() -> Self {
        let flow = FlowEditOptions::default();
        Self {
            schema: NodeSchema {
                id: "unilip.edit_object".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "Makes an edit of one named object (ShapesWorld's grammar plays the \
                              planner: recolour, resize, remove, add, move, swap), each kind by \
                              the operation that makes it, at the object the DiT locates (its \
                              caption against its other colours, as unilip.locate): recolour \
                              and resize by FlowEdit kept on the located cells; remove by \
                              filling the object's own pixels from around them; add by sampling \
                              the new object's caption in the picture's emptiest box with the \
                              rest of the latent kept (inpainting), again from other noise while \
                              the box stays empty (`add_tries`); move and swap by cutting and \
                              pasting the objects' pixels (a move goes a quarter of the canvas). \
                              `mask` is 1 where the picture may have changed. An object located \
                              nowhere leaves the picture as it is."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new(
                        "image_latent",
                        latent_type(),
                        "The picture's latent (unscaled)",
                    ),
                    PortSpec::new("image", PortType::Image, "The picture to edit"),
                ],
                outputs: vec![
                    PortSpec::new("image", PortType::Image, "The edited picture, at its size"),
                    PortSpec::new("mask", PortType::Image, "1 where it may have changed"),
                ],
                params: vec![
                    ParamSpec::text(
                        "text",
                        "remove the red circle",
                        "A ShapesWorld edit instruction",
                    ),
                    ParamSpec::int(
                        "steps",
                        flow.steps as i64,
                        1,
                        1000,
                        "Steps of the whole schedule (FlowEdit, and an add's sampler)",
                    ),
                    ParamSpec::float(
                        "strength",
                        f64::from(flow.strength),
                        0.0,
                        1.0,
                        "Recolour, resize: fraction of the schedule FlowEdit edits",
                    ),
                    ParamSpec::float(
                        "guidance_scale",
                        f64::from(flow.guidance_scale),
                        0.0,
                        50.0,
                        "Recolour, resize: CFG scale of both FlowEdit prompts",
                    ),
                    ParamSpec::float(
                        "add_guidance",
                        f64::from(ADD_GUIDANCE),
                        0.0,
                        50.0,
                        "Add: CFG scale of the new object's caption",
                    ),
                    ParamSpec::int(
                        "add_tries",
                        ADD_TRIES as i64,
                        1,
                        64,
                        "Add: draws (from other noise) while nothing appears in the box",
                    ),
                    ParamSpec::choice(
                        "mode",
                        ConditionMode::Dual.name(),
                        &ConditionMode::NAMES,
                        "Which connector outputs condition the DiT",
                    ),
                    ParamSpec::seed(
                        "seed",
                        42,
                        "Seed of the locator's and the sampler's noise, and of where an added \
                         object goes among equally empty boxes",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for EditObject {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let model = &handle.model;
        let text = ctx.str("text")?;
        let kind = edit_kind(text)?;
        let source = model.scale(input::<Latent>(ctx, "image_latent")?.0.clone());
        let picture = to_rgb8(ctx.input("image")?.as_image().map_err(model_err)?, 0);
        let (locate, flow) = located_flow_edit(ctx)?;
        let opts = ObjectEditOptions {
            locate,
            flow,
            add_guidance: ctx.float("add_guidance")? as f32,
            add_tries: ctx.int("add_tries")? as usize,
        };
        let mode: ConditionMode = ctx.str("mode")?.parse().map_err(NodeError::msg)?;
        let edit = model
            .edit_object(
                source,
                &picture,
                (&kind, &Style::default()),
                handle.tokenizer()?,
                mode,
                &opts,
            )
            .map_err(model_err)?;
        let size = [picture.height() as usize, picture.width() as usize];
        Ok(vec![
            Value::Image(Arc::new(from_rgb8(&edit.image))),
            grey(&edit.mask, size),
        ])
    }
}

register_node!(EditObject);
