//! `unilip.compose_objects`: a ShapesWorld caption drawn object by object
//! ([`crate::models::compose`]).

use std::sync::Arc;

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{mode_of, mode_param, model_input, model_port};
use super::payload::model_err;
use crate::backend::device;
use crate::models::compose::DrawOptions;
use crate::models::regions::RegionLayout;
use crate::nodes::image_io::from_rgb8;
use crate::register_node;
use crate::shapesworld::{SceneSpec, Style};

/// `unilip.compose_objects`.
pub struct ComposeObjects {
    schema: NodeSchema,
}

impl ComposeObjects {
    /// The node.
    pub fn new() -> Self {
        let defaults = DrawOptions::default();
        Self {
            schema: NodeSchema {
                id: "unilip.compose_objects".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "Draws a ShapesWorld caption object by object: the caption is laid \
                              out by ShapesWorld's layout sampler (from `seed`, as \
                              unilip.caption_regions with layout `objects`), each object's own \
                              caption (\"a small red circle\") is sampled alone, one object on \
                              an empty canvas, drawn again from other noise while nothing \
                              stands out (up to `draws` times), and the object is pasted with \
                              its centre on its planned place, its anti-aliased edge blended \
                              (LLM-grounded diffusion's per-box generation, composed in pixels). \
                              For scenes of objects on a plain ground."
                    .into(),
                inputs: vec![model_port()],
                outputs: vec![PortSpec::new(
                    "image",
                    PortType::Image,
                    "The composed scene, at the model's resolution",
                )],
                params: vec![
                    ParamSpec::text(
                        "text",
                        "two red circles left of a blue square",
                        "A ShapesWorld caption",
                    ),
                    ParamSpec::int("steps", defaults.steps as i64, 1, 1000, "Sampler steps"),
                    ParamSpec::float(
                        "guidance_scale",
                        f64::from(defaults.guidance_scale),
                        0.0,
                        50.0,
                        "CFG scale (1 = no guidance)",
                    ),
                    ParamSpec::float(
                        "guidance_max_sigma",
                        0.7,
                        0.0,
                        1.0,
                        "Guide only the steps at noise level σ ≤ this (1 = every step, as UniLIP)",
                    ),
                    ParamSpec::int(
                        "draws",
                        defaults.draws as i64,
                        1,
                        64,
                        "Samples of an object's caption (from other noise) while nothing \
                         stands out",
                    ),
                    mode_param(),
                    ParamSpec::seed("seed", 42, "Seed of the layout and of the sampler's noise"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for ComposeObjects {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let model = &handle.model;
        let text = ctx.str("text")?;
        let spec = SceneSpec::parse(text)
            .map_err(|e| NodeError::msg(format!("`{text}` is not a ShapesWorld caption: {e}")))?;
        let seed = ctx.int("seed")? as u64;
        let size = model.config.vision.vision_config.image_size.hw();
        let (width, height) = (size[1] as u32, size[0] as u32);
        let plan = RegionLayout::Objects
            .plan(&spec, &Style::default(), width, seed)
            .map_err(model_err)?;
        let opts = DrawOptions {
            steps: ctx.int("steps")? as usize,
            guidance_scale: ctx.float("guidance_scale")? as f32,
            guidance_max_sigma: ctx.float("guidance_max_sigma")? as f32,
            seed,
            draws: ctx.int("draws")? as usize,
        };
        let mode = mode_of(ctx)?;
        let composed = model
            .compose(
                &plan,
                handle.tokenizer()?,
                mode,
                &opts,
                (width, height),
                &device(),
            )
            .map_err(model_err)?
            .ok_or_else(|| {
                NodeError::msg(format!(
                    "nothing stood out in any draw of the objects of `{text}`"
                ))
            })?;
        Ok(vec![Value::Image(Arc::new(from_rgb8(&composed)))])
    }
}

register_node!(ComposeObjects);
