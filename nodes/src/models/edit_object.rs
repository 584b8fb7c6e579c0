//! Editing one named object, each kind of edit by the operation that makes it, all at the
//! object the DiT itself locates ([`crate::models::locate`]):
//!
//! - **recolour**: the object's pixels painted the colour the DiT draws the new colour in
//!   (read off the object's caption in that colour, sampled alone), edges and shading kept
//!   ([`imaging::recolour_pixels`]); of the parts standing out in the located box, the one
//!   nearest the colour the DiT draws the object's own caption in;
//! - **resize**: the object's pixels scaled about their centre by [`RESIZE_FACTOR`] or its
//!   inverse ([`imaging::scale_pixels`]);
//! - **remove**: the object's own pixels (those standing out from the background grown into its
//!   box, [`imaging::object_pixels`]) filled from around them ([`imaging::fill_masked`]);
//! - **add**: the new object's caption sampled alone (where the DiT draws best: one object on an
//!   empty canvas) and the object pasted, with its anti-aliased edge, on the centre of the
//!   picture's emptiest box ([`imaging::emptiest_box`], [`imaging::paste_object`]);
//! - **move, swap**: the objects' own pixels cut and pasted (a move a quarter of the canvas
//!   towards its direction, a swap each onto the other's centre), the holes filled.
//!
//! Where FlowEdit ([`crate::models::flow_edit`]) answers "remove" by turning the object into
//! another and "add" by turning an existing object into the new one, redraws moved objects
//! blurred and makes a recolour or resize in about half the cases, these keep every pixel they
//! do not have to change.

use burn::prelude::*;
use image::RgbImage;

use crate::imaging::{self, PixelBox};
use crate::models::flow_edit::EditPrompts;
use crate::models::locate::LocateOptions;
use crate::models::relocate::{shifted, CellBox};
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{ConditionMode, Result, SampleOptions, Unilip, UnilipError};
use crate::shapesworld::{Colour, EditKind, ObjectRef, Size, Style};

/// How many times a caption sampled alone (an add, a recolour's colours) is drawn, from other
/// noise, while nothing stands out from the canvas.
pub const DRAWS: usize = 4;
/// Side, in latent cells, of the emptiest box an added object is centred in (3 of 8: about the
/// size of a large ShapesWorld object with its margin).
pub const ADD_CELLS: usize = 3;

/// How much "larger" scales an object (and "smaller" by its inverse): 1.5, about the ratio of
/// ShapesWorld's two sizes (0.125 / 0.085).
pub const RESIZE_FACTOR: f32 = 1.5;

/// Settings of [`Unilip::edit_object`].
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEditOptions {
    /// How objects are located.
    pub locate: LocateOptions,
    /// Sampler steps of what the DiT draws (an added object, the colours of a recolour).
    pub steps: usize,
    /// Seed of the sampler's noise and of where an added object goes among equally empty
    /// boxes.
    pub seed: u64,
    /// How many times a caption sampled alone is drawn while nothing stands out ([`DRAWS`]).
    pub draws: usize,
}

impl Default for ObjectEditOptions {
    /// The default locator, 20 steps (as [`SampleOptions::unilip`]), seed 0, [`DRAWS`].
    fn default() -> Self {
        Self {
            locate: LocateOptions::default(),
            steps: 20,
            seed: 0,
            draws: DRAWS,
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
        let edit = Editing {
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
            EditKind::Recolour { object, to } => edit.recoloured(object, to)?,
            EditKind::Resize { object, to } => edit.resized(object, to)?,
            EditKind::Add { object } => edit.added(object)?,
            EditKind::Remove { object } => edit.removed(object)?,
            // A move shifts the object as its box shifts, a quarter of the grid.
            EditKind::Move { object, direction } => edit.moved(&[object], |_, found, e| {
                let [x0, y0, ..] = e.pixel_box(found[0].cells);
                let [x1, y1, ..] = e.pixel_box(shifted(found[0].cells, direction, e.grid()));
                let (cx, cy) = found[0].centre;
                (cx + x1 as f32 - x0 as f32, cy + y1 as f32 - y0 as f32)
            })?,
            // A swap puts each object's centre on the other's.
            EditKind::Swap { first, second } => {
                edit.moved(&[first, second], |k, found, _| found[1 - k].centre)?
            }
        }
        .unwrap_or_else(unchanged))
    }
}

