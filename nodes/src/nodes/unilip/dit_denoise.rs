//! `unilip.dit_denoise`: SANA DiT + sampler (DPM-Solver++ or Euler) with classifier-free guidance.

use burn::prelude::*;
use unilip_core::{
    ExecCtx, LatentSpace, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value,
};

use super::checkpoint::{model_input, model_port};
use super::convert::image_value;
use super::payload::{input, model_err, value, Conditioning, Latent};
use crate::backend::B;
use crate::models::inpaint::Inpaint;
use crate::models::unilip::{resize_bilinear, InitLatent, SampleOptions, Sampler, Unilip};
use crate::register_node;

/// `unilip.dit_denoise`.
pub struct DitDenoise {
    schema: NodeSchema,
}

pub(super) fn latent_type() -> PortType {
    PortType::Latent {
        space: LatentSpace::Unilip,
        channels: None,
        downscale: None,
    }
}

impl DitDenoise {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.dit_denoise".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "Samples a UniLIP latent with the SANA DiT under the conditioning: flow \
                              matching with DPM-Solver++ 2M (UniLIP's sampler; `flow_shift` overrides the \
                              checkpoint scheduler's shift) or Euler, CFG with the negative row null-first. \
                              Noise comes from `seed` (reproducible on CPU) unless `init_latent` is wired. \
                              With `strength` below 1 (image-to-image, SDEdit) it starts from \
                              `image_latent` noised to that fraction of the schedule and runs only \
                              the remaining steps: lower keeps more of the image. A DiT \
                              that takes the edit source beside the noisy latent (made by \
                              `unilip checkpoint add-source-input`) gets `image_latent` at \
                              every step (zeros when it is not wired). With `mask` it inpaints: \
                              after every step the latent where the mask is 0 is replaced by \
                              `image_latent` noised to that step's level (latent blending, as \
                              Blended Latent Diffusion and ComfyUI's noise mask), so only the \
                              masked part is drawn, in the context of the rest. Reports every \
                              step and can be cancelled between steps."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new("conditioning", PortType::Conditioning { dim: None }, "DiT condition"),
                    PortSpec::optional("init_latent", latent_type(), "Start latent (unscaled) instead of noise"),
                    PortSpec::optional(
                        "image_latent",
                        latent_type(),
                        "The edit source (unscaled): start point when strength < 1, and the \
                         source a source-taking DiT sees at every step",
                    ),
                    PortSpec::optional(
                        "mask",
                        PortType::Image,
                        "Inpainting (needs image_latent): 1 where the sampler draws, 0 where \
                         image_latent is kept (its first channel, resized to the latent grid)",
                    ),
                ],
                outputs: vec![PortSpec::new("latent", latent_type(), "Final latent (unscaled)")],
                params: vec![
                    ParamSpec::choice("sampler", "dpm_solver", &["dpm_solver", "euler"], "Sampler"),
                    ParamSpec::int("steps", 20, 1, 1000, "Sampling steps"),
                    ParamSpec::float("guidance_scale", 4.5, 0.0, 50.0, "CFG scale (1 = no guidance)"),
                    ParamSpec::float(
                        "guidance_max_sigma",
                        1.0,
                        0.0,
                        1.0,
                        "Guide only the steps at noise level σ ≤ this (1 = every step, as UniLIP)",
                    ),
                    ParamSpec::float(
                        "strength",
                        1.0,
                        0.0,
                        1.0,
                        "Fraction of the steps run from the noised `image_latent` (1 = from noise); \
                         with flow shift 3, 0.7 starts at σ ≈ 0.875, 0.4 at σ ≈ 0.67",
                    ),
                    ParamSpec::float("flow_shift", 3.0, 0.1, 20.0, "Timestep shift"),
                    ParamSpec::seed("seed", 42, "Noise seed"),
                    ParamSpec::int(
                        "batch",
                        1,
                        1,
                        64,
                        "Latents sampled at once under a one-row conditioning, each from its own \
                         rows of the seed's noise (the first is the batch-1 latent): candidates \
                         for unilip.rank_by_answers",
                    ),
                    ParamSpec::bool("preview", false, "Emit the latent (first 3 channels) as a preview every step"),
                ],
                output_node: false,
            },
        }
    }
}

/// The first three latent channels, min-max normalised, as a cheap preview image.
fn preview(x: &Tensor<B, 4>) -> Value {
    let [_, c, _, _] = x.dims();
    let rgb = x.clone().narrow(0, 0, 1).narrow(1, 0, c.min(3));
    let rgb = if c < 3 {
        rgb.repeat_dim(1, 3).narrow(1, 0, 3)
    } else {
        rgb
    };
    let (lo, hi) = (
        rgb.clone().min().into_scalar(),
        rgb.clone().max().into_scalar(),
    );
    let span = (hi - lo).max(1e-6);
    image_value((rgb - lo) / span)
}

