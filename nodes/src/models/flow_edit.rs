//! FlowEdit (Kulikov et al. 2024, arXiv 2412.08629): inversion-free editing with a pre-trained
//! flow model. Instead of inverting the source to noise and sampling the target from there, it
//! integrates the *difference* of the DiT's velocities under the target and the source prompt,
//! each evaluated at the source noised to the current level and moved by the edit so far:
//!
//! ```text
//! z = x_src
//! for each step i from the first edited one (σ_i → σ_{i+1}):
//!     n ~ N(0, 1)
//!     z_src = (1 − σ_i)·x_src + σ_i·n
//!     z_tar = z + z_src − x_src
//!     z += (σ_{i+1} − σ_i)·(v(z_tar, c_tar) − v(z_src, c_src))      (each v with its own CFG)
//! ```
//!
//! Where the two prompts agree the velocities cancel and the source is kept; where they differ
//! (the object the edit names) the target prompt's velocity moves the latent. The source
//! prompt describes the source image, the target prompt the image wanted; both are ordinary
//! text-to-image conditions, so the edit goes through the path the DiT reads best.

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::models::regions::{regional_caption, stack_captions, MaskedCaption, RegionPrompt};
use crate::models::scheduler::{cfg as guide, gaussian_noise, Schedule};
use crate::models::tokenizer::{generation_negative, generation_prompt, Tokenizer};
use crate::models::unilip::{
    encode_prompts, euler_scheduler, steps_run, Condition, ConditionMode, Result, Unilip,
    UnilipError,
};

/// Settings of [`Unilip::flow_edit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FlowEditOptions {
    /// Euler steps of the whole schedule (σ from 1 to 0, shifted by the checkpoint's
    /// `flow_shift`).
    pub steps: usize,
    /// Fraction of the schedule that edits (FlowEdit's `n_max / T`): the edit starts at the
    /// noise level where the last `round_down(steps · strength)` steps begin. Higher changes
    /// more, including the layout; 0 returns the source.
    pub strength: f32,
    /// CFG scale of the source prompt's velocity.
    pub source_guidance: f32,
    /// CFG scale of the target prompt's velocity.
    pub guidance_scale: f32,
    /// Seed of the noise drawn at every step.
    pub seed: u64,
}

impl Default for FlowEditOptions {
    /// 20 steps, strength 0.6, CFG 3 for both prompts (the best of the settings tried on
    /// ShapesWorld edits with one-object prompt pairs; equal scales let everything the prompts
    /// share cancel), seed 0.
    fn default() -> Self {
        Self {
            steps: 20,
            strength: 0.6,
            source_guidance: 3.0,
            guidance_scale: 3.0,
            seed: 0,
        }
    }
}

/// The two prompts of an edit, each with the CFG negative it is guided against (one row each).
#[derive(Debug, Clone)]
pub struct EditPrompts<B: Backend> {
    /// Describes the source image (or the part of it the edit changes).
    pub source: Condition<B>,
    /// The source prompt's negative.
    pub source_negative: Condition<B>,
    /// Describes the image wanted (or the part the edit changes, as it should become).
    pub target: Condition<B>,
    /// The target prompt's negative.
    pub target_negative: Condition<B>,
}

impl<B: Backend> EditPrompts<B> {
    /// Text-to-image conditions of a `source` and a `target` caption (`None`: the
    /// unconditional prompt, e.g. nothing before an object is added), each guided against the
    /// text-to-image negative.
    pub fn from_captions(
        model: &Unilip<B>,
        tok: &Tokenizer,
        source: Option<&str>,
        target: Option<&str>,
        mode: ConditionMode,
        device: &B::Device,
    ) -> Result<Self> {
        let prompt =
            |caption: Option<&str>| caption.map_or_else(generation_negative, generation_prompt);
        let texts = [prompt(source), prompt(target), generation_negative()];
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (ids, mask) = encode_prompts::<B>(tok, &refs, device)?;
        let c = model.condition(ids, mask, None, mode)?;
        let negative = c.rows(2, 1)?;
        Ok(Self {
            source: c.rows(0, 1)?,
            source_negative: negative.clone(),
            target: c.rows(1, 1)?,
            target_negative: negative,
        })
    }
}

