//! Pixel operations for inpainting: filling a masked part of a picture from its surroundings
//! (the pre-fill ComfyUI's inpaint workflows run before denoising a masked area at partial
//! strength) and finding the emptiest part of a picture (where an added object can go).

use std::collections::VecDeque;

use image::RgbImage;

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

/// How far (summed over R, G, B, in 0–765) a pixel must differ from its box's hole-filled
/// background to count as the object's.
pub const OBJECT_CONTRAST: u32 = 60;

/// The pixels of the object inside `bounds` (one flag per pixel of `image`, row-major): those
/// that differ by more than [`OBJECT_CONTRAST`] from what [`fill_masked`] grows into the box
/// from around it (the background the object stands on), grown by one pixel to take its
/// anti-aliased edge. Nothing when the box is flat.
pub fn object_pixels(image: &RgbImage, bounds: PixelBox) -> Vec<bool> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let [x0, y0, x1, y1] = bounds;
    let inside = |i: usize| (x0..x1).contains(&(i % w)) && (y0..y1).contains(&(i / w));
    let hole: Vec<f32> = (0..w * h).map(|i| f32::from(u8::from(inside(i)))).collect();
    let background = fill_masked(image, &hole);
    let differs: Vec<bool> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as u32, (i / w) as u32);
            let (a, b) = (image.get_pixel(x, y).0, background.get_pixel(x, y).0);
            let d: u32 = (0..3).map(|c| u32::from(a[c].abs_diff(b[c]))).sum();
            inside(i) && d > OBJECT_CONTRAST
        })
        .collect();
    grown(&differs, w)
}

/// `mask` (over an image `width` wide) grown by one pixel: set where it or one of the
/// 8 neighbours is set.
fn grown(mask: &[bool], width: usize) -> Vec<bool> {
    let (w, h) = (width as isize, (mask.len() / width.max(1)) as isize);
    (0..mask.len())
        .map(|i| {
            let (x, y) = (i as isize % w, i as isize / w);
            (-1..=1).any(|dy| {
                (-1..=1).any(|dx| {
                    let (nx, ny) = (x + dx, y + dy);
                    (0..w).contains(&nx) && (0..h).contains(&ny) && mask[(ny * w + nx) as usize]
                })
            })
        })
        .collect()
}

/// The mean position `(x, y)` of the set pixels of `mask` over an image `width` wide; `None`
/// when none is set.
pub fn centroid(mask: &[bool], width: usize) -> Option<(f32, f32)> {
    let set: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
    let n = set.len() as f32;
    (!set.is_empty()).then(|| {
        let sx: usize = set.iter().map(|i| i % width).sum();
        let sy: usize = set.iter().map(|i| i / width).sum();
        (sx as f32 / n, sy as f32 / n)
    })
}

/// `image` with the pixels of each `(mask, (dx, dy))` moved by that offset (as many as land in
/// the picture): every mask's pixels are cut out and the holes filled by [`fill_masked`], then
/// each object's own pixels are pasted at its new place. Copy-and-paste moving, which keeps an
/// object exactly as it was. Also returns which pixels changed place (cut or pasted).
pub fn move_pixels(
    image: &RgbImage,
    moves: &[(Vec<bool>, (isize, isize))],
) -> (RgbImage, Vec<bool>) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let holes: Vec<f32> = (0..w * h)
        .map(|i| f32::from(u8::from(moves.iter().any(|(m, _)| m[i]))))
        .collect();
    let mut out = fill_masked(image, &holes);
    let mut changed: Vec<bool> = holes.iter().map(|&m| m > 0.0).collect();
    for (mask, (dx, dy)) in moves {
        for i in (0..w * h).filter(|&i| mask[i]) {
            let (nx, ny) = ((i % w) as isize + dx, (i / w) as isize + dy);
            if (0..w as isize).contains(&nx) && (0..h as isize).contains(&ny) {
                let p = *image.get_pixel((i % w) as u32, (i / w) as u32);
                out.put_pixel(nx as u32, ny as u32, p);
                changed[ny as usize * w + nx as usize] = true;
            }
        }
    }
    (out, changed)
}

