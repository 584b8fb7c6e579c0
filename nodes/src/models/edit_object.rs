//! Editing one named object, each kind of edit by the operation that makes it.
//!
//! The object is found with the DiT's help: its caption ("a red circle") is sampled alone, and
//! on a plain ground the part of the picture most like that drawing is taken (the same colour,
//! then the most alike shape: [`imaging::best_match`]); otherwise, or when no part matches,
//! the object is where the DiT locates its caption against its other colours
//! ([`crate::models::locate`]). Then:
//!
//! - **recolour**: the object's pixels painted the colour the DiT draws the new colour in
//!   (read off the object's caption in that colour, sampled alone), edges and shading kept
//!   ([`imaging::recolour_pixels`]);
//! - **resize**: the object's pixels scaled about their centre by [`RESIZE_FACTOR`] or its
//!   inverse ([`imaging::scale_pixels`]);
//! - **remove**: the object's pixels filled from around them ([`imaging::fill_masked`]);
//! - **add**: the new object's caption sampled alone (where the DiT draws best: one object on an
//!   empty canvas) and the object pasted, with its anti-aliased edge, on the centre of the
//!   picture's emptiest box ([`imaging::emptiest_box`], [`imaging::paste_object`]);
//! - **move, swap**: the objects' pixels cut and pasted (a move a quarter of the canvas towards
//!   its direction, a swap each onto the other's centre), the holes filled.
//!
//! Where FlowEdit ([`crate::models::flow_edit`]) answers "remove" by turning the object into
//! another and "add" by turning an existing object into the new one, redraws moved objects
//! blurred and makes a recolour or resize in about half the cases, these keep every pixel they
//! do not have to change.

use std::cell::RefCell;

use burn::prelude::*;
use image::RgbImage;

use crate::imaging::{self, PixelBox};
use crate::models::compose::{DrawOptions, Drawing, DRAWS};
use crate::models::locate::LocateOptions;
use crate::models::relocate::{shifted, CellBox};
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{ConditionMode, Result, Unilip, UnilipError};
use crate::shapesworld::{Colour, EditKind, ObjectRef, Size, Style};

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
    /// How many times a caption sampled alone is drawn while nothing stands out
    /// ([`crate::models::compose::DRAWS`]).
    pub draws: usize,
}

impl Default for ObjectEditOptions {
    /// The default locator, 20 steps (as [`crate::models::unilip::SampleOptions::unilip`]),
    /// seed 0, [`DRAWS`] draws.
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
            drawings: RefCell::new(Vec::new()),
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
    /// Captions drawn alone so far, by object ([`Self::drawn_alone`]).
    drawings: RefCell<Vec<(ObjectRef, Option<Drawing>)>>,
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

