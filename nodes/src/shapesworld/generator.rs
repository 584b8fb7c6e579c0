//! Random-access, seeded generation of caption, edit and VQA items.
//!
//! Item `i` of a task is generated from its own `StdRng`, seeded with a splitmix64 hash
//! of (seed, split, domain, task, i): items are independent of each other and of the
//! order they are requested in, and the Train and Val streams differ.

use image::RgbImage;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::edit::{sample_edit, EditItem, EDIT_KIND_NAMES};
use super::layout::layout_spec;
use super::render::render;
use super::scene::{Scene, MAX_RESOLUTION, MIN_RESOLUTION};
use super::spec::SceneSpec;
use super::style::{Domain, Style};
use super::vqa::{ask, sample_question, QuestionKind, VqaQuestion};

/// Dataset split.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training stream.
    #[default]
    Train,
    /// Validation stream (disjoint random stream from the same distribution).
    Val,
}

/// Generation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GenConfig {
    /// Image side in pixels, in `32..=256`.
    pub resolution: u32,
    /// Master seed.
    pub seed: u64,
    /// Split.
    pub split: Split,
    /// Domain (style and vocabulary).
    pub domain: Domain,
}

impl Default for GenConfig {
    /// 64 × 64, seed 0, train split, default domain.
    fn default() -> Self {
        GenConfig {
            resolution: 64,
            seed: 0,
            split: Split::Train,
            domain: Domain::Default,
        }
    }
}

/// Invalid generation settings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Resolution outside `32..=256`.
    #[error("resolution {0} is outside {MIN_RESOLUTION}..={MAX_RESOLUTION}")]
    Resolution(u32),
}

/// A text-to-image item.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionItem {
    /// The scene.
    pub scene: Scene,
    /// What the caption asserts.
    pub spec: SceneSpec,
    /// The caption, in the domain's words.
    pub caption: String,
    /// The rendered scene.
    pub image: RgbImage,
}

/// An edit triplet with both scenes rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct EditSample {
    /// The edit.
    pub item: EditItem,
    /// Rendered source scene.
    pub source_image: RgbImage,
    /// Rendered target scene.
    pub target_image: RgbImage,
}

/// A VQA item about the scene of the caption item with the same index.
#[derive(Debug, Clone, PartialEq)]
pub struct VqaItem {
    /// The scene (same as `caption_item(i).scene`).
    pub scene: Scene,
    /// The rendered scene.
    pub image: RgbImage,
    /// Kind of question.
    pub kind: QuestionKind,
    /// Question text.
    pub question: String,
    /// One-word answer.
    pub answer: String,
}

impl VqaItem {
    /// The item asking `question` about `scene`, rendered.
    fn rendered(scene: Scene, question: VqaQuestion) -> Self {
        VqaItem {
            image: render(&scene),
            scene,
            kind: question.kind,
            question: question.question,
            answer: question.answer,
        }
    }
}

/// Which item stream an rng belongs to.
#[derive(Debug, Clone, Copy)]
enum Task {
    Caption = 1,
    Edit = 2,
    Vqa = 3,
}

/// Deterministic random-access generator.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GenConfig,
}

impl Generator {
    /// A generator for `config`; fails for a resolution outside `32..=256`.
    pub fn new(config: GenConfig) -> Result<Generator, ConfigError> {
        if !(MIN_RESOLUTION..=MAX_RESOLUTION).contains(&config.resolution) {
            return Err(ConfigError::Resolution(config.resolution));
        }
        Ok(Generator { config })
    }

    /// The settings.
    pub fn config(&self) -> &GenConfig {
        &self.config
    }

    /// The style of the configured domain.
    pub fn style(&self) -> Style {
        Style::from(self.config.domain)
    }

    /// Caption item `index`: a sampled spec, a layout realising it and its render.
    pub fn caption_item(&self, index: u64) -> CaptionItem {
        let (scene, spec) = self.caption_scene(index);
        CaptionItem {
            caption: spec.caption_in(&scene.style),
            image: render(&scene),
            scene,
            spec,
        }
    }

