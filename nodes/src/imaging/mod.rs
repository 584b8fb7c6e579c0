//! Pixel operations for editing objects on a plain ground and for inpainting: filling a masked
//! part of a picture from its surroundings (the pre-fill ComfyUI's inpaint workflows run before
//! denoising a masked area at partial strength), finding the emptiest part of a picture (where
//! an added object can go), finding objects ([`objects`]), telling which one is like a reference
//! ([`matching`]) and moving, recolouring, pasting or scaling their pixels ([`transform`]).

mod matching;
mod objects;
mod transform;

use std::collections::VecDeque;

use image::RgbImage;

pub use matching::{best_match, shape_similarity, COLOUR_MATCH};
pub use objects::{
    border_colour, centroid, components, foreground, object_colour, object_pixels,
    plain_background, OBJECT_CONTRAST,
};
pub use transform::{move_pixels, paste_object, recolour_pixels, scale_pixels};

/// `image` with every pixel where `mask` (one value per pixel, row-major) is at least 0.5
/// replaced by colours grown in from the unmasked pixels around it: the hole is filled layer by
/// layer from its edge inwards, each pixel taking the mean of its already-known 8-neighbours
/// (onion-peel filling; flat backgrounds come back flat, edges running into the hole are
/// smeared). The image itself when nothing is masked or everything is (nothing to fill from).
///
/// # Panics
/// When `mask` does not have one value per pixel.
pub fn fill_masked(image: &RgbImage, mask: &[f32]) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    assert_eq!(mask.len(), w * h, "one mask value per pixel");
    let mut known: Vec<bool> = mask.iter().map(|&m| m < 0.5).collect();
    let mut out = image.clone();
    if known.iter().all(|&k| k) || !known.iter().any(|&k| k) {
        return out;
    }
    let neighbours = |i: usize| {
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        (-1..=1)
            .flat_map(move |dy| (-1..=1).map(move |dx| (x + dx, y + dy)))
            .filter(move |&(nx, ny)| {
                (nx, ny) != (x, y) && (0..w as isize).contains(&nx) && (0..h as isize).contains(&ny)
            })
            .map(move |(nx, ny)| ny as usize * w + nx as usize)
    };
    // The first layer: masked pixels touching a known one.
    let mut layer: Vec<usize> = (0..w * h)
        .filter(|&i| !known[i] && neighbours(i).any(|n| known[n]))
        .collect();
    let mut queued = vec![false; w * h];
    for &i in &layer {
        queued[i] = true;
    }
    while !layer.is_empty() {
        let colours: Vec<[u8; 3]> = layer
            .iter()
            .map(|&i| {
                let (mut sum, mut count) = ([0u32; 3], 0u32);
                for n in neighbours(i).filter(|&n| known[n]) {
                    let p = out.get_pixel((n % w) as u32, (n / w) as u32).0;
                    for c in 0..3 {
                        sum[c] += u32::from(p[c]);
                    }
                    count += 1;
                }
                sum.map(|s| ((s + count / 2) / count) as u8)
            })
            .collect();
        for (&i, colour) in layer.iter().zip(colours) {
            out.put_pixel((i % w) as u32, (i / w) as u32, image::Rgb(colour));
            known[i] = true;
        }
        let mut next = VecDeque::new();
        for &i in &layer {
            for n in neighbours(i) {
                if !known[n] && !queued[n] {
                    queued[n] = true;
                    next.push_back(n);
                }
            }
        }
        layer = next.into_iter().collect();
    }
    out
}

