//! Drawing a scene object by object: each object's caption is sampled alone (one object on an
//! empty canvas, where a small DiT draws best) and the object pasted at its planned place, as
//! LLM-grounded diffusion (Lian et al. 2023) generates each box's object on its own before
//! composing them (there in latent space, here in pixels, for scenes on a plain ground).

use burn::prelude::*;
use image::RgbImage;

use crate::imaging;
use crate::models::edit_object::picture_of;
use crate::models::flow_edit::EditPrompts;
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{ConditionMode, Result, SampleOptions, Unilip, UnilipError};

/// How many times a caption is drawn alone, from other noise, while nothing stands out from
/// the canvas.
pub const DRAWS: usize = 4;

/// Settings of [`Unilip::draw_alone`] and [`Unilip::compose`].
#[derive(Debug, Clone, PartialEq)]
pub struct DrawOptions {
    /// Sampler steps.
    pub steps: usize,
    /// CFG scale.
    pub guidance_scale: f32,
    /// Guide only the steps at noise level σ ≤ this (1: every step).
    pub guidance_max_sigma: f32,
    /// Seed of the noise; draw `k` of a caption uses `seed + k · 2³²`.
    pub seed: u64,
    /// Draws while nothing stands out ([`DRAWS`]).
    pub draws: usize,
}

impl Default for DrawOptions {
    /// UniLIP's sampler ([`SampleOptions::unilip`]: 20 steps, CFG 4.5 at every step), seed 0,
    /// [`DRAWS`].
    fn default() -> Self {
        Self {
            steps: 20,
            guidance_scale: 4.5,
            guidance_max_sigma: 1.0,
            seed: 0,
            draws: DRAWS,
        }
    }
}

/// A caption drawn alone: the picture, and its largest 8-connected part standing out from the
/// canvas (the object the DiT drew).
#[derive(Debug, Clone)]
pub struct Drawing {
    /// The sampled picture.
    pub picture: RgbImage,
    /// One flag per pixel of `picture`: the object.
    pub part: Vec<bool>,
}

impl Drawing {
    /// The picture and the object's pixels, as [`imaging::best_match`] takes a reference.
    pub fn reference(&self) -> (&RgbImage, &[bool]) {
        (&self.picture, &self.part)
    }
}

impl<B: Backend> Unilip<B> {
    /// `caption` sampled alone (text-to-image, guided against the unconditional prompt),
    /// decoded at `size` `(width, height)`, drawn again from other noise (up to `opts.draws`
    /// times) while nothing differs from the canvas's border colour
    /// ([`imaging::foreground`]), on `device`. `None` when nothing stood out in any draw.
    pub fn draw_alone(
        &self,
        caption: &str,
        tok: &Tokenizer,
        mode: ConditionMode,
        opts: &DrawOptions,
        (width, height): (u32, u32),
        device: &B::Device,
    ) -> Result<Option<Drawing>> {
        let prompts = EditPrompts::from_captions(self, tok, None, Some(caption), mode, device)?;
        for k in 0..opts.draws.max(1) as u64 {
            let sample = SampleOptions {
                steps: opts.steps,
                guidance_scale: opts.guidance_scale,
                guidance_max_sigma: opts.guidance_max_sigma,
                ..SampleOptions::unilip(opts.seed.wrapping_add(k << 32))
            };
            let latent = self.sample(
                &prompts.target,
                Some(&prompts.target_negative),
                &sample,
                |_, _, _| Ok::<(), UnilipError>(()),
            )?;
            let drawn = picture_of(self.output_image(self.decode(latent)?))?;
            let picture = match drawn.dimensions() == (width, height) {
                true => drawn,
                false => image::imageops::resize(
                    &drawn,
                    width,
                    height,
                    image::imageops::FilterType::Triangle,
                ),
            };
            let foreground = imaging::foreground(&picture);
            let largest = imaging::components(&foreground, width as usize)
                .into_iter()
                .next();
            if let Some(part) = largest {
                return Ok(Some(Drawing { picture, part }));
            }
        }
        Ok(None)
    }

    /// A scene of `plan`'s objects (each a caption and its box `[x0, y0, x1, y1]` in fractions
    /// of the canvas), `size` `(width, height)`: each caption drawn alone
    /// ([`Self::draw_alone`], object `j` from seed `opts.seed + j · 2²⁰`) and pasted with its
    /// centroid on its box's centre ([`imaging::paste_object`]), in order, on a canvas of the
    /// first drawing's ground colour, sampled on `device`. `None` when no object could be drawn.
    pub fn compose(
        &self,
        plan: &[(String, [f32; 4])],
        tok: &Tokenizer,
        mode: ConditionMode,
        opts: &DrawOptions,
        size: (u32, u32),
        device: &B::Device,
    ) -> Result<Option<RgbImage>> {
        let mut canvas: Option<RgbImage> = None;
        for (j, (caption, [x0, y0, x1, y1])) in plan.iter().enumerate() {
            let own = DrawOptions {
                seed: opts.seed.wrapping_add((j as u64) << 20),
                ..opts.clone()
            };
            let Some(drawing) = self.draw_alone(caption, tok, mode, &own, size, device)? else {
                continue;
            };
            let Some((cx, cy)) = imaging::centroid(&drawing.part, size.0 as usize) else {
                continue;
            };
            let base = canvas.get_or_insert_with(|| {
                let ground = imaging::border_colour(&drawing.picture);
                RgbImage::from_pixel(size.0, size.1, image::Rgb(ground))
            });
            let (w, h) = (size.0 as f32, size.1 as f32);
            let centre = ((x0 + x1) / 2.0 * w - 0.5, (y0 + y1) / 2.0 * h - 0.5);
            let offset = (
                (centre.0 - cx).round() as isize,
                (centre.1 - cy).round() as isize,
            );
            *base = imaging::paste_object(base, &drawing.picture, &drawing.part, offset).0;
        }
        Ok(canvas)
    }
}
