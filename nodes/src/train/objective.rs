//! The forward pass of each training task, returning one scalar per loss term.
//!
//! * [`Task::Encoder`] (spec §3.1): image → vision tower → `mlp1` → latent head → DC-AE decoder;
//!   pixel losses against the input, perceptual and self-distillation losses against the frozen
//!   original vision tower.
//! * [`Task::Generate`] / [`Task::Edit`] (spec §2.8, §3.2): the prompt (with the source image's
//!   features for editing; edit data may mix in caption samples, trained as text-to-image)
//!   → LLM → queries/connector → projector is the condition; the target image's
//!   UniLIP latent, shifted and scaled (`unilip_shift`, `unilip_factor`), is noised at logit-normal timesteps and the DiT regresses
//!   `ε − x0`. Captions are dropped to the null prompt with probability `caption_dropout`, so
//!   classifier-free guidance works at inference.
//! * [`Task::Understand`]: InternVL's chat prompt with the image, next-token cross-entropy on the
//!   answer (VQA) or the caption (captioning) followed by `<|im_end|>`.

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::RngExt;

use super::data::{image_batch, DatasetKind, Sample};
use super::loss::{feature_distance, l1, mse, token_cross_entropy, LossKind, LossTerm};
use super::TrainError;
use crate::backend::TrainB;
use crate::models::internvit::InternVlVision;
use crate::models::preprocess::normalize;
use crate::models::regions::{token_mask, Area, MaskedCaption};
use crate::models::scheduler::{
    add_noise, gaussian_noise, velocity_target, FlowMatchEulerConfig, FlowMatchEulerScheduler,
};
use crate::models::teacher_forcing::{TextBatch, TextTensors};
use crate::models::tokenizer::{
    edit_negative, edit_prompt, generation_negative, generation_prompt, understanding_prompt,
    Tokenizer,
};
use crate::models::unilip::{
    encode_prompts, resize_bilinear, ComponentSet, Condition, ConditionMode, Unilip, UnilipError,
};
use crate::shapesworld::SceneSpec;
use crate::unidiff::embed::{image_embeddings, text_embeddings};
use crate::unidiff::{info_nce_scaled, rsc_loss, RscMode};

/// The question asked for captioning samples in understanding training.
pub const CAPTION_QUESTION: &str = "Describe the image.";

/// What a training run optimises, decided by its loss terms and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Reconstruction through the UniLIP encoder and pixel decoder.
    Encoder,
    /// Text-to-image flow matching.
    Generate,
    /// Editing flow matching.
    Edit,
    /// Captioning / VQA with the MLLM.
    Understand,
    /// UniDiff: ITC and RSC, with flow matching as IS, on caption data.
    Unidiff,
}