/// The `size × size` box of cells of a `grid` laid over `image` whose pixels vary least (the
/// sum over its pixels of the squared distance to their mean colour): the emptiest part of the
/// picture, as `[row0, col0, row1, col1)`. Among boxes as empty as the emptiest (within 1 %),
/// `pick` chooses one (it is taken modulo their count), so a seed can
/// vary where things go.
pub fn emptiest_box(image: &RgbImage, grid: [usize; 2], size: usize, pick: u64) -> [usize; 4] {
    let [gh, gw] = grid;
    let size = size.clamp(1, gh.min(gw));
    let (w, h) = (image.width() as usize, image.height() as usize);
    let spread = |x0: usize, y0: usize, x1: usize, y1: usize| -> f64 {
        let pixels: Vec<[f64; 3]> = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| image.get_pixel(x as u32, y as u32).0.map(f64::from))
            .collect();
        let n = pixels.len().max(1) as f64;
        let mean = pixels.iter().fold([0.0; 3], |m, p| {
            [m[0] + p[0] / n, m[1] + p[1] / n, m[2] + p[2] / n]
        });
        pixels
            .iter()
            .map(|p| (0..3).map(|c| (p[c] - mean[c]).powi(2)).sum::<f64>())
            .sum()
    };
    let boxes: Vec<([usize; 4], f64)> = (0..=gh - size)
        .flat_map(|r| (0..=gw - size).map(move |c| [r, c, r + size, c + size]))
        .map(|b @ [r0, c0, r1, c1]| {
            let px = |cell: usize, cells: usize, len: usize| cell * len / cells;
            (
                b,
                spread(px(c0, gw, w), px(r0, gh, h), px(c1, gw, w), px(r1, gh, h)),
            )
        })
        .collect();
    let least = boxes.iter().map(|&(_, s)| s).fold(f64::INFINITY, f64::min);
    let emptiest: Vec<[usize; 4]> = boxes
        .into_iter()
        .filter(|&(_, s)| s <= least * 1.01)
        .map(|(b, _)| b)
        .collect();
    emptiest[(pick % emptiest.len() as u64) as usize]
}

/// A box of pixels `[x0, y0, x1, y1)`.
pub type PixelBox = [usize; 4];

/// Test pictures shared by the submodules' tests.
#[cfg(test)]
mod pictures {
    use image::{Rgb, RgbImage};

    use super::PixelBox;

    pub(super) const WHITE: Rgb<u8> = Rgb([240, 240, 240]);
    pub(super) const RED: Rgb<u8> = Rgb([220, 30, 30]);

    /// A 32 × 32 picture on `WHITE` with a `RED` square at columns and rows `at..at + 6`.
    pub(super) fn square_at(at: u32) -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| {
            if (at..at + 6).contains(&x) && (at..at + 6).contains(&y) {
                RED
            } else {
                WHITE
            }
        })
    }

    pub(super) fn boxed([x0, y0, x1, y1]: PixelBox) -> Vec<f32> {
        (0..32 * 32)
            .map(|i| {
                f32::from(u8::from(
                    (x0..x1).contains(&(i % 32)) && (y0..y1).contains(&(i / 32)),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::pictures::*;
    use super::*;

    #[test]
    fn filling_a_hole_grows_its_surroundings_in() {
        // The square's box filled: the flat background comes back everywhere.
        let filled = fill_masked(&square_at(10), &boxed([8, 8, 18, 18]));
        assert!(filled.pixels().all(|&p| p == WHITE));
        // Left half red, right half white: a hole across the edge fills each side from its
        // own side.
        let halves = RgbImage::from_fn(32, 32, |x, _| if x < 16 { RED } else { WHITE });
        let filled = fill_masked(&halves, &boxed([10, 10, 22, 22]));
        assert_eq!(*filled.get_pixel(11, 16), RED);
        assert_eq!(*filled.get_pixel(20, 16), WHITE);
        // Nothing masked, or everything: the picture itself.
        assert_eq!(fill_masked(&halves, &[0.0; 32 * 32]), halves);
        assert_eq!(fill_masked(&halves, &[1.0; 32 * 32]), halves);
    }

    #[test]
    fn the_emptiest_box_avoids_objects() {
        let picture = square_at(2);
        for pick in 0..8 {
            let [r0, c0, r1, c1] = emptiest_box(&picture, [8, 8], 3, pick);
            assert_eq!((r1 - r0, c1 - c0), (3, 3));
            // Cells are 4 px: the square (px 2..8) lies in cells 0..2 of both axes.
            assert!(r0 >= 2 || c0 >= 2, "pick {pick}: box at ({r0}, {c0})");
        }
        // Different picks reach different (equally empty) boxes.
        let boxes: std::collections::BTreeSet<_> = (0..8)
            .map(|p| emptiest_box(&picture, [8, 8], 3, p))
            .collect();
        assert!(boxes.len() > 1);
    }
}
