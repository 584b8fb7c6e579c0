//! Image pre- and post-processing around the UniLIP vision tower and pixel decoder.
//!
//! Preprocessing follows the InternVL3 `GotOcr2ImageProcessor` (spec §1a/§1c): RGB u8 → bicubic
//! resize to the target size → ×1/255 → ImageNet mean/std → `[B, 3, H, W]`.
//!
//! Resize differences from PIL (what the processor uses): the resize here is Burn's bicubic
//! (PyTorch convolution, A = −0.75, `align_corners=False`, borders clamped) on the float image,
//! rounded back to the u8 grid like PIL's 8-bit output. PIL's bicubic uses A = −0.5 and, when
//! shrinking, widens the filter by the scale factor (antialiasing); Burn does not antialias. So
//! images that already have the target size are bit-exact, upscaling differs by a few grey
//! levels at edges, and strong downscaling can alias where PIL would blur.

use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::models::internvit::InputError;

/// ImageNet channel means (RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An 8-bit RGB image, row-major HWC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbU8 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height · width · 3` bytes.
    pub data: Vec<u8>,
}

impl RgbU8 {
    /// Wraps an HWC buffer, checking its length.
    pub fn new(height: usize, width: usize, data: Vec<u8>) -> Result<Self, InputError> {
        let expected = height * width * 3;
        if data.len() != expected || expected == 0 {
            return Err(InputError::Buffer {
                expected,
                found: data.len(),
                height,
                width,
            });
        }
        Ok(Self {
            height,
            width,
            data,
        })
    }

    /// `[1, 3, H, W]` with values 0..=255.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        let data: Vec<f32> = self.data.iter().map(|&v| v as f32).collect();
        Tensor::<B, 3>::from_data(TensorData::new(data, [self.height, self.width, 3]), device)
            .permute([2, 0, 1])
            .unsqueeze()
    }
}

impl From<image::RgbImage> for RgbU8 {
    fn from(img: image::RgbImage) -> Self {
        Self {
            height: img.height() as usize,
            width: img.width() as usize,
            data: img.into_raw(),
        }
    }
}

impl TryFrom<RgbU8> for image::RgbImage {
    type Error = InputError;

    fn try_from(img: RgbU8) -> Result<Self, InputError> {
        let (height, width, found) = (img.height, img.width, img.data.len());
        image::RgbImage::from_raw(width as u32, height as u32, img.data).ok_or(InputError::Buffer {
            expected: height * width * 3,
            found,
            height,
            width,
        })
    }
}

fn channel_consts<B: Backend>(v: [f32; 3], device: &B::Device) -> Tensor<B, 4> {
    Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [3]), device).reshape([1, 3, 1, 1])
}

/// Bicubic resize of a `[B, C, H, W]` image with values 0..=255 to `size = [h, w]`, rounded and
/// clamped to the u8 grid; identity when the size already matches (see the module docs).
pub fn resize_bicubic<B: Backend>(x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    let options = InterpolateOptions::new(InterpolateMode::Bicubic).with_align_corners(false);
    interpolate(x, size, options).round().clamp(0.0, 255.0)
}

/// ImageNet normalisation of `[B, 3, H, W]` values in [0, 1].
pub fn normalize<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = x.device();
    (x - channel_consts(IMAGENET_MEAN, &device)) / channel_consts(IMAGENET_STD, &device)
}

/// Inverse of [`normalize`]: back to [0, 1] (not clamped).
pub fn denormalize<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = x.device();
    x * channel_consts(IMAGENET_STD, &device) + channel_consts(IMAGENET_MEAN, &device)
}

/// Vision-tower input `[B, 3, h, w]` for `size = [h, w]`: each image is resized (bicubic),
/// scaled by 1/255 and ImageNet-normalised. Images may have different sizes.
pub fn preprocess<B: Backend>(
    images: &[RgbU8],
    size: [usize; 2],
    device: &B::Device,
) -> Result<Tensor<B, 4>, InputError> {
    if images.is_empty() {
        return Err(InputError::EmptyBatch);
    }
    let resized = images
        .iter()
        .map(|img| resize_bicubic(img.to_tensor::<B>(device), size))
        .collect();
    Ok(normalize(Tensor::cat(resized, 0) / 255.0))
}

/// Decoder output `[B, 3, H, W]` in [−1, 1] → u8 images: clamp, `(x + 1) / 2`, ×255, round half
/// to even (numpy `round`, as `numpy_to_pil`).
pub fn to_u8_images<B: Backend>(x: Tensor<B, 4>) -> Result<Vec<RgbU8>, InputError> {
    let [b, c, h, w] = x.dims();
    if c != 3 {
        return Err(InputError::Channels {
            expected: 3,
            found: c,
        });
    }
    let scaled = ((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0).round();
    let values = scaled
        .permute([0, 2, 3, 1])
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32");
    let per_image = h * w * 3;
    Ok((0..b)
        .map(|i| RgbU8 {
            height: h,
            width: w,
            data: values[i * per_image..(i + 1) * per_image]
                .iter()
                .map(|&v| v as u8)
                .collect(),
        })
        .collect())
}
