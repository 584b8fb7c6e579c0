//! `--task edit` with [`EditMethod::FlowEdit`] and [`EditMethod::FlowEditLocated`]: FlowEdit
//! between one-object prompts written from the instruction, and, located, the edit kept only
//! where the DiT finds the object (moves and swaps made between located boxes and the boxes
//! the objects go to).

use burn::prelude::*;
use image::RgbImage;

use super::{device, resize_to, to_rgb_image, EditMethod, Eval, B};
use crate::models::flow_edit::{
    moving_captions, EditPrompts, FlowEditOptions, MOVE_GUIDANCE, MOVE_STRENGTH,
};
use crate::models::locate::{
    contrast_condition, located_cells, pixel_mask, LocateOptions, LOCATE_GROW, LOCATE_SHARE,
};
use crate::models::regions::{Area, RegionPrompt};
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{Condition, UnilipError};
use crate::shapesworld::{Direction, EditKind};

/// Cells `[row0, col0, row1, col1)` of the latent grid.
type CellBox = [usize; 4];

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

    /// A move or a swap: FlowEdit between the objects' captions read over their located boxes
    /// and read over the boxes they go to (a move: a quarter of the grid towards its
    /// direction; a swap: each other's), pasted onto the source over every box.
    fn relocated(
        &self,
        tok: &Tokenizer,
        kind: &EditKind,
        source: Tensor<B, 4>,
        source_image: &RgbImage,
        i: usize,
    ) -> Result<RgbImage, String> {
        let m = self.model;
        let style = self.generator.style();
        let [_, _, h, w] = source.dims();
        let objects = match *kind {
            EditKind::Move { object, .. } => vec![object],
            EditKind::Swap { first, second } => vec![first, second],
            _ => return Err(format!("a {} edit does not move objects", kind.name())),
        };
        // Each object's caption (one row) and its box; the last row is the negative.
        let mut regions = Vec::new();
        let mut negative = None;
        for object in objects {
            let (caption, contrasts) = object.caption_and_contrasts(&style);
            let prompts = EditPrompts::from_captions(
                m,
                tok,
                Some(&caption),
                None,
                self.opts.condition,
                &device(),
            )
            .map_err(|e| e.to_string())?;
            let map = self.relevance(tok, &source, &prompts.source, &contrasts, i)?;
            let cells = located_cells(&map, [h, w], LOCATE_SHARE, LOCATE_GROW);
            let Some(found) = cell_box(&cells, [h, w]) else {
                return self.decoded(source); // nowhere located: nothing to move
            };
            regions.push((prompts.source, found));
            negative = Some(prompts.source_negative);
        }
        let negative = negative.ok_or("no object to move")?;
        let goals: Vec<CellBox> = match *kind {
            EditKind::Move { direction, .. } => vec![shifted(regions[0].1, direction, [h, w])],
            _ => vec![regions[1].1, regions[0].1],
        };
        let area = |[r0, c0, r1, c1]: CellBox| {
            Area::from_edges([
                c0 as f32 / w as f32,
                r0 as f32 / h as f32,
                c1 as f32 / w as f32,
                r1 as f32 / h as f32,
            ])
        };
        let read = |boxes: &mut dyn Iterator<Item = CellBox>| -> Vec<RegionPrompt<B>> {
            regions
                .iter()
                .zip(boxes)
                .map(|((cond, _), b)| RegionPrompt {
                    cond: cond.clone(),
                    areas: vec![area(b)],
                    with_base: true,
                })
                .collect()
        };
        let before = read(&mut regions.iter().map(|(_, b)| *b));
        let after = read(&mut goals.iter().copied());
        let captions =
            moving_captions(&negative, [&before, &after], [h, w]).map_err(|e| e.to_string())?;
        let opts = self.flow_edit_options(i, MOVE_STRENGTH, MOVE_GUIDANCE);
        let edited = m
            .flow_edit_captions(source, captions, &opts, |_, _, _| Ok::<(), UnilipError>(()))
            .map_err(|e| e.to_string())?;
        let inside = |[r0, c0, r1, c1]: CellBox, cell: usize| {
            (r0..r1).contains(&(cell / w)) && (c0..c1).contains(&(cell % w))
        };
        let boxes: Vec<CellBox> = regions.iter().map(|(_, b)| *b).chain(goals).collect();
        let cells: Vec<bool> = (0..h * w)
            .map(|cell| boxes.iter().any(|&b| inside(b, cell)))
            .collect();
        Ok(pasted(&self.decoded(edited)?, source_image, &cells, [h, w]))
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
        let opts = LocateOptions {
            seed: self.opts.seed.wrapping_add(i as u64),
            ..LocateOptions::default()
        };
        m.relevance(latent.clone(), prompt, &contrast, &opts)
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
    let edited = resize_to(edited, source);
    let (width, height) = source.dimensions();
    let mask = pixel_mask(cells, grid, [height as usize, width as usize]);
    RgbImage::from_fn(width, height, |x, y| {
        let keep = mask[(y * width + x) as usize] == 0.0;
        *if keep { source } else { &edited }.get_pixel(x, y)
    })
}

/// The smallest box holding every set cell of a `grid`, or `None` when none is set.
fn cell_box(cells: &[bool], [_, w]: [usize; 2]) -> Option<CellBox> {
    let set: Vec<(usize, usize)> = (0..cells.len())
        .filter(|&c| cells[c])
        .map(|c| (c / w, c % w))
        .collect();
    let rows = set.iter().map(|&(r, _)| r);
    let cols = set.iter().map(|&(_, c)| c);
    Some([
        rows.clone().min()?,
        cols.clone().min()?,
        rows.max()? + 1,
        cols.max()? + 1,
    ])
}

/// `b` moved a quarter of the grid towards `direction`, as far as the grid allows.
fn shifted([r0, c0, r1, c1]: CellBox, direction: Direction, [h, w]: [usize; 2]) -> CellBox {
    let (ux, uy) = direction.unit();
    let step = |lo: usize, hi: usize, unit: f32, cells: usize| {
        let by = (cells / 4) as isize * unit.signum() as isize * isize::from(unit != 0.0);
        let by = by.clamp(-(lo as isize), (cells - hi) as isize);
        ((lo as isize + by) as usize, (hi as isize + by) as usize)
    };
    let (r0, r1) = step(r0, r1, uy, h);
    let (c0, c1) = step(c0, c1, ux, w);
    [r0, c0, r1, c1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_bound_the_set_cells_and_shift_inside_the_grid() {
        let mut cells = vec![false; 64];
        cells[2 * 8 + 3] = true;
        cells[4 * 8 + 5] = true;
        let b = cell_box(&cells, [8, 8]).unwrap();
        assert_eq!(b, [2, 3, 5, 6]);
        assert_eq!(cell_box(&[false; 4], [2, 2]), None);
        assert_eq!(shifted(b, Direction::Up, [8, 8]), [0, 3, 3, 6]);
        assert_eq!(shifted(b, Direction::Right, [8, 8]), [2, 5, 5, 8]);
        assert_eq!(shifted(b, Direction::Down, [8, 8]), [4, 3, 7, 6]);
        // Only as far as the edge.
        assert_eq!(shifted([0, 0, 3, 3], Direction::Left, [8, 8]), [0, 0, 3, 3]);
        assert_eq!(
            shifted([0, 6, 3, 8], Direction::Right, [8, 8]),
            [0, 6, 3, 8]
        );
    }
}
