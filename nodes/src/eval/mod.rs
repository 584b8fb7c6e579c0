//! ShapesWorld evaluation of a checkpoint (`unilip eval shapesworld`): reconstruction PSNR/SSIM,
//! a GenEval-like generation score, an edit score and VQA accuracy, all measured by the
//! deterministic scorer of [`crate::shapesworld`] on the validation split. With
//! [`EvalOptions::dump`] every item's images and scores are written too ([`dump`]).

pub mod dump;
mod flow;
mod flow_edit;

pub use flow::FLOW_SIGMAS;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

use crate::backend::{device, B};
use crate::models::compose::DrawOptions;
use crate::models::edit_object::picture_of;
use crate::models::preprocess::{preprocess, RgbU8};
use crate::models::qwen2::{GenerationConfig, Sampling};
use crate::models::regions::{caption_regions, RegionLayout, RegionPlan, RegionPrompt};
use crate::models::scheduler::gaussian_noise;
use crate::models::tokenizer::{
    edit_negative, edit_prompt, generation_negative, generation_prompt, Tokenizer,
};
use crate::models::unilip::{
    encode_prompts, ComponentSet, ConditionMode, InitLatent, SampleOptions, Unilip,
};
use crate::probe::{feature_position_share, ObjectProbes, TokenGrid};
use crate::shapesworld::verify::spec_questions;
use crate::shapesworld::{
    detect, edit_score, geneval_objects, geneval_score, psnr, recover_objects, ssim,
    vqa_answer_correct, CaptionItem, Detection, Domain, GenConfig, GenEvalResult, Generator,
    Object, ObjectRecovery, SceneSpec, Shape, Split, VqaQuestion,
};
use dump::{detected, Dump};

