//! `unilip.distill`: compares a student encoder's features with a frozen teacher's — UniLIP's
//! self-distillation term as a loss, and the drift of an adapted encoder as a metric.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::payload::{input, Features};
use crate::register_node;

/// `unilip.distill`.
pub struct Distill {
    schema: NodeSchema,
}

impl Distill {
    /// The node.
    pub fn new() -> Self {
        let feats = |doc| PortSpec::new(doc, PortType::VisionFeatures { dim: None }, doc);
        Self {
            schema: NodeSchema {
                id: "unilip.distill".into(),
                version: 1,
                category: "unilip/encode".into(),
                description: "Self-distillation between a student's mlp1 features and a frozen \
                              teacher's for the same images: `mse` = λ·mean((s − t)²) (UniLIP stage 2, \
                              λ = 1), `cosine` = λ·(1 − mean token cosine). Use it as a drift metric \
                              in inference graphs."
                    .into(),
                inputs: vec![feats("student"), feats("teacher")],
                outputs: vec![PortSpec::new("value", PortType::Float, "Weighted distance")],
                params: vec![
                    ParamSpec::choice("measure", "mse", &["mse", "cosine"], "Distance"),
                    ParamSpec::float("weight", 1.0, 0.0, 1e6, "λ"),
                ],
                output_node: true,
            },
        }
    }
}

impl Node for Distill {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let s = input::<Features>(ctx, "student")?.tokens.clone();
        let t = input::<Features>(ctx, "teacher")?.tokens.clone();
        if s.dims() != t.dims() {
            return Err(NodeError::msg(format!(
                "student features {:?} and teacher features {:?} differ in shape",
                s.dims(),
                t.dims()
            )));
        }
        let d: f32 = match ctx.str("measure")? {
            "cosine" => {
                let dot = (s.clone() * t.clone()).sum_dim(2);
                let norms =
                    (s.powi_scalar(2).sum_dim(2) * t.powi_scalar(2).sum_dim(2)).sqrt() + 1e-12;
                1.0 - (dot / norms).mean().into_scalar()
            }
            _ => (s - t).powi_scalar(2).mean().into_scalar(),
        };
        Ok(vec![Value::Float(ctx.float("weight")? * d as f64)])
    }
}

register_node!(Distill);
