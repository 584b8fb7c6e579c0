//! Editing one named object, each kind of edit by the operation that makes it, all at the
//! object the DiT itself locates ([`crate::models::locate`]):
//!
//! - **recolour**: the object's new caption drawn over its located box by the DiT, from the
//!   source noised to [`REDRAW_STRENGTH`], read only there (regional prompting), the rest of
//!   the latent kept by inpainting ([`Inpaint`]);
//! - **resize**: FlowEdit between the object's captions before and after
//!   ([`crate::models::flow_edit`]), the edit kept only on the located cells;
//! - **remove**: the object's own pixels (those standing out from the background grown into its
//!   box, [`imaging::object_pixels`]) filled from around them ([`imaging::fill_masked`]);
//! - **add**: the new object's caption drawn the same way, from pure noise, in the emptiest box
//!   of the picture ([`imaging::emptiest_box`]);
//! - **move, swap**: the objects' own pixels cut and pasted (a move a quarter of the canvas
//!   towards its direction, a swap each onto the other's centre), the holes filled.
//!
//! Where FlowEdit answers "remove" by turning the object into another and "add" by turning an
//! existing object into the new one, and redraws moved objects blurred, these keep every pixel
//! they do not have to change.

use burn::prelude::*;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::imaging::{self, PixelBox};
use crate::models::flow_edit::{EditPrompts, FlowEditOptions};
use crate::models::inpaint::Inpaint;
use crate::models::locate::{contrast_condition, located_cells, pixel_mask, LocateOptions};
use crate::models::locate::{LOCATE_GROW, LOCATE_SHARE};
use crate::models::regions::{Area, RegionPrompt};
use crate::models::relocate::{shifted, CellBox};
use crate::models::scheduler::gaussian_noise;
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{
    ConditionMode, InitLatent, Result, SampleOptions, Unilip, UnilipError,
};
use crate::shapesworld::{EditKind, ObjectRef, Style};

/// CFG scale of a caption drawn in a box (an added object, a recoloured one). ShapesWorld adds,
/// seeds 0 / 1: 3 → 0.50 / 0.38 with the base prompt read in the box too, 6 → 0.67 / 0.45
/// without, 9 → 0.53 / 0.50; recolours at strength 0.8: 3 → 0.54 / 0.61, 4 → 0.64 / 0.58,
/// 6 → 0.64 / 0.56, 9 → 0.36 / 0.39.
pub const BOX_GUIDANCE: f32 = 6.0;
/// Fraction of the schedule a recolour redraws its object over (ShapesWorld recolours, seeds
/// 0 / 1: 0.7 → 0.57 / 0.58, 0.8 → 0.64 / 0.56, 0.9 → 0.50 / 0.50; from the hole-filled
/// picture at 1: 0.43 / 0.42; FlowEdit kept on the object: 0.46 / 0.25).
pub const REDRAW_STRENGTH: f32 = 0.8;
/// Side, in latent cells, of the box an added object is drawn in (3 of 8: about the size of a
/// large ShapesWorld object with its margin; 2 and 4 did worse).
pub const ADD_CELLS: usize = 3;

/// Settings of [`Unilip::edit_object`].
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEditOptions {
    /// How objects are located.
    pub locate: LocateOptions,
    /// FlowEdit's settings (resize); its `steps` and `seed` also drive the sampler that draws
    /// a caption in a box (add, recolour).
    pub flow: FlowEditOptions,
    /// CFG scale of a caption drawn in a box.
    pub box_guidance: f32,
    /// Fraction of the schedule a recolour redraws its object over.
    pub redraw_strength: f32,
}

impl Default for ObjectEditOptions {
    fn default() -> Self {
        Self {
            locate: LocateOptions::default(),
            flow: FlowEditOptions::default(),
            box_guidance: BOX_GUIDANCE,
            redraw_strength: REDRAW_STRENGTH,
        }
    }
}

