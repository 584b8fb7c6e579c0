//! Moving and swapping objects with FlowEdit ([`crate::models::flow_edit`]) and the DiT's own
//! locator ([`crate::models::locate`]): each object is located by its caption against its
//! other colours, and FlowEdit runs between the captions read over the located boxes and read
//! over the boxes the objects go to ([`moving_captions`]), regional prompts as
//! [`crate::models::regions`] reads them. The result is meant to be pasted onto the source over
//! every box (the returned cells).

use burn::prelude::*;

use crate::models::flow_edit::{moving_captions, EditPrompts, FlowEditOptions};
use crate::models::locate::{
    contrast_condition, located_cells, LocateOptions, LOCATE_GROW, LOCATE_SHARE,
};
use crate::models::regions::{Area, RegionPrompt};
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{ConditionMode, Result, Unilip, UnilipError};
use crate::shapesworld::{Direction, EditKind, ObjectRef, Style};

/// FlowEdit's strength for a move or swap: it redraws objects elsewhere, which needs the noise
/// levels where layout is decided (on ShapesWorld moves 0.9 makes the change where 0.6, the
/// default for other edits, makes none).
pub const MOVE_STRENGTH: f32 = 0.9;
/// FlowEdit's CFG scale for both prompts of a move or swap (ShapesWorld moves: 3 → 0, 6 and 8
/// move).
pub const MOVE_GUIDANCE: f32 = 8.0;

/// Cells `[row0, col0, row1, col1)` of the latent grid.
pub type CellBox = [usize; 4];

/// A move or swap's result: the edited DiT latent and the latent cells it may have changed
/// (every located box and every box an object went to), row-major.
pub struct Relocated<B: Backend> {
    /// The edited latent.
    pub latent: Tensor<B, 4>,
    /// Cells to take from the edit; the rest is the source's.
    pub cells: Vec<bool>,
}

/// An object located in a latent: its caption's prompts and its box of cells.
pub type LocatedObject<B> = (EditPrompts<B>, CellBox);

impl<B: Backend> Unilip<B> {
    /// Where `object` lies in the DiT latent `source` `[1, C, h, w]`: its caption (in `style`'s
    /// words) located against the same object in every other colour
    /// ([`crate::models::locate`]), as the prompts of that caption and the box bounding the
    /// located cells; `None` when no cell is located. Cells set in `taken` (row-major; may be
    /// empty) are where other objects lie: they are not located as this one.
    pub fn object_box(
        &self,
        source: Tensor<B, 4>,
        (object, taken): (ObjectRef, &[bool]),
        style: &Style,
        tok: &Tokenizer,
        mode: ConditionMode,
        locate: &LocateOptions,
    ) -> Result<Option<LocatedObject<B>>> {
        let dev = source.device();
        let [_, _, h, w] = source.dims();
        let (caption, contrasts) = object.caption_and_contrasts(style);
        let p = EditPrompts::from_captions(self, tok, Some(&caption), None, mode, &dev)?;
        let contrast = contrast_condition(self, tok, &contrasts, mode, &dev)?;
        let mut map = self.relevance(source, &p.source, &contrast, locate)?;
        for (r, _) in map.iter_mut().zip(taken).filter(|(_, &t)| t) {
            *r = 0.0;
        }
        let cells = located_cells(&map, [h, w], LOCATE_SHARE, LOCATE_GROW);
        Ok(cell_box(&cells, [h, w]).map(|found| (p, found)))
    }

    /// Moves (`kind` a ShapesWorld move) or swaps (a swap) objects in the DiT latent `source`
    /// `[1, C, h, w]` (see the module docs), captioning them in `style`'s words. A move goes a quarter of the grid towards its
    /// direction, as far as the edge allows; a swap exchanges the two boxes. `None` when an
    /// object is located nowhere (nothing to move). FlowEdit's `strength` and CFG scales are
    /// taken from `flow` (use [`MOVE_STRENGTH`] and [`MOVE_GUIDANCE`]).
    pub fn relocate(
        &self,
        source: Tensor<B, 4>,
        (kind, style): (&EditKind, &Style),
        tok: &Tokenizer,
        mode: ConditionMode,
        (locate, flow): (&LocateOptions, &FlowEditOptions),
    ) -> Result<Option<Relocated<B>>> {
        let objects = match *kind {
            EditKind::Move { object, .. } => vec![object],
            EditKind::Swap { first, second } => vec![first, second],
            _ => {
                return Err(UnilipError::Input(format!(
                    "a {} edit does not move objects",
                    kind.name()
                )))
            }
        };
        let mut located = Vec::new();
        for object in objects {
            match self.object_box(source.clone(), (object, &[]), style, tok, mode, locate)? {
                Some(found) => located.push(found),
                None => return Ok(None),
            }
        }
        let [_, _, h, w] = source.dims();
        let goals: Vec<CellBox> = match *kind {
            EditKind::Move { direction, .. } => vec![shifted(located[0].1, direction, [h, w])],
            _ => vec![located[1].1, located[0].1],
        };
        let area = |[r0, c0, r1, c1]: CellBox| {
            Area::from_edges([
                c0 as f32 / w as f32,
                r0 as f32 / h as f32,
                c1 as f32 / w as f32,
                r1 as f32 / h as f32,
            ])
        };
        let read = |boxes: &[CellBox]| -> Vec<RegionPrompt<B>> {
            located
                .iter()
                .zip(boxes)
                .map(|((p, _), &b)| RegionPrompt {
                    cond: p.source.clone(),
                    areas: vec![area(b)],
                    with_base: true,
                })
                .collect()
        };
        let from: Vec<CellBox> = located.iter().map(|(_, b)| *b).collect();
        let (before, after) = (read(&from), read(&goals));
        let negative = &located[0].0.source_negative;
        let captions = moving_captions(negative, [&before, &after], [h, w])?;
        let latent =
            self.flow_edit_captions(source, captions, flow, |_, _, _| Ok::<(), UnilipError>(()))?;
        let inside = |[r0, c0, r1, c1]: CellBox, cell: usize| {
            (r0..r1).contains(&(cell / w)) && (c0..c1).contains(&(cell % w))
        };
        let cells = (0..h * w)
            .map(|cell| from.iter().chain(&goals).any(|&b| inside(b, cell)))
            .collect();
        Ok(Some(Relocated { latent, cells }))
    }
}

/// The smallest box holding every set cell of a `grid`, or `None` when none is set.
pub fn cell_box(cells: &[bool], [_, w]: [usize; 2]) -> Option<CellBox> {
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
pub fn shifted([r0, c0, r1, c1]: CellBox, direction: Direction, [h, w]: [usize; 2]) -> CellBox {
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
