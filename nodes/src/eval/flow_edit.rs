//! `--task edit` with [`EditMethod::FlowEdit`] and [`EditMethod::FlowEditLocated`]: FlowEdit
//! between one-object prompts written from the instruction, and, located, the edit kept only
//! where the DiT finds the object (moves and swaps made between located boxes and the boxes
//! the objects go to).

use burn::prelude::*;
use image::RgbImage;

use super::{device, to_rgb_image, EditMethod, Eval, B};
use crate::models::edit_object::{pasted as paste, ObjectEditOptions};
use crate::models::flow_edit::{EditPrompts, FlowEditOptions};
use crate::models::locate::{
    contrast_condition, located_cells, pixel_mask, LocateOptions, LOCATE_GROW, LOCATE_SHARE,
};
use crate::models::relocate::{MOVE_GUIDANCE, MOVE_STRENGTH};
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{Condition, UnilipError};
use crate::shapesworld::EditKind;

impl Eval<'_> {
    /// The output of [`EditMethod::FlowEdit`] or [`EditMethod::FlowEditLocated`]
    /// (`self.opts.edit_method`) for edit item `i` of `kind` on the source's `features`
    /// (`source_image`).
    pub(super) fn flow_edited(
        &self,
        tok: &Tokenizer,
        kind: &EditKind,
        (features, source_image): (&Tensor<B, 3>, &RgbImage),
        i: usize,
    ) -> Result<RgbImage, String> {
        let m = self.model;
        let source = self.target(features)?;
        let style = self.generator.style();
        let located = self.opts.edit_method == EditMethod::FlowEditLocated;
        if located && matches!(kind, EditKind::Move { .. } | EditKind::Swap { .. }) {
            return self.relocated(tok, kind, source, source_image, i);
        }
        let Some((before, after)) = kind.prompt_pair(&style) else {
            return self.decoded(source);
        };
        let prompts = EditPrompts::from_captions(
            m,
            tok,
            before.as_deref(),
            after.as_deref(),
            self.opts.condition,
            &device(),
        )
        .map_err(|e| e.to_string())?;
        let opts = self.flow_edit_options(i, self.opts.strength, self.opts.guidance);
        let edited = m
            .flow_edit(source.clone(), &prompts, &opts, |_, _, _| {
                Ok::<(), UnilipError>(())
            })
            .map_err(|e| e.to_string())?;
        let image = self.decoded(edited.clone())?;
        if !located {
            return Ok(image);
        }
        let [_, _, h, w] = source.dims();
        let (before_contrast, after_contrast) = kind.contrast_pair(&style).unwrap_or_default();
        let mut cells = vec![false; h * w];
        for (latent, prompt, contrast) in [
            (&source, &prompts.source, before_contrast),
            (&edited, &prompts.target, after_contrast),
        ] {
            if contrast.is_empty() {
                continue; // this side does not locate the edit
            }
            let map = self.relevance(tok, latent, prompt, &contrast, i)?;
            for (c, on) in
                cells
                    .iter_mut()
                    .zip(located_cells(&map, [h, w], LOCATE_SHARE, LOCATE_GROW))
            {
                *c |= on;
            }
        }
        Ok(pasted(&image, source_image, &cells, [h, w]))
    }

    /// A move or a swap ([`crate::models::unilip::Unilip::relocate`]), pasted onto the source over every box.
    fn relocated(
        &self,
        tok: &Tokenizer,
        kind: &EditKind,
        source: Tensor<B, 4>,
        source_image: &RgbImage,
        i: usize,
    ) -> Result<RgbImage, String> {
        let [_, _, h, w] = source.dims();
        let locate = self.locate_options(i);
        let flow = self.flow_edit_options(i, MOVE_STRENGTH, MOVE_GUIDANCE);
        let relocated = self
            .model
            .relocate(
                source.clone(),
                (kind, &self.generator.style()),
                tok,
                self.opts.condition,
                (&locate, &flow),
            )
            .map_err(|e| e.to_string())?;
        match relocated {
            Some(r) => Ok(pasted(
                &self.decoded(r.latent)?,
                source_image,
                &r.cells,
                [h, w],
            )),
            None => self.decoded(source), // nowhere located: nothing to move
        }
    }

    /// The output of [`EditMethod::ByKind`] for edit item `i` of `kind` on the source's
    /// `features` (`source_image`).
    pub(super) fn object_edited(
        &self,
        tok: &Tokenizer,
        kind: &EditKind,
        (features, source_image): (&Tensor<B, 3>, &RgbImage),
        i: usize,
    ) -> Result<RgbImage, String> {
        let opts = ObjectEditOptions {
            locate: self.locate_options(i),
            steps: self.opts.steps,
            seed: self.opts.seed.wrapping_add(i as u64),
            ..ObjectEditOptions::default()
        };
        let edit = self
            .model
            .edit_object(
                self.target(features)?,
                source_image,
                (kind, &self.generator.style()),
                tok,
                self.opts.condition,
                &opts,
            )
            .map_err(|e| e.to_string())?;
        Ok(edit.image)
    }

    /// The locator's settings for item `i`.
    fn locate_options(&self, i: usize) -> LocateOptions {
        LocateOptions {
            seed: self.opts.seed.wrapping_add(i as u64),
            ..LocateOptions::default()
        }
    }

    /// FlowEdit's settings for item `i` at `strength` and CFG `guidance` (both prompts).
    fn flow_edit_options(&self, i: usize, strength: f32, guidance: f32) -> FlowEditOptions {
        FlowEditOptions {
            steps: self.opts.steps,
            strength,
            source_guidance: guidance,
            guidance_scale: guidance,
            seed: self.opts.seed.wrapping_add(i as u64),
        }
    }

    /// The relevance map of `prompt` against `contrasts` on `latent` for item `i`.
    fn relevance(
        &self,
        tok: &Tokenizer,
        latent: &Tensor<B, 4>,
        prompt: &Condition<B>,
        contrasts: &[String],
        i: usize,
    ) -> Result<Vec<f32>, String> {
        let m = self.model;
        let contrast = contrast_condition(m, tok, contrasts, self.opts.condition, &device())
            .map_err(|e| e.to_string())?;
        m.relevance(latent.clone(), prompt, &contrast, &self.locate_options(i))
            .map_err(|e| e.to_string())
    }

    /// The pixels of DiT latent `latent`.
    fn decoded(&self, latent: Tensor<B, 4>) -> Result<RgbImage, String> {
        let decoded = self.model.decode(latent).map_err(|e| e.to_string())?;
        to_rgb_image(self.model.output_image(decoded))
    }
}

/// `edited` (resized to `source`) on the located `cells` of a `grid`, `source` elsewhere.
fn pasted(edited: &RgbImage, source: &RgbImage, cells: &[bool], grid: [usize; 2]) -> RgbImage {
    let (width, height) = source.dimensions();
    let mask = pixel_mask(cells, grid, [height as usize, width as usize]);
    paste(edited, source, &mask)
}
