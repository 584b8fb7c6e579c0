//! `unilip.pixel_decode`: UniLIP latent → DC-AE decoder → image.

use unilip_core::{
    ExecCtx, LatentSpace, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value,
};

use super::checkpoint::{model_input, model_port};
use super::convert::image_value;
use super::payload::{input, model_err, Latent};
use crate::register_node;

/// `unilip.pixel_decode`.
pub struct PixelDecode {
    schema: NodeSchema,
}

impl PixelDecode {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.pixel_decode".into(),
                version: 1,
                category: "unilip/decode".into(),
                description:
                    "Decodes a UniLIP latent with the DC-AE decoder (×32), clamps to [-1, 1], \
                              maps to [0, 1] and resizes: `input` = × the config's `output_scale` (UniLIP: 28/32, back to the encoder's \
                              pixel grid, as UniLIP does), `native` = decoder resolution."
                        .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new(
                        "latent",
                        PortType::Latent {
                            space: LatentSpace::Unilip,
                            channels: None,
                            downscale: None,
                        },
                        "UniLIP latent (unscaled)",
                    ),
                ],
                outputs: vec![PortSpec::new("image", PortType::Image, "Decoded images")],
                params: vec![ParamSpec::choice(
                    "resize",
                    "input",
                    &["input", "native"],
                    "Output grid",
                )],
                output_node: false,
            },
        }
    }
}

impl Node for PixelDecode {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let z = input::<Latent>(ctx, "latent")?.0.clone();
        let decoded = model.decode_latent(z).map_err(model_err)?;
        let image = match ctx.str("resize")? {
            "native" => (decoded.clamp(-1.0, 1.0) + 1.0) / 2.0,
            _ => model.output_image(decoded),
        };
        Ok(vec![image_value(image)])
    }
}

register_node!(PixelDecode);