impl<B: Backend> Unilip<B> {
    /// FlowEdit from the clean DiT latent `source` `[1, C, h, w]` (see the module docs).
    /// `on_step(done, total, &latent)` is called after every edited step; an `Err` from it stops
    /// the edit and is returned. Returns the edited DiT latent.
    pub fn flow_edit<E: From<UnilipError>>(
        &self,
        source: Tensor<B, 4>,
        prompts: &EditPrompts<B>,
        opts: &FlowEditOptions,
        on_step: impl FnMut(usize, usize, &Tensor<B, 4>) -> std::result::Result<(), E>,
    ) -> std::result::Result<Tensor<B, 4>, E> {
        let captions = stacked_captions(prompts)?;
        self.flow_edit_captions(source, captions, opts, on_step)
    }

    /// [`Self::flow_edit`] with the DiT captions given: `[source negative; source; target
    /// negative; target]` `[4, l, c]` with their masks `[4, 1 | h·w, l]` (one per image token
    /// for regional prompts, e.g. [`moving_captions`]).
    pub fn flow_edit_captions<E: From<UnilipError>>(
        &self,
        source: Tensor<B, 4>,
        (caption, mask): MaskedCaption<B>,
        opts: &FlowEditOptions,
        mut on_step: impl FnMut(usize, usize, &Tensor<B, 4>) -> std::result::Result<(), E>,
    ) -> std::result::Result<Tensor<B, 4>, E> {
        let dit = self.dit.as_ref().ok_or(UnilipError::NotLoaded("dit"))?;
        let [batch, ..] = source.dims();
        if batch != 1 {
            return Err(UnilipError::Input(format!(
                "FlowEdit edits one latent at a time, got a batch of {batch}"
            ))
            .into());
        }
        let cfg = &self.config.scheduler;
        let scheduler = euler_scheduler(cfg, cfg.flow_shift, opts.steps)?;
        let Schedule { sigmas, timesteps } = scheduler.schedule();
        let run = steps_run(opts.steps, opts.strength);
        let first = opts.steps - run;
        let dev = source.device();
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let mut z = source.clone();
        for i in first..opts.steps {
            let (sigma, next) = (sigmas[i], sigmas[i + 1]);
            let noise = gaussian_noise(source.dims(), &mut rng, &dev);
            let z_src = source.clone().mul_scalar(1.0 - sigma) + noise.mul_scalar(sigma);
            let z_tar = z.clone() + z_src.clone() - source.clone();
            // Rows: [negative, source] at z_src, [negative, target] at z_tar.
            let x = Tensor::cat(vec![z_src.clone(), z_src, z_tar.clone(), z_tar], 0);
            let t = Tensor::from_data(TensorData::new(vec![timesteps[i]; 4], [4]), &dev);
            let v = dit.forward_token_masked(dit.input(x, None), t, caption.clone(), mask.clone());
            let row = |k: usize| v.clone().narrow(0, k, 1);
            let v_src = guide(row(0), row(1), opts.source_guidance);
            let v_tar = guide(row(2), row(3), opts.guidance_scale);
            z = z + (v_tar - v_src).mul_scalar(next - sigma);
            on_step(i + 1 - first, run, &z)?;
        }
        Ok(z)
    }
}

/// FlowEdit's captions for moving objects (regional prompts, as [`crate::models::regions`]):
/// on the source side each of `source`'s prompts is read only by the image tokens of its box,
/// on the target side each of `target`'s, every token also reading `negative`, which is each
/// side's CFG negative too. A move reads the object's caption over its box in `source` and
/// over the box it goes to in `target`; a swap reads two captions over two boxes, exchanged.
/// `grid` is the latent's `[h, w]`.
pub fn moving_captions<B: Backend>(
    negative: &Condition<B>,
    [source, target]: [&[RegionPrompt<B>]; 2],
    grid: [usize; 2],
) -> Result<MaskedCaption<B>> {
    let plain = regional_caption(negative, &[], grid)?;
    Ok(stack_captions(vec![
        plain.clone(),
        regional_caption(negative, source, grid)?,
        plain,
        regional_caption(negative, target, grid)?,
    ]))
}

