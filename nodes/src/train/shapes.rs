//! ShapesWorld as training data ([`ShapesDataset`]) and the word-level tokenizer of models trained
//! on it ([`shapes_tokenizer`]).

use super::data::{DataError, Dataset, DatasetKind, HostImage, RegionCaption, Sample};
use crate::models::regions::RegionLayout;
use crate::models::tokenizer::{build_word_level, Tokenizer, TokenizerError, TEMPLATE_WORDS};
use crate::shapesworld::generator::splitmix64;
use crate::shapesworld::{vocabulary, GenConfig, Generator, QuestionKind, EDIT_KIND_NAMES};

/// Mixed into an item's index for its grounding draw, so the draw is independent of the
/// generator's own per-item seeds.
const REGION_SHARE_SALT: u64 = 0x0072_6567_696f_6e73;

/// `n` procedural samples of one kind, rendered on demand (nothing is stored).
#[derive(Debug, Clone)]
pub struct ShapesDataset {
    generator: Generator,
    kind: DatasetKind,
    n: usize,
    /// VQA only: ask questions of this kind alone (`None`: every kind, as drawn).
    questions: Option<QuestionKind>,
    /// Edits only: these edit kinds alone ([`EDIT_KIND_NAMES`]; `None`: every kind, as drawn).
    edits: Option<Vec<&'static str>>,
    /// Captions only: ground captions with regions ([`Sample::regions`]): each caption relating
    /// two groups with its groups' captions and halves, or every caption with its objects'
    /// captions and boxes.
    regions: Option<RegionLayout>,
    /// The share of captions grounded when `regions` is set (each item's draw is fixed by its
    /// index), so the rest keep training the DiT on the whole caption alone.
    region_share: f64,
}

impl ShapesDataset {
    /// Items `0..n` of the stream `config` for `kind`.
    pub fn new(config: GenConfig, kind: DatasetKind, n: usize) -> Result<Self, String> {
        let generator = Generator::new(config).map_err(|e| e.to_string())?;
        Ok(Self {
            generator,
            kind,
            n,
            questions: None,
            edits: None,
            regions: None,
            region_share: 1.0,
        })
    }

    /// The same edit stream holding only the edit kinds named in `kinds` (a curriculum toward
    /// the kinds a model fails, or a per-kind ablation); refused for captions and VQA, and for
    /// an unknown or missing kind name.
    pub fn only_edits(mut self, kinds: &[&str]) -> Result<Self, String> {
        if self.kind != DatasetKind::Edits {
            return Err(format!(
                "edits `{}` asks for edit triplets, but the dataset's kind is `{}`",
                kinds.join(","),
                self.kind
            ));
        }
        let mut known = Vec::new();
        for kind in kinds {
            let name = EDIT_KIND_NAMES
                .into_iter()
                .find(|k| k == kind)
                .ok_or_else(|| {
                    format!(
                        "unknown edit kind `{kind}` (expected some of {})",
                        EDIT_KIND_NAMES.join(", ")
                    )
                })?;
            known.push(name);
        }
        if known.is_empty() {
            return Err("edits: name at least one edit kind".into());
        }
        self.edits = Some(known);
        Ok(self)
    }

    /// The same VQA stream holding only questions of `kind` (a curriculum, or a per-kind
    /// ablation); refused for captions and edits.
    pub fn only_questions(mut self, kind: QuestionKind) -> Result<Self, String> {
        if self.kind != DatasetKind::Vqa {
            return Err(format!(
                "questions `{}` asks for VQA items, but the dataset's kind is `{}`",
                kind.name(),
                self.kind
            ));
        }
        self.questions = Some(kind);
        Ok(self)
    }

    /// The same caption stream grounded ([`Sample::regions`]) as `layout` places regions: each
    /// caption relating two groups with its groups' own captions and the halves of the image
    /// the layout puts them in, or every caption with each rendered object's own caption and
    /// box ([`crate::shapesworld::Scene::object_regions`]). Only the share `share` of captions
    /// (drawn per index) is grounded; the rest stay plain. Refused for edits and VQA and for a
    /// share outside `(0, 1]`.
    pub fn with_regions(mut self, layout: RegionLayout, share: f64) -> Result<Self, String> {
        if !(share > 0.0 && share <= 1.0) {
            return Err(format!(
                "region_share {share}: must be above 0 and at most 1"
            ));
        }
        if self.kind != DatasetKind::Captions {
            return Err(format!(
                "regions ground captions, but the dataset's kind is `{}`",
                self.kind
            ));
        }
        self.regions = Some(layout);
        self.region_share = share;
        Ok(self)
    }

