//! Antialiased rasterisation of scenes.

use image::{Rgb, RgbImage};

use super::scene::{Object, Scene};

/// Subsamples per pixel side (4 × 4 supersampling).
const SUPERSAMPLE: u32 = 4;

/// Renders `scene` to a `resolution × resolution` RGB image: the style's background,
/// then every object in its style colour, with each pixel's colour blended by the
/// fraction of its 4 × 4 subsamples covered by the shape.
pub fn render(scene: &Scene) -> RgbImage {
    let background = scene.style.background();
    let mut image = RgbImage::from_pixel(scene.resolution, scene.resolution, Rgb(background));
    for object in &scene.objects {
        draw(
            &mut image,
            object,
            scene.style.rgb(object.colour),
            scene.resolution,
        );
    }
    image
}

/// Blends one object into `image`.
fn draw(image: &mut RgbImage, object: &Object, rgb: [u8; 3], resolution: u32) {
    if image.width() == 0 || image.height() == 0 {
        return;
    }
    let radius = object.radius(resolution);
    let reach = object.bounding_radius(resolution) + 1.0;
    let clamp = |v: f32| (v.max(0.0) as u32).min(resolution - 1);
    let (x0, x1) = (clamp(object.cx - reach), clamp(object.cx + reach));
    let (y0, y1) = (clamp(object.cy - reach), clamp(object.cy + reach));
    for y in y0..=y1 {
        for x in x0..=x1 {
            let coverage = coverage(object, radius, x, y);
            if coverage > 0.0 {
                let pixel = image.get_pixel_mut(x, y);
                for (channel, target) in pixel.0.iter_mut().zip(rgb) {
                    let blended = *channel as f32 * (1.0 - coverage) + target as f32 * coverage;
                    *channel = blended.round() as u8;
                }
            }
        }
    }
}

/// Fraction of pixel `(x, y)` covered by `object`.
fn coverage(object: &Object, radius: f32, x: u32, y: u32) -> f32 {
    let step = 1.0 / SUPERSAMPLE as f32;
    let mut hits = 0u32;
    for sy in 0..SUPERSAMPLE {
        for sx in 0..SUPERSAMPLE {
            let px = x as f32 + (sx as f32 + 0.5) * step;
            let py = y as f32 + (sy as f32 + 0.5) * step;
            if object
                .shape
                .contains(px - object.cx, py - object.cy, radius)
            {
                hits += 1;
            }
        }
    }
    hits as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32
}
