//! `unilip.latent_project`: features → UniLIP latent through the latent head.

use unilip_core::{ExecCtx, LatentSpace, Node, NodeError, NodeSchema, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::payload::{input, model_err, value, Features, Latent};
use crate::register_node;

/// `unilip.latent_project`.
pub struct LatentProject {
    schema: NodeSchema,
}

impl LatentProject {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.latent_project".into(),
                version: 1,
                category: "unilip/encode".into(),
                description: "Squeezes CLIP features into the UniLIP latent: 3 residual MLPs + \
                              down_mlp, tokens reshaped row-major to [b, C, rows, cols]."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new(
                        "features",
                        PortType::VisionFeatures { dim: None },
                        "mlp1 features",
                    ),
                ],
                outputs: vec![PortSpec::new(
                    "latent",
                    PortType::Latent {
                        space: LatentSpace::Unilip,
                        channels: None,
                        downscale: None,
                    },
                    "UniLIP latent (unscaled)",
                )],
                params: vec![],
                output_node: false,
            },
        }
    }
}

impl Node for LatentProject {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let f = input::<Features>(ctx, "features")?;
        let z = model
            .features_to_latent(f.tokens.clone(), f.grid)
            .map_err(model_err)?;
        Ok(vec![value(Latent(z))])
    }
}

register_node!(LatentProject);