    /// Whether caption `index` is among the grounded share ([`ShapesDataset::with_regions`]).
    fn grounded(&self, index: usize) -> bool {
        let draw = splitmix64(index as u64 ^ REGION_SHARE_SALT) >> 11;
        (draw as f64) < self.region_share * (1u64 << 53) as f64
    }

    /// The generator underneath.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }
}

impl Dataset for ShapesDataset {
    fn kind(&self) -> DatasetKind {
        self.kind
    }

    fn len(&self) -> usize {
        self.n
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let i = index as u64;
        Ok(match self.kind {
            DatasetKind::Captions => {
                let item = self.generator.caption_item(i);
                Sample {
                    image: HostImage::from(&item.image),
                    source: None,
                    regions: match self.regions.filter(|_| self.grounded(index)) {
                        Some(RegionLayout::Groups) => {
                            item.spec.group_regions(&self.generator.style())
                        }
                        Some(RegionLayout::Objects) => item.scene.object_regions(),
                        None => Vec::new(),
                    }
                    .into_iter()
                    .map(|(caption, edges)| RegionCaption { caption, edges })
                    .collect(),
                    text: item.caption,
                    answer: None,
                }
            }
            DatasetKind::Edits => {
                let e = match &self.edits {
                    Some(kinds) => {
                        self.generator
                            .edit_item_of_kinds(i, kinds)
                            .ok_or_else(|| DataError {
                                path: "shapesworld".into(),
                                reason: format!("item {index}: no edit kind among {kinds:?}"),
                            })?
                    }
                    None => self.generator.edit_item(i),
                };
                Sample {
                    image: HostImage::from(&e.target_image),
                    source: Some(HostImage::from(&e.source_image)),
                    text: e.item.instruction,
                    answer: None,
                    regions: Vec::new(),
                }
            }
            DatasetKind::Vqa => {
                let item = match self.questions {
                    Some(kind) => self.generator.vqa_item_of_kind(i, kind),
                    None => self.generator.vqa_item(i),
                };
                Sample {
                    image: HostImage::from(&item.image),
                    source: None,
                    text: item.question,
                    answer: Some(item.answer),
                    regions: Vec::new(),
                }
            }
        })
    }

    fn fingerprint(&self) -> String {
        // Unfiltered streams keep the fingerprint they had before the filter existed, so their
        // runs still resume.
        let filter = self
            .questions
            .map_or(String::new(), |k| format!(":{}", k.name()));
        let filter = match &self.edits {
            Some(kinds) => format!("{filter}:edits={}", kinds.join(",")),
            None => filter,
        };
        let filter = match self.regions {
            Some(RegionLayout::Groups) => format!("{filter}:regions"),
            Some(RegionLayout::Objects) => format!("{filter}:regions=objects"),
            None => filter,
        };
        let filter = match self.region_share {
            1.0 => filter,
            share => format!("{filter}:share={share}"),
        };
        format!(
            "shapesworld:{:?}:{}:{}{filter}",
            self.generator.config(),
            self.kind,
            self.n
        )
    }

    fn describe(&self) -> String {
        let c = self.generator.config();
        let filter = self
            .questions
            .map_or(String::new(), |k| format!(", {} questions only", k.name()));
        format!(
            "{} ShapesWorld {} samples ({:?} split, {} domain, {}px, seed {}{filter})",
            self.n,
            self.kind,
            c.split,
            c.domain.name(),
            c.resolution,
            c.seed
        )
    }
}

/// A word-level tokenizer over every ShapesWorld word and UniLIP's template words.
pub fn shapes_tokenizer() -> Result<Tokenizer, TokenizerError> {
    let mut words = vocabulary();
    for w in TEMPLATE_WORDS {
        if !words.iter().any(|v| v == w) {
            words.push(w.to_string());
        }
    }
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    Tokenizer::from_inner(build_word_level(&refs, &[])?, "shapesworld")
}