impl Task {
    /// The task of `losses` on data of `kind`, or why they do not fit together.
    pub fn infer(losses: &[LossTerm], kind: DatasetKind) -> Result<Self, TrainError> {
        let setup = |m: String| Err(TrainError::Setup(m));
        if losses.is_empty() {
            return setup("no loss terms: connect a loss node to the trainer".into());
        }
        let encoder = losses.iter().all(|t| t.kind.is_encoder());
        let flow = losses.iter().all(|t| t.kind.is_flow());
        let text = losses.iter().all(|t| t.kind == LossKind::Text);
        let unidiff = losses.iter().any(|t| t.kind.is_unidiff())
            && losses
                .iter()
                .all(|t| t.kind.is_unidiff() || matches!(t.kind, LossKind::FlowMatching { .. }));
        if unidiff {
            return match kind {
                DatasetKind::Captions => Ok(Self::Unidiff),
                other => setup(format!(
                    "UniDiff's ITC/RSC terms need image–caption pairs, got {other:?} data"
                )),
            };
        }
        match (encoder, flow, text, kind) {
            (true, _, _, _) => Ok(Self::Encoder),
            (_, true, _, DatasetKind::Captions) => Ok(Self::Generate),
            (_, true, _, DatasetKind::Edits) => Ok(Self::Edit),
            (_, true, _, DatasetKind::Vqa) => {
                setup("flow matching needs captions or edit triplets, got VQA data".into())
            }
            (_, _, true, DatasetKind::Edits) => {
                setup("the text loss needs captions or VQA data, got edit triplets".into())
            }
            (_, _, true, _) => Ok(Self::Understand),
            _ => setup(format!(
                "loss terms [{}] mix tasks: reconstruction losses (mse, l1, perceptual, distill), \
                 flow matching (alone or with UniDiff's itc/rsc) and the text loss each train a \
                 different model path",
                losses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The components a run of this task loads.
    pub fn components(self) -> ComponentSet {
        match self {
            Self::Encoder => ComponentSet::RECONSTRUCTION,
            Self::Generate | Self::Edit => ComponentSet::EDITING,
            Self::Understand => ComponentSet::UNDERSTANDING,
            Self::Unidiff => ComponentSet {
                lm_head: false,
                ..ComponentSet::ALL
            },
        }
    }

    /// Whether the run needs `tokenizer.json`.
    pub fn needs_tokenizer(self) -> bool {
        self != Self::Encoder
    }
}

/// Frozen helpers and settings of the objective.
pub struct Objective<'a> {
    /// The task.
    pub task: Task,
    /// The weighted terms.
    pub terms: &'a [LossTerm],
    /// The frozen original model (its vision tower for the perceptual and distillation losses;
    /// with the latent head, UniDiff's DiT targets while the ViT trains).
    pub teacher: Option<&'a Unilip<TrainB>>,
    /// The tokenizer (every task but the encoder).
    pub tokenizer: Option<&'a Tokenizer>,
    /// Probability of replacing a caption / instruction by the null prompt.
    pub caption_dropout: f64,
    /// Which LLM outputs condition the DiT.
    pub condition_mode: ConditionMode,
    /// Training timesteps (flow-matching tables, shift 1).
    pub scheduler: FlowMatchEulerScheduler,
}

impl<'a> Objective<'a> {
    /// The objective of `task` with `terms`.
    pub fn new(task: Task, terms: &'a [LossTerm]) -> Result<Self, TrainError> {
        let scheduler = FlowMatchEulerScheduler::new(FlowMatchEulerConfig::default())
            .map_err(|e| TrainError::Setup(e.to_string()))?;
        Ok(Self {
            task,
            terms,
            teacher: None,
            tokenizer: None,
            caption_dropout: 0.0,
            condition_mode: ConditionMode::Dual,
            scheduler,
        })
    }

    /// One scalar per term (unweighted), in the order of `terms`.
    pub fn losses(
        &self,
        model: &Unilip<TrainB>,
        samples: &[Sample],
        rng: &mut StdRng,
    ) -> Result<Vec<Tensor<TrainB, 1>>, TrainError> {
        match self.task {
            Task::Encoder => self.encoder(model, samples),
            Task::Generate | Task::Edit => self.flow_matching(model, samples, rng),
            Task::Understand => self.understand(model, samples),
            Task::Unidiff => self.unidiff(model, samples, rng),
        }
    }

    fn teacher(&self) -> Result<&InternVlVision<TrainB>, TrainError> {
        self.teacher
            .and_then(|t| t.vision.as_ref())
            .ok_or_else(|| TrainError::Setup("the frozen vision tower was not loaded".into()))
    }

    fn tokenizer(&self) -> Result<&Tokenizer, TrainError> {
        self.tokenizer
            .ok_or_else(|| TrainError::Setup("the checkpoint has no tokenizer.json".into()))
    }

    fn encoder(
        &self,
        model: &Unilip<TrainB>,
        samples: &[Sample],
    ) -> Result<Vec<Tensor<TrainB, 1>>, TrainError> {
        let size = input_size(model);
        let dev = crate::backend::device();
        let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let x = image_batch::<TrainB>(&images, size, &dev);
        let pixels = normalize(x.clone());
        let features = model.image_features(pixels.clone())?;
        let grid = vision(model)?.feature_grid(size, size);
        let decoded = model.decode_latent(model.features_to_latent(features.clone(), grid)?)?;
        let [_, _, h, w] = decoded.dims();
        let recon = (decoded + 1.0) / 2.0;
        let target = resize_bilinear(x, [h, w]);
        self.terms
            .iter()
            .map(|term| match term.kind {
                LossKind::PixelMse => Ok(mse(recon.clone(), target.clone())),
                LossKind::PixelL1 => Ok(l1(recon.clone(), target.clone())),
                LossKind::Perceptual => {
                    let tower = &self.teacher()?.vision_tower;
                    let recon_in = normalize(resize_bilinear(recon.clone(), [size, size]));
                    let a = tower.layer_outputs(recon_in).map_err(UnilipError::from)?;
                    let b = tower
                        .layer_outputs(pixels.clone())
                        .map_err(UnilipError::from)?;
                    Ok(feature_distance(&a, &b))
                }
                LossKind::Distill => {
                    let t = self
                        .teacher()?
                        .image_features(pixels.clone())
                        .map_err(UnilipError::from)?;
                    Ok(mse(features.clone(), t.detach()))
                }
                _ => Err(TrainError::Setup(format!(
                    "loss `{}` does not apply to encoder training",
                    term.kind.name()
                ))),
            })
            .collect()
    }

    fn flow_matching(
        &self,
        model: &Unilip<TrainB>,
        samples: &[Sample],
        rng: &mut StdRng,
    ) -> Result<Vec<Tensor<TrainB, 1>>, TrainError> {
        let size = input_size(model);
        let dev = crate::backend::device();
        let targets: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let x0 = target_latent(model, image_batch(&targets, size, &dev))?;
        // Editing data may carry caption samples (no source, trained as text-to-image): their
        // rows get the target's features, which their prompts have no image tokens to receive.
        let source_features = if samples.iter().any(|s| s.source.is_some()) {
            let sources: Vec<_> = samples
                .iter()
                .map(|s| s.source.as_ref().unwrap_or(&s.image))
                .collect();
            let f = model.image_features(normalize(image_batch(&sources, size, &dev)))?;
            Some(f.detach())
        } else {
            None
        };
        let source_latent = match &source_features {
            Some(features) => source_latent(model, samples, features, size)?,
            None => None,
        };
        let source = DitSource {
            features: source_features.as_ref(),
            latent: source_latent.as_ref(),
        };
        let pass = self.dit_pass(model, x0, source, samples, rng)?;
        self.terms
            .iter()
            .map(|term| match term.kind {
                LossKind::FlowMatching { .. } => {
                    Ok(mse(pass.velocity.clone(), pass.target.clone()))
                }
                LossKind::PromptContrast { margin } => {
                    self.prompt_contrast(model, samples, &pass, margin, rng)
                }
                _ => Err(TrainError::Setup(format!(
                    "loss `{}` does not apply to generation/editing training",
                    term.kind.name()
                ))),
            })
            .collect()
    }

    /// One DiT training pass on `x0`: the (possibly dropped) prompts as the condition, unit noise,
    /// logit-normal timesteps of the flow-matching term (N(0, 1) without one), and the hidden
    /// states of the RSC term's tap block when there is one.
    fn dit_pass(
        &self,
        model: &Unilip<TrainB>,
        x0: Tensor<TrainB, 4>,
        source: DitSource<'_>,
        samples: &[Sample],
        rng: &mut StdRng,
    ) -> Result<DitPass, TrainError> {
        let tok = self.tokenizer()?;
        let dev = crate::backend::device();
        let b = samples.len();
        let n_img = model
            .image_tokens(input_size(model), input_size(model))
            .unwrap_or(0);
        let dropped: Vec<bool> = samples
            .iter()
            .map(|_| rng.random::<f64>() < self.caption_dropout)
            .collect();
        let prompts: Vec<String> = samples
            .iter()
            .zip(&dropped)
            .map(|(s, &drop)| match (s.source.is_some(), drop) {
                (true, true) => edit_negative(n_img),
                (true, false) => edit_prompt(&s.text, n_img),
                (false, true) => generation_negative(),
                (false, false) => generation_prompt(&s.text),
            })
            .collect();
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let (ids, mask) = encode_prompts::<TrainB>(tok, &texts, &dev)?;
        let cond = model.condition(ids, mask, source.features, self.condition_mode)?;
        let [_, c, h, w] = x0.dims();
        let patch = model.config.dit.patch_size.max(1);
        let regional =
            self.grounded_caption(model, samples, &dropped, &cond, [h / patch, w / patch])?;
        let noise = gaussian_noise::<TrainB, 4, _>([b, c, h, w], rng, &dev);
        let (logit_mean, logit_std) = self
            .terms
            .iter()
            .find_map(|t| match t.kind {
                LossKind::FlowMatching {
                    logit_mean,
                    logit_std,
                } => Some((logit_mean, logit_std)),
                _ => None,
            })
            .unwrap_or((0.0, 1.0));
        let tap = self.terms.iter().find_map(|t| match t.kind {
            LossKind::Rsc { tap_block, .. } => Some(tap_block),
            _ => None,
        });
        let dit = model.dit.as_ref().ok_or(UnilipError::NotLoaded("dit"))?;
        if let Some(block) = tap.filter(|&k| k >= model.config.dit.num_layers) {
            return Err(TrainError::Setup(format!(
                "rsc tap_block {block} does not exist: the DiT has {} blocks (0-based)",
                model.config.dit.num_layers
            )));
        }
        let t = self
            .scheduler
            .sample_training(b, logit_mean, logit_std, rng);
        let sigmas = Tensor::from_data(TensorData::new(t.sigmas, [b]), &dev);
        let timesteps = Tensor::from_data(TensorData::new(t.timesteps.clone(), [b]), &dev);
        let xt = add_noise(x0.clone(), noise.clone(), sigmas);
        let input = dit.input(xt, source.latent);
        let (velocity, tapped) = match regional {
            Some(_) if tap.is_some() => {
                return Err(TrainError::Setup(
                    "regional captions (data `regions`) and the rsc loss do not combine".into(),
                ))
            }
            Some(_)
                if self
                    .terms
                    .iter()
                    .any(|t| matches!(t.kind, LossKind::PromptContrast { .. })) =>
            {
                return Err(TrainError::Setup(
                    "regional captions (data `regions`) and loss.prompt_contrast do not combine: \
                     the rearranged captions have no regions"
                        .into(),
                ))
            }
            Some((caption, mask)) => (
                dit.forward_token_masked(input.clone(), timesteps.clone(), caption, mask),
                None,
            ),
            None => dit.forward_tapped(
                input.clone(),
                timesteps.clone(),
                cond.embeds,
                cond.mask.float(),
                tap,
            ),
        };
        Ok(DitPass {
            velocity,
            target: velocity_target(x0, noise),
            tapped,
            timesteps: t.timesteps,
            input,
            timestep_tensor: timesteps,
            dropped,
        })
    }

    /// The DiT caption and per-image-token mask when some kept caption of `samples` comes with
    /// regions ([`crate::train::data::Sample::regions`]): the base condition `cond`, read by every
    /// image token, followed by one condition per region slot, read by the tokens of that
    /// region alone (regional prompting with the base, as `--regions with-base` samples).
    /// `None` when no row has regions.
    fn grounded_caption(
        &self,
        model: &Unilip<TrainB>,
        samples: &[Sample],
        dropped: &[bool],
        cond: &Condition<TrainB>,
        grid: [usize; 2],
    ) -> Result<Option<MaskedCaption<TrainB>>, TrainError> {
        let kept = |s: &Sample, dropped: bool| !dropped && s.source.is_none();
        let slots = samples
            .iter()
            .zip(dropped)
            .filter(|(s, &d)| kept(s, d))
            .map(|(s, _)| s.regions.len())
            .max()
            .unwrap_or(0);
        if slots == 0 {
            return Ok(None);
        }
        let dev = crate::backend::device();
        let tokens = grid[0] * grid[1];
        let base_mask = cond.mask.clone().float().unsqueeze_dim::<3>(1);
        let mut embeds = vec![cond.embeds.clone()];
        let mut masks = vec![base_mask.repeat_dim(1, tokens)];
        for slot in 0..slots {
            let mut prompts = Vec::with_capacity(samples.len());
            let mut reads = Vec::with_capacity(samples.len());
            for (s, &d) in samples.iter().zip(dropped) {
                match s.regions.get(slot).filter(|_| kept(s, d)) {
                    Some(r) => {
                        let area = Area::from_edges(r.edges);
                        area.validate()
                            .map_err(|e| TrainError::Setup(format!("`{}`: {e}", s.text)))?;
                        prompts.push(generation_prompt(&r.caption));
                        reads.push(area.covers(grid));
                    }
                    None => {
                        prompts.push(generation_negative());
                        reads.push(vec![false; tokens]);
                    }
                }
            }
            let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let (ids, mask) = encode_prompts::<TrainB>(self.tokenizer()?, &texts, &dev)?;
            let region = model.condition(ids, mask, None, self.condition_mode)?;
            masks.push(token_mask(&region.mask, &reads, &dev));
            embeds.push(region.embeds);
        }
        Ok(Some((Tensor::cat(embeds, 1), Tensor::cat(masks, 2))))
    }

    /// [`LossKind::PromptContrast`] on `pass`: the rows whose (kept) caption parses as a
    /// ShapesWorld spec relating two groups are run again under one of its rearrangements,
    /// chosen at random, at the same noisy latent and timestep.
    fn prompt_contrast(
        &self,
        model: &Unilip<TrainB>,
        samples: &[Sample],
        pass: &DitPass,
        margin: f64,
        rng: &mut StdRng,
    ) -> Result<Tensor<TrainB, 1>, TrainError> {
        let dev = crate::backend::device();
        let (rows, prompts): (Vec<i64>, Vec<String>) = samples
            .iter()
            .zip(&pass.dropped)
            .enumerate()
            .filter(|(_, (s, &dropped))| s.source.is_none() && !dropped)
            .filter_map(|(i, (s, _))| {
                let spec = SceneSpec::parse(&s.text).ok()?;
                let other: Vec<SceneSpec> = spec
                    .rearrangements()
                    .into_iter()
                    .filter(|r| *r != spec)
                    .collect();
                let chosen = other.choose(rng)?;
                Some((i as i64, generation_prompt(&chosen.caption())))
            })
            .unzip();
        if rows.is_empty() {
            // No caption to rearrange in this micro-batch: a zero that keeps the graph.
            return Ok(pass.velocity.clone().sum().mul_scalar(0.0));
        }
        let n = rows.len();
        let rows = Tensor::<TrainB, 1, Int>::from_data(TensorData::new(rows, [n]), &dev);
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let (ids, mask) = encode_prompts::<TrainB>(self.tokenizer()?, &texts, &dev)?;
        let cond = model.condition(ids, mask, None, self.condition_mode)?;
        let dit = model.dit.as_ref().ok_or(UnilipError::NotLoaded("dit"))?;
        let rearranged = dit.forward(
            pass.input.clone().select(0, rows.clone()),
            pass.timestep_tensor.clone().select(0, rows.clone()),
            cond.embeds,
            cond.mask.float(),
        );
        let target = pass.target.clone().select(0, rows.clone());
        let per_row = |v: Tensor<TrainB, 4>| {
            (v - target.clone())
                .powi_scalar(2)
                .flatten::<2>(1, 3)
                .mean_dim(1)
                .squeeze_dim::<1>(1)
        };
        let own = per_row(pass.velocity.clone().select(0, rows));
        let gap = per_row(rearranged) - own;
        Ok(gap.neg().add_scalar(margin).clamp_min(0.0).mean())
    }

    /// UniDiff: `L = Σ wᵢ·termᵢ` over ITC (image vs caption embeddings), IS (flow matching) and
    /// RSC (DiT tap vs image embedding), all on the same batch.
    fn unidiff(
        &self,
        model: &Unilip<TrainB>,
        samples: &[Sample],
        rng: &mut StdRng,
    ) -> Result<Vec<Tensor<TrainB, 1>>, TrainError> {
        let heads = model
            .unidiff
            .as_ref()
            .ok_or(UnilipError::NotLoaded("unidiff heads"))?;
        let size = input_size(model);
        let dev = crate::backend::device();
        let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let x = image_batch::<TrainB>(&images, size, &dev);
        let image_emb = image_embeddings(model, normalize(x.clone()))?;
        let needs_text = self.terms.iter().any(|t| {
            matches!(
                t.kind,
                LossKind::Itc { .. }
                    | LossKind::Rsc {
                        mode: RscMode::TextAnchored,
                        ..
                    }
            )
        });
        let text_emb = if needs_text {
            let captions: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
            let (ids, mask) = encode_prompts::<TrainB>(self.tokenizer()?, &captions, &dev)?;
            Some(text_embeddings(model, ids, mask)?)
        } else {
            None
        };
        let pass = if self.terms.iter().any(|t| t.kind.uses_dit()) {
            // The DiT's target stays the original encoder's latent when the ViT is trained.
            let x0 = target_latent(self.teacher.unwrap_or(model), x)?;
            Some(self.dit_pass(model, x0, DitSource::default(), samples, rng)?)
        } else {
            None
        };
        let missing = |what: &str| TrainError::Setup(format!("internal: no {what} computed"));
        self.terms
            .iter()
            .map(|term| match term.kind {
                LossKind::FlowMatching { .. } => {
                    let p = pass.as_ref().ok_or_else(|| missing("DiT pass"))?;
                    Ok(mse(p.velocity.clone(), p.target.clone()))
                }
                LossKind::Itc { .. } => Ok(info_nce_scaled(
                    image_emb.clone(),
                    text_emb.clone().ok_or_else(|| missing("text embedding"))?,
                    heads.scale(),
                )),
                LossKind::Rsc {
                    mode,
                    t_max,
                    temperature,
                    ..
                } => {
                    let p = pass.as_ref().ok_or_else(|| missing("DiT pass"))?;
                    let tapped = p.tapped.clone().ok_or_else(|| missing("DiT tap"))?;
                    let w = heads.dit_embedding(tapped);
                    let keep: Vec<i64> = (0..samples.len() as i64)
                        .filter(|&i| f64::from(p.timesteps[i as usize]) <= t_max)
                        .collect();
                    if keep.len() < 2 {
                        // No pair to compare at this noise level: a zero that keeps the graph.
                        return Ok(w.sum().mul_scalar(0.0));
                    }
                    let n = keep.len();
                    let idx = Tensor::<TrainB, 1, Int>::from_data(TensorData::new(keep, [n]), &dev);
                    rsc_loss(
                        w.select(0, idx.clone()),
                        image_emb.clone().select(0, idx.clone()),
                        text_emb.clone().map(|t| t.select(0, idx)),
                        mode,
                        temperature as f32,
                    )
                    .map_err(TrainError::Setup)
                }
                _ => Err(TrainError::Setup(format!(
                    "loss `{}` does not apply to UniDiff training",
                    term.kind.name()
                ))),
            })
            .collect()
    }

    fn understand(
        &self,
        model: &Unilip<TrainB>,
        samples: &[Sample],
    ) -> Result<Vec<Tensor<TrainB, 1>>, TrainError> {
        let tok = self.tokenizer()?;
        let size = input_size(model);
        let dev = crate::backend::device();
        let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let features = model.image_features(normalize(image_batch(&images, size, &dev)))?;
        let n_img = model.image_tokens(size, size)?;
        let special = tok.special();
        let rows = samples
            .iter()
            .map(|s| {
                let (question, answer) = match &s.answer {
                    Some(a) => (s.text.as_str(), a.as_str()),
                    None => (CAPTION_QUESTION, s.text.as_str()),
                };
                let prompt = tok.encode(&understanding_prompt(question, n_img, None))?;
                let mut answer_ids = tok.encode(answer)?;
                answer_ids.push(special.im_end);
                Ok((prompt, answer_ids))
            })
            .collect::<Result<Vec<_>, crate::models::tokenizer::TokenizerError>>()
            .map_err(UnilipError::from)?;
        let TextTensors {
            inputs: input_ids,
            mask,
            targets,
            weights,
        } = TextBatch::new(&rows, special.endoftext).tensors(&dev);
        let embeds = model.embed_prompt(input_ids, Some(&features))?;
        let hidden = model.llm_hidden(embeds, mask)?;
        let llm = model
            .language_model
            .as_ref()
            .ok_or(UnilipError::NotLoaded("llm"))?;
        let logits = llm.logits(hidden).map_err(UnilipError::from)?;
        self.terms
            .iter()
            .map(|term| match term.kind {
                LossKind::Text => Ok(token_cross_entropy(
                    logits.clone(),
                    targets.clone(),
                    weights.clone(),
                )),
                _ => Err(TrainError::Setup(format!(
                    "loss `{}` does not apply to understanding training",
                    term.kind.name()
                ))),
            })
            .collect()
    }
}

/// The outputs of one DiT training pass.
struct DitPass {
    velocity: Tensor<TrainB, 4>,
    target: Tensor<TrainB, 4>,
    tapped: Option<Tensor<TrainB, 3>>,
    timesteps: Vec<f32>,
    /// The DiT's input (noisy latent, and the source beside it for a DiT that takes one).
    input: Tensor<TrainB, 4>,
    timestep_tensor: Tensor<TrainB, 1>,
    /// Which rows had their prompt replaced by the null prompt.
    dropped: Vec<bool>,
}

fn vision(model: &Unilip<TrainB>) -> Result<&InternVlVision<TrainB>, TrainError> {
    Ok(model
        .vision
        .as_ref()
        .ok_or(UnilipError::NotLoaded("vision"))?)
}

/// The vision tower's square input size.
pub fn input_size(model: &Unilip<TrainB>) -> usize {
    model.config.vision.vision_config.image_size.hw()[0]
}

/// What a DiT pass sees of the edit source, per row: its features (at the prompt's image
/// tokens) and its DiT latent (beside the noisy latent, for a DiT that takes one).
#[derive(Clone, Copy, Default)]
struct DitSource<'a> {
    features: Option<&'a Tensor<TrainB, 3>>,
    latent: Option<&'a Tensor<TrainB, 4>>,
}

/// For a DiT that takes the source beside the noisy latent
/// ([`crate::models::sana::SanaConfig::takes_source`]): the DiT latent of each row's source
/// `features` (`[b, n, c]`, from `size`² inputs) for edit rows, zeros for caption rows
/// (text-to-image, as sampled without a source). `None` for UniLIP's DiT.
fn source_latent(
    model: &Unilip<TrainB>,
    samples: &[Sample],
    features: &Tensor<TrainB, 3>,
    size: usize,
) -> Result<Option<Tensor<TrainB, 4>>, TrainError> {
    if !model.config.dit.takes_source() {
        return Ok(None);
    }
    let dev = crate::backend::device();
    let grid = vision(model)?.feature_grid(size, size);
    let latent = model.scale(model.features_to_latent(features.clone(), grid)?);
    let keep: Vec<f32> = samples
        .iter()
        .map(|s| f32::from(u8::from(s.source.is_some())))
        .collect();
    let keep =
        Tensor::<TrainB, 1>::from_floats(keep.as_slice(), &dev).reshape([samples.len(), 1, 1, 1]);
    Ok(Some(latent.detach() * keep))
}

/// The DiT target `x0`: the (frozen) UniLIP latent of `images`, shifted and scaled
/// ([`Unilip::scale`]), detached.
fn target_latent(
    model: &Unilip<TrainB>,
    images: Tensor<TrainB, 4>,
) -> Result<Tensor<TrainB, 4>, TrainError> {
    Ok(model
        .scale(model.encode_latent(normalize(images))?)
        .detach())
}