/// The pixels of `image` standing out from its background (one flag per pixel, row-major):
/// those differing by more than [`OBJECT_CONTRAST`] from the median colour of the picture's
/// border, grown by one pixel as in [`object_pixels`]. For a picture of objects on a plain
/// background, e.g. one generated from a single object's caption.
pub fn foreground(image: &RgbImage) -> Vec<bool> {
    let background = border_colour(image);
    let differs: Vec<bool> = image
        .pixels()
        .map(|p| {
            (0..3)
                .map(|c| u32::from(p.0[c].abs_diff(background[c])))
                .sum::<u32>()
        })
        .map(|d| d > OBJECT_CONTRAST)
        .collect();
    grown(&differs, image.width() as usize)
}

/// The 8-connected parts of `mask` (over an image `width` wide), each as a mask of its own,
/// largest first.
pub fn components(mask: &[bool], width: usize) -> Vec<Vec<bool>> {
    let height = mask.len() / width.max(1);
    let mut seen = vec![false; mask.len()];
    let mut parts = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        let mut part = vec![false; mask.len()];
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            part[i] = true;
            let (x, y) = ((i % width) as isize, (i / width) as isize);
            for (nx, ny) in (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (x + dx, y + dy))) {
                if !((0..width as isize).contains(&nx) && (0..height as isize).contains(&ny)) {
                    continue;
                }
                let n = ny as usize * width + nx as usize;
                if mask[n] && !seen[n] {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        parts.push(part);
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.iter().filter(|&&s| s).count()));
    parts
}

/// How far (squared RGB distance) a part's colour may lie beyond the nearest part's and still
/// count as the same colour in [`best_match`] (ShapesWorld's palette colours lie at least
/// 90 apart).
pub const COLOUR_MATCH: u32 = 40 * 40;

/// Of `parts` (masks over `image`), the one most like the object set in `reference`'s mask on
/// its picture: of the parts whose colour ([`object_colour`]) lies within [`COLOUR_MATCH`] of
/// the nearest to the reference's colour, the one whose shape is most alike
/// ([`shape_similarity`]). `None` when there is no part or the reference is empty.
pub fn best_match(
    image: &RgbImage,
    parts: Vec<Vec<bool>>,
    (picture, reference): (&RgbImage, &[bool]),
) -> Option<Vec<bool>> {
    let colour = object_colour(picture, reference)?;
    let width = image.width() as usize;
    let distances: Vec<(Vec<bool>, u32)> = parts
        .into_iter()
        .filter_map(|p| {
            let c = object_colour(image, &p)?;
            let d = (0..3)
                .map(|k| u32::from(c[k].abs_diff(colour[k])).pow(2))
                .sum();
            Some((p, d))
        })
        .collect();
    let nearest = distances.iter().map(|p| p.1).min()?;
    distances
        .into_iter()
        .filter(|p| p.1 <= nearest + COLOUR_MATCH)
        .map(|(p, _)| (shape_similarity(reference, &p, width), p))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p)
}

/// Whether `image` stands on a plain ground: at least 90 % of its outermost pixels lie within
/// [`OBJECT_CONTRAST`] of their median colour ([`border_colour`]).
pub fn plain_background(image: &RgbImage) -> bool {
    let (w, h) = (image.width(), image.height());
    let ground = border_colour(image);
    let border: Vec<u32> = image
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| (0..3).map(|c| u32::from(p.0[c].abs_diff(ground[c]))).sum())
        .collect();
    let plain = border.iter().filter(|&&d| d <= OBJECT_CONTRAST).count();
    !border.is_empty() && plain * 10 >= border.len() * 9
}