impl Node for DitDenoise {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let cond = batched(
            input::<Conditioning>(ctx, "conditioning")?,
            ctx.int("batch")?,
        )?;
        let cond = &cond;
        let shift = ctx.float("flow_shift")?;
        let mut model = (*handle.model).clone();
        model.config.scheduler.flow_shift = shift;
        let noise = match ctx.opt_input("init_latent") {
            Some(_) => {
                InitLatent::Latent(model.scale(input::<Latent>(ctx, "init_latent")?.0.clone()))
            }
            None => InitLatent::Seed(ctx.int("seed")? as u64),
        };
        let image = match ctx.opt_input("image_latent") {
            Some(_) => Some(rows(
                model.scale(input::<Latent>(ctx, "image_latent")?.0.clone()),
                cond.cond.batch(),
            )),
            None => None,
        };
        let init = image_to_image(ctx, &model, cond, noise, image.clone())?;
        let inpaint = inpainting(ctx, image.as_ref())?;
        let source = image.filter(|_| model.config.dit.takes_source());
        let opts = SampleOptions {
            sampler: match ctx.str("sampler")? {
                "euler" => Sampler::Euler { shift },
                _ => Sampler::DpmSolver,
            },
            steps: ctx.int("steps")? as usize,
            guidance_scale: ctx.float("guidance_scale")? as f32,
            guidance_max_sigma: ctx.float("guidance_max_sigma")? as f32,
            init,
            source,
            regions: cond.regions.clone(),
            inpaint,
        };
        let show = ctx.bool("preview")?;
        let z = model.sample::<NodeError>(
            &cond.cond,
            cond.uncond.as_ref(),
            &opts,
            |step, total, x| ctx.progress(step as u64, total as u64, show.then(|| preview(x))),
        )?;
        Ok(vec![value(Latent(model.unscale(z)))])
    }
}

/// The inpainting of a wired `mask` (first channel, resized bilinearly to the latent grid) that
/// keeps `image`, the scaled image latent; `None` without a mask.
fn inpainting(
    ctx: &ExecCtx<'_>,
    image: Option<&Tensor<B, 4>>,
) -> Result<Option<Inpaint<B>>, NodeError> {
    let Some(mask) = ctx.opt_input("mask") else {
        return Ok(None);
    };
    let image = image.ok_or_else(|| {
        NodeError::msg(
            "input `mask` needs `image_latent`: the latent kept where the mask is 0".to_string(),
        )
    })?;
    let mask = mask.as_image().map_err(model_err)?;
    let plane: Vec<f32> = mask.data[..mask.h * mask.w].to_vec();
    let [_, _, h, w] = image.dims();
    let mask = Tensor::<B, 1>::from_floats(plane.as_slice(), &image.device())
        .reshape([1, 1, mask.h, mask.w]);
    Ok(Some(Inpaint {
        image: image.clone(),
        mask: resize_bilinear(mask, [h, w]).clamp(0.0, 1.0),
    }))
}

/// `cond` for `batch` latents: itself at batch 1, else its one row (and its negative's)
/// repeated; a conditioning of several rows must already have `batch` of them.
fn batched(cond: &Conditioning, batch: i64) -> Result<Conditioning, NodeError> {
    let batch = batch.max(1) as usize;
    if batch == 1 {
        return Ok(cond.clone());
    }
    let refused = |e: crate::models::unilip::UnilipError| {
        NodeError::msg(format!("param `batch` = {batch}: {e}"))
    };
    Ok(Conditioning {
        cond: cond.cond.broadcast(batch).map_err(refused)?,
        uncond: cond
            .uncond
            .as_ref()
            .map(|u| u.broadcast(batch))
            .transpose()
            .map_err(refused)?,
        regions: cond.regions.clone(),
        mode: cond.mode,
    })
}

/// A one-row latent repeated to `batch` rows (others are left to the sampler's shape check).
fn rows(latent: Tensor<B, 4>, batch: usize) -> Tensor<B, 4> {
    let [b, c, h, w] = latent.dims();
    if b == 1 && batch > 1 {
        latent.expand([batch, c, h, w])
    } else {
        latent
    }
}

/// `noise` as the start, or with `strength` below 1 `image` (the scaled `image_latent`) noised
/// by it ([`InitLatent::Noised`]); a missing `image_latent` then is an error naming the port.
fn image_to_image(
    ctx: &ExecCtx<'_>,
    model: &Unilip<B>,
    cond: &Conditioning,
    noise: InitLatent<B>,
    image: Option<Tensor<B, 4>>,
) -> Result<InitLatent<B>, NodeError> {
    let strength = ctx.float("strength")? as f32;
    if strength >= 1.0 {
        return Ok(noise);
    }
    let Some(image) = image else {
        return Err(NodeError::msg(format!(
            "strength {strength} < 1 starts from an image: wire a latent into `image_latent` \
             (e.g. unilip.latent_project of the source's features)"
        )));
    };
    let noise = model.initial_latent(cond.cond.batch(), &noise, &image.device())?;
    Ok(InitLatent::Noised {
        image,
        noise,
        strength,
    })
}

impl From<crate::models::unilip::UnilipError> for NodeError {
    fn from(e: crate::models::unilip::UnilipError) -> Self {
        model_err(e)
    }
}

register_node!(DitDenoise);
