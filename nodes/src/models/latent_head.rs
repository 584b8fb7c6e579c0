//! UniLIP latent head (`DCAE_Decoder.clip_down`, `model.vae_decoder.{down_blocks,down_mlp}`):
//! residual MLPs on the `[B, N, H]` image features, then `down_mlp` to `C` latent channels and a
//! row-major reshape to the latent image `[B, C, h, w]` (`z[b, c, y, x] = tok[b, y·w + x, c]`).
//!
//! The number of residual blocks and of latent channels are read from the checkpoint (UniLIP:
//! 3 blocks, 32 channels). Each `nn.Sequential` MLP (`mlp.{0,1,3}`, `down_mlp.{0,1,3}`) is a
//! [`NormMlp`] whose fields are named `layer_norm`, `linear_1`, `linear_2`.

use burn::prelude::*;

use crate::models::internvit::{InputError, NormMlp};
use crate::weights::{Result, VarBuilder};

/// LayerNorm epsilon inside each residual block (`nn.LayerNorm(H, eps=1e-6)`).
pub const RES_BLOCK_EPS: f64 = 1e-6;
/// LayerNorm epsilon of `down_mlp` (`nn.LayerNorm(H)` default).
pub const DOWN_MLP_EPS: f64 = 1e-5;

/// `x + mlp(x)`, mlp = LayerNorm → Linear(H, H) → GELU → Linear(H, H).
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    /// The residual branch.
    pub mlp: NormMlp<B>,
}

impl<B: Backend> ResBlock<B> {
    /// Forward pass on `[B, N, H]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        x.clone() + self.mlp.forward(x)
    }
}

/// The latent head: `down_blocks` then `down_mlp`.
#[derive(Module, Debug)]
pub struct LatentHead<B: Backend> {
    /// Residual MLP blocks at the feature width.
    pub down_blocks: Vec<ResBlock<B>>,
    /// LayerNorm → Linear(H, C) → GELU → Linear(C, C).
    pub down_mlp: NormMlp<B>,
}

impl<B: Backend> LatentHead<B> {
    /// Loads `down_blocks.{i}.mlp.*` and `down_mlp.*` under `vb` (UniLIP: `model.vae_decoder`)
    /// for features of width `hidden` (the LLM width). Latent channels come from
    /// `down_mlp.1.weight`, the block count from the keys present.
    pub fn load(vb: &VarBuilder<B>, hidden: usize) -> Result<Self> {
        let latent = match vb.shape_of("down_mlp.1.weight") {
            Some(shape) => shape.first().copied().unwrap_or(0),
            None => vb
                .checkpoint()
                .read(&vb.key("down_mlp.1.weight"))?
                .shape
                .first()
                .copied()
                .unwrap_or(0),
        };
        let blocks = vb.pp("down_blocks");
        let n = (0..)
            .take_while(|i| blocks.contains(&format!("{i}.mlp.0.weight")))
            .count()
            .max(1);
        let down_blocks = (0..n)
            .map(|i| {
                let mlp = NormMlp::load(&blocks.pp(i).pp("mlp"), [hidden; 3], RES_BLOCK_EPS)?;
                Ok(ResBlock { mlp })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            down_blocks,
            down_mlp: NormMlp::load(&vb.pp("down_mlp"), [hidden, latent, latent], DOWN_MLP_EPS)?,
        })
    }

    /// Number of latent channels `C`.
    pub fn latent_channels(&self) -> usize {
        self.down_mlp.linear_2.weight.dims()[1]
    }

    /// Latent tokens `[B, N, C]` of features `[B, N, H]`.
    pub fn tokens(&self, features: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = self.down_blocks.iter().fold(features, |x, b| b.forward(x));
        self.down_mlp.forward(x)
    }

    /// Latent `[B, C, rows, cols]` of features `[B, rows·cols, H]` on a row-major token grid
    /// (`vae_decoder.clip_down`; UniLIP's grid is square: 16×16 at 448 px).
    pub fn latent(
        &self,
        features: Tensor<B, 3>,
        grid: [usize; 2],
    ) -> std::result::Result<Tensor<B, 4>, InputError> {
        let [rows, cols] = grid;
        let [b, n, _] = features.dims();
        if n != rows * cols {
            return Err(InputError::TokenCount {
                tokens: n,
                rows,
                cols,
            });
        }
        let tok = self.tokens(features);
        let c = self.latent_channels();
        Ok(tok.swap_dims(1, 2).reshape([b, c, rows, cols]))
    }
}
