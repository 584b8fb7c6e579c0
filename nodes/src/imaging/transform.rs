//! Editing an object's pixels: moving, recolouring, pasting and scaling them, the holes they
//! leave filled from around them.

use image::RgbImage;

use super::{border_colour, fill_masked, object_colour};

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
        let alpha = coverage(p, b, from.map(f32::from));
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

/// How much of pixel `p` is the object's colour `object` over the ground colour `ground`: its
/// projection from `ground` onto `object`, clamped to 0–1 (1 where the two colours coincide).
fn coverage(p: [f32; 3], ground: [f32; 3], object: [f32; 3]) -> f32 {
    let axis = [0, 1, 2].map(|c| object[c] - ground[c]);
    let length = axis.iter().map(|a| a * a).sum::<f32>();
    match length > 0.0 {
        true => {
            ((0..3).map(|c| (p[c] - ground[c]) * axis[c]).sum::<f32>() / length).clamp(0.0, 1.0)
        }
        false => 1.0,
    }
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
        let alpha = coverage(p, ground, object);
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
    use image::Rgb;

    use super::*;
    use crate::imaging::pictures::*;
    use crate::imaging::{centroid, foreground, object_pixels};

    #[test]
    fn moved_pixels_leave_background_behind_and_land_whole() {
        let picture = square_at(4);
        let pixels = object_pixels(&picture, [0, 0, 14, 14]);
        let (moved, changed) = move_pixels(&picture, &[(pixels, (12, 10))]);
        assert_eq!(moved, square_at_offset());
        // Changed: the 8 × 8 cut and the 8 × 8 paste, apart.
        assert_eq!(changed.iter().filter(|&&c| c).count(), 128);
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
}
