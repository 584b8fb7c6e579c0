//! Inpainting by latent blending for [`Unilip::sample`].

use burn::prelude::*;

#[cfg(doc)]
use crate::models::unilip::Unilip;
use crate::models::unilip::{Result, UnilipError};

/// Inpainting for [`Unilip::sample`], as latent blending does it (Avrahami et al. 2023, "Blended
/// Latent Diffusion"; diffusers' legacy inpainting): after every step the latent outside the
/// mask is replaced by `image` noised to the next step's level with the run's starting noise,
/// so the sampled part is drawn in the context of the kept one and the last step returns
/// `image` itself outside the mask.
#[derive(Debug, Clone)]
pub struct Inpaint<B: Backend> {
    /// Clean DiT latent `[b, C, h, w]` to keep.
    pub image: Tensor<B, 4>,
    /// `[b | 1, 1, h, w]`: 1 where the sampler draws, 0 where `image` is kept (values between
    /// blend).
    pub mask: Tensor<B, 4>,
}

impl<B: Backend> Inpaint<B> {
    /// `x` with `image` noised to `sigma` by `noise` where the mask is 0.
    pub(crate) fn blend(&self, x: Tensor<B, 4>, noise: &Tensor<B, 4>, sigma: f32) -> Tensor<B, 4> {
        let kept = self.image.clone().mul_scalar(1.0 - sigma) + noise.clone().mul_scalar(sigma);
        let keep = self.mask.clone().neg().add_scalar(1.0);
        x * self.mask.clone() + kept * keep
    }

    /// Itself when its shapes fit a latent of `dims`; otherwise an input error.
    pub(crate) fn checked(&self, dims: [usize; 4]) -> Result<&Self> {
        let [b, _, h, w] = dims;
        let [mb, mc, mh, mw] = self.mask.dims();
        if self.image.dims() != dims || !(mb == 1 || mb == b) || mc != 1 || [mh, mw] != [h, w] {
            return Err(UnilipError::Input(format!(
                "inpainting image {:?} and mask {:?} do not fit the sampled latent {dims:?} \
                 (mask [1 or {b}, 1, {h}, {w}])",
                self.image.dims(),
                self.mask.dims()
            )));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{device, B as T};
    use crate::models::scheduler::gaussian_noise;
    use crate::models::unilip::{Condition, SampleOptions, Unilip, UnilipConfig};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn inpainting_keeps_the_image_outside_the_mask_and_samples_inside() {
        let dev = device();
        let config = UnilipConfig::tiny();
        let channels = config.dit.caption_channels;
        let (model, _) = Unilip::<T>::random(config, 5, &dev).unwrap();
        let dit = &model.config.dit;
        let (c, s) = (dit.out_channels(), dit.sample_size);
        let image = gaussian_noise([1, c, s, s], &mut StdRng::seed_from_u64(1), &dev);
        // Sample the left half only.
        let half: Vec<f32> = (0..s * s)
            .map(|i| f32::from(u8::from(i % s < s / 2)))
            .collect();
        let mask = Tensor::<T, 1>::from_floats(half.as_slice(), &dev).reshape([1, 1, s, s]);
        let cond = Condition {
            embeds: Tensor::random([1, 3, channels], burn::tensor::Distribution::Default, &dev),
            mask: Tensor::ones([1, 3], &dev),
        };
        let sample = |seed: u64, inpaint: Option<Inpaint<T>>| {
            let opts = SampleOptions {
                steps: 3,
                inpaint,
                ..SampleOptions::unilip(seed)
            };
            model
                .sample(&cond, None, &opts, |_, _, _| Ok::<(), UnilipError>(()))
                .unwrap()
        };
        let keep = Inpaint {
            image: image.clone(),
            mask: mask.clone(),
        };
        let (a, b) = (sample(7, Some(keep.clone())), sample(8, Some(keep)));
        let right = |x: Tensor<T, 4>| x.narrow(3, s / 2, s - s / 2);
        let left = |x: Tensor<T, 4>| x.narrow(3, 0, s / 2);
        // Outside the mask: the image itself at the last step, whatever the noise.
        for out in [&a, &b] {
            let d = (right(out.clone()) - right(image.clone()))
                .abs()
                .max()
                .into_scalar();
            assert!(d < 1e-5, "kept part differs by {d}");
        }
        // Inside: sampled, so other noise draws something else.
        let d = (left(a) - left(b)).abs().max().into_scalar();
        assert!(d > 1e-2, "sampled part did not depend on the noise ({d})");
        // A mask of the wrong size is refused, naming both shapes.
        let wrong = Inpaint {
            image,
            mask: Tensor::ones([1, 1, s, s + 1], &dev),
        };
        let opts = SampleOptions {
            steps: 1,
            inpaint: Some(wrong),
            ..SampleOptions::unilip(0)
        };
        let err = model
            .sample(&cond, None, &opts, |_, _, _| Ok::<(), UnilipError>(()))
            .unwrap_err();
        assert!(
            matches!(&err, UnilipError::Input(m) if m.contains("mask") && m.contains("do not fit")),
            "{err}"
        );
    }
}