/// The result of [`Unilip::edit_object`].
#[derive(Debug, Clone)]
pub struct ObjectEdit {
    /// The edited picture, at the source picture's size.
    pub image: RgbImage,
    /// One value per pixel: 1 where the edit may have changed the picture, else 0.
    pub mask: Vec<f32>,
}

impl<B: Backend> Unilip<B> {
    /// Makes edit `kind` (captioned in `style`'s words) on `picture`, whose DiT latent is
    /// `source` `[1, C, h, w]` (see the module docs). An object located nowhere is left as it
    /// is (the picture comes back unchanged with an empty mask).
    pub fn edit_object(
        &self,
        source: Tensor<B, 4>,
        picture: &RgbImage,
        (kind, style): (&EditKind, &Style),
        tok: &Tokenizer,
        mode: ConditionMode,
        opts: &ObjectEditOptions,
    ) -> Result<ObjectEdit> {
        let mut edit = Editing {
            model: self,
            source,
            picture,
            style,
            tok,
            mode,
            opts,
        };
        let unchanged = || ObjectEdit {
            image: picture.clone(),
            mask: vec![0.0; (picture.width() * picture.height()) as usize],
        };
        Ok(match *kind {
            EditKind::Recolour { object, .. } => edit.recoloured(kind, object)?,
            EditKind::Resize { .. } => edit.flow_edited(kind)?,
            EditKind::Add { object } => edit.added(object)?,
            EditKind::Remove { object } => edit.removed(object)?,
            EditKind::Move { object, direction } => edit.moved(&[object], |boxes, grid| {
                vec![shifted(boxes[0], direction, grid)]
            })?,
            EditKind::Swap { first, second } => {
                edit.moved(&[first, second], |boxes, _| vec![boxes[1], boxes[0]])?
            }
        }
        .unwrap_or_else(unchanged))
    }
}

/// One [`Unilip::edit_object`] call.
struct Editing<'a, B: Backend> {
    model: &'a Unilip<B>,
    source: Tensor<B, 4>,
    picture: &'a RgbImage,
    style: &'a Style,
    tok: &'a Tokenizer,
    mode: ConditionMode,
    opts: &'a ObjectEditOptions,
}

