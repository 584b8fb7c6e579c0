//! Writing a split to disk.
//!
//! Layout under `dir` for `n` items (index `i` zero-padded to six digits):
//!
//! ```text
//! captions/000000.png, captions/000000.txt          caption image and caption
//! edits/000000.source.png, .target.png, .txt        edit source, target, instruction
//! vqa.jsonl      {"image": "captions/000000.png", "question", "answer", "kind"}
//! scenes.jsonl   {"index", "caption", "spec", "scene"} of the caption items
//! edits.jsonl    {"index", "instruction", "edit"}: the full EditItem (for edit_score)
//! ```
//!
//! Text files hold the text followed by one newline. Every file is written to a
//! temporary file in its own directory and renamed into place, so readers never see a
//! partial file (files are not fsynced: atomic for readers, not crash-durable).

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};
use serde::Serialize;
use thiserror::Error;

use super::edit::EditItem;
use super::generator::{ConfigError, GenConfig, Generator};
use super::scene::Scene;
use super::spec::SceneSpec;
use super::vqa::QuestionKind;

/// Why writing a split failed.
#[derive(Debug, Error)]
pub enum WriteError {
    /// Invalid generation settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// PNG encoding failed.
    #[error("cannot encode PNG: {0}")]
    Image(#[from] image::ImageError),
    /// JSON encoding failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Serialize)]
struct VqaLine<'a> {
    image: &'a str,
    question: &'a str,
    answer: &'a str,
    kind: QuestionKind,
}

#[derive(Serialize)]
struct SceneLine<'a> {
    index: usize,
    caption: &'a str,
    spec: &'a SceneSpec,
    scene: &'a Scene,
}

#[derive(Serialize)]
struct EditLine<'a> {
    index: usize,
    instruction: &'a str,
    edit: &'a EditItem,
}

/// Writes `n` caption, edit and VQA items of `config` under `dir` (see the module docs
/// for the layout).
pub fn write_split(dir: &Path, config: &GenConfig, n: usize) -> Result<(), WriteError> {
    let generator = Generator::new(*config)?;
    let (captions, edits) = (dir.join("captions"), dir.join("edits"));
    for folder in [&captions, &edits] {
        fs::create_dir_all(folder).map_err(|source| WriteError::Io {
            path: folder.clone(),
            source,
        })?;
    }
    let (mut scenes, mut vqa, mut edit_lines) = (String::new(), String::new(), String::new());
    for index in 0..n {
        let name = format!("{index:06}");
        let item = generator.caption_item(index as u64);
        write_png(&captions.join(format!("{name}.png")), &item.image)?;
        write_text(&captions.join(format!("{name}.txt")), &item.caption)?;
        let line = SceneLine {
            index,
            caption: &item.caption,
            spec: &item.spec,
            scene: &item.scene,
        };
        push_line(&mut scenes, &line)?;

        let question = generator.vqa_item(index as u64);
        let image = format!("captions/{name}.png");
        let line = VqaLine {
            image: &image,
            question: &question.question,
            answer: &question.answer,
            kind: question.kind,
        };
        push_line(&mut vqa, &line)?;

        let edit = generator.edit_item(index as u64);
        write_png(
            &edits.join(format!("{name}.source.png")),
            &edit.source_image,
        )?;
        write_png(
            &edits.join(format!("{name}.target.png")),
            &edit.target_image,
        )?;
        write_text(&edits.join(format!("{name}.txt")), &edit.item.instruction)?;
        push_line(
            &mut edit_lines,
            &EditLine {
                index,
                instruction: &edit.item.instruction,
                edit: &edit.item,
            },
        )?;
    }
    write_atomic(&dir.join("scenes.jsonl"), scenes.as_bytes())?;
    write_atomic(&dir.join("vqa.jsonl"), vqa.as_bytes())?;
    write_atomic(&dir.join("edits.jsonl"), edit_lines.as_bytes())
}

fn push_line(out: &mut String, value: &impl Serialize) -> Result<(), WriteError> {
    out.push_str(&serde_json::to_string(value)?);
    out.push('\n');
    Ok(())
}

fn write_png(path: &Path, image: &RgbImage) -> Result<(), WriteError> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png)?;
    write_atomic(path, bytes.get_ref())
}

fn write_text(path: &Path, text: &str) -> Result<(), WriteError> {
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Writes `bytes` to a temporary file next to `path`, then renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let io_error = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = fs::File::create(&temporary)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        // Best effort: the temporary may not exist, and the original error matters more.
        let _ = fs::remove_file(&temporary);
    }
    written.map_err(io_error)
}
