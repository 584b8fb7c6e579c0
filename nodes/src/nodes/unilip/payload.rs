//! Values that UniLIP stage nodes pass along wires (by `Arc` handle, never copied).

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use unilip_core::{ExecCtx, NodeError, Payload, Summary, Value};

use crate::backend::B;
use crate::models::regions::RegionPrompt;
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{Condition, ConditionMode, Unilip};

fn summarize<const D: usize>(t: &Tensor<B, D>) -> Summary {
    let dims = t.dims().to_vec();
    let values = t
        .clone()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default();
    Summary::of(dims, "f32", &values)
}

fn bytes<const D: usize>(t: &Tensor<B, D>) -> usize {
    t.dims().iter().product::<usize>() * 4
}

/// Implements [`Payload`] for a type: `payload!(T, |s| summary_of_s, byte_size_of_s)`.
macro_rules! payload {
    ($t:ty, |$s:ident| $summary:expr, $bytes:expr) => {
        impl unilip_core::Payload for $t {
            fn summary(&self) -> Option<unilip_core::Summary> {
                let $s = self;
                $summary
            }
            fn byte_size(&self) -> usize {
                let $s = self;
                $bytes
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
    };
}
pub(crate) use payload;

/// A loaded UniLIP checkpoint (only the requested components) with its tokenizer.
pub struct ModelHandle {
    /// The model.
    pub model: Arc<Unilip<B>>,
    /// The checkpoint's `tokenizer.json`, when present.
    pub tokenizer: Option<Arc<Tokenizer>>,
    /// Directory it came from.
    pub dir: PathBuf,
}
payload!(ModelHandle, |_s| None, 0);

impl std::fmt::Debug for ModelHandle {
    /// The directory and the loaded components (not the weights).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UniLIP {} ({:?})",
            self.dir.display(),
            self.model.components
        )
    }
}

impl ModelHandle {
    /// The tokenizer, or an error naming the checkpoint.
    pub fn tokenizer(&self) -> Result<&Tokenizer, NodeError> {
        self.tokenizer.as_deref().ok_or_else(|| {
            NodeError::msg(format!(
                "checkpoint {} has no tokenizer.json",
                self.dir.display()
            ))
        })
    }
}

/// Vision features `[b, tokens, dim]` (mlp1 output) and their token grid.
#[derive(Debug, Clone)]
pub struct Features {
    /// Features.
    pub tokens: Tensor<B, 3>,
    /// `[rows, cols]` of the token grid.
    pub grid: [usize; 2],
}
payload!(Features, |s| Some(summarize(&s.tokens)), bytes(&s.tokens));

/// A UniLIP latent `[b, C, h, w]` (not scaled by `unilip_factor`).
#[derive(Debug, Clone)]
pub struct Latent(pub Tensor<B, 4>);
payload!(Latent, |s| Some(summarize(&s.0)), bytes(&s.0));

/// Tokenised prompts: row 0 positive, row 1 (if any) the negative ("null") prompt.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Ids `[rows, len]`, right-padded.
    pub ids: Tensor<B, 2, Int>,
    /// 1 = token, 0 = padding.
    pub mask: Tensor<B, 2, Int>,
    /// The templated texts.
    pub texts: Vec<String>,
}
payload!(
    Tokens,
    |s| {
        let [r, l] = s.ids.dims();
        let ids: Vec<f32> = s
            .ids
            .clone()
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        Some(Summary::of(vec![r, l], "i64", &ids))
    },
    s.ids.dims().iter().product::<usize>() * 16
);

/// A sequence on its way through the MLLM: embeddings or hidden states `[rows, L, H]`, the mask,
/// how many trailing positions are learnable queries, and (editing) the ids and image features
/// needed to re-insert the ViT features after the LLM.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Embeddings (before the LLM) or last hidden states (after it).
    pub states: Tensor<B, 3>,
    /// 1 = valid position.
    pub mask: Tensor<B, 2, Int>,
    /// Trailing query positions.
    pub n_query: usize,
    /// Prompt ids (without queries), to find `<IMG_CONTEXT>` positions.
    pub ids: Tensor<B, 2, Int>,
    /// Image features written at the `<IMG_CONTEXT>` positions, if any.
    pub image_features: Option<Tensor<B, 3>>,
}
payload!(Sequence, |s| Some(summarize(&s.states)), bytes(&s.states));

/// DiT conditioning: the positive condition and, for CFG, the negative one, with any regional
/// prompts (`unilip.region`).
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// Positive prompt.
    pub cond: Condition<B>,
    /// Negative ("null") prompt.
    pub uncond: Option<Condition<B>>,
    /// Parts of the canvas that read their own prompt beside or instead of `cond`.
    pub regions: Vec<RegionPrompt<B>>,
    /// Which connector outputs `cond` holds (what planned regions are conditioned with too).
    pub mode: ConditionMode,
}
payload!(
    Conditioning,
    |s| Some(summarize(&s.cond.embeds)),
    bytes(&s.cond.embeds) * 2
);

/// The payload of input `port`, downcast to `T`.
pub fn input<'a, T: Payload>(ctx: &'a ExecCtx<'_>, port: &str) -> Result<&'a T, NodeError> {
    ctx.input(port)?
        .payload::<T>()
        .map_err(|source| NodeError::Type {
            port: port.to_string(),
            source,
        })
}

/// Wraps a payload as a value.
pub fn value<T: Payload>(p: T) -> Value {
    Value::Data(Arc::new(p))
}

/// Turns a model error into a node error.
pub use crate::nodes::failed as model_err;
