//! `unilip.mllm_reason`: the frozen MLLM over embeddings (+ queries) → last hidden states.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::payload::{input, model_err, value, Sequence};
use crate::register_node;

/// `unilip.mllm_reason`.
pub struct MllmReason {
    schema: NodeSchema,
}

impl MllmReason {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.mllm_reason".into(),
                version: 1,
                category: "unilip/condition".into(),
                description: "Runs the MLLM (Qwen2, causal, padding mask, positions cumsum(mask)−1) on a \
                              sequence and returns hidden_states[-1] (after the final RMSNorm). Text \
                              answers are produced by `unilip.mllm_answer`, so each node has one typed \
                              output."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new("sequence", PortType::HiddenStates { dim: None }, "Embeddings ++ queries"),
                ],
                outputs: vec![PortSpec::new(
                    "hidden",
                    PortType::HiddenStates { dim: None },
                    "Last hidden states, same mask",
                )],
                params: vec![],
                output_node: false,
            },
        }
    }
}

impl Node for MllmReason {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let seq = input::<Sequence>(ctx, "sequence")?;
        let states = model
            .llm_hidden(seq.states.clone(), seq.mask.clone())
            .map_err(model_err)?;
        Ok(vec![value(Sequence {
            states,
            ..seq.clone()
        })])
    }
}

register_node!(MllmReason);