/// How alike the shapes set in `a` and `b` (masks over an image `width` wide) are, whatever
/// their size and place: the intersection over union of `a` with `b` moved onto `a`'s centroid
/// and scaled to `a`'s area (0 = disjoint, 1 = the same shape). 0 when either is empty.
pub fn shape_similarity(a: &[bool], b: &[bool], width: usize) -> f32 {
    let (Some((ax, ay)), Some((bx, by))) = (centroid(a, width), centroid(b, width)) else {
        return 0.0;
    };
    let height = b.len() / width.max(1);
    let area = |m: &[bool]| m.iter().filter(|&&s| s).count() as f32;
    let (area_a, area_b) = (area(a), area(b));
    let scale = (area_b / area_a).sqrt();
    let inside_b = |x: f32, y: f32| {
        let (x, y) = (x.round(), y.round());
        (0.0..width as f32).contains(&x)
            && (0.0..height as f32).contains(&y)
            && b[y as usize * width + x as usize]
    };
    let shared = (0..a.len())
        .filter(|&i| a[i])
        .filter(|&i| {
            let (x, y) = ((i % width) as f32, (i / width) as f32);
            inside_b(bx + (x - ax) * scale, by + (y - ay) * scale)
        })
        .count() as f32;
    // b scaled to a's area: the union is both areas less what they share.
    shared / (2.0 * area_a - shared)
}

/// The colour of the object whose pixels are set in `mask`: the per-channel median over its
/// inner pixels (those whose 8 neighbours are all set too, leaving out the anti-aliased edge
/// [`object_pixels`] takes), or over all of them when none is inner. `None` when `mask` is
/// empty.
pub fn object_colour(image: &RgbImage, mask: &[bool]) -> Option<[u8; 3]> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let inner = |i: usize| {
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        (-1..=1).all(|dy| {
            (-1..=1).all(|dx| {
                let (nx, ny) = (x + dx, y + dy);
                (0..w as isize).contains(&nx)
                    && (0..h as isize).contains(&ny)
                    && mask[ny as usize * w + nx as usize]
            })
        })
    };
    let set: Vec<usize> = (0..w * h).filter(|&i| mask[i]).collect();
    let core: Vec<usize> = set.iter().copied().filter(|&i| inner(i)).collect();
    let pixels = if core.is_empty() { set } else { core };
    (!pixels.is_empty()).then(|| {
        [0, 1, 2].map(|c| {
            let mut values: Vec<u8> = pixels
                .iter()
                .map(|&i| image.get_pixel((i % w) as u32, (i / w) as u32).0[c])
                .collect();
            values.sort_unstable();
            values[values.len() / 2]
        })
    })
}

/// `image` with the object whose pixels are set in `mask` turned to colour `to`: each pixel
/// moves by `alpha × (to − object colour)` ([`object_colour`]), where `alpha` (0–1) is how far
/// the pixel lies from the background behind it ([`fill_masked`]) towards the object's colour:
/// inner pixels take `to`, anti-aliased edges blend it in as they blended the old colour, and
/// shading on the object is kept as an offset. Also returns the pixels that changed. The image
/// itself when `mask` is empty.
pub fn recolour_pixels(image: &RgbImage, mask: &[bool], to: [u8; 3]) -> (RgbImage, Vec<bool>) {
    let w = image.width() as usize;
    let Some(from) = object_colour(image, mask) else {
        return (image.clone(), vec![false; mask.len()]);
    };
    let holes: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
    let background = fill_masked(image, &holes);
    let mut out = image.clone();
    let mut changed = vec![false; mask.len()];
    for i in (0..mask.len()).filter(|&i| mask[i]) {
        let (x, y) = ((i % w) as u32, (i / w) as u32);
        let (p, b) = (
            image.get_pixel(x, y).0.map(f32::from),
            background.get_pixel(x, y).0.map(f32::from),
        );
        let axis = [0, 1, 2].map(|c| f32::from(from[c]) - b[c]);
        let length = axis.iter().map(|a| a * a).sum::<f32>();
        let alpha = match length > 0.0 {
            true => ((0..3).map(|c| (p[c] - b[c]) * axis[c]).sum::<f32>() / length).clamp(0.0, 1.0),
            false => 1.0,
        };
        let recoloured = [0, 1, 2].map(|c| {
            (p[c] + alpha * (f32::from(to[c]) - f32::from(from[c])))
                .round()
                .clamp(0.0, 255.0) as u8
        });
        changed[i] = recoloured != image.get_pixel(x, y).0;
        out.put_pixel(x, y, image::Rgb(recoloured));
    }
    (out, changed)
}

