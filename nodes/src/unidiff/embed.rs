//! CLIP-side embeddings of the UniLIP stack, shared by UniDiff training and retrieval:
//! images through the vision tower and `mlp1`, captions (raw, no chat template) through the text
//! tower, both mean-pooled and, when the checkpoint has UniDiff heads, projected. Without heads
//! the pooled features themselves are the embeddings (both live in the LLM's width), which is the
//! zero-shot baseline.

use burn::prelude::*;

use crate::models::qwen2::{position_ids_from_mask, AttentionMask};
use crate::models::unilip::{Unilip, UnilipError};
use crate::unidiff::heads::masked_mean;

/// Image embeddings `[b, D]` of normalised pixels `[b, 3, h, w]` (not unit-normalised).
pub fn image_embeddings<B: Backend>(
    model: &Unilip<B>,
    pixel_values: Tensor<B, 4>,
) -> Result<Tensor<B, 2>, UnilipError> {
    let features = model.image_features(pixel_values)?;
    Ok(match &model.unidiff {
        Some(heads) => heads.image_embedding(features),
        None => features.mean_dim(1).squeeze_dim::<2>(1),
    })
}

/// Caption hidden states `[b, l, H]` from the ITC text encoder: the separate `text_tower` when the
/// heads have one, the LLM otherwise (causal with the padding `mask`).
pub fn caption_hidden<B: Backend>(
    model: &Unilip<B>,
    input_ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
) -> Result<Tensor<B, 3>, UnilipError> {
    match model.unidiff.as_ref().and_then(|h| h.text_tower.as_ref()) {
        Some(tower) => {
            let positions = position_ids_from_mask(mask.clone());
            Ok(tower.forward(
                tower.embed(input_ids)?,
                &AttentionMask::Causal(Some(mask)),
                Some(positions),
            )?)
        }
        None => model.llm_hidden(model.embed_prompt(input_ids, None)?, mask),
    }
}

/// Caption embeddings `[b, D]` of token ids `[b, l]` with their padding mask.
pub fn text_embeddings<B: Backend>(
    model: &Unilip<B>,
    input_ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
) -> Result<Tensor<B, 2>, UnilipError> {
    let hidden = caption_hidden(model, input_ids, mask.clone())?;
    Ok(match &model.unidiff {
        Some(heads) => heads.text_embedding(hidden, mask),
        None => masked_mean(hidden, mask),
    })
}
