//! Training data: the [`Dataset`] trait (random access + fingerprint), the on-disk folder layouts
//! ([`FolderDataset`]), a seeded epoch order ([`EpochOrder`]) and batching into tensors.
//!
//! Folder layouts (the ones `unilip data shapesworld` writes):
//! * captions: `NAME.png` (or `.jpg`) with the caption in `NAME.txt`;
//! * edits: `NAME.source.png`, `NAME.target.png` and the instruction in `NAME.txt`;
//! * VQA: a `vqa.jsonl` file, one `{"image": "relative/path.png", "question": …, "answer": …}` per line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::models::preprocess::{resize_bicubic, RgbU8};

/// What a dataset's samples hold, which decides the training task it can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// Image + caption (reconstruction, text-to-image, captioning).
    Captions,
    /// Source image + instruction → target image (editing).
    Edits,
    /// Image + question → answer (understanding).
    Vqa,
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Captions => "captions",
            Self::Edits => "edits",
            Self::Vqa => "vqa",
        })
    }
}

/// An RGB image with `f32` values in [0, 1], row-major HWC (decoded files, procedural renders).
#[derive(Debug, Clone, PartialEq)]
pub struct HostImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height · width · 3` values.
    pub data: Vec<f32>,
}

impl HostImage {
    /// An 8-bit HWC buffer scaled to [0, 1].
    fn from_u8(height: usize, width: usize, bytes: &[u8]) -> Self {
        Self {
            height,
            width,
            data: bytes.iter().map(|&v| f32::from(v) / 255.0).collect(),
        }
    }
}

impl From<&RgbU8> for HostImage {
    fn from(img: &RgbU8) -> Self {
        Self::from_u8(img.height, img.width, &img.data)
    }
}

impl From<&image::RgbImage> for HostImage {
    fn from(img: &image::RgbImage) -> Self {
        Self::from_u8(img.height() as usize, img.width() as usize, img.as_raw())
    }
}

impl HostImage {
    /// `[1, 3, H, W]`.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        Tensor::<B, 3>::from_data(
            TensorData::new(self.data.clone(), [self.height, self.width, 3]),
            device,
        )
        .permute([2, 0, 1])
        .unsqueeze()
    }
}

/// One training example. Which fields are set depends on the [`DatasetKind`].
#[derive(Debug, Clone)]
pub struct Sample {
    /// The image to reconstruct / generate (captions), the edit target (edits) or the image asked
    /// about (VQA).
    pub image: HostImage,
    /// The edit source image (edits only).
    pub source: Option<HostImage>,
    /// Caption, edit instruction or question.
    pub text: String,
    /// The answer (VQA only).
    pub answer: Option<String>,
    /// Parts of the image with their own captions (grounding; empty when the data has none):
    /// training then lets each part read its caption in the DiT's cross-attention, as sampling
    /// with regional prompts does ([`crate::models::regions`]).
    pub regions: Vec<RegionCaption>,
}

/// A part of an image described by its own caption.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionCaption {
    /// What the part shows.
    pub caption: String,
    /// Where it lies, `[x0, y0, x1, y1]` as fractions of the image (y down).
    pub edges: [f32; 4],
}

/// A failure reading one sample, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DataError {
    /// The file or directory at fault.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl DataError {
    fn new(path: &Path, reason: impl fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Random-access training data.
pub trait Dataset: Send + Sync + fmt::Debug {
    /// What the samples hold.
    fn kind(&self) -> DatasetKind;
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sample `index` (`< len()`).
    fn get(&self, index: usize) -> Result<Sample, DataError>;
    /// Content identity: equal fingerprints mean equal samples (used for caching and resume checks).
    fn fingerprint(&self) -> String;
    /// One line for logs and the editor.
    fn describe(&self) -> String;
}

/// Reads an image file as RGB in [0, 1].
pub fn read_rgb(path: &Path) -> Result<HostImage, DataError> {
    let img = image::open(path)
        .map_err(|e| DataError::new(path, e))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let rgb =
        RgbU8::new(h as usize, w as usize, img.into_raw()).map_err(|e| DataError::new(path, e))?;
    Ok(HostImage::from(&rgb))
}

fn read_text(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| DataError::new(path, e))
}

/// One entry of a folder dataset: the files that make a sample.
#[derive(Debug, Clone)]
struct Entry {
    image: PathBuf,
    source: Option<PathBuf>,
    text: EntryText,
}

#[derive(Debug, Clone)]
enum EntryText {
    File(PathBuf),
    Qa { question: String, answer: String },
}

/// A dataset in one of the folder layouts of this module.
#[derive(Debug)]
pub struct FolderDataset {
    dir: PathBuf,
    kind: DatasetKind,
    entries: Vec<Entry>,
    fingerprint: String,
}

impl FolderDataset {
    /// Scans `dir` for the layout of `kind`. Errors name the directory (missing, empty) or the
    /// file (an image without its caption, a bad `vqa.jsonl` line).
    pub fn open(dir: &Path, kind: DatasetKind) -> Result<Self, DataError> {
        let entries = match kind {
            DatasetKind::Captions => scan_captions(dir)?,
            DatasetKind::Edits => scan_edits(dir)?,
            DatasetKind::Vqa => scan_vqa(dir)?,
        };
        if entries.is_empty() {
            return Err(DataError::new(dir, format!("no {kind} samples found")));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(kind.to_string().as_bytes());
        for e in &entries {
            for p in std::iter::once(&e.image).chain(e.source.iter()) {
                hash_file_meta(&mut hasher, p);
            }
            match &e.text {
                EntryText::File(p) => hash_file_meta(&mut hasher, p),
                EntryText::Qa { question, answer } => {
                    hasher.update(question.as_bytes());
                    hasher.update(answer.as_bytes());
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            kind,
            entries,
            fingerprint: hasher.finalize().to_hex().to_string(),
        })
    }
}

fn hash_file_meta(hasher: &mut blake3::Hasher, path: &Path) {
    hasher.update(path.to_string_lossy().as_bytes());
    if let Ok(m) = std::fs::metadata(path) {
        hasher.update(&m.len().to_le_bytes());
        if let Ok(t) = m.modified() {
            let nanos = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            hasher.update(&nanos.to_le_bytes());
        }
    }
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::new(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn scan_captions(dir: &Path) -> Result<Vec<Entry>, DataError> {
    sorted_files(dir)?
        .into_iter()
        .filter(|p| is_image(p))
        .map(|image| {
            let text = image.with_extension("txt");
            if !text.exists() {
                return Err(DataError::new(
                    &image,
                    "no caption file beside it (expected `.txt`)",
                ));
            }
            Ok(Entry {
                image,
                source: None,
                text: EntryText::File(text),
            })
        })
        .collect()
}

fn scan_edits(dir: &Path) -> Result<Vec<Entry>, DataError> {
    sorted_files(dir)?
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".source.png"))
        .map(|source| {
            let stem = source.to_string_lossy().trim_end_matches(".source.png").to_string();
            let target = PathBuf::from(format!("{stem}.target.png"));
            let text = PathBuf::from(format!("{stem}.txt"));
            for p in [&target, &text] {
                if !p.exists() {
                    return Err(DataError::new(p, "missing (edit triplets need NAME.source.png, NAME.target.png and NAME.txt)"));
                }
            }
            Ok(Entry {
                image: target,
                source: Some(source),
                text: EntryText::File(text),
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct VqaLine {
    image: PathBuf,
    question: String,
    answer: String,
}

fn scan_vqa(dir: &Path) -> Result<Vec<Entry>, DataError> {
    let path = dir.join("vqa.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::new(&path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let item: VqaLine = serde_json::from_str(line)
                .map_err(|e| DataError::new(&path, format!("line {}: {e}", i + 1)))?;
            Ok(Entry {
                image: dir.join(item.image),
                source: None,
                text: EntryText::Qa {
                    question: item.question,
                    answer: item.answer,
                },
            })
        })
        .collect()
}

impl Dataset for FolderDataset {
    fn kind(&self) -> DatasetKind {
        self.kind
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let e = self
            .entries
            .get(index)
            .ok_or_else(|| DataError::new(&self.dir, format!("no sample {index}")))?;
        let (text, answer) = match &e.text {
            EntryText::File(p) => (read_text(p)?, None),
            EntryText::Qa { question, answer } => (question.clone(), Some(answer.clone())),
        };
        Ok(Sample {
            image: read_rgb(&e.image)?,
            source: e.source.as_deref().map(read_rgb).transpose()?,
            text,
            answer,
            regions: Vec::new(),
        })
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn describe(&self) -> String {
        format!(
            "{} {} samples in {}",
            self.len(),
            self.kind,
            self.dir.display()
        )
    }
}

/// Two datasets as one: indices `0..a.len()` are `a`'s, the rest `b`'s. Shuffled batches then mix
/// them in proportion to their sizes — e.g. edit triplets with captions, so editing training keeps
/// text-to-image (samples without a source train as generation), or VQA with captions.
#[derive(Debug, Clone)]
pub struct MixDataset {
    a: Arc<dyn Dataset>,
    b: Arc<dyn Dataset>,
    kind: DatasetKind,
}

impl MixDataset {
    /// The concatenation of `a` and `b`; captions mix with anything, edits and VQA do not mix.
    pub fn new(a: Arc<dyn Dataset>, b: Arc<dyn Dataset>) -> Result<Self, String> {
        use DatasetKind::*;
        let kind = match (a.kind(), b.kind()) {
            (x, y) if x == y => x,
            (Captions, other) | (other, Captions) => other,
            (x, y) => return Err(format!("cannot mix {x} with {y} samples")),
        };
        Ok(Self { a, b, kind })
    }
}

impl Dataset for MixDataset {
    fn kind(&self) -> DatasetKind {
        self.kind
    }

    fn len(&self) -> usize {
        self.a.len() + self.b.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        match index.checked_sub(self.a.len()) {
            None => self.a.get(index),
            Some(i) => self.b.get(i),
        }
    }

    fn fingerprint(&self) -> String {
        format!("mix({}, {})", self.a.fingerprint(), self.b.fingerprint())
    }

    fn describe(&self) -> String {
        format!("{} + {}", self.a.describe(), self.b.describe())
    }
}

/// The instruction of [`CopyEdits`] unless a graph names another (words of the ShapesWorld
/// tokenizer).
pub const DEFAULT_COPY_INSTRUCTION: &str = "make nothing";

/// Identity edits made from another dataset: each sample's image (an edit's source) becomes both
/// the source and the target, under one fixed instruction. A curriculum aid mixed into editing
/// data: its only lesson is reading the source layout from the image tokens of the condition,
/// the "keep everything else" half of every edit (README, session 9, for how far 1,000 steps of
/// it got the ShapesWorld model: not far).
#[derive(Debug)]
pub struct CopyEdits {
    inner: Arc<dyn Dataset>,
    instruction: String,
}

impl CopyEdits {
    /// Identity edits of `inner`'s images (sources for edit data) with `instruction`.
    pub fn new(inner: Arc<dyn Dataset>, instruction: &str) -> Result<Self, String> {
        if inner.kind() == DatasetKind::Vqa {
            return Err("copy edits need captioned images or edit triplets, not VQA items".into());
        }
        let instruction = instruction.trim();
        if instruction.is_empty() {
            return Err("the copy instruction is empty".into());
        }
        Ok(Self {
            inner,
            instruction: instruction.to_string(),
        })
    }
}

impl Dataset for CopyEdits {
    fn kind(&self) -> DatasetKind {
        DatasetKind::Edits
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let s = self.inner.get(index)?;
        let image = s.source.unwrap_or(s.image);
        Ok(Sample {
            source: Some(image.clone()),
            image,
            text: self.instruction.clone(),
            answer: None,
            regions: Vec::new(),
        })
    }

    fn fingerprint(&self) -> String {
        format!("copy({}, {:?})", self.inner.fingerprint(), self.instruction)
    }

    fn describe(&self) -> String {
        format!(
            "identity edits \"{}\" of {}",
            self.instruction,
            self.inner.describe()
        )
    }
}

/// A seeded, reshuffled-every-epoch order over `len` samples: position `p` of the stream is
/// sample `perm(epoch = p / len)[p % len]`, so the data position alone restores the order on resume.
#[derive(Debug)]
pub struct EpochOrder {
    seed: u64,
    len: usize,
    cached: Mutex<Option<(usize, Vec<usize>)>>,
}

impl EpochOrder {
    /// An order over `len` samples.
    pub fn new(seed: u64, len: usize) -> Self {
        Self {
            seed,
            len,
            cached: Mutex::new(None),
        }
    }

    /// The sample index at stream position `position`.
    pub fn index(&self, position: u64) -> usize {
        let len = self.len.max(1) as u64;
        let (epoch, within) = ((position / len) as usize, (position % len) as usize);
        let mut cached = self.cached.lock().expect("epoch order lock");
        if cached.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut perm: Vec<usize> = (0..self.len).collect();
            let mut rng = rand::rngs::StdRng::seed_from_u64(mix(self.seed, epoch as u64));
            perm.shuffle(&mut rng);
            *cached = Some((epoch, perm));
        }
        cached.as_ref().map_or(0, |(_, p)| p[within])
    }
}

/// SplitMix64 of two values: independent streams from one seed (per epoch, per step).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `[b, 3, size, size]` in [0, 1], each image resized as the vision tower's preprocessing does
/// (bicubic, rounded to the 8-bit grid) when it is not already `size × size`.
pub fn image_batch<B: Backend>(
    images: &[&HostImage],
    size: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let tensors = images
        .iter()
        .map(|img| {
            let t = img.to_tensor::<B>(device);
            if [img.height, img.width] == [size, size] {
                t
            } else {
                resize_bicubic(t.mul_scalar(255.0), [size, size]).div_scalar(255.0)
            }
        })
        .collect();
    Tensor::cat(tensors, 0)
}
