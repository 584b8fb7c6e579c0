//! Text side of UniLIP: the Qwen2 BPE tokenizer (loaded from a checkpoint's `tokenizer.json` through
//! the `tokenizers` crate) and UniLIP's prompt templates (spec §1b, §1c, §1d).
//!
//! Special tokens are always looked up by name, never by number: the ids differ between the real
//! InternVL3/UniLIP vocabulary (`<|endoftext|>` = 151643, `<img>` = 151665, …) and a tiny test
//! vocabulary built with [`build_word_level`].

use std::path::{Path, PathBuf};

use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::AddedToken;

/// Padding token (Qwen's `<|endoftext|>`), used for `padding="longest"`.
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// Start of a chat turn.
pub const IM_START: &str = "<|im_start|>";
/// End of a chat turn.
pub const IM_END: &str = "<|im_end|>";
/// Start of an image block (InternVL `IMG_START_TOKEN`); also ends the generation/edit template.
pub const IMG_START: &str = "<img>";
/// End of an image block (InternVL `IMG_END_TOKEN`).
pub const IMG_END: &str = "</img>";
/// One image feature slot (InternVL `IMG_CONTEXT_TOKEN`).
pub const IMG_CONTEXT: &str = "<IMG_CONTEXT>";
/// The special tokens every UniLIP tokenizer must have, in Qwen/InternVL id order.
pub const REQUIRED_SPECIALS: [&str; 6] =
    [ENDOFTEXT, IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT];

/// Placeholder replaced by the image block in edit and understanding prompts.
pub const IMAGE_PLACEHOLDER: &str = "<image>";
/// Default system message of InternVL's `internvl2_5` conversation template (used by InternVL3).
pub const INTERNVL_SYSTEM_MESSAGE: &str =
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。";

/// Errors of this module; every variant names the tokenizer (file path or `<in-memory>`).
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file could not be read or parsed as a `tokenizer.json`.
    #[error("cannot load tokenizer {}: {msg}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        msg: String,
    },
    /// A required special token is not in the vocabulary.
    #[error("tokenizer {origin}: special token {token:?} is missing")]
    MissingToken {
        /// The file (or `<in-memory>`).
        origin: String,
        /// The missing token.
        token: String,
    },
    /// Encoding or decoding failed.
    #[error("tokenizer {origin}: {op} failed: {msg}")]
    Codec {
        /// The file (or `<in-memory>`).
        origin: String,
        /// `"encode"` or `"decode"`.
        op: &'static str,
        /// Underlying error.
        msg: String,
    },
    /// A word-level vocabulary could not be built.
    #[error("cannot build word-level tokenizer: {0}")]
    Build(String),
    /// The tokenizer could not be written.
    #[error("cannot save tokenizer to {}: {msg}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        msg: String,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, TokenizerError>;

/// Ids of the UniLIP special tokens, resolved by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// `<|endoftext|>` (also the pad id).
    pub endoftext: u32,
    /// `<|im_start|>`.
    pub im_start: u32,
    /// `<|im_end|>`.
    pub im_end: u32,
    /// `<img>`.
    pub img_start: u32,
    /// `</img>`.
    pub img_end: u32,
    /// `<IMG_CONTEXT>`.
    pub img_context: u32,
}

/// Right-padded batch encoding (`padding="longest"`): every row has the length of the longest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEncoding {
    /// Token ids per row, padded with `<|endoftext|>`.
    pub ids: Vec<Vec<u32>>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<Vec<u32>>,
}