/// `[source negative; source; target negative; target]` captions padded to one length, with
/// their masks `[4, 1, l]`.
fn stacked_captions<B: Backend>(prompts: &EditPrompts<B>) -> Result<MaskedCaption<B>> {
    let rows = [
        &prompts.source_negative,
        &prompts.source,
        &prompts.target_negative,
        &prompts.target,
    ];
    if let Some(c) = rows.iter().find(|c| c.batch() != 1) {
        return Err(UnilipError::Input(format!(
            "FlowEdit takes one-row prompts, got one with {} rows",
            c.batch()
        )));
    }
    Ok(stack_captions(
        rows.iter()
            .map(|c| (c.embeds.clone(), c.mask.clone().float().unsqueeze_dim(1)))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{device, B as T};
    use crate::models::unilip::UnilipConfig;

    fn prompt(len: usize, fill: f32, channels: usize) -> Condition<T> {
        let dev = device();
        Condition {
            embeds: Tensor::random(
                [1, len, channels],
                burn::tensor::Distribution::Normal(f64::from(fill), 1.0),
                &dev,
            ),
            mask: Tensor::ones([1, len], &dev),
        }
    }

    /// A random tiny model, a source latent, two prompts and a negative.
    struct Setup {
        model: Unilip<T>,
        source: Tensor<T, 4>,
        a: Condition<T>,
        b: Condition<T>,
        null: Condition<T>,
    }

    fn setup() -> Setup {
        let config = UnilipConfig::tiny();
        let channels = config.dit.caption_channels;
        let (model, _) = Unilip::<T>::random(config, 11, &device()).unwrap();
        let dit = &model.config.dit;
        let shape = [1, dit.out_channels(), dit.sample_size, dit.sample_size];
        let mut rng = StdRng::seed_from_u64(3);
        let source = gaussian_noise(shape, &mut rng, &device());
        Setup {
            model,
            source,
            a: prompt(3, 0.0, channels),
            b: prompt(5, 1.0, channels),
            null: prompt(2, -1.0, channels),
        }
    }

    impl Setup {
        /// `source` → `target`, each guided against the null prompt.
        fn pair(&self, source: &Condition<T>, target: &Condition<T>) -> EditPrompts<T> {
            EditPrompts {
                source: source.clone(),
                source_negative: self.null.clone(),
                target: target.clone(),
                target_negative: self.null.clone(),
            }
        }

        fn edit(
            &self,
            source: Tensor<T, 4>,
            prompts: &EditPrompts<T>,
            opts: &FlowEditOptions,
        ) -> Result<Tensor<T, 4>> {
            self.model
                .flow_edit(source, prompts, opts, |_, _, _| Ok::<(), UnilipError>(()))
        }

        /// How far `prompts` move the source at `strength`.
        fn change(&self, prompts: &EditPrompts<T>, strength: f32) -> f32 {
            let opts = FlowEditOptions {
                strength,
                ..FlowEditOptions::default()
            };
            let out = self.edit(self.source.clone(), prompts, &opts).unwrap();
            (out - self.source.clone()).abs().max().into_scalar()
        }
    }

    #[test]
    fn the_same_prompt_before_and_after_keeps_the_source() {
        // z starts at the source, so z_tar = z_src (up to rounding in z + z_src − x_src) and,
        // with equal prompts and scales, the two velocities agree: every step adds ~zero.
        let s = setup();
        let drift = s.change(&s.pair(&s.a, &s.a), 1.0);
        assert!(drift < 1e-4, "{drift}");
    }

    #[test]
    fn another_target_moves_the_latent_more_the_more_of_the_schedule_edits() {
        let s = setup();
        let prompts = s.pair(&s.a, &s.b);
        assert_eq!(s.change(&prompts, 0.0), 0.0, "strength 0 edits nothing");
        let (some, more) = (s.change(&prompts, 0.3), s.change(&prompts, 1.0));
        assert!(some > 1e-4, "{some}");
        assert!(more > some, "{more} vs {some}");
        // Steps and reports: 20 · 0.3 = 6 edited steps.
        let mut seen = Vec::new();
        let opts = FlowEditOptions {
            strength: 0.3,
            ..FlowEditOptions::default()
        };
        s.model
            .flow_edit(s.source.clone(), &prompts, &opts, |done, total, _| {
                seen.push((done, total));
                Ok::<(), UnilipError>(())
            })
            .unwrap();
        assert_eq!(seen, (1..=6).map(|d| (d, 6)).collect::<Vec<_>>());
    }

    #[test]
    fn moving_captions_read_each_prompt_in_its_own_box_and_a_box_to_itself_keeps_the_source() {
        use crate::models::regions::Area;
        let s = setup();
        let dit = &s.model.config.dit;
        let grid = [dit.sample_size, dit.sample_size];
        let (left, right) = (
            Area::from_edges([0.0, 0.0, 0.5, 1.0]),
            Area::from_edges([0.5, 0.0, 1.0, 1.0]),
        );
        let over = |area| {
            vec![RegionPrompt {
                cond: s.a.clone(),
                areas: vec![area],
                with_base: true,
            }]
        };
        let (caption, mask) = moving_captions(&s.null, [&over(left), &over(right)], grid).unwrap();
        // Null (2 tokens) then the region's prompt (3 tokens), for every image token.
        let [rows, tokens, len] = mask.dims();
        assert_eq!((rows, tokens, len), (4, grid[0] * grid[1], 5));
        assert_eq!(caption.dims()[0], 4);
        let m: Vec<f32> = mask.into_data().convert::<f32>().to_vec().unwrap();
        let reads = |row: usize, token: usize, k: usize| m[(row * tokens + token) * len + k] == 1.0;
        let left_token = 0; // column 0
        let right_token = grid[1] - 1; // last column of the first row
        for row in 0..4 {
            for token in [left_token, right_token] {
                assert!(
                    reads(row, token, 0) && reads(row, token, 1),
                    "the null prompt everywhere"
                );
            }
        }
        assert!(
            reads(1, left_token, 2) && !reads(1, right_token, 2),
            "source: its box"
        );
        assert!(
            reads(3, right_token, 2) && !reads(3, left_token, 2),
            "target: the other box"
        );
        for row in [0, 2] {
            assert!(
                !reads(row, left_token, 2) && !reads(row, right_token, 2),
                "negatives"
            );
        }
        // The object read over the same box on both sides: the velocities cancel.
        let same = moving_captions(&s.null, [&over(left), &over(left)], grid).unwrap();
        let opts = FlowEditOptions::default();
        let out = s
            .model
            .flow_edit_captions(s.source.clone(), same, &opts, |_, _, _| {
                Ok::<(), UnilipError>(())
            })
            .unwrap();
        let drift: f32 = (out - s.source.clone()).abs().max().into_scalar();
        assert!(drift < 1e-4, "{drift}");
    }

    #[test]
    fn a_batch_or_a_two_row_prompt_is_refused() {
        let s = setup();
        let opts = FlowEditOptions::default();
        let batch = Tensor::cat(vec![s.source.clone(), s.source.clone()], 0);
        let err = s.edit(batch, &s.pair(&s.a, &s.b), &opts).unwrap_err();
        assert!(err.to_string().contains("batch of 2"), "{err}");
        let two = Condition {
            embeds: Tensor::cat(vec![s.b.embeds.clone(), s.b.embeds.clone()], 0),
            mask: Tensor::cat(vec![s.b.mask.clone(), s.b.mask.clone()], 0),
        };
        let err = s
            .edit(s.source.clone(), &s.pair(&s.a, &two), &opts)
            .unwrap_err();
        assert!(err.to_string().contains("one-row prompts"), "{err}");
    }
}
