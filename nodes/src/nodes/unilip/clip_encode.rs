//! `unilip.clip_encode`: image → InternViT → pixel shuffle → mlp1 features (the MLLM image tokens).

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{input_size, model_input, model_port};
use super::convert::pixel_values;
use super::payload::{model_err, value, Features};
use crate::register_node;

/// `unilip.clip_encode`.
pub struct ClipEncode {
    schema: NodeSchema,
}

impl ClipEncode {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.clip_encode".into(),
                version: 1,
                category: "unilip/encode".into(),
                description: "Encodes images with the (UniLIP-adapted) InternViT: resize to `size` \
                              (bicubic), ImageNet normalisation, vision tower, drop CLS, pixel shuffle \
                              ×0.5, mlp1. The features feed the MLLM (understanding, editing) and the \
                              latent head (reconstruction)."
                    .into(),
                inputs: vec![model_port(), PortSpec::new("image", PortType::Image, "Images")],
                outputs: vec![PortSpec::new(
                    "features",
                    PortType::VisionFeatures { dim: None },
                    "mlp1 features [b, tokens, H]",
                )],
                params: vec![ParamSpec::int(
                    "size",
                    0,
                    0,
                    2016,
                    "Square input size in pixels (a multiple of patch × 2, 28 for InternViT); \
                     0 = the checkpoint's own (`vision_config.image_size`, 448 for UniLIP)",
                )],
                output_node: false,
            },
        }
    }
}

impl Node for ClipEncode {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let img = ctx.input("image")?.as_image().map_err(model_err)?.clone();
        let size = input_size(&handle.model, ctx.int("size")?);
        let model = &handle.model;
        let px = pixel_values(&img, size);
        let tokens = model.image_features(px).map_err(model_err)?;
        let vision = model
            .vision
            .as_ref()
            .ok_or_else(|| NodeError::msg("checkpoint loaded without `vision`"))?;
        let grid = vision.feature_grid(size, size);
        Ok(vec![value(Features { tokens, grid })])
    }
}

register_node!(ClipEncode);
