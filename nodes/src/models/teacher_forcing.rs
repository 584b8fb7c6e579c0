//! Teacher-forced answer batches: the rows the understanding loss trains on and the rows
//! [`crate::models::unilip::Unilip::answer_log_probs`] scores are built the same way here.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Right-padded next-token batch of `prompt ++ answer` rows: inputs are `seq[..n-1]`, targets
/// `seq[1..]`, weight 1 where the target is an answer token.
#[derive(Debug, Clone)]
pub struct TextBatch {
    rows: usize,
    len: usize,
    inputs: Vec<i64>,
    mask: Vec<i64>,
    targets: Vec<i64>,
    weights: Vec<f32>,
}

/// The tensors of a [`TextBatch`], each `[rows, len]`.
pub struct TextTensors<B: Backend> {
    /// Input ids.
    pub inputs: Tensor<B, 2, Int>,
    /// 1 at real tokens, 0 at padding.
    pub mask: Tensor<B, 2, Int>,
    /// The next token at each position.
    pub targets: Tensor<B, 2, Int>,
    /// 1 where the target is an answer token.
    pub weights: Tensor<B, 2>,
}

impl TextBatch {
    /// The batch of `(prompt, answer)` token rows, padded with `pad`. Every answer must have at
    /// least one token.
    pub fn new(rows: &[(Vec<u32>, Vec<u32>)], pad: u32) -> Self {
        let len = rows
            .iter()
            .map(|(p, a)| p.len() + a.len() - 1)
            .max()
            .unwrap_or(0);
        let mut out = Self {
            rows: rows.len(),
            len,
            inputs: Vec::new(),
            mask: Vec::new(),
            targets: Vec::new(),
            weights: Vec::new(),
        };
        for (prompt, answer) in rows {
            let seq: Vec<u32> = prompt.iter().chain(answer).copied().collect();
            let n = seq.len() - 1;
            for j in 0..len {
                let real = j < n;
                out.inputs.push(i64::from(if real { seq[j] } else { pad }));
                out.mask.push(i64::from(real));
                out.targets
                    .push(i64::from(if real { seq[j + 1] } else { pad }));
                out.weights.push(if real && j + 1 >= prompt.len() {
                    1.0
                } else {
                    0.0
                });
            }
        }
        out
    }

    /// The batch on `device`.
    pub fn tensors<B: Backend>(self, device: &B::Device) -> TextTensors<B> {
        let shape = [self.rows, self.len];
        TextTensors {
            inputs: Tensor::from_data(TensorData::new(self.inputs, shape), device),
            mask: Tensor::from_data(TensorData::new(self.mask, shape), device),
            targets: Tensor::from_data(TensorData::new(self.targets, shape), device),
            weights: Tensor::from_data(TensorData::new(self.weights, shape), device),
        }
    }
}

/// Log-probability `[b, L]` that `logits` `[b, L, V]` give each of `targets` `[b, L]`.
pub fn token_log_probs<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> Tensor<B, 2> {
    log_softmax(logits, 2)
        .gather(2, targets.unsqueeze_dim(2))
        .squeeze_dim::<2>(2)
}