    /// Edit item `index` with rendered source and target.
    pub fn edit_item(&self, index: u64) -> EditSample {
        let mut rng = self.rng(Task::Edit, index);
        let item = sample_edit(self.config.resolution, self.style(), &mut rng);
        EditSample {
            source_image: render(&item.source),
            target_image: render(&item.target),
            item,
        }
    }

    /// Edit item `index` of the stream holding only edits whose [`EditKind::name`] is in
    /// `kinds`: the first fitting item of a run of edit items reserved for this index (as
    /// [`Self::vqa_item_of_kind`]); `None` when `kinds` names no kind of
    /// [`EDIT_KIND_NAMES`](super::edit::EDIT_KIND_NAMES).
    ///
    /// [`EditKind::name`]: super::EditKind::name
    pub fn edit_item_of_kinds(&self, index: u64, kinds: &[&str]) -> Option<EditSample> {
        if !kinds.iter().any(|k| EDIT_KIND_NAMES.contains(k)) {
            return None;
        }
        let item = first_in_run(index, |edit_index| {
            let item = sample_edit(
                self.config.resolution,
                self.style(),
                &mut self.rng(Task::Edit, edit_index),
            );
            kinds.contains(&item.kind.name()).then_some(item)
        });
        Some(EditSample {
            source_image: render(&item.source),
            target_image: render(&item.target),
            item,
        })
    }

    /// VQA item `index`: a question about the scene of caption item `index`.
    pub fn vqa_item(&self, index: u64) -> VqaItem {
        let (scene, _) = self.caption_scene(index);
        let question = sample_question(&scene, &mut self.rng(Task::Vqa, index));
        VqaItem::rendered(scene, question)
    }

    /// VQA item `index` of the stream holding only questions of `kind`: the first scene, in a
    /// run of caption scenes reserved for this index, about which such a question can be asked
    /// (a position question needs an object clear of the centre line, say).
    pub fn vqa_item_of_kind(&self, index: u64, kind: QuestionKind) -> VqaItem {
        first_in_run(index, |scene_index| {
            let (scene, _) = self.caption_scene(scene_index);
            let question = ask(kind, &scene, &mut self.rng(Task::Vqa, scene_index))?;
            Some(VqaItem::rendered(scene, question))
        })
    }

    fn caption_scene(&self, index: u64) -> (Scene, SceneSpec) {
        let mut rng = self.rng(Task::Caption, index);
        let style = self.style();
        // Sampled specs always fit (see `SceneSpec::sample`); a failed layout only means
        // unlucky rejection sampling, so another spec is drawn.
        loop {
            let spec = SceneSpec::sample(&style, &mut rng);
            if let Ok(scene) = layout_spec(&spec, self.config.resolution, style, &mut rng) {
                return (scene, spec);
            }
        }
    }

    fn rng(&self, task: Task, index: u64) -> StdRng {
        let parts = [
            self.config.split as u64,
            self.config.domain as u64,
            task as u64,
            index,
        ];
        let seed = parts.iter().fold(splitmix64(self.config.seed), |h, p| {
            splitmix64(h ^ splitmix64(*p))
        });
        StdRng::seed_from_u64(seed)
    }
}

/// The first item `fitting` gives over the run of stream indices reserved for `index` (the
/// filtered streams of [`Generator::vqa_item_of_kind`] and [`Generator::edit_item_of_kinds`]).
/// Each index owns `RUN` items; a run without a fitting one (vanishingly rare for any kind
/// those callers accept) continues into the next index's items, which stays deterministic.
fn first_in_run<T>(index: u64, fitting: impl FnMut(u64) -> Option<T>) -> T {
    const RUN: u64 = 64;
    (index.wrapping_mul(RUN)..)
        .find_map(fitting)
        .expect("an unbounded run of items holds one that fits")
}

/// One step of the splitmix64 generator, used as a 64-bit mixing function.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