    /// The object's own pixels, with their box of cells, skipping parts centred on cells
    /// `taken` by objects found before. On a plain ground ([`imaging::plain_background`]) the
    /// part of the picture most like the DiT's own drawing of the object's caption alone
    /// ([`Self::drawn_alone`], [`imaging::best_match`]); otherwise, or when nothing matches,
    /// where the DiT locates the caption ([`Unilip::object_box`]): of the parts standing out in
    /// that box, the one most like the drawing (all of them without a drawing).
    fn object_pixels(
        &self,
        object: ObjectRef,
        taken: &[bool],
    ) -> Result<Option<(Vec<bool>, CellBox)>> {
        let width = self.picture.width() as usize;
        let drawing = self.drawn_alone(object)?;
        let free = |part: &Vec<bool>| {
            imaging::centroid(part, width).is_some_and(|(x, y)| {
                let [_, gw] = self.grid();
                let (r, c) = self.cell_of(x as usize, y as usize);
                !taken.get(r * gw + c).copied().unwrap_or(false)
            })
        };
        if let Some(drawing) = drawing
            .as_ref()
            .filter(|_| imaging::plain_background(self.picture))
        {
            let parts = imaging::components(&imaging::foreground(self.picture), width);
            let parts = parts.into_iter().filter(free).collect();
            if let Some(part) = imaging::best_match(self.picture, parts, drawing.reference()) {
                let cells = self.cells_of(&part);
                return Ok(Some((part, cells)));
            }
        }
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
            let part = match &drawing {
                Some(drawing) => {
                    let parts = imaging::components(&pixels, width);
                    imaging::best_match(self.picture, parts, drawing.reference())?
                }
                None => pixels,
            };
            part.contains(&true).then_some((part, cells))
        }))
    }

    /// The latent cell `(row, column)` pixel `(x, y)` lies in.
    fn cell_of(&self, x: usize, y: usize) -> (usize, usize) {
        let ([gh, gw], [h, w]) = (self.grid(), self.size());
        ((y * gh / h).min(gh - 1), (x * gw / w).min(gw - 1))
    }

    /// The box of latent cells bounding the pixels set in `mask`.
    fn cells_of(&self, mask: &[bool]) -> CellBox {
        let width = self.picture.width() as usize;
        let [gh, gw] = self.grid();
        (0..mask.len())
            .filter(|&i| mask[i])
            .map(|i| self.cell_of(i % width, i / width))
            .fold([gh, gw, 0, 0], |[r0, c0, r1, c1], (r, c)| {
                [r0.min(r), c0.min(c), r1.max(r + 1), c1.max(c + 1)]
            })
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

    /// The new object's caption sampled alone ([`Self::drawn_alone`]) and the object
    /// pasted with its centre on the centre of the picture's emptiest box
    /// ([`imaging::paste_object`]).
    fn added(&self, object: ObjectRef) -> Result<Option<ObjectEdit>> {
        let found = imaging::emptiest_box(self.picture, self.grid(), ADD_CELLS, self.opts.seed);
        let Some(drawing) = self.drawn_alone(object)? else {
            return Ok(None);
        };
        let width = drawing.picture.width() as usize;
        let Some((cx, cy)) = imaging::centroid(&drawing.part, width) else {
            return Ok(None);
        };
        let [x0, y0, x1, y1] = self.pixel_box(found);
        let offset = (
            ((x0 + x1) as f32 / 2.0 - 0.5 - cx).round() as isize,
            ((y0 + y1) as f32 / 2.0 - 0.5 - cy).round() as isize,
        );
        let (image, changed) =
            imaging::paste_object(self.picture, &drawing.picture, &drawing.part, offset);
        Ok(Some(ObjectEdit {
            image,
            mask: flags(&changed),
        }))
    }

    /// The object's pixels ([`Self::object_pixels`]) painted the colour the DiT draws the
    /// recoloured caption in, alone ([`imaging::recolour_pixels`]).
    fn recoloured(&self, object: ObjectRef, to: Colour) -> Result<Option<ObjectEdit>> {
        let Some((pixels, _)) = self.object_pixels(object, &[])? else {
            return Ok(None);
        };
        let recoloured = ObjectRef {
            colour: to,
            ..object
        };
        let colour = self.drawn_alone(recoloured)?.and_then(|d| {
            let (picture, part) = d.reference();
            imaging::object_colour(picture, part)
        });
        let Some(colour) = colour else {
            return Ok(None);
        };
        let (image, changed) = imaging::recolour_pixels(self.picture, &pixels, colour);
        Ok(Some(ObjectEdit {
            image,
            mask: flags(&changed),
        }))
    }

    /// `object`'s caption sampled alone ([`Self::draw_alone`]), drawn once per edit.
    fn drawn_alone(&self, object: ObjectRef) -> Result<Option<Drawing>> {
        if let Some((_, drawing)) = self.drawings.borrow().iter().find(|(o, _)| *o == object) {
            return Ok(drawing.clone());
        }
        let drawing = self.draw_alone(object)?;
        self.drawings.borrow_mut().push((object, drawing.clone()));
        Ok(drawing)
    }

    /// `object`'s caption sampled alone on a canvas of the picture's size
    /// ([`Unilip::draw_alone`] with UniLIP's sampler at the edit's steps, seed and draws).
    fn draw_alone(&self, object: ObjectRef) -> Result<Option<Drawing>> {
        let (caption, _) = object.caption_and_contrasts(self.style);
        let opts = DrawOptions {
            steps: self.opts.steps,
            seed: self.opts.seed,
            draws: self.opts.draws,
            ..DrawOptions::default()
        };
        self.model.draw_alone(
            &caption,
            self.tok,
            self.mode,
            &opts,
            self.picture.dimensions(),
            &self.source.device(),
        )
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
