//! `unilip.noise`: a seeded N(0, 1) latent in the checkpoint's latent shape.

use unilip_core::{
    ExecCtx, LatentSpace, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value,
};

use super::checkpoint::{model_input, model_port};
use super::payload::{model_err, value, Latent};
use crate::backend::device;
use crate::models::unilip::{InitLatent, Unilip};
use crate::register_node;

/// `unilip.noise`.
pub struct Noise {
    schema: NodeSchema,
}

impl Noise {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.noise".into(),
                version: 1,
                category: "unilip/generate".into(),
                description: "Gaussian noise `[batch, C, s, s]` in the DiT's latent shape from a seed \
                              (the same stream DiT Denoise draws), mapped back (÷ `unilip_factor`, + `unilip_shift`) so it can \
                              enter `init_latent` or be decoded."
                    .into(),
                inputs: vec![model_port()],
                outputs: vec![PortSpec::new(
                    "latent",
                    PortType::Latent {
                        space: LatentSpace::Unilip,
                        channels: None,
                        downscale: None,
                    },
                    "Noise latent (unscaled)",
                )],
                params: vec![
                    ParamSpec::seed("seed", 42, "Noise seed"),
                    ParamSpec::int("batch", 1, 1, 64, "Batch size"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for Noise {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let init = InitLatent::Seed(ctx.int("seed")? as u64);
        let z = Unilip::initial_latent(model, ctx.int("batch")? as usize, &init, &device())
            .map_err(model_err)?;
        Ok(vec![value(Latent(model.unscale(z)))])
    }
}

register_node!(Noise);