/// `image` with the object whose pixels are set in `mask` of `source` (a picture of the same
/// size on a plain background, e.g. the object's caption sampled alone) composited at offset
/// `(dx, dy)`: each pixel's coverage `alpha` (0–1, how far it lies from `source`'s border colour
/// towards the object's colour, [`object_colour`]) blends the object's colour over `image`,
/// so the object arrives with its anti-aliased edge on whatever background it lands on. Also
/// returns the pixels that changed.
pub fn paste_object(
    image: &RgbImage,
    source: &RgbImage,
    mask: &[bool],
    (dx, dy): (isize, isize),
) -> (RgbImage, Vec<bool>) {
    let (w, h) = (image.width() as isize, image.height() as isize);
    let mut out = image.clone();
    let mut changed = vec![false; (w * h) as usize];
    let Some(colour) = object_colour(source, mask) else {
        return (out, changed);
    };
    let (object, ground) = (colour.map(f32::from), border_colour(source).map(f32::from));
    let axis = [0, 1, 2].map(|c| object[c] - ground[c]);
    let length = axis.iter().map(|a| a * a).sum::<f32>();
    let sw = source.width() as usize;
    for i in (0..mask.len()).filter(|&i| mask[i]) {
        let (x, y) = ((i % sw) as isize + dx, (i / sw) as isize + dy);
        if !((0..w).contains(&x) && (0..h).contains(&y)) {
            continue;
        }
        let p = source
            .get_pixel((i % sw) as u32, (i / sw) as u32)
            .0
            .map(f32::from);
        let alpha = match length > 0.0 {
            true => {
                ((0..3).map(|c| (p[c] - ground[c]) * axis[c]).sum::<f32>() / length).clamp(0.0, 1.0)
            }
            false => 1.0,
        };
        let under = image.get_pixel(x as u32, y as u32).0;
        // The object's own contribution to p (p minus the ground showing through), over `under`.
        let blended = [0, 1, 2].map(|c| {
            (p[c] - (1.0 - alpha) * ground[c] + (1.0 - alpha) * f32::from(under[c]))
                .round()
                .clamp(0.0, 255.0) as u8
        });
        out.put_pixel(x as u32, y as u32, image::Rgb(blended));
        changed[(y * w + x) as usize] = blended != under;
    }
    (out, changed)
}

/// The per-channel median colour of `image`'s outermost pixels: the background of a picture of
/// objects on a plain ground.
pub fn border_colour(image: &RgbImage) -> [u8; 3] {
    let (w, h) = (image.width(), image.height());
    let border: Vec<[u8; 3]> = image
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| p.0)
        .collect();
    [0, 1, 2].map(|c| {
        let mut values: Vec<u8> = border.iter().map(|p| p[c]).collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied().unwrap_or(0)
    })
}

/// `image` with the object whose pixels are set in `mask` scaled by `factor` about `centre`
/// `(x, y)`: its pixels are cut out and the hole filled ([`fill_masked`]), then every pixel whose
/// preimage `centre + (q − centre) / factor` falls on the object takes the picture's colour
/// there (bilinearly interpolated). Also returns the pixels that changed (cut or drawn).
pub fn scale_pixels(
    image: &RgbImage,
    mask: &[bool],
    centre: (f32, f32),
    factor: f32,
) -> (RgbImage, Vec<bool>) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let holes: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
    let mut out = fill_masked(image, &holes);
    let mut changed = mask.to_vec();
    let (cx, cy) = centre;
    for (i, changed) in changed.iter_mut().enumerate() {
        let (qx, qy) = ((i % w) as f32, (i / w) as f32);
        let (px, py) = (cx + (qx - cx) / factor, cy + (qy - cy) / factor);
        let (nx, ny) = (px.round(), py.round());
        let on_object = (0.0..w as f32).contains(&nx)
            && (0.0..h as f32).contains(&ny)
            && mask[ny as usize * w + nx as usize];
        if on_object {
            out.put_pixel(qx as u32, qy as u32, bilinear(image, px, py));
            *changed = true;
        }
    }
    (out, changed)
}

