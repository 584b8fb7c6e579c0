//! Telling which part of a picture is a reference object: the same colour first, then the most
//! alike shape.

use image::RgbImage;

use super::{centroid, object_colour};

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

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;
    use crate::imaging::pictures::*;
    use crate::imaging::{components, foreground, plain_background};

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
}