/// An object located for a move or swap.
struct Found {
    /// Its own pixels.
    pixels: Vec<bool>,
    /// Its located box of latent cells.
    cells: CellBox,
    /// The centre of its pixels, `(x, y)`.
    centre: (f32, f32),
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

    /// The object's own pixels, where it is located (not on the cells `taken` by objects
    /// found before), with its box of cells.
    fn object_pixels(
        &self,
        object: ObjectRef,
        taken: &[bool],
    ) -> Result<Option<(Vec<bool>, CellBox)>> {
        let located = self.model.object_box(
            self.source.clone(),
            (object, taken),
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
    fn removed(&self, object: ObjectRef) -> Result<Option<ObjectEdit>> {
        Ok(self.object_pixels(object, &[])?.map(|(pixels, _)| {
            let mask = flags(&pixels);
            ObjectEdit {
                image: imaging::fill_masked(self.picture, &mask),
                mask,
            }
        }))
    }

    /// The objects' pixels moved so that each one's centre lands on the point `goal(k, found,
    /// self)` gives object `k` (of `found`, every object located).
    fn moved(
        &self,
        objects: &[ObjectRef],
        goal: impl Fn(usize, &[Found], &Self) -> (f32, f32),
    ) -> Result<Option<ObjectEdit>> {
        let [h, w] = self.grid();
        let width = self.picture.width() as usize;
        // Two objects are not located on one cell: each found box's centre is taken.
        let mut taken = vec![false; h * w];
        let mut found = Vec::new();
        for &object in objects {
            let Some((pixels, cells @ [r0, c0, r1, c1])) = self.object_pixels(object, &taken)?
            else {
                return Ok(None);
            };
            taken[(r0 + r1 - 1) / 2 * w + (c0 + c1 - 1) / 2] = true;
            let Some(centre) = imaging::centroid(&pixels, width) else {
                return Ok(None);
            };
            found.push(Found {
                pixels,
                cells,
                centre,
            });
        }
        let moves: Vec<(Vec<bool>, (isize, isize))> = (0..found.len())
            .map(|k| {
                let (to, at) = (goal(k, &found, self), found[k].centre);
                let offset = (
                    (to.0 - at.0).round() as isize,
                    (to.1 - at.1).round() as isize,
                );
                (found[k].pixels.clone(), offset)
            })
            .collect();
        let (image, changed) = imaging::move_pixels(self.picture, &moves);
        Ok(Some(ObjectEdit {
            image,
            mask: flags(&changed),
        }))
    }

    /// The new object's caption sampled alone ([`Self::drawn_alone`]) and its largest part
    /// pasted with its centre on the centre of the picture's emptiest box
    /// ([`imaging::paste_object`]).
    fn added(&self, object: ObjectRef) -> Result<Option<ObjectEdit>> {
        let found = imaging::emptiest_box(self.picture, self.grid(), ADD_CELLS, self.opts.seed);
        let Some((drawn, pixels)) = self.drawn_alone(object)? else {
            return Ok(None);
        };
        let width = drawn.width() as usize;
        let Some(part) = imaging::components(&pixels, width).into_iter().next() else {
            return Ok(None);
        };
        let Some((cx, cy)) = imaging::centroid(&part, width) else {
            return Ok(None);
        };
        let [x0, y0, x1, y1] = self.pixel_box(found);
        let offset = (
            ((x0 + x1) as f32 / 2.0 - 0.5 - cx).round() as isize,
            ((y0 + y1) as f32 / 2.0 - 0.5 - cy).round() as isize,
        );
        let (image, changed) = imaging::paste_object(self.picture, &drawn, &part, offset);
        Ok(Some(ObjectEdit {
            image,
            mask: flags(&changed),
        }))
    }

    /// The object's pixels turned to the colour the DiT gives colour `to`: of the parts
    /// standing out in the located box ([`imaging::components`]), the one whose colour is
    /// nearest the colour the DiT draws the object's own caption in ([`Self::caption_colour`])
    /// is painted the colour it draws the recoloured caption in
    /// ([`imaging::recolour_pixels`]).
    fn recoloured(&self, object: ObjectRef, to: Colour) -> Result<Option<ObjectEdit>> {
        let Some((pixels, _)) = self.object_pixels(object, &[])? else {
            return Ok(None);
        };
        let recoloured = ObjectRef {
            colour: to,
            ..object
        };
        let (Some(from), Some(to)) = (
            self.caption_colour(object)?,
            self.caption_colour(recoloured)?,
        ) else {
            return Ok(None);
        };
        let parts = imaging::components(&pixels, self.picture.width() as usize);
        let distance = |part: &Vec<bool>| {
            imaging::object_colour(self.picture, part).map_or(u32::MAX, |c| {
                (0..3)
                    .map(|k| u32::from(c[k].abs_diff(from[k])).pow(2))
                    .sum()
            })
        };
        let Some(part) = parts.iter().min_by_key(|p| distance(p)) else {
            return Ok(None);
        };
        let (image, changed) = imaging::recolour_pixels(self.picture, part, to);
        Ok(Some(ObjectEdit {
            image,
            mask: flags(&changed),
        }))
    }

    /// The colour the DiT draws `object`'s caption in, alone on a canvas
    /// ([`Self::drawn_alone`], [`imaging::object_colour`]).
    fn caption_colour(&self, object: ObjectRef) -> Result<Option<[u8; 3]>> {
        Ok(self
            .drawn_alone(object)?
            .and_then(|(drawn, pixels)| imaging::object_colour(&drawn, &pixels)))
    }

    /// `object`'s caption sampled alone on a canvas of the picture's size, drawn from other
    /// noise (up to [`ObjectEditOptions::draws`] times) while nothing stands out
    /// ([`imaging::foreground`]), with the pixels that do.
    fn drawn_alone(&self, object: ObjectRef) -> Result<Option<(RgbImage, Vec<bool>)>> {
        let (m, dev) = (self.model, self.source.device());
        let (caption, _) = object.caption_and_contrasts(self.style);
        let prompts =
            EditPrompts::from_captions(m, self.tok, None, Some(&caption), self.mode, &dev)?;
        for k in 0..self.opts.draws.max(1) as u64 {
            let opts = SampleOptions {
                steps: self.opts.steps,
                ..SampleOptions::unilip(self.opts.seed.wrapping_add(k << 32))
            };
            let latent = m.sample(
                &prompts.target,
                Some(&prompts.target_negative),
                &opts,
                |_, _, _| Ok::<(), UnilipError>(()),
            )?;
            let drawn = picture_of(m.output_image(m.decode(latent)?))?;
            let drawn = match drawn.dimensions() == self.picture.dimensions() {
                true => drawn,
                false => image::imageops::resize(
                    &drawn,
                    self.picture.width(),
                    self.picture.height(),
                    image::imageops::FilterType::Triangle,
                ),
            };
            let pixels = imaging::foreground(&drawn);
            if pixels.contains(&true) {
                return Ok(Some((drawn, pixels)));
            }
        }
        Ok(None)
    }

    /// The object's pixels scaled about their centre by [`RESIZE_FACTOR`] (to a large size)
    /// or its inverse ([`imaging::scale_pixels`]).
    fn resized(&self, object: ObjectRef, to: Size) -> Result<Option<ObjectEdit>> {
        let Some((pixels, _)) = self.object_pixels(object, &[])? else {
            return Ok(None);
        };
        let Some(centre) = imaging::centroid(&pixels, self.picture.width() as usize) else {
            return Ok(None);
        };
        let factor = match to {
            Size::Large => RESIZE_FACTOR,
            Size::Small => RESIZE_FACTOR.recip(),
        };
        let (image, changed) = imaging::scale_pixels(self.picture, &pixels, centre, factor);
        Ok(Some(ObjectEdit {
            image,
            mask: flags(&changed),
        }))
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
