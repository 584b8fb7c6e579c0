//! Port types: the closed set of things that travel on wires, with enough shape information to
//! refuse wrong wiring before any compute, and the explicit coercion table.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which latent space a latent lives in. Latents of different spaces are never interchangeable,
/// even with equal channel counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum LatentSpace {
    /// UniLIP latent: CLIP features squeezed by the latent head (decoded by the DC-AE decoder).
    Unilip,
    /// The same latent scaled by `unilip_factor`, as the DiT sees it.
    UnilipScaled,
    /// A plain DC-AE encoder latent.
    DcAe,
}

/// Kinds of model handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum ModelKind {
    /// A whole UniLIP checkpoint (all sub-models).
    Unilip,
    /// Vision tower + projector (CLIP encode).
    Vision,
    /// The MLLM (Qwen2 with `lm_head`).
    Llm,
    /// Connector + projector + learnable queries.
    Connector,
    /// SANA DiT.
    Dit,
    /// Latent head + DC-AE pixel decoder.
    PixelDecoder,
    /// A tokenizer.
    Tokenizer,
}

/// The type of an input or output port. `None` in a dimension means "not known until run time":
/// it matches any value. Two known dimensions must be equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortType {
    /// Batch of RGB images, values in [0, 1].
    Image,
    /// Latent tensor `[B, channels, h, w]` with `h = image / downscale`.
    Latent {
        /// Latent space.
        space: LatentSpace,
        /// Channel count.
        channels: Option<u32>,
        /// Spatial downscale from pixels.
        downscale: Option<u32>,
    },
    /// Vision-encoder token features `[B, N, dim]`.
    VisionFeatures {
        /// Feature width.
        dim: Option<u32>,
    },
    /// Token ids `[B, L]` with a 0/1 attention mask.
    TokenIds,
    /// Transformer hidden states `[B, L, dim]` with a mask.
    HiddenStates {
        /// Hidden width.
        dim: Option<u32>,
    },
    /// Cross-attention conditioning: embeddings + mask for the conditional and unconditional branch.
    Conditioning {
        /// Embedding width.
        dim: Option<u32>,
    },
    /// Free text.
    Text,
    /// Integer scalar.
    Int,
    /// Float scalar.
    Float,
    /// Boolean.
    Bool,
    /// Random seed.
    Seed,
    /// A sampler configuration.
    Scheduler,
    /// A loaded model.
    Model(ModelKind),
    /// A scalar loss with its autodiff graph (training graphs).
    Loss,
    /// A dataset handle (training and evaluation graphs).
    Dataset,
    /// A set of labelled embedding vectors `[n, dim]` (retrieval corpora, pooled features).
    Embeddings {
        /// Vector width.
        dim: Option<u32>,
    },
}

impl PortType {
    /// Short stable name of the variant, used for pin colours and the schema export.
    pub fn family(&self) -> &'static str {
        match self {
            PortType::Image => "Image",
            PortType::Latent { .. } => "Latent",
            PortType::VisionFeatures { .. } => "VisionFeatures",
            PortType::TokenIds => "TokenIds",
            PortType::HiddenStates { .. } => "HiddenStates",
            PortType::Conditioning { .. } => "Conditioning",
            PortType::Text => "Text",
            PortType::Int => "Int",
            PortType::Float => "Float",
            PortType::Bool => "Bool",
            PortType::Seed => "Seed",
            PortType::Scheduler => "Scheduler",
            PortType::Model(_) => "Model",
            PortType::Loss => "Loss",
            PortType::Dataset => "Dataset",
            PortType::Embeddings { .. } => "Embeddings",
        }
    }

    /// How a value of type `self` may flow into an input of type `to`.
    pub fn connect_to(&self, to: &PortType) -> Connection {
        fn dims_match(a: Option<u32>, b: Option<u32>) -> bool {
            matches!((a, b), (Some(x), Some(y)) if x == y) || a.is_none() || b.is_none()
        }
        use PortType::*;
        let exact = match (self, to) {
            (
                Latent {
                    space: s1,
                    channels: c1,
                    downscale: d1,
                },
                Latent {
                    space: s2,
                    channels: c2,
                    downscale: d2,
                },
            ) => s1 == s2 && dims_match(*c1, *c2) && dims_match(*d1, *d2),
            (VisionFeatures { dim: a }, VisionFeatures { dim: b })
            | (HiddenStates { dim: a }, HiddenStates { dim: b })
            | (Conditioning { dim: a }, Conditioning { dim: b })
            | (Embeddings { dim: a }, Embeddings { dim: b }) => dims_match(*a, *b),
            (Model(a), Model(b)) => a == b || *a == ModelKind::Unilip,
            (a, b) => a == b,
        };
        if exact {
            return Connection::Direct;
        }
        match COERCIONS.iter().find(|(f, t, _)| f(self) && t(to)) {
            Some((_, _, c)) => Connection::Coerce(*c),
            None => Connection::Refused,
        }
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |x: &Option<u32>| x.map_or("?".to_string(), |v| v.to_string());
        match self {
            PortType::Latent {
                space,
                channels,
                downscale,
            } => write!(f, "Latent<{space:?}, {}ch, /{}>", d(channels), d(downscale)),
            PortType::VisionFeatures { dim } => write!(f, "VisionFeatures<{}>", d(dim)),
            PortType::HiddenStates { dim } => write!(f, "HiddenStates<{}>", d(dim)),
            PortType::Conditioning { dim } => write!(f, "Conditioning<{}>", d(dim)),
            PortType::Embeddings { dim } => write!(f, "Embeddings<{}>", d(dim)),
            PortType::Model(k) => write!(f, "Model<{k:?}>"),
            other => f.write_str(other.family()),
        }
    }
}