impl<B: Backend> Editing<'_, B> {
    /// The latent's grid `[h, w]`.
    fn grid(&self) -> [usize; 2] {
        let [_, _, h, w] = self.source.dims();
        [h, w]
    }

    /// The picture's `[height, width]`.
    fn size(&self) -> [usize; 2] {
        [
            self.picture.height() as usize,
            self.picture.width() as usize,
        ]
    }

    /// The pixels of `cells` of the latent grid.
    fn pixel_box(&self, [r0, c0, r1, c1]: CellBox) -> PixelBox {
        let ([gh, gw], [h, w]) = (self.grid(), self.size());
        [c0 * w / gw, r0 * h / gh, c1 * w / gw, r1 * h / gh]
    }

    /// FlowEdit between the object's captions, kept on the located cells.
    fn flow_edited(&mut self, kind: &EditKind) -> Result<Option<ObjectEdit>> {
        let (m, dev) = (self.model, self.source.device());
        let (Some((before, after)), Some((contrasts, _))) =
            (kind.prompt_pair(self.style), kind.contrast_pair(self.style))
        else {
            return Ok(None);
        };
        let prompts = EditPrompts::from_captions(
            m,
            self.tok,
            before.as_deref(),
            after.as_deref(),
            self.mode,
            &dev,
        )?;
        let contrast = contrast_condition(m, self.tok, &contrasts, self.mode, &dev)?;
        let map = m.relevance(
            self.source.clone(),
            &prompts.source,
            &contrast,
            &self.opts.locate,
        )?;
        let cells = located_cells(&map, self.grid(), LOCATE_SHARE, LOCATE_GROW);
        if !cells.contains(&true) {
            return Ok(None);
        }
        let edited = m.flow_edit(self.source.clone(), &prompts, &self.opts.flow, |_, _, _| {
            Ok::<(), UnilipError>(())
        })?;
        self.pasted(edited, &cells).map(Some)
    }

    /// The decoded `latent` on `cells`, the picture elsewhere.
    fn pasted(&self, latent: Tensor<B, 4>, cells: &[bool]) -> Result<ObjectEdit> {
        let decoded = self.model.output_image(self.model.decode(latent)?);
        let edited = picture_of(decoded)?;
        let mask = pixel_mask(cells, self.grid(), self.size());
        Ok(ObjectEdit {
            image: pasted(&edited, self.picture, &mask),
            mask,
        })
    }

    /// The object's own pixels, where it is located.
    fn object_pixels(&self, object: ObjectRef) -> Result<Option<(Vec<bool>, CellBox)>> {
        let located = self.model.object_box(
            self.source.clone(),
            object,
            self.style,
            self.tok,
            self.mode,
            &self.opts.locate,
        )?;
        Ok(located.and_then(|(_, cells)| {
            let pixels = imaging::object_pixels(self.picture, self.pixel_box(cells));
            pixels.contains(&true).then_some((pixels, cells))
        }))
    }

    /// The object's pixels filled from around them.
    fn removed(&mut self, object: ObjectRef) -> Result<Option<ObjectEdit>> {
        Ok(self.object_pixels(object)?.map(|(pixels, _)| {
            let mask = flags(&pixels);
            ObjectEdit {
                image: imaging::fill_masked(self.picture, &mask),
                mask,
            }
        }))
    }

    /// The objects' pixels moved from their boxes to the boxes `goals` gives them.
    fn moved(
        &mut self,
        objects: &[ObjectRef],
        goals: impl FnOnce(&[CellBox], [usize; 2]) -> Vec<CellBox>,
    ) -> Result<Option<ObjectEdit>> {
        let mut found = Vec::new();
        for &object in objects {
            match self.object_pixels(object)? {
                Some(f) => found.push(f),
                None => return Ok(None),
            }
        }
        let boxes: Vec<CellBox> = found.iter().map(|(_, b)| *b).collect();
        let goals = goals(&boxes, self.grid());
        let width = self.picture.width() as usize;
        let centre = |b: CellBox| {
            let [x0, y0, x1, y1] = self.pixel_box(b);
            ((x0 + x1) as f32 / 2.0, (y0 + y1) as f32 / 2.0)
        };
        // Each object's centre goes where its goal box's centre is, the box's offset from the
        // object kept (a swap puts each object's own centre on the other's).
        let moves: Vec<(Vec<bool>, (isize, isize))> = found
            .iter()
            .zip(&goals)
            .enumerate()
            .map(|(k, ((pixels, from), &to))| {
                let at = imaging::centroid(pixels, width).unwrap_or_else(|| centre(*from));
                let target = match goals.len() {
                    1 => {
                        let (c, g) = (centre(*from), centre(to));
                        (at.0 + g.0 - c.0, at.1 + g.1 - c.1)
                    }
                    _ => imaging::centroid(&found[1 - k].0, width).unwrap_or_else(|| centre(to)),
                };
                let offset = (
                    (target.0 - at.0).round() as isize,
                    (target.1 - at.1).round() as isize,
                );
                (pixels.clone(), offset)
            })
            .collect();
        let (image, changed) = imaging::move_pixels(self.picture, &moves);
        let mask = flags(&changed);
        Ok(Some(ObjectEdit { image, mask }))
    }

    /// The new object's caption drawn in the emptiest box.
    fn added(&mut self, object: ObjectRef) -> Result<Option<ObjectEdit>> {
        let seed = self.opts.flow.seed;
        let found = imaging::emptiest_box(self.picture, self.grid(), ADD_CELLS, seed);
        let (caption, _) = object.caption_and_contrasts(self.style);
        self.drawn(&caption, found, 1.0).map(Some)
    }

    /// The object's new caption drawn over its located box from the source noised to
    /// [`ObjectEditOptions::redraw_strength`].
    fn recoloured(&mut self, kind: &EditKind, object: ObjectRef) -> Result<Option<ObjectEdit>> {
        let Some((_, Some(caption))) = kind.prompt_pair(self.style) else {
            return Ok(None);
        };
        let located = self.model.object_box(
            self.source.clone(),
            object,
            self.style,
            self.tok,
            self.mode,
            &self.opts.locate,
        )?;
        match located {
            Some((_, found)) => self
                .drawn(&caption, found, self.opts.redraw_strength)
                .map(Some),
            None => Ok(None),
        }
    }

    /// `caption` sampled over the cells of `found` (read there alone, regional prompting; the
    /// rest of the canvas reads the unconditional prompt), starting from the source noised to
    /// `strength` (1: from pure noise), with the rest of the latent kept ([`Inpaint`]).
    fn drawn(&self, caption: &str, found: CellBox, strength: f32) -> Result<ObjectEdit> {
        let (m, dev) = (self.model, self.source.device());
        let [h, w] = self.grid();
        let [r0, c0, r1, c1] = found;
        let cells: Vec<bool> = (0..h * w)
            .map(|c| (r0..r1).contains(&(c / w)) && (c0..c1).contains(&(c % w)))
            .collect();
        let prompts =
            EditPrompts::from_captions(m, self.tok, None, Some(caption), self.mode, &dev)?;
        let area = Area::from_edges([
            c0 as f32 / w as f32,
            r0 as f32 / h as f32,
            c1 as f32 / w as f32,
            r1 as f32 / h as f32,
        ]);
        let seed = self.opts.flow.seed;
        let mask =
            Tensor::<B, 1>::from_floats(flags(&cells).as_slice(), &dev).reshape([1, 1, h, w]);
        let noise = gaussian_noise(self.source.dims(), &mut StdRng::seed_from_u64(seed), &dev);
        let opts = SampleOptions {
            steps: self.opts.flow.steps,
            guidance_scale: self.opts.box_guidance,
            init: InitLatent::Noised {
                image: self.source.clone(),
                noise,
                strength,
            },
            regions: vec![RegionPrompt {
                cond: prompts.target,
                areas: vec![area],
                with_base: false,
            }],
            inpaint: Some(Inpaint {
                image: self.source.clone(),
                mask,
            }),
            ..SampleOptions::unilip(seed)
        };
        let latent = m.sample(
            &prompts.source,
            Some(&prompts.target_negative),
            &opts,
            |_, _, _| Ok::<(), UnilipError>(()),
        )?;
        self.pasted(latent, &cells)
    }
}

