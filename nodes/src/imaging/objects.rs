//! Finding objects in a picture on a plain ground: the pixels that stand out from the background,
//! their connected parts, their colour and their centre.

use image::RgbImage;

use super::{fill_masked, PixelBox};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::pictures::*;

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
}