/// A conversion applied when a value crosses a wire between two different but compatible types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coercion {
    /// Integer to float.
    IntToFloat,
    /// Integer (non-negative) to seed.
    IntToSeed,
    /// Seed to integer.
    SeedToInt,
    /// Vision features seen as hidden states (same `[B, N, dim]` layout).
    FeaturesToHidden,
}

/// Result of [`PortType::connect_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Same type.
    Direct,
    /// Allowed through this coercion.
    Coerce(Coercion),
    /// Not allowed.
    Refused,
}

type Pred = fn(&PortType) -> bool;

/// The explicit coercion table: (from, to, conversion). Anything not listed is refused.
const COERCIONS: &[(Pred, Pred, Coercion)] = &[
    (
        |t| *t == PortType::Int,
        |t| *t == PortType::Float,
        Coercion::IntToFloat,
    ),
    (
        |t| *t == PortType::Int,
        |t| *t == PortType::Seed,
        Coercion::IntToSeed,
    ),
    (
        |t| *t == PortType::Seed,
        |t| *t == PortType::Int,
        Coercion::SeedToInt,
    ),
    (
        |t| matches!(t, PortType::VisionFeatures { .. }),
        |t| matches!(t, PortType::HiddenStates { .. }),
        Coercion::FeaturesToHidden,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latent_channels_must_agree() {
        let a = PortType::Latent {
            space: LatentSpace::UnilipScaled,
            channels: Some(32),
            downscale: Some(32),
        };
        let b = PortType::Latent {
            space: LatentSpace::UnilipScaled,
            channels: Some(8),
            downscale: None,
        };
        let any = PortType::Latent {
            space: LatentSpace::UnilipScaled,
            channels: None,
            downscale: None,
        };
        assert_eq!(a.connect_to(&b), Connection::Refused);
        assert_eq!(a.connect_to(&any), Connection::Direct);
        let dcae = PortType::Latent {
            space: LatentSpace::DcAe,
            channels: Some(32),
            downscale: Some(32),
        };
        assert_eq!(dcae.connect_to(&a), Connection::Refused);
    }

    #[test]
    fn coercions_are_explicit() {
        assert_eq!(
            PortType::Int.connect_to(&PortType::Float),
            Connection::Coerce(Coercion::IntToFloat)
        );
        assert_eq!(
            PortType::Float.connect_to(&PortType::Int),
            Connection::Refused
        );
        assert_eq!(
            PortType::Text.connect_to(&PortType::Image),
            Connection::Refused
        );
        assert_eq!(
            PortType::Model(ModelKind::Unilip).connect_to(&PortType::Model(ModelKind::Dit)),
            Connection::Direct
        );
        assert_eq!(
            PortType::Model(ModelKind::Dit).connect_to(&PortType::Model(ModelKind::Llm)),
            Connection::Refused
        );
    }
}
