//! `unilip.locate`: where the DiT finds a prompt's object in an image
//! ([`crate::models::locate`]), as a mask for compositing an edit onto its source.

use std::sync::Arc;

use unilip_core::{
    ExecCtx, ImageBatch, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value,
};

use super::checkpoint::{model_input, model_port};
use super::dit_denoise::latent_type;
use super::payload::{input, model_err, Conditioning, Latent};
use crate::models::locate::{
    located_cells, pixel_cells, pixel_mask, LocateOptions, LOCATE_GROW, LOCATE_SHARE,
};
use crate::register_node;

/// `unilip.locate`.
pub struct Locate {
    schema: NodeSchema,
}

impl Locate {
    /// The node.
    pub fn new() -> Self {
        let defaults = LocateOptions::default();
        Self {
            schema: NodeSchema {
                id: "unilip.locate".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "Finds where `prompt`'s object is in an image: per latent cell, the \
                              DiT's flow-matching loss under the `contrast` prompts (e.g. the same \
                              object in other colours; every row of its positive) minus under \
                              `prompt`, averaged over noise levels σ 0.5, 0.7, 0.9 and `draws` \
                              noise draws shared by all prompts. `mask` is 1 on the cells within \
                              `share` of the strongest, grown by `grow` cells, at `image`'s size \
                              (for image.composite: keep a source outside its edit); `map` shows \
                              the relevance (0 = no better than the contrasts, 1 = the \
                              strongest). A prompt no better than its contrasts anywhere (e.g. \
                              the unconditional prompt against itself) locates nothing."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new(
                        "image_latent",
                        latent_type(),
                        "The image's latent (unscaled)",
                    ),
                    PortSpec::new("image", PortType::Image, "The image (sets the mask's size)"),
                    PortSpec::new(
                        "prompt",
                        PortType::Conditioning { dim: None },
                        "What to find (its positive row)",
                    ),
                    PortSpec::new(
                        "contrast",
                        PortType::Conditioning { dim: None },
                        "What to tell it apart from (every row of its positive)",
                    ),
                ],
                outputs: vec![
                    PortSpec::new("mask", PortType::Image, "1 where the object is, else 0"),
                    PortSpec::new("map", PortType::Image, "Relevance, 0..1"),
                ],
                params: vec![
                    ParamSpec::float(
                        "share",
                        f64::from(LOCATE_SHARE),
                        0.0,
                        1.0,
                        "Cells at or above this share of the strongest are located",
                    ),
                    ParamSpec::int(
                        "grow",
                        LOCATE_GROW as i64,
                        0,
                        64,
                        "Cells added around the located ones in every direction",
                    ),
                    ParamSpec::int(
                        "draws",
                        defaults.draws as i64,
                        1,
                        64,
                        "Noise draws per noise level",
                    ),
                    ParamSpec::seed("seed", defaults.seed, "Seed of the noise"),
                ],
                output_node: false,
            },
        }
    }
}

/// An `n = 1` grey image of `size` `[h, w]` from per-pixel values (masks, maps).
pub(super) fn grey(values: &[f32], [h, w]: [usize; 2]) -> Value {
    Value::Image(Arc::new(ImageBatch {
        n: 1,
        h,
        w,
        data: values.repeat(3),
    }))
}

impl Node for Locate {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let latent = model.scale(input::<Latent>(ctx, "image_latent")?.0.clone());
        let image = ctx.input("image")?.as_image().map_err(model_err)?.clone();
        let prompt = input::<Conditioning>(ctx, "prompt")?;
        if prompt.cond.batch() != 1 || !prompt.regions.is_empty() {
            return Err(NodeError::msg(
                "`prompt` must be one prompt without regional prompts",
            ));
        }
        let contrast = &input::<Conditioning>(ctx, "contrast")?.cond;
        let opts = LocateOptions {
            draws: ctx.int("draws")? as usize,
            seed: ctx.int("seed")? as u64,
            ..LocateOptions::default()
        };
        let map = model
            .relevance(latent.clone(), &prompt.cond, contrast, &opts)
            .map_err(model_err)?;
        let [_, _, h, w] = latent.dims();
        let share = ctx.float("share")? as f32;
        let grow = ctx.int("grow")? as usize;
        let cells = located_cells(&map, [h, w], share, grow);
        let size = [image.h, image.w];
        let max = map.iter().copied().fold(0.0_f32, f32::max);
        let shown: Vec<f32> = map
            .iter()
            .map(|&r| if max > 0.0 { (r / max).max(0.0) } else { 0.0 })
            .collect();
        let map_pixels: Vec<f32> = pixel_cells([h, w], size)
            .into_iter()
            .map(|c| shown[c])
            .collect();
        Ok(vec![
            grey(&pixel_mask(&cells, [h, w], size), size),
            grey(&map_pixels, size),
        ])
    }
}

register_node!(Locate);