/// What to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalTask {
    /// Encoder → decoder reconstruction: `psnr_db`, `ssim`, and `recon_geneval(_checks)`, the
    /// GenEval-like score of the reconstruction against its caption (the ceiling for generation).
    Recon,
    /// Text-to-image: `geneval` (fraction of prompts fully correct), `geneval_checks`, and
    /// `geneval_one_group` / `geneval_two_groups` (with `…_items`): `geneval` over the prompts
    /// naming one group and over those relating two ("A left of B").
    Generate,
    /// Editing: `edit` (mean score), `edit_change_made`, `edit_preserved`, and two graded
    /// pixel measures that move before the strict score does: `edit_target_psnr_db` (output
    /// against the ground-truth target) and `edit_source_psnr_db` (against the source: high when
    /// the source is kept, as every edit but the changed object should be). Each item's PSNR is
    /// capped at 100 dB, so an exact copy does not make the mean infinite.
    Edit,
    /// Linear probes of the image features (the LLM's image embeddings and the latent head's
    /// input) at each object's token of `n` validation scenes: `probe_shape`, `probe_colour`,
    /// `probe_size`, `probe_row`, `probe_column`, and `probe_shape_neighbourhood` (the 3 × 3
    /// tokens around it, zero outside the grid), each with `<name>_majority`, the accuracy of
    /// always answering the most common class. Held-out accuracy (the last 20 % of the objects).
    /// Also `feature_position_share`: how much the features of a blank background vary with token
    /// position alone (see [`feature_position_share`]).
    Probe,
    /// Understanding: `vqa_accuracy`, and `vqa_<kind>` per question kind (count, colour, …) with
    /// `vqa_<kind>_items`, how many of the `n` items were of that kind (relation questions are
    /// rare, so their accuracy rests on few items); likewise `vqa_objects_<k>` per number of
    /// objects in the scene (a model that answers from the scene as a whole, without finding
    /// the object asked about, does well on one-object scenes only).
    Vqa,
    /// How much the DiT uses its condition: its flow-matching loss on `n` caption items and `n`
    /// edit items at the noise levels [`FLOW_SIGMAS`], under the item's own condition
    /// (`flow_loss`, `flow_edit_loss`) and under conditions missing a part of it. Text-to-image:
    /// another item's prompt (`flow_loss_other_prompt`) and the negative prompt
    /// (`flow_loss_unconditional`); editing: another item's source image
    /// (`flow_edit_loss_other_source`) and the negative instruction
    /// (`flow_edit_loss_no_instruction`). The paired differences `flow_prompt_delta`,
    /// `flow_condition_delta`, `flow_edit_source_delta` and `flow_edit_instruction_delta` (with
    /// `_se`, and per noise level as `…_sigma_<σ>`) are what each part saves: near zero when the
    /// DiT ignores it. On the first `n` prompts relating two groups that differ in colour and
    /// shape, the prompt rearranged ([`crate::shapesworld::SceneSpec::rearrangements`]):
    /// `flow_relation_relation_delta` (relation reversed), `flow_relation_colour_binding_delta`
    /// and `flow_relation_shape_binding_delta` (the groups' colours, shapes swapped).
    Flow,
}

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The task.
    pub task: EvalTask,
    /// Number of validation items.
    pub n: usize,
    /// Seed of the validation stream (and, plus the item index, of the sampling noise).
    pub seed: u64,
    /// ShapesWorld domain.
    pub domain: Domain,
    /// Sampler steps (generation, editing).
    pub steps: usize,
    /// CFG scale (generation, editing).
    pub guidance: f32,
    /// Highest noise level σ that is guided (generation, editing; see
    /// [`SampleOptions::guidance_max_sigma`]).
    pub guidance_max_sigma: f32,
    /// DiT condition (generation, editing).
    pub condition: ConditionMode,
    /// Sampler timestep shift instead of the checkpoint scheduler's `flow_shift` (generation,
    /// editing; `unilip.dit_denoise`'s `flow_shift`).
    pub flow_shift: Option<f32>,
    /// Editing only: how the edit is made.
    pub edit_method: EditMethod,
    /// Editing only: the fraction of the schedule that edits. [`EditMethod::Unilip`]: below 1,
    /// sampling starts from the source image's latent noised to this fraction of the schedule
    /// ([`InitLatent::Noised`], SDEdit) instead of from pure noise. [`EditMethod::FlowEdit`]:
    /// [`FlowEditOptions::strength`].
    pub strength: f32,
    /// Generation only: sample this many candidates per prompt (the first with the plain
    /// seed) and keep the one the model's own understanding rates best: the summed
    /// log-probability of the right answers to the prompt's questions
    /// ([`crate::shapesworld::verify`]), asked of each candidate. 1 is the plain sampler.
    pub best_of: usize,
    /// Generation only: draw each object of the prompt's planned layout alone and paste it at
    /// its place ([`Unilip::compose`], what `graphs/compose.ron` does) instead of sampling the
    /// scene.
    pub compose: bool,
    /// Reconstruction only: the standard deviation of Gaussian noise added to each latent, in
    /// the DiT's units (its sampler starts from unit noise), before the pixel decoder: how
    /// robust the decoder is to latents that are slightly off, as a DiT's samples are. 0 is
    /// the plain reconstruction.
    pub latent_noise: f32,
    /// Editing only: edit items of these kinds alone
    /// ([`EDIT_KIND_NAMES`](crate::shapesworld::EDIT_KIND_NAMES); empty: every kind,
    /// as the validation stream draws them). Item `i` is then the `i`-th of those kinds
    /// ([`Generator::edit_item_of_kinds`]).
    pub edit_kinds: Vec<&'static str>,
    /// Generation only: regional prompting ([`crate::models::regions`]). With regions, each
    /// region's own caption is read in cross-attention by the tokens of its box (alone, or
    /// beside the whole prompt); [`EvalOptions::layout`] says where the regions go.
    pub regions: RegionMode,
    /// Generation with regions only: one region per group of a two-group prompt, or one per
    /// object of a layout the planner draws for every prompt (from each candidate's noise seed).
    pub layout: RegionLayout,
    /// Directory for per-item images and records (`items.jsonl`, `metrics.json`); not for
    /// [`EvalTask::Probe`], whose items are objects, not images.
    pub dump: Option<PathBuf>,
}

impl EvalOptions {
    /// `n` items of `task` with UniLIP's sampler defaults (20 DPM-Solver++ steps, CFG 4.5 at
    /// every step).
    pub fn new(task: EvalTask, n: usize) -> Self {
        Self {
            task,
            n,
            seed: 0,
            domain: Domain::Default,
            steps: 20,
            guidance: 4.5,
            guidance_max_sigma: 1.0,
            condition: ConditionMode::Dual,
            flow_shift: None,
            edit_method: EditMethod::Unilip,
            strength: 1.0,
            best_of: 1,
            compose: false,
            latent_noise: 0.0,
            edit_kinds: Vec::new(),
            regions: RegionMode::Off,
            layout: RegionLayout::Groups,
            dump: None,
        }
    }
}

