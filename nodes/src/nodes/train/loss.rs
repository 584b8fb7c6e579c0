//! Loss nodes. Each outputs its weighted term appended to the optional `add` input, so terms chain
//! (`mse → perceptual → distill → train`); the trainer sums them.

use std::sync::Arc;

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use crate::nodes::unilip::payload::payload;
use crate::train::loss::{LossKind, LossTerm};
use crate::unidiff::RscMode;

/// Loss terms on a wire.
#[derive(Debug, Clone, PartialEq)]
pub struct LossValue(pub Vec<LossTerm>);

payload!(LossValue, |_s| None, 0);

/// A loss node of one [`LossKind`].
pub struct LossNode {
    schema: NodeSchema,
    make: fn(&ExecCtx<'_>) -> Result<LossKind, NodeError>,
}

impl LossNode {
    fn build(
        id: &str,
        description: &str,
        extra: Vec<ParamSpec>,
        make: fn(&ExecCtx<'_>) -> Result<LossKind, NodeError>,
    ) -> Self {
        let mut params = vec![ParamSpec::float(
            "weight",
            1.0,
            0.0,
            1e6,
            "Weight in the sum",
        )];
        params.extend(extra);
        Self {
            schema: NodeSchema {
                id: id.into(),
                version: 1,
                category: "train/loss".into(),
                description: description.into(),
                inputs: vec![PortSpec::optional(
                    "add",
                    PortType::Loss,
                    "Terms to add this one to",
                )],
                outputs: vec![PortSpec::new("loss", PortType::Loss, "The terms so far")],
                params,
                output_node: false,
            },
            make,
        }
    }
}

impl Node for LossNode {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let mut terms = match ctx.opt_input("add") {
            Some(v) => v
                .payload::<LossValue>()
                .map_err(|source| NodeError::Type {
                    port: "add".into(),
                    source,
                })?
                .0
                .clone(),
            None => Vec::new(),
        };
        let kind = (self.make)(ctx)?;
        if terms.iter().any(|t| t.kind.name() == kind.name()) {
            return Err(NodeError::msg(format!(
                "the chain already has a `{}` term",
                kind.name()
            )));
        }
        terms.push(LossTerm {
            kind,
            weight: ctx.float("weight")?,
        });
        Ok(vec![Value::Data(Arc::new(LossValue(terms)))])
    }
}

macro_rules! loss_node {
    ($name:ident, $id:literal, $doc:literal, $extra:expr, $make:expr) => {
        #[doc = concat!("`", $id, "`: ", $doc)]
        pub struct $name(LossNode);

        impl $name {
            /// The node.
            pub fn new() -> Self {
                Self(LossNode::build($id, $doc, $extra, $make))
            }
        }

        impl Node for $name {
            fn schema(&self) -> &NodeSchema {
                self.0.schema()
            }
            fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
                self.0.execute(ctx)
            }
        }

        crate::register_node!($name);
    };
}

loss_node!(
    MseLoss,
    "loss.mse",
    "Pixel MSE between the reconstruction and the input image (encoder training, spec §3.1).",
    vec![],
    |_| Ok(LossKind::PixelMse)
);
loss_node!(
    L1Loss,
    "loss.l1",
    "Pixel L1 between the reconstruction and the input image (encoder training).",
    vec![],
    |_| Ok(LossKind::PixelL1)
);
loss_node!(
    PerceptualLoss,
    "loss.perceptual",
    "LPIPS-style distance in the frozen original vision tower (every layer, unit-normalised \
     tokens): the perceptual term of encoder training without a download.",
    vec![],
    |_| Ok(LossKind::Perceptual)
);
loss_node!(
    DistillLoss,
    "loss.distill",
    "Self-distillation: MSE between the trained encoder's mlp1 features and the frozen original's \
     (UniLIP stage 2, λ = weight = 1).",
    vec![],
    |_| Ok(LossKind::Distill)
);
loss_node!(
    FlowMatchingLoss,
    "loss.flow_matching",
    "Flow matching: MSE between the DiT output and ε − x0 at logit-normal timesteps (spec §2.8); \
     trains generation on caption data and editing on edit triplets.",
    vec![
        ParamSpec::float(
            "logit_mean",
            0.0,
            -5.0,
            5.0,
            "Mean m of the logit-normal timestep density: u ~ N(m, std) indexes the descending \
             timestep table at sigmoid(u)·N (diffusers' convention), so σ ≈ 1 − sigmoid(u): \
             m > 0 trains at less noise, m < 0 at more"
        ),
        ParamSpec::float(
            "logit_std",
            1.0,
            0.01,
            5.0,
            "Std of the logit-normal timestep density"
        ),
    ],
    |ctx| Ok(LossKind::FlowMatching {
        logit_mean: ctx.float("logit_mean")?,
        logit_std: ctx.float("logit_std")?,
    })
);
loss_node!(
    PromptContrastLoss,
    "loss.prompt_contrast",
    "Hard-negative prompt contrast for generation training on ShapesWorld captions: on each \
     caption relating two groups, the DiT's flow loss under the caption rearranged (relation \
     reversed, or the groups' colours or shapes swapped) must exceed its loss under the caption \
     by `margin` (hinge). Chain it with loss.flow_matching; other captions add nothing.",
    vec![ParamSpec::float(
        "margin",
        0.02,
        0.0,
        10.0,
        "Loss gap (per-sample MSE) below which a rearranged caption is penalised"
    )],
    |ctx| Ok(LossKind::PromptContrast {
        margin: ctx.float("margin")?,
    })
);
loss_node!(
    TextLoss,
    "loss.text",
    "Next-token cross-entropy of the MLLM on answers (VQA data) or captions (caption data).",
    vec![],
    |_| Ok(LossKind::Text)
);
loss_node!(
    ItcLoss,
    "loss.itc",
    "UniDiff ITC: symmetric InfoNCE between the pooled image features and the pooled caption \
     hidden states, each through a UniDiff head, at CLIP's learnable temperature (heads start as \
     the identity when the checkpoint has none).",
    vec![ParamSpec::choice(
        "text_encoder",
        "shared",
        &["shared", "separate"],
        "shared: the LLM that conditions the DiT; separate: a trained copy of it (text_tower)"
    )],
    |ctx| Ok(LossKind::Itc {
        separate_text: ctx.str("text_encoder")? == "separate",
    })
);
loss_node!(
    RscLoss,
    "loss.rsc",
    "UniDiff RSC: a DiT block's hidden states of the noisy latent (pooled, projected by dit_head) \
     against the clean image's CLIP embedding, on samples with timestep ≤ t_max; contrastive \
     (symmetric InfoNCE), cosine (1 − cos) or text_anchored (both sides to the caption).",
    vec![
        ParamSpec::choice(
            "mode",
            "contrastive",
            &RscMode::NAMES,
            "How the two feature sets are tied"
        ),
        ParamSpec::int(
            "tap_block",
            1,
            0,
            1000,
            "DiT block whose output is tapped (0-based)"
        ),
        ParamSpec::float("t_max", 500.0, 0.0, 1000.0, "Largest timestep that counts"),
        ParamSpec::float(
            "temperature",
            0.07,
            0.001,
            10.0,
            "Temperature of the contrastive modes"
        ),
    ],
    |ctx| Ok(LossKind::Rsc {
        mode: ctx.str("mode")?.parse().map_err(NodeError::msg)?,
        tap_block: ctx.int("tap_block")?.max(0) as usize,
        t_max: ctx.float("t_max")?,
        temperature: ctx.float("temperature")?,
    })
);
