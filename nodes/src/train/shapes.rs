//! ShapesWorld as training data ([`ShapesDataset`]) and the word-level tokenizer of models trained
//! on it ([`shapes_tokenizer`]).

use super::data::{DataError, Dataset, DatasetKind, HostImage, Sample};
use crate::models::tokenizer::{build_word_level, Tokenizer, TokenizerError, TEMPLATE_WORDS};
use crate::shapesworld::{vocabulary, GenConfig, Generator};

/// `n` procedural samples of one kind, rendered on demand (nothing is stored).
#[derive(Debug, Clone)]
pub struct ShapesDataset {
    generator: Generator,
    kind: DatasetKind,
    n: usize,
}

impl ShapesDataset {
    /// Items `0..n` of the stream `config` for `kind`.
    pub fn new(config: GenConfig, kind: DatasetKind, n: usize) -> Result<Self, String> {
        let generator = Generator::new(config).map_err(|e| e.to_string())?;
        Ok(Self { generator, kind, n })
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
                    text: item.caption,
                    answer: None,
                }
            }
            DatasetKind::Edits => {
                let e = self.generator.edit_item(i);
                Sample {
                    image: HostImage::from(&e.target_image),
                    source: Some(HostImage::from(&e.source_image)),
                    text: e.item.instruction,
                    answer: None,
                }
            }
            DatasetKind::Vqa => {
                let item = self.generator.vqa_item(i);
                Sample {
                    image: HostImage::from(&item.image),
                    source: None,
                    text: item.question,
                    answer: Some(item.answer),
                }
            }
        })
    }

    fn fingerprint(&self) -> String {
        format!(
            "shapesworld:{:?}:{}:{}",
            self.generator.config(),
            self.kind,
            self.n
        )
    }

    fn describe(&self) -> String {
        let c = self.generator.config();
        format!(
            "{} ShapesWorld {} samples ({:?} split, {} domain, {}px, seed {})",
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