/// How `--task edit` edits ([`EvalOptions::edit_method`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EditMethod {
    /// UniLIP's: the DiT samples the edited image under the condition of the source image and
    /// the instruction.
    #[default]
    Unilip,
    /// FlowEdit ([`crate::models::flow_edit`]) between the one-object prompts the instruction
    /// is rewritten into ([`crate::shapesworld::EditKind::prompt_pair`], what `unilip.edit_prompts` does), with the
    /// CFG scale for both prompts, on an Euler schedule with the checkpoint's flow shift (or
    /// `flow_shift`; `guidance_max_sigma` does not apply). Moves and swaps, which no such pair
    /// describes, return the source (their change is never made).
    FlowEdit,
    /// [`EditMethod::FlowEdit`], then the source kept outside the edited object: the cells
    /// where the edit is located ([`crate::models::locate`]; the source's caption on the
    /// source's latent, or for an add the target's on the edited latent, told apart from the
    /// same object in every other colour, [`crate::shapesworld::EditKind::contrast_pair`]) take the edited
    /// pixels, every other pixel the source's. Moves and swaps are made too
    /// ([`crate::models::relocate`]: FlowEdit between the objects' captions read over their
    /// located boxes and over the boxes they go to, at their own strength and CFG), pasted
    /// over every box.
    FlowEditLocated,
    /// Each kind of edit by its own operation at the object the DiT locates
    /// ([`crate::models::edit_object`], what `unilip.edit_object` and `graphs/edit_object.ron`
    /// do): the object's pixels painted the colour the DiT draws the new colour in for
    /// recolour, scaled about their centre for resize, filled from around them for
    /// remove, the new object sampled in the emptiest box for add (the rest of the latent kept
    /// by inpainting), the objects' pixels cut and pasted for move and swap.
    ByKind,
}

/// Regional prompting of two-group prompts in `--task generate` ([`EvalOptions::regions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegionMode {
    /// The whole prompt everywhere (UniLIP).
    #[default]
    Off,
    /// Each group's half reads that group's caption alone.
    Own,
    /// Each group's half reads that group's caption and the whole prompt.
    WithBase,
}

/// Seed offset between the candidates of one prompt ([`EvalOptions::best_of`]): far above any
/// item index, so no candidate reuses another item's noise.
const CANDIDATE_SEED_STRIDE: u64 = 1 << 32;

/// One sampled image for a prompt, with its scores ([`EvalOptions::best_of`]).
struct Candidate {
    image: RgbImage,
    /// The log-probability of each expected answer (empty when nothing is chosen).
    answers: Vec<f64>,
    /// Their sum: what the choice maximises.
    rating: f64,
    geneval: GenEvalResult,
}

/// Per-item PSNR cap of the edit metrics (an exact copy would be infinite).
const MAX_PSNR_DB: f64 = 100.0;

/// Metric name → value. The headline metrics (`psnr_db`, `recon_geneval_checks`, `geneval`,
/// `geneval_checks`, `edit`, `vqa_accuracy`) come with their standard error, `<name>_se`.
pub type Metrics = BTreeMap<String, f64>;

/// Evaluates the checkpoint in `dir`.
pub fn eval_shapesworld(dir: &Path, opts: &EvalOptions) -> Result<Metrics, String> {
    let dump = match (&opts.dump, opts.task) {
        (Some(_), EvalTask::Probe | EvalTask::Flow) => {
            return Err(
                "--dump applies to recon, generate, edit and vqa, not probe or flow".to_string(),
            )
        }
        (Some(d), _) => Some(Dump::create(d)?),
        (None, _) => None,
    };
    if opts.latent_noise != 0.0 && opts.task != EvalTask::Recon {
        return Err("--latent-noise perturbs reconstructions: only for --task recon".into());
    }
    if !(opts.latent_noise >= 0.0 && opts.latent_noise.is_finite()) {
        return Err(format!(
            "--latent-noise {}: must be a non-negative number",
            opts.latent_noise
        ));
    }
    if opts.regions != RegionMode::Off && opts.task != EvalTask::Generate {
        return Err("--regions places a prompt's groups: only for --task generate".into());
    }
    if opts.layout != RegionLayout::Groups && opts.regions == RegionMode::Off {
        return Err(format!(
            "--layout {} places regions: give --regions own or with-base",
            opts.layout.name()
        ));
    }
    if opts.best_of > 1 && opts.task != EvalTask::Generate {
        return Err(
            "--best-of chooses among generated candidates: only for --task generate".into(),
        );
    }
    if opts.compose && opts.task != EvalTask::Generate {
        return Err("--compose draws a prompt's objects: only for --task generate".into());
    }
    let components = match opts.task {
        EvalTask::Recon => ComponentSet::RECONSTRUCTION,
        // Choosing among candidates asks the understanding half too.
        EvalTask::Generate if opts.best_of > 1 => ComponentSet {
            vision: true,
            lm_head: true,
            ..ComponentSet::GENERATION
        },
        EvalTask::Generate => ComponentSet::GENERATION,
        EvalTask::Edit | EvalTask::Flow => ComponentSet::EDITING,
        EvalTask::Vqa => ComponentSet::UNDERSTANDING,
        EvalTask::Probe => ComponentSet::VISION,
    };
    let mut model = Unilip::<B>::load(dir, components, &device()).map_err(|e| e.to_string())?;
    if let Some(shift) = opts.flow_shift {
        if !(shift > 0.0 && shift.is_finite()) {
            return Err(format!("--flow-shift {shift}: must be a positive number"));
        }
        model.config.scheduler.flow_shift = f64::from(shift);
    }
    let size = model.config.vision.vision_config.image_size.hw()[0];
    let generator = Generator::new(GenConfig {
        resolution: size as u32,
        seed: opts.seed,
        split: Split::Val,
        domain: opts.domain,
    })
    .map_err(|e| e.to_string())?;
    let tokenizer = || Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| e.to_string());
    let mut eval = Eval {
        model: &model,
        generator: &generator,
        opts,
        size,
        dump,
    };
    let metrics = match opts.task {
        EvalTask::Recon => eval.recon(),
        EvalTask::Generate => eval.generate(&tokenizer()?),
        EvalTask::Edit => eval.edit(&tokenizer()?),
        EvalTask::Vqa => eval.vqa(&tokenizer()?),
        EvalTask::Probe => eval.probe(),
        EvalTask::Flow => eval.flow(&tokenizer()?),
    }?;
    if let Some(dump) = eval.dump {
        dump.finish(&metrics)?;
    }
    Ok(metrics)
}