/// A tokenizer with the UniLIP special tokens resolved.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
    special: SpecialIds,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("origin", &self.origin)
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .finish()
    }
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json` and resolves the special tokens.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::from_inner(inner, path.display().to_string())
    }

    /// Wraps an in-memory tokenizer (e.g. from [`build_word_level`]); `origin` names it in errors.
    pub fn from_inner(inner: tokenizers::Tokenizer, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| TokenizerError::MissingToken {
                    origin: origin.clone(),
                    token: token.to_string(),
                })
        };
        let special = SpecialIds {
            endoftext: id(ENDOFTEXT)?,
            im_start: id(IM_START)?,
            im_end: id(IM_END)?,
            img_start: id(IMG_START)?,
            img_end: id(IMG_END)?,
            img_context: id(IMG_CONTEXT)?,
        };
        Ok(Self {
            inner,
            origin,
            special,
        })
    }

    /// Writes the tokenizer as a `tokenizer.json`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.inner
            .save(path, false)
            .map_err(|e| TokenizerError::Save {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })
    }

    /// The special token ids.
    pub fn special(&self) -> SpecialIds {
        self.special
    }

    /// Vocabulary size including added tokens (151674 for InternVL3-1B / UniLIP-1B).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token by its exact string, if present.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id, if present.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Encodes `text` as is: special tokens written in the text are recognised, nothing is added
    /// (no BOS/EOS — the Qwen tokenizer adds none anyway).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| self.codec_err("encode", e))
    }

    /// Encodes several texts and right-pads them to the longest with `<|endoftext|>`
    /// (`tokenizer(texts, padding="longest")`).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<BatchEncoding> {
        let rows = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>>>()?;
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        let pad = self.special.endoftext;
        let attention_mask = rows
            .iter()
            .map(|r| (0..longest).map(|i| u32::from(i < r.len())).collect())
            .collect();
        let ids = rows
            .into_iter()
            .map(|mut r| {
                r.resize(longest, pad);
                r
            })
            .collect();
        Ok(BatchEncoding {
            ids,
            attention_mask,
        })
    }

    /// Decodes ids to text; `skip_special` drops special tokens.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| self.codec_err("decode", e))
    }

    fn codec_err(&self, op: &'static str, e: tokenizers::Error) -> TokenizerError {
        TokenizerError::Codec {
            origin: self.origin.clone(),
            op,
            msg: e.to_string(),
        }
    }
}

/// UniLIP's chat template for generation and editing (spec §1b): one user turn, no system prompt,
/// and the assistant turn opened with `<img>`.
pub fn chat_template(input: &str) -> String {
    format!("{IM_START}user\n{input}{IM_END}\n{IM_START}assistant\n{IMG_START}")
}

/// `<img>` + `n_image_tokens` × `<IMG_CONTEXT>` + `</img>`.
pub fn image_block(n_image_tokens: usize) -> String {
    format!("{IMG_START}{}{IMG_END}", IMG_CONTEXT.repeat(n_image_tokens))
}

/// Text-to-image positive prompt: the chat template of `"Generate an image: {prompt}"`.
pub fn generation_prompt(prompt: &str) -> String {
    chat_template(&format!("Generate an image: {prompt}"))
}

/// Text-to-image negative (CFG null) prompt: the chat template of `"Generate an image."`.
pub fn generation_negative() -> String {
    chat_template("Generate an image.")
}

/// Editing positive prompt: `"Edit the image: {instruction}\n<image>"` with every `<image>` replaced
/// by the image block (as `pipeline_edit.py` does with `str.replace`), then the chat template.
pub fn edit_prompt(instruction: &str, n_image_tokens: usize) -> String {
    let text = format!("Edit the image: {instruction}\n{IMAGE_PLACEHOLDER}");
    chat_template(&text.replace(IMAGE_PLACEHOLDER, &image_block(n_image_tokens)))
}

/// Editing negative prompt: `"Edit the image.\n<image>"` with the image block, then the chat template.
pub fn edit_negative(n_image_tokens: usize) -> String {
    chat_template(&format!("Edit the image.\n{}", image_block(n_image_tokens)))
}

/// Understanding (VQA / caption) prompt of InternVL3's chat, i.e. InternVL's `internvl2_5`
/// conversation template (`internvl_chat/internvl/conversation.py`, MPT separator style) as used by
/// `InternVLChatModel.chat`:
/// `[<|im_start|>system\n{system}<|im_end|>\n]<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n`.
/// With `n_image_tokens > 0`, `"<image>\n"` is prepended to the question unless it already contains
/// `<image>`, and the first `<image>` becomes the image block (`num_image_token × num_patches`
/// context tokens). InternVL's own default system message is [`INTERNVL_SYSTEM_MESSAGE`];
/// `None` omits the system turn.
pub fn understanding_prompt(question: &str, n_image_tokens: usize, system: Option<&str>) -> String {
    let mut question = question.to_string();
    if n_image_tokens > 0 {
        if !question.contains(IMAGE_PLACEHOLDER) {
            question = format!("{IMAGE_PLACEHOLDER}\n{question}");
        }
        question = question.replacen(IMAGE_PLACEHOLDER, &image_block(n_image_tokens), 1);
    }
    let system = system.map_or(String::new(), |s| {
        format!("{IM_START}system\n{s}{IM_END}\n")
    });
    format!("{system}{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n")
}

/// The words of UniLIP's generation / editing / understanding templates (and the captioning
/// question), as a whitespace word-level tokenizer splits them: include them in a tiny model's
/// vocabulary so prompts encode without unknown tokens.
pub const TEMPLATE_WORDS: [&str; 11] = [
    "user",
    "assistant",
    "Generate",
    "an",
    "image",
    ":",
    ".",
    "Edit",
    "the",
    "Describe",
    "?",
];

/// Builds a word-level tokenizer for tiny models: a `WordLevel` model with a whitespace
/// pre-tokenizer. Ids are assigned in order: `vocab` words, then `specials`, then any of
/// [`REQUIRED_SPECIALS`] not listed yet. All `specials` and required tokens are registered as special
/// added tokens; unknown words encode as `<|endoftext|>`. Decoding joins tokens with spaces.
/// Save it with `tokenizers::Tokenizer::save` (or [`Tokenizer::save`]) to get a `tokenizer.json`.
pub fn build_word_level(vocab: &[&str], specials: &[&str]) -> Result<tokenizers::Tokenizer> {
    let mut all_specials: Vec<&str> = specials.to_vec();
    for s in REQUIRED_SPECIALS {
        if !all_specials.contains(&s) {
            all_specials.push(s);
        }
    }
    let mut entries: Vec<(String, u32)> = Vec::with_capacity(vocab.len() + all_specials.len());
    for (i, word) in vocab.iter().chain(&all_specials).enumerate() {
        if word.is_empty() || entries.iter().any(|(w, _)| w == word) {
            return Err(TokenizerError::Build(format!(
                "empty or duplicate token {word:?}"
            )));
        }
        let id =
            u32::try_from(i).map_err(|_| TokenizerError::Build("vocabulary too large".into()))?;
        entries.push((word.to_string(), id));
    }
    let model = WordLevel::builder()
        .vocab(entries.into_iter().collect())
        .unk_token(ENDOFTEXT.to_string())
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace));
    let added: Vec<AddedToken> = all_specials
        .iter()
        .map(|s| AddedToken::from(*s, true))
        .collect();
    tok.add_special_tokens(&added);
    Ok(tok)
}
