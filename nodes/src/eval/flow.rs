//! `--task flow`: how much the DiT uses its condition, read from its own training objective
//! rather than from samples. Every item's target latent is noised at fixed noise levels and the
//! DiT's flow-matching loss is compared under the item's own condition and under conditions that
//! lack part of it: another item's prompt and the negative prompt for text-to-image; another
//! item's source image and the negative instruction for editing. A DiT that ignores a part of
//! its condition has the same loss without it; the loss it saves is what that part tells it.
//! Prompts relating two groups ("three red circles left of a blue square") are also compared
//! with the same prompt with the relation reversed, with the two groups' colours swapped and
//! with their shapes swapped: what the DiT takes from the relation word and from which group
//! each colour and shape belongs to.

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{insert_with_standard_error, mean, Eval, Metrics};
use crate::backend::{device, B};
use crate::models::scheduler::{add_noise, gaussian_noise, velocity_target};
use crate::models::tokenizer::{
    edit_negative, edit_prompt, generation_negative, generation_prompt, Tokenizer,
};
use crate::models::unilip::{encode_prompts, Condition};
use crate::shapesworld::CaptionItem;

/// Noise levels σ of the comparison (`x_σ = (1 − σ)·x₀ + σ·ε`): layout is decided near 1,
/// shapes and edges near 0.
pub const FLOW_SIGMAS: [f32; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// Loss of each condition (rows) at each σ of [`FLOW_SIGMAS`] (columns), for one item.
type LossTable = Vec<[f64; FLOW_SIGMAS.len()]>;

/// Per-item losses of one family of conditions, the item's own first.
#[derive(Default)]
struct Comparison {
    items: Vec<LossTable>,
}

impl Comparison {
    /// Writes `<prefix>_loss` (own condition), and for each other condition `<name>`:
    /// `<prefix>_loss_<name>` and the paired saving `<prefix>_<gain>_delta` (its loss minus the
    /// own one, with its standard error), overall and at each σ (`…_sigma_0.9`).
    fn insert(&self, metrics: &mut Metrics, prefix: &str, others: &[(&str, &str)]) {
        let at = |row: usize, s: Option<usize>| -> Vec<f64> {
            self.items
                .iter()
                .map(|t| match s {
                    Some(s) => t[row][s],
                    None => mean(&t[row]),
                })
                .collect()
        };
        metrics.insert(format!("{prefix}_loss"), mean(&at(0, None)));
        for (k, s) in FLOW_SIGMAS.iter().enumerate() {
            metrics.insert(format!("{prefix}_loss_sigma_{s}"), mean(&at(0, Some(k))));
        }
        for (row, (name, gain)) in others.iter().enumerate().map(|(r, o)| (r + 1, o)) {
            let delta = |s| -> Vec<f64> {
                at(row, s)
                    .iter()
                    .zip(at(0, s))
                    .map(|(other, own)| other - own)
                    .collect()
            };
            metrics.insert(format!("{prefix}_loss_{name}"), mean(&at(row, None)));
            insert_with_standard_error(metrics, &format!("{prefix}_{gain}_delta"), &delta(None));
            for (k, s) in FLOW_SIGMAS.iter().enumerate() {
                metrics.insert(
                    format!("{prefix}_{gain}_delta_sigma_{s}"),
                    mean(&delta(Some(k))),
                );
            }
        }
    }
}

impl Eval<'_> {
    /// The flow-matching comparison over `n` caption items and `n` edit items.
    pub(super) fn flow(&mut self, tok: &Tokenizer) -> Result<Metrics, String> {
        let n_img = self
            .model
            .image_tokens(self.size, self.size)
            .map_err(|e| e.to_string())?;
        let (mut generation, mut editing) = (Comparison::default(), Comparison::default());
        let mut source_distance = Vec::new();
        for i in 0..self.opts.n {
            let item = self.generator.caption_item(i as u64);
            let other = self.generator.caption_item((i + self.opts.n) as u64);
            let prompts = [
                generation_prompt(&item.caption),
                generation_prompt(&other.caption),
                generation_negative(),
            ];
            let x0 = self.target(&self.features(&item.image)?)?;
            generation
                .items
                .push(self.losses(tok, &prompts, None, x0, i)?);

            let e = self.generator.edit_item(i as u64);
            let other = self.generator.edit_item((i + self.opts.n) as u64);
            let own = self.features(&e.source_image)?;
            let other = self.features(&other.source_image)?;
            let features = Tensor::cat(vec![own.clone(), other.clone(), own.clone()], 0);
            let prompts = [
                edit_prompt(&e.item.instruction, n_img),
                edit_prompt(&e.item.instruction, n_img),
                edit_negative(n_img),
            ];
            let x0 = self.target(&self.features(&e.target_image)?)?;
            let source = self.target(&own)?;
            let sources = Tensor::cat(
                vec![source.clone(), self.target(&other)?, source.clone()],
                0,
            );
            source_distance.push(f64::from(
                (x0.clone() - source)
                    .powi_scalar(2)
                    .mean()
                    .into_scalar()
                    .elem::<f32>(),
            ));
            editing
                .items
                .push(self.losses(tok, &prompts, Some((&features, &sources)), x0, i)?);
        }
        let mut metrics = Metrics::new();
        self.relation_items()
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let x0 = self.target(&self.features(&item.image)?)?;
                let style = self.generator.style();
                let prompts: Vec<String> = std::iter::once(item.spec)
                    .chain(item.spec.rearrangements())
                    .map(|spec| generation_prompt(&spec.caption_in(&style)))
                    .collect();
                self.losses(tok, &prompts, None, x0, i)
            })
            .collect::<Result<Vec<_>, String>>()
            .map(|items| Comparison { items })?
            .insert(
                &mut metrics,
                "flow_relation",
                &[
                    ("reversed", "relation"),
                    ("colours_swapped", "colour_binding"),
                    ("shapes_swapped", "shape_binding"),
                ],
            );
        generation.insert(
            &mut metrics,
            "flow",
            &[("other_prompt", "prompt"), ("unconditional", "condition")],
        );
        editing.insert(
            &mut metrics,
            "flow_edit",
            &[
                ("other_source", "source"),
                ("no_instruction", "instruction"),
            ],
        );
        // Copying the source, `v̂ = (x_σ − x_src) / σ`, misses by `(x₀ − x_src) / σ`: the loss of
        // a DiT that redraws the source unchanged.
        for s in FLOW_SIGMAS {
            metrics.insert(
                format!("flow_edit_loss_copy_source_sigma_{s}"),
                mean(&source_distance) / f64::from(s * s),
            );
        }
        Ok(metrics)
    }

    /// The first `n` caption items of the stream whose prompt relates two groups that differ in
    /// colour and in shape (so that swapping either changes the prompt).
    fn relation_items(&self) -> Vec<CaptionItem> {
        (0..)
            .map(|i| self.generator.caption_item(i))
            .filter(|item| {
                let first = item.spec.first;
                item.spec
                    .second
                    .is_some_and(|r| r.group.colour != first.colour && r.group.shape != first.shape)
            })
            .take(self.opts.n)
            .collect()
    }

    /// The DiT target of an image's features: its UniLIP latent, shifted and scaled.
    pub(super) fn target(&self, features: &Tensor<B, 3>) -> Result<Tensor<B, 4>, String> {
        let grid = self
            .model
            .vision
            .as_ref()
            .ok_or("the checkpoint has no vision tower")?
            .feature_grid(self.size, self.size);
        let latent = self
            .model
            .features_to_latent(features.clone(), grid)
            .map_err(|e| e.to_string())?;
        Ok(self.model.scale(latent))
    }

    fn features(&self, img: &image::RgbImage) -> Result<Tensor<B, 3>, String> {
        self.model
            .image_features(self.pixels(img)?)
            .map_err(|e| e.to_string())
    }

    /// The loss of `x0` under each prompt's condition at each σ, with one noise draw (seeded by
    /// the stream seed and `index`) shared by all of them. For editing, `source` holds each
    /// prompt's source image: its features (in the condition) and its DiT latent (beside the
    /// noisy latent, for a DiT that takes it).
    fn losses(
        &self,
        tok: &Tokenizer,
        prompts: &[String],
        source: Option<(&Tensor<B, 3>, &Tensor<B, 4>)>,
        x0: Tensor<B, 4>,
        index: usize,
    ) -> Result<LossTable, String> {
        let features = source.map(|(f, _)| f);
        let dev = device();
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let (ids, mask) = encode_prompts::<B>(tok, &texts, &dev).map_err(|e| e.to_string())?;
        let cond = self
            .model
            .condition(ids, mask, features, self.opts.condition)
            .map_err(|e| e.to_string())?;
        let dit = self.model.dit.as_ref().ok_or("the checkpoint has no DiT")?;
        let levels = FLOW_SIGMAS.len();
        let [_, c, h, w] = x0.dims();
        let mut rng = StdRng::seed_from_u64(self.opts.seed.wrapping_add(index as u64));
        let noise = gaussian_noise::<B, 4, _>([1, c, h, w], &mut rng, &dev).repeat_dim(0, levels);
        let x0 = x0.repeat_dim(0, levels);
        let sigmas = Tensor::<B, 1>::from_floats(FLOW_SIGMAS.as_slice(), &dev);
        let timesteps = sigmas.clone().mul_scalar(self.train_timesteps());
        let xt = add_noise(x0.clone(), noise.clone(), sigmas);
        let target = velocity_target(x0, noise);
        (0..prompts.len())
            .map(|k| {
                let Condition { embeds, mask } = cond.rows(k, 1).map_err(|e| e.to_string())?;
                let source = source.map(|(_, l)| l.clone().narrow(0, k, 1).repeat_dim(0, levels));
                let v = dit.forward(
                    dit.input(xt.clone(), source.as_ref()),
                    timesteps.clone(),
                    embeds.repeat_dim(0, levels),
                    mask.float().repeat_dim(0, levels),
                );
                let per_level: Vec<f32> = (v - target.clone())
                    .powi_scalar(2)
                    .reshape([levels, c * h * w])
                    .mean_dim(1)
                    .into_data()
                    .convert::<f32>()
                    .to_vec()
                    .map_err(|e| format!("{e:?}"))?;
                let mut row = [0.0; FLOW_SIGMAS.len()];
                for (r, l) in row.iter_mut().zip(per_level) {
                    *r = f64::from(l);
                }
                Ok(row)
            })
            .collect()
    }

    /// `num_train_timesteps`: the DiT's timestep of σ is `σ · N`.
    fn train_timesteps(&self) -> f32 {
        self.model.config.scheduler.num_train_timesteps as f32
    }
}
