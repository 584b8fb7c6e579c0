//! Conversions between host images and model tensors.

use std::sync::Arc;

use burn::prelude::*;
use unilip_core::{ImageBatch, Value};

use crate::backend::{device, B};
use crate::models::preprocess::{normalize, RgbU8};
use crate::nodes::image_io::to_rgb8;

/// Vision-tower input: every image resized to `size × size` with PIL-style bicubic on 8-bit
/// pixels (as InternVL's processor), then ImageNet-normalised → `[n, 3, size, size]`.
pub fn pixel_values(img: &ImageBatch, size: usize) -> Tensor<B, 4> {
    let dev = device();
    let images: Vec<Tensor<B, 4>> = (0..img.n)
        .map(|i| {
            let rgb = image::imageops::resize(
                &to_rgb8(img, i),
                size as u32,
                size as u32,
                image::imageops::FilterType::CatmullRom,
            );
            RgbU8::from(rgb).to_tensor::<B>(&dev)
        })
        .collect();
    normalize(Tensor::cat(images, 0) / 255.0)
}

/// A `[n, 3, h, w]` tensor with values in [0, 1] as a host image batch.
pub fn image_value(x: Tensor<B, 4>) -> Value {
    let [n, _, h, w] = x.dims();
    let data = x
        .clamp(0.0, 1.0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default();
    Value::Image(Arc::new(ImageBatch { n, h, w, data }))
}