/// `image`'s colour at `(x, y)`, bilinearly interpolated between its four nearest pixels
/// (clamped at the border).
fn bilinear(image: &RgbImage, x: f32, y: f32) -> image::Rgb<u8> {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (x, y) = (x.clamp(0.0, w - 1.0), y.clamp(0.0, h - 1.0));
    let (x0, y0) = (x.floor(), y.floor());
    let (x1, y1) = ((x0 + 1.0).min(w - 1.0), (y0 + 1.0).min(h - 1.0));
    let (fx, fy) = (x - x0, y - y0);
    let at = |x: f32, y: f32| image.get_pixel(x as u32, y as u32).0.map(f32::from);
    let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
    image::Rgb([0, 1, 2].map(|k| {
        let top = a[k] + (b[k] - a[k]) * fx;
        let bottom = c[k] + (d[k] - c[k]) * fx;
        (top + (bottom - top) * fy).round() as u8
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    const WHITE: Rgb<u8> = Rgb([240, 240, 240]);
    const RED: Rgb<u8> = Rgb([220, 30, 30]);

    /// A 32 × 32 picture on `WHITE` with a `RED` square at columns and rows `at..at + 6`.
    fn square_at(at: u32) -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| {
            if (at..at + 6).contains(&x) && (at..at + 6).contains(&y) {
                RED
            } else {
                WHITE
            }
        })
    }

    fn boxed([x0, y0, x1, y1]: PixelBox) -> Vec<f32> {
        (0..32 * 32)
            .map(|i| {
                f32::from(u8::from(
                    (x0..x1).contains(&(i % 32)) && (y0..y1).contains(&(i / 32)),
                ))
            })
            .collect()
    }

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

    #[test]
    fn object_pixels_are_the_object_grown_by_one_pixel_inside_its_box() {
        let picture = square_at(10);
        let pixels = object_pixels(&picture, [6, 6, 20, 20]);
        let set: Vec<usize> = (0..pixels.len()).filter(|&i| pixels[i]).collect();
        // The 6 × 6 square grown by one pixel: 8 × 8.
        assert_eq!(set.len(), 64);
        assert!(set
            .iter()
            .all(|&i| (9..17).contains(&(i % 32)) && (9..17).contains(&(i / 32))));
        assert_eq!(centroid(&pixels, 32), Some((12.5, 12.5)));
        // A flat box holds no object.
        assert!(!object_pixels(&picture, [20, 20, 30, 30]).contains(&true));
        assert_eq!(centroid(&[false; 4], 2), None);
    }

    #[test]
    fn moved_pixels_leave_background_behind_and_land_whole() {
        let picture = square_at(4);
        let pixels = object_pixels(&picture, [0, 0, 14, 14]);
        let (moved, changed) = move_pixels(&picture, &[(pixels, (12, 10))]);
        assert_eq!(moved, square_at_offset());
        // Changed: the 8 × 8 cut and the 8 × 8 paste, apart.
        assert_eq!(changed.iter().filter(|&&c| c).count(), 128);
    }

    #[test]
    fn recolouring_turns_the_object_and_only_it_to_the_new_colour() {
        const BLUE: [u8; 3] = [30, 60, 220];
        let picture = square_at(10);
        let pixels = object_pixels(&picture, [6, 6, 20, 20]);
        assert_eq!(object_colour(&picture, &pixels), Some(RED.0));
        let (recoloured, changed) = recolour_pixels(&picture, &pixels, BLUE);
        let expected = RgbImage::from_fn(32, 32, |x, y| match *square_at(10).get_pixel(x, y) {
            p if p == RED => Rgb(BLUE),
            p => p,
        });
        assert_eq!(recoloured, expected);
        // Only the 6 × 6 square changed (its grown edge is background: alpha 0).
        assert_eq!(changed.iter().filter(|&&c| c).count(), 36);
        // Nothing to recolour: the picture itself.
        assert_eq!(
            recolour_pixels(&picture, &[false; 32 * 32], BLUE).0,
            picture
        );
        assert_eq!(object_colour(&picture, &[false; 32 * 32]), None);
    }

    #[test]
    fn an_anti_aliased_edge_blends_the_new_colour_as_it_blended_the_old() {
        // A half-covered edge pixel, halfway between RED and WHITE.
        let mut picture = square_at(10);
        let half = Rgb([230, 135, 135]);
        picture.put_pixel(16, 12, half);
        let pixels = object_pixels(&picture, [6, 6, 20, 20]);
        let (recoloured, _) = recolour_pixels(&picture, &pixels, [40, 40, 240]);
        assert_eq!(*recoloured.get_pixel(16, 12), Rgb([140, 140, 240]));
    }

    #[test]
    fn scaling_grows_or_shrinks_the_object_about_its_centre() {
        // A 6 × 6 square at 10..16 (centre 12.5 in pixel-centre coordinates) scaled by 2 or
        // 0.5: its red cover (each pixel's share of RED against WHITE, read off the green
        // channel) is 36 × factor², centred where it was, on the filled background.
        let picture = square_at(10);
        let pixels = object_pixels(&picture, [6, 6, 20, 20]);
        let centre = centroid(&pixels, 32).unwrap();
        for factor in [2.0, 0.5] {
            let (scaled, changed) = scale_pixels(&picture, &pixels, centre, factor);
            let cover: Vec<(f32, f32, f32)> = scaled
                .enumerate_pixels()
                .map(|(x, y, p)| (x as f32, y as f32, (240.0 - f32::from(p.0[1])) / 210.0))
                .collect();
            let area: f32 = cover.iter().map(|c| c.2).sum();
            let expected = 36.0 * factor * factor;
            assert!(
                (area - expected).abs() < 0.1 * expected,
                "×{factor}: {area}"
            );
            let mean_x = cover.iter().map(|c| c.0 * c.2).sum::<f32>() / area;
            let mean_y = cover.iter().map(|c| c.1 * c.2).sum::<f32>() / area;
            assert!((mean_x - 12.5).abs() < 0.3 && (mean_y - 12.5).abs() < 0.3);
            // Outside the object's old and new pixels nothing changed.
            assert!(!changed[31 * 32 + 31] && changed[12 * 32 + 12]);
            assert_eq!(*scaled.get_pixel(31, 31), WHITE);
        }
    }

    #[test]
    fn the_foreground_splits_into_its_objects_largest_first() {
        let mut picture = square_at(4);
        for (x, y) in (20..23).flat_map(|x| (20..23).map(move |y| (x, y))) {
            picture.put_pixel(x, y, RED);
        }
        let parts = components(&foreground(&picture), 32);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| p.iter().filter(|&&s| s).count())
            .collect();
        // Each grown by one pixel: 8 × 8 and 5 × 5.
        assert_eq!(sizes, [64, 25]);
        assert!(parts[1][21 * 32 + 21] && !parts[1][5 * 32 + 5]);
        assert!(foreground(&square_at(40)).iter().all(|&s| !s));
        // Parts touching the picture's edges and corners.
        let mut edges = vec![false; 32 * 32];
        for i in [0, 1, 32, 31 * 32 + 31, 31 * 32 + 30, 16 * 32] {
            edges[i] = true;
        }
        let sizes: Vec<usize> = components(&edges, 32)
            .iter()
            .map(|p| p.iter().filter(|&&s| s).count())
            .collect();
        assert_eq!(sizes, [3, 2, 1]);
    }

    #[test]
    fn a_pasted_object_lands_whole_with_its_edge_blended_over_the_new_background() {
        // The red square of `square_at(4)` (on WHITE), one edge pixel half covered, pasted by
        // (12, 10) onto a blue-grey picture.
        let mut source = square_at(4);
        source.put_pixel(10, 6, Rgb([230, 135, 135]));
        let ground = Rgb([100, 120, 140]);
        let picture = RgbImage::from_pixel(32, 32, ground);
        let pixels = foreground(&source);
        let (pasted, changed) = paste_object(&picture, &source, &pixels, (12, 10));
        for (x, y) in (16..22).flat_map(|x| (14..20).map(move |y| (x, y))) {
            assert_eq!(*pasted.get_pixel(x, y), RED, "({x}, {y})");
        }
        // Half RED, half the new ground.
        assert_eq!(*pasted.get_pixel(22, 16), Rgb([160, 75, 85]));
        assert_eq!(*pasted.get_pixel(5, 5), ground);
        assert_eq!(changed.iter().filter(|&&c| c).count(), 37);
        assert_eq!(border_colour(&source), WHITE.0);
        // Nothing to paste: the picture itself.
        let none = paste_object(&picture, &source, &[false; 32 * 32], (0, 0));
        assert_eq!(none.0, picture);
    }

    #[test]
    fn the_best_match_has_the_references_colour_then_its_shape() {
        const BLUE: Rgb<u8> = Rgb([30, 60, 220]);
        // A red square (4..10), a red plus (20..26, thin arms) and a blue square (4..10 × 20..26).
        let picture = RgbImage::from_fn(32, 32, |x, y| {
            let plus = ((20..26).contains(&x) && (22..24).contains(&y))
                || ((22..24).contains(&x) && (20..26).contains(&y));
            match (x, y) {
                _ if (4..10).contains(&x) && (4..10).contains(&y) => RED,
                _ if (4..10).contains(&x) && (20..26).contains(&y) => BLUE,
                _ if plus => RED,
                _ => WHITE,
            }
        });
        let parts = || components(&foreground(&picture), 32);
        assert_eq!(parts().len(), 3);
        // A larger red square elsewhere matches the red square, not the plus nor the blue one.
        let reference = RgbImage::from_fn(32, 32, |x, y| {
            if (14..24).contains(&x) && (14..24).contains(&y) {
                RED
            } else {
                WHITE
            }
        });
        let found = best_match(&picture, parts(), (&reference, &foreground(&reference))).unwrap();
        assert!(found[6 * 32 + 6] && !found[22 * 32 + 22]);
        // A blue reference matches the blue square whatever its shape.
        let blue = RgbImage::from_fn(32, 32, |x, y| if x == 16 && y > 10 { BLUE } else { WHITE });
        let found = best_match(&picture, parts(), (&blue, &foreground(&blue))).unwrap();
        assert!(found[22 * 32 + 6]);
        assert!(best_match(&picture, Vec::new(), (&blue, &foreground(&blue))).is_none());
        // Alike shapes score high, others lower.
        let square = &parts()[0];
        assert!(shape_similarity(square, &foreground(&reference), 32) > 0.8);
        let plus = parts().into_iter().find(|p| p[22 * 32 + 22]).unwrap();
        assert!(shape_similarity(square, &plus, 32) < 0.7);
        assert!(plain_background(&picture));
        assert!(!plain_background(&RgbImage::from_fn(32, 32, |x, _| {
            if x % 2 == 0 {
                RED
            } else {
                WHITE
            }
        })));
    }

    /// `square_at(4)` moved by (12, 10).
    fn square_at_offset() -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| {
            if (16..22).contains(&x) && (14..20).contains(&y) {
                RED
            } else {
                WHITE
            }
        })
    }
}
