//! Image batches as egui images: downscaled for thumbnails, full size for the viewer.

use egui::ColorImage;
use unilip_core::ImageBatch;

/// Image `index` of `img` as 8-bit RGB, nearest-neighbour downscaled so that its longest side
/// is at most `max_side` pixels (never upscaled). An empty batch or an index past its end gives
/// a black image of the batch's size.
pub fn color_image(img: &ImageBatch, index: usize, max_side: usize) -> ColorImage {
    let scale = (img.w.max(img.h) as f32 / max_side.max(1) as f32).max(1.0);
    let (tw, th) = (
        ((img.w as f32 / scale) as usize).max(1),
        ((img.h as f32 / scale) as usize).max(1),
    );
    let mut rgb = Vec::with_capacity(tw * th * 3);
    for y in 0..th {
        for x in 0..tw {
            let (sx, sy) = (
                ((x as f32 * scale) as usize).min(img.w.saturating_sub(1)),
                ((y as f32 * scale) as usize).min(img.h.saturating_sub(1)),
            );
            for c in 0..3 {
                let v = if index < img.n {
                    img.data[img.idx(index, c, sy, sx)]
                } else {
                    0.0
                };
                rgb.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
    ColorImage::from_rgb([tw, th], &rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_size_keeps_pixels_and_thumbnails_shrink() {
        let mut img = ImageBatch::zeros(2, 3, 4);
        let i = img.idx(1, 0, 2, 3);
        img.data[i] = 1.0;
        let full = color_image(&img, 1, usize::MAX);
        assert_eq!(full.size, [4, 3]);
        assert_eq!(full.pixels[2 * 4 + 3], egui::Color32::from_rgb(255, 0, 0));
        assert_eq!(
            color_image(&img, 0, usize::MAX).pixels[2 * 4 + 3],
            egui::Color32::BLACK
        );
        assert_eq!(color_image(&img, 1, 2).size, [2, 1]);
        assert_eq!(color_image(&img, 5, usize::MAX).size, [4, 3]);
        assert_eq!(color_image(&ImageBatch::zeros(0, 0, 0), 0, 8).size, [1, 1]);
    }
}
