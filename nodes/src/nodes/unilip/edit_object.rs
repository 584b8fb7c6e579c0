//! `unilip.edit_object`: any ShapesWorld edit of one named object, each kind by the operation
//! that makes it ([`crate::models::edit_object`]), on a picture of any size.

use std::collections::BTreeMap;
use std::sync::Arc;

use unilip_core::{
    ExecCtx, Node, NodeError, NodeSchema, ParamSpec, ParamValue, PortSpec, PortType, Value,
};

use super::checkpoint::{mode_of, mode_param, model_input, model_port};
use super::dit_denoise::latent_type;
use super::edit_prompts::edit_kind;
use super::locate::grey;
use super::payload::{input, model_err, Latent};
use crate::models::edit_object::ObjectEditOptions;
use crate::models::locate::LocateOptions;
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
        let defaults = ObjectEditOptions::default();
        Self {
            schema: NodeSchema {
                id: "unilip.edit_object".into(),
                version: 3,
                category: "unilip/generate".into(),
                description: "Makes an edit of one named object (ShapesWorld's grammar plays the \
                              planner: recolour, resize, remove, add, move, swap), each kind by \
                              the operation that makes it. The object is found with the DiT: \
                              its caption is sampled alone and, on a plain ground, the part of \
                              the picture most like that drawing (colour, then shape) is taken; \
                              otherwise where the DiT locates the caption against its other \
                              colours (as unilip.locate). Recolour by \
                              painting the object's pixels the colour the DiT draws the new \
                              colour in (the caption sampled alone; edges and shading kept); \
                              resize by scaling its pixels 1.5× or 1/1.5× about their centre; \
                              remove by filling its pixels from around them; add by sampling the \
                              new object's caption alone and pasting the object on the centre of \
                              the picture's emptiest box; move and swap by cutting and pasting \
                              the objects' pixels (a move goes a quarter of the canvas). A \
                              caption sampled alone is drawn again from other noise (up to \
                              `draws` times) while nothing stands out. `mask` is 1 where the \
                              picture may have changed. An object located nowhere leaves the \
                              picture as it is."
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
                        defaults.steps as i64,
                        1,
                        1000,
                        "Sampler steps of what the DiT draws (an add, a recolour's colours)",
                    ),
                    ParamSpec::int(
                        "draws",
                        defaults.draws as i64,
                        1,
                        64,
                        "Add, recolour: samples of a caption alone (from other noise) while \
                         nothing stands out",
                    ),
                    mode_param(),
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

    /// Version 1 made recolours and resizes by FlowEdit, with its `strength` and
    /// `guidance_scale`; version 2 made them by pixel operations and dropped both. Version 2
    /// drew an add in the picture (inpainting) with its own CFG `add_guidance` and `add_tries`;
    /// version 3 samples it alone and pastes it, dropping `add_guidance` and renaming
    /// `add_tries` to `draws` (it also counts a recolour's draws).
    fn migrate(
        &self,
        from_version: u32,
        params: &mut BTreeMap<String, ParamValue>,
    ) -> Result<(), String> {
        if from_version < 2 {
            params.remove("strength");
            params.remove("guidance_scale");
        }
        if from_version < 3 {
            params.remove("add_guidance");
            if let Some(draws) = params.remove("add_tries") {
                params.insert("draws".into(), draws);
            }
        }
        Ok(())
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let model = &handle.model;
        let text = ctx.str("text")?;
        let kind = edit_kind(text)?;
        let source = model.scale(input::<Latent>(ctx, "image_latent")?.0.clone());
        let picture = to_rgb8(ctx.input("image")?.as_image().map_err(model_err)?, 0);
        let seed = ctx.int("seed")? as u64;
        let opts = ObjectEditOptions {
            locate: LocateOptions {
                seed,
                ..LocateOptions::default()
            },
            steps: ctx.int("steps")? as usize,
            seed,
            draws: ctx.int("draws")? as usize,
        };
        let mode = mode_of(ctx)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_params_lose_flow_edits_and_inpaintings_settings_and_keep_the_rest() {
        let node = EditObject::new();
        let mut params = BTreeMap::from([
            (
                "text".to_string(),
                ParamValue::Str("make the red circle blue".into()),
            ),
            ("steps".to_string(), ParamValue::Int(8)),
            ("strength".to_string(), ParamValue::Float(0.6)),
            ("guidance_scale".to_string(), ParamValue::Float(3.0)),
            ("add_guidance".to_string(), ParamValue::Float(6.0)),
            ("add_tries".to_string(), ParamValue::Int(2)),
        ]);
        node.migrate(1, &mut params).unwrap();
        let names: Vec<&str> = params.keys().map(String::as_str).collect();
        assert_eq!(names, ["draws", "steps", "text"]);
        assert_eq!(params["draws"], ParamValue::Int(2));
        // What is left is all declared by the current version.
        assert!(names
            .iter()
            .all(|n| node.schema().params.iter().any(|p| p.name == *n)));
        assert_eq!(node.schema().version, 3);
    }
}