struct Eval<'a> {
    model: &'a Unilip<B>,
    generator: &'a Generator,
    opts: &'a EvalOptions,
    size: usize,
    dump: Option<Dump>,
}

fn rgb(img: &RgbImage) -> RgbU8 {
    RgbU8 {
        height: img.height() as usize,
        width: img.width() as usize,
        data: img.as_raw().clone(),
    }
}

/// `[1, 3, h, w]` in [0, 1] → an 8-bit image.
fn to_rgb_image(x: Tensor<B, 4>) -> Result<RgbImage, String> {
    picture_of(x).map_err(|e| e.to_string())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Suffix of a metric's standard error.
pub const STANDARD_ERROR_SUFFIX: &str = "_se";

/// Inserts `name` (the mean of the per-item `values`) and `name_se`, its standard error
/// (sample standard deviation / √n; left out below two items), so a difference between two
/// evaluations can be judged against the noise of the items drawn.
fn insert_with_standard_error(metrics: &mut Metrics, name: &str, values: &[f64]) {
    let m = mean(values);
    metrics.insert(name.to_string(), m);
    let n = values.len();
    if n >= 2 {
        let variance = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        metrics.insert(
            format!("{name}{STANDARD_ERROR_SUFFIX}"),
            (variance / n as f64).sqrt(),
        );
    }
}

/// What a reconstruction kept of the scene's objects: `recon_objects_found` (an object of the
/// right colour in place), `recon_shapes_kept` (and its right shape, with standard error), and
/// `recon_shape_<shape>` with `recon_shape_<shape>_items` for each shape in the scenes.
fn insert_recovery(metrics: &mut Metrics, objects: &[ObjectRecovery]) {
    let flag = |f: fn(&ObjectRecovery) -> bool| move |o: &ObjectRecovery| f64::from(u8::from(f(o)));
    let found: Vec<f64> = objects.iter().map(flag(|o| o.found)).collect();
    let kept: Vec<f64> = objects.iter().map(flag(|o| o.shape_kept)).collect();
    metrics.insert("recon_objects_found".into(), mean(&found));
    insert_with_standard_error(metrics, "recon_shapes_kept", &kept);
    for shape in Shape::ALL {
        let of_shape: Vec<f64> = objects
            .iter()
            .filter(|o| o.object.shape == shape)
            .map(flag(|o| o.shape_kept))
            .collect();
        if !of_shape.is_empty() {
            let name = format!("recon_shape_{}", shape.name());
            metrics.insert(format!("{name}_items"), of_shape.len() as f64);
            metrics.insert(name, mean(&of_shape));
        }
    }
}

impl Eval<'_> {
    fn pixels(&self, img: &RgbImage) -> Result<Tensor<B, 4>, String> {
        preprocess(&[rgb(img)], [self.size, self.size], &device()).map_err(|e| e.to_string())
    }

    fn sample(&self, index: usize) -> SampleOptions<B> {
        let mut s = SampleOptions::unilip(self.opts.seed.wrapping_add(index as u64));
        s.steps = self.opts.steps;
        s.guidance_scale = self.opts.guidance;
        s.guidance_max_sigma = self.opts.guidance_max_sigma;
        s
    }

    /// [`Self::sample`], starting from the source's latent when `strength` is below 1, and with
    /// the source's latent beside the noisy one for a DiT that takes it.
    fn edit_sample(&self, index: usize, source: &Tensor<B, 3>) -> Result<SampleOptions<B>, String> {
        let mut s = self.sample(index);
        let takes_source = self.model.config.dit.takes_source();
        if self.opts.strength < 1.0 || takes_source {
            let image = self.target(source)?;
            if takes_source {
                s.source = Some(image.clone());
            }
            if self.opts.strength < 1.0 {
                let noise = self.model.initial_latent(1, &s.init, &device());
                s.init = InitLatent::Noised {
                    image,
                    noise: noise.map_err(|e| e.to_string())?,
                    strength: self.opts.strength,
                };
            }
        }
        Ok(s)
    }

    /// Encoder → decoder on `image`, with [`EvalOptions::latent_noise`] added to the DiT latent
    /// (noise seeded by the stream seed plus `index`).
    fn reconstruct(&self, image: &RgbImage, index: usize) -> Result<Tensor<B, 4>, String> {
        let m = self.model;
        let latent = m
            .encode_latent(self.pixels(image)?)
            .map_err(|e| e.to_string())?;
        let latent = if self.opts.latent_noise > 0.0 {
            let mut rng = StdRng::seed_from_u64(self.opts.seed.wrapping_add(index as u64));
            let noise = gaussian_noise(latent.dims(), &mut rng, &device());
            m.unscale(m.scale(latent) + noise.mul_scalar(self.opts.latent_noise))
        } else {
            latent
        };
        m.decode_latent(latent).map_err(|e| e.to_string())
    }

    fn recon(&mut self) -> Result<Metrics, String> {
        let style = self.generator.style();
        let (mut p, mut s) = (Vec::new(), Vec::new());
        let (mut correct, mut checks, mut colours) = (Vec::new(), Vec::new(), Vec::new());
        let mut objects = Vec::new();
        for i in 0..self.opts.n {
            let item = self.generator.caption_item(i as u64);
            let decoded = self.reconstruct(&item.image, i)?;
            let out = to_rgb_image(self.model.output_image(decoded))?;
            let out = resize_to(&out, &item.image);
            p.push(psnr(&item.image, &out).map_err(|e| e.to_string())?);
            s.push(ssim(&item.image, &out).map_err(|e| e.to_string())?);
            let detections = detect(&out, &style);
            let found: Vec<Object> = detections.iter().map(Detection::object).collect();
            let resolution = out.width().min(out.height());
            let r = geneval_objects(&found, &item.spec, resolution);
            let recovered = recover_objects(&item.scene.objects, &found, resolution);
            if let Some(dump) = &mut self.dump {
                let record = json!({
                    "index": i,
                    "caption": item.caption,
                    "psnr_db": p[i],
                    "ssim": s[i],
                    "geneval": r,
                    "objects": item.scene.objects,
                    "recovered": recovered,
                    "detected": detections,
                    "input": dump.image(i, "input", &item.image)?,
                    "output": dump.image(i, "output", &out)?,
                });
                dump.record(record);
            }
            correct.push(f64::from(u8::from(r.correct)));
            checks.push(f64::from(r.fraction()));
            colours.push(f64::from(u8::from(r.colours)));
            objects.extend(recovered);
        }
        let mut metrics = Metrics::from([
            ("ssim".to_string(), mean(&s)),
            ("recon_geneval".to_string(), mean(&correct)),
            ("recon_geneval_colours".to_string(), mean(&colours)),
        ]);
        insert_with_standard_error(&mut metrics, "psnr_db", &p);
        insert_with_standard_error(&mut metrics, "recon_geneval_checks", &checks);
        insert_recovery(&mut metrics, &objects);
        Ok(metrics)
    }

    fn generated(
        &self,
        tok: &Tokenizer,
        pos: &str,
        neg: &str,
        features: Option<&Tensor<B, 3>>,
        sample: &SampleOptions<B>,
    ) -> Result<RgbImage, String> {
        let (ids, mask) =
            encode_prompts::<B>(tok, &[pos, neg], &device()).map_err(|e| e.to_string())?;
        let out = self
            .model
            .generate_image(
                ids,
                mask,
                features,
                self.opts.condition,
                sample,
                |_, _, _| Ok::<(), crate::models::unilip::UnilipError>(()),
            )
            .map_err(|e| e.to_string())?;
        to_rgb_image(out.image)
    }

    /// `spec` drawn object by object ([`Unilip::compose`]) under an object layout drawn from
    /// `seed`, with `sample`'s steps and guidance.
    fn composed(
        &self,
        tok: &Tokenizer,
        spec: &SceneSpec,
        sample: &SampleOptions<B>,
        seed: u64,
    ) -> Result<RgbImage, String> {
        let style = self.generator.style();
        let size = self.size as u32;
        let plan = RegionLayout::Objects
            .plan(spec, &style, size, seed)
            .map_err(|e| e.to_string())?;
        let opts = DrawOptions {
            steps: sample.steps,
            guidance_scale: sample.guidance_scale,
            guidance_max_sigma: sample.guidance_max_sigma,
            seed,
            ..DrawOptions::default()
        };
        let composed = self
            .model
            .compose(
                &plan,
                tok,
                self.opts.condition,
                &opts,
                (size, size),
                &device(),
            )
            .map_err(|e| e.to_string())?;
        // Nothing drawn: the empty canvas.
        Ok(composed.unwrap_or_else(|| RgbImage::new(size, size)))
    }

    /// Regional prompts for `spec` under [`EvalOptions::regions`] and [`EvalOptions::layout`]
    /// (none with regions off), an object layout drawn from `seed`.
    fn regions(
        &self,
        tok: &Tokenizer,
        spec: &SceneSpec,
        seed: u64,
    ) -> Result<Vec<RegionPrompt<B>>, String> {
        if self.opts.regions == RegionMode::Off {
            return Ok(Vec::new());
        }
        caption_regions(
            self.model,
            tok,
            spec,
            &self.generator.style(),
            self.opts.condition,
            RegionPlan {
                layout: self.opts.layout,
                seed,
                layouts: 1,
                with_base: self.opts.regions == RegionMode::WithBase,
            },
            &device(),
        )
        .map_err(|e| e.to_string())
    }

    /// How strongly the model's understanding holds the right answer to each of `questions`
    /// about `img`: its log-probability.
    fn verify(
        &self,
        tok: &Tokenizer,
        img: &RgbImage,
        questions: &[VqaQuestion],
    ) -> Result<Vec<f64>, String> {
        let pairs: Vec<(&str, &str)> = questions
            .iter()
            .map(|q| (q.question.as_str(), q.answer.as_str()))
            .collect();
        let log_probs = self
            .model
            .answer_log_probs(tok, self.pixels(img)?, &pairs)
            .map_err(|e| e.to_string())?;
        Ok(log_probs.into_iter().map(f64::from).collect())
    }

    /// The [`EvalOptions::best_of`] candidates for caption item `i` (candidate `k` from noise
    /// seed `seed + i + k·2³²`, so the first is the plain sample), each scored, and rated by
    /// `questions` when there is more than one.
    fn candidates(
        &self,
        tok: &Tokenizer,
        i: usize,
        item: &CaptionItem,
        questions: &[VqaQuestion],
    ) -> Result<Vec<Candidate>, String> {
        let best_of = self.opts.best_of.max(1);
        let style = self.generator.style();
        let seed = self.opts.seed.wrapping_add(i as u64);
        (0..best_of as u64)
            .map(|k| {
                let mut sample = self.sample(i);
                let noise_seed = seed.wrapping_add(k.wrapping_mul(CANDIDATE_SEED_STRIDE));
                sample.init = InitLatent::Seed(noise_seed);
                sample.regions = self.regions(tok, &item.spec, noise_seed)?;
                let prompt = generation_prompt(&item.caption);
                let img = match self.opts.compose {
                    true => self.composed(tok, &item.spec, &sample, noise_seed)?,
                    false => self.generated(tok, &prompt, &generation_negative(), None, &sample)?,
                };
                let image = resize_to(&img, &item.image);
                let answers = match best_of {
                    1 => Vec::new(),
                    _ => self.verify(tok, &image, questions)?,
                };
                Ok(Candidate {
                    geneval: geneval_score(&image, &item.spec, &style),
                    rating: answers.iter().sum(),
                    answers,
                    image,
                })
            })
            .collect()
    }

    fn generate(&mut self, tok: &Tokenizer) -> Result<Metrics, String> {
        let style = self.generator.style();
        let best_of = self.opts.best_of.max(1);
        let (mut correct, mut checks, mut colours) = (Vec::new(), Vec::new(), Vec::new());
        let (mut found, mut asked, mut empty) = (Vec::new(), Vec::new(), Vec::new());
        let (mut first_correct, mut any_correct) = (Vec::new(), Vec::new());
        // Fully correct prompts, split by whether the prompt relates two groups.
        let (mut one_group, mut two_groups) = (Vec::new(), Vec::new());
        for i in 0..self.opts.n {
            let item = self.generator.caption_item(i as u64);
            let questions = match best_of {
                1 => Vec::new(),
                _ => spec_questions(&item.spec, &style),
            };
            let candidates = self.candidates(tok, i, &item, &questions)?;
            // The first candidate wins ties, so best-of-1 is the plain sampler.
            let chosen = (1..candidates.len()).fold(0, |best, k| {
                if candidates[k].rating > candidates[best].rating {
                    k
                } else {
                    best
                }
            });
            let Candidate {
                image, geneval: r, ..
            } = &candidates[chosen];
            let r = *r;
            if let Some(dump) = &mut self.dump {
                let ratings: Vec<_> = candidates
                    .iter()
                    .map(|c| {
                        json!({"rating": c.rating, "geneval": c.geneval, "answer_log_probs": c.answers})
                    })
                    .collect();
                let record = json!({
                    "index": i,
                    "prompt": item.caption,
                    "geneval": r,
                    "chosen": chosen,
                    "questions": questions,
                    "candidates": ratings,
                    "detected": detected(image, &style),
                    "reference": dump.image(i, "reference", &item.image)?,
                    "output": dump.image(i, "output", image)?,
                });
                dump.record(record);
            }
            correct.push(f64::from(u8::from(r.correct)));
            match item.spec.second {
                Some(_) => two_groups.push(f64::from(u8::from(r.correct))),
                None => one_group.push(f64::from(u8::from(r.correct))),
            }
            checks.push(f64::from(r.fraction()));
            colours.push(f64::from(u8::from(r.colours)));
            found.push(f64::from(r.objects_found));
            asked.push(f64::from(r.objects_asked));
            empty.push(f64::from(u8::from(r.objects_found == 0)));
            first_correct.push(f64::from(u8::from(candidates[0].geneval.correct)));
            any_correct.push(f64::from(u8::from(
                candidates.iter().any(|c| c.geneval.correct),
            )));
        }
        let mut metrics = Metrics::from([
            ("geneval_colours".to_string(), mean(&colours)),
            ("geneval_objects_found".to_string(), mean(&found)),
            ("geneval_objects_asked".to_string(), mean(&asked)),
            ("geneval_empty".to_string(), mean(&empty)),
        ]);
        insert_with_standard_error(&mut metrics, "geneval", &correct);
        insert_with_standard_error(&mut metrics, "geneval_checks", &checks);
        for (name, values) in [("one_group", &one_group), ("two_groups", &two_groups)] {
            metrics.insert(format!("geneval_{name}"), mean(values));
            metrics.insert(format!("geneval_{name}_items"), values.len() as f64);
        }
        if best_of > 1 {
            metrics.insert("best_of".to_string(), best_of as f64);
            metrics.insert("geneval_first_candidate".to_string(), mean(&first_correct));
            metrics.insert("geneval_any_candidate".to_string(), mean(&any_correct));
        }
        Ok(metrics)
    }

    fn edit(&mut self, tok: &Tokenizer) -> Result<Metrics, String> {
        let style = self.generator.style();
        let n_img = self
            .model
            .image_tokens(self.size, self.size)
            .map_err(|e| e.to_string())?;
        let (mut score, mut change, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        let (mut to_target, mut to_source) = (Vec::new(), Vec::new());
        let mut by_kind: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for i in 0..self.opts.n {
            let e = match self.opts.edit_kinds.as_slice() {
                [] => self.generator.edit_item(i as u64),
                kinds => self
                    .generator
                    .edit_item_of_kinds(i as u64, kinds)
                    .ok_or_else(|| format!("no edit kind among {kinds:?}"))?,
            };
            let features = self
                .model
                .image_features(self.pixels(&e.source_image)?)
                .map_err(|e| e.to_string())?;
            let img = match self.opts.edit_method {
                EditMethod::Unilip => {
                    let pos = edit_prompt(&e.item.instruction, n_img);
                    let sample = self.edit_sample(i, &features)?;
                    let neg = edit_negative(n_img);
                    self.generated(tok, &pos, &neg, Some(&features), &sample)?
                }
                EditMethod::FlowEdit | EditMethod::FlowEditLocated => {
                    self.flow_edited(tok, &e.item.kind, (&features, &e.source_image), i)?
                }
                EditMethod::ByKind => {
                    self.object_edited(tok, &e.item.kind, (&features, &e.source_image), i)?
                }
            };
            let img = resize_to(&img, &e.source_image);
            let r = edit_score(&e.source_image, &img, &e.item, &style);
            let db = |reference: &RgbImage| {
                psnr(reference, &img)
                    .map(|v| v.min(MAX_PSNR_DB))
                    .map_err(|e| e.to_string())
            };
            to_target.push(db(&e.target_image)?);
            to_source.push(db(&e.source_image)?);
            if let Some(dump) = &mut self.dump {
                let record = json!({
                    "index": i,
                    "instruction": e.item.instruction,
                    "edit": e.item.kind,
                    "score": r,
                    "source_objects": e.item.source.objects,
                    "target_objects": e.item.target.objects,
                    "target_psnr_db": to_target[i],
                    "source_psnr_db": to_source[i],
                    "detected": detected(&img, &style),
                    "source": dump.image(i, "source", &e.source_image)?,
                    "target": dump.image(i, "target", &e.target_image)?,
                    "output": dump.image(i, "output", &img)?,
                });
                dump.record(record);
            }
            score.push(f64::from(r.score));
            by_kind
                .entry(e.item.kind.name())
                .or_default()
                .push(f64::from(r.score));
            change.push(f64::from(u8::from(r.change_made)));
            kept.push(f64::from(u8::from(r.preserved)));
        }
        let mut metrics = Metrics::from([
            ("edit_change_made".to_string(), mean(&change)),
            ("edit_preserved".to_string(), mean(&kept)),
            ("edit_target_psnr_db".to_string(), mean(&to_target)),
            ("edit_source_psnr_db".to_string(), mean(&to_source)),
        ]);
        insert_with_standard_error(&mut metrics, "edit", &score);
        for (kind, scores) in by_kind {
            metrics.insert(format!("edit_{kind}"), mean(&scores));
            metrics.insert(format!("edit_{kind}_items"), scores.len() as f64);
        }
        Ok(metrics)
    }

    fn probe(&self) -> Result<Metrics, String> {
        let [rows, cols] = self
            .model
            .vision
            .as_ref()
            .ok_or("the checkpoint has no vision tower")?
            .feature_grid(self.size, self.size);
        // The token whose cell holds a pixel coordinate.
        let cell = |centre: f32, cells: usize| {
            ((centre / self.size as f32 * cells as f32) as usize).min(cells - 1)
        };
        let mut sets = ObjectProbes::default();
        for i in 0..self.opts.n {
            let item = self.generator.caption_item(i as u64);
            let features = self
                .model
                .image_features(self.pixels(&item.image)?)
                .map_err(|e| e.to_string())?;
            let [_, tokens, width] = features.dims();
            if tokens != rows * cols {
                return Err(format!(
                    "the vision tower gave {tokens} image tokens, not its {rows} × {cols} grid"
                ));
            }
            let flat: Vec<f32> = features
                .into_data()
                .convert::<f32>()
                .to_vec()
                .map_err(|e| format!("{e:?}"))?;
            let grid = TokenGrid {
                rows,
                cols,
                width,
                flat: &flat,
            };
            for object in &item.scene.objects {
                sets.add(object, &grid, cell(object.cy, rows), cell(object.cx, cols));
            }
        }
        let mut metrics = sets.metrics()?;
        let background = image::Rgb(self.generator.style().background());
        let blank = RgbImage::from_pixel(self.size as u32, self.size as u32, background);
        let features = self
            .model
            .image_features(self.pixels(&blank)?)
            .map_err(|e| e.to_string())?;
        metrics.insert(
            "feature_position_share".to_string(),
            feature_position_share(features)?,
        );
        Ok(metrics)
    }

    fn vqa(&mut self, tok: &Tokenizer) -> Result<Metrics, String> {
        let special = tok.special();
        let generation = GenerationConfig {
            max_new_tokens: 4,
            sampling: Sampling::Greedy,
            eos_token_ids: vec![special.im_end, special.endoftext],
            seed: 0,
            output_logits: false,
        };
        let mut right = Vec::new();
        let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for i in 0..self.opts.n {
            let item = self.generator.vqa_item(i as u64);
            let answer = self
                .model
                .understand_text(
                    tok,
                    &item.question,
                    Some(self.pixels(&item.image)?),
                    None,
                    &generation,
                )
                .map_err(|e| e.to_string())?;
            let is_correct = vqa_answer_correct(&answer, &item.answer);
            if let Some(dump) = &mut self.dump {
                let record = json!({
                    "index": i,
                    "kind": item.kind.name(),
                    "question": item.question,
                    "answer": item.answer,
                    "predicted": answer,
                    "correct": is_correct,
                    "objects": item.scene.objects,
                    "image": dump.image(i, "image", &item.image)?,
                });
                dump.record(record);
            }
            let correct = f64::from(u8::from(is_correct));
            right.push(correct);
            by_kind
                .entry(format!("vqa_{}", item.kind.name()))
                .or_default()
                .push(correct);
            by_kind
                .entry(format!("vqa_objects_{}", item.scene.objects.len()))
                .or_default()
                .push(correct);
        }
        let mut metrics = Metrics::new();
        insert_with_standard_error(&mut metrics, "vqa_accuracy", &right);
        for (kind, v) in by_kind {
            metrics.insert(format!("{kind}_items"), v.len() as f64);
            metrics.insert(kind, mean(&v));
        }
        Ok(metrics)
    }
}

/// `img` resized (bilinear) to `like`'s size when they differ.
fn resize_to(img: &RgbImage, like: &RgbImage) -> RgbImage {
    if img.dimensions() == like.dimensions() {
        return img.clone();
    }
    image::imageops::resize(
        img,
        like.width(),
        like.height(),
        image::imageops::FilterType::Triangle,
    )
}