/// 1.0 where set, else 0.0.
fn flags(set: &[bool]) -> Vec<f32> {
    set.iter().map(|&s| f32::from(u8::from(s))).collect()
}

/// `edited` (resized to `picture`'s size) where `mask` (one value per pixel of `picture`) is
/// not 0, `picture` elsewhere.
pub fn pasted(edited: &RgbImage, picture: &RgbImage, mask: &[f32]) -> RgbImage {
    let (width, height) = picture.dimensions();
    let edited = match edited.dimensions() == (width, height) {
        true => edited.clone(),
        false => {
            image::imageops::resize(edited, width, height, image::imageops::FilterType::Triangle)
        }
    };
    RgbImage::from_fn(width, height, |x, y| {
        let keep = mask[(y * width + x) as usize] == 0.0;
        *if keep { picture } else { &edited }.get_pixel(x, y)
    })
}

/// `[1, 3, h, w]` in [0, 1] → an 8-bit picture (rounding half to even, as `numpy_to_pil`).
pub fn picture_of<B: Backend>(x: Tensor<B, 4>) -> Result<RgbImage> {
    let [_, _, h, w] = x.dims();
    let data: Vec<f32> = x
        .squeeze_dim::<3>(0)
        .permute([1, 2, 0])
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| UnilipError::Input(format!("{e:?}")))?;
    let bytes = data
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round_ties_even() as u8)
        .collect();
    RgbImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| UnilipError::Input("image buffer of the wrong size".into()))
}
