//! `unilip.condition`: connector + projector over the MLLM states → DiT conditioning, with the
//! condition mode exposed for ablations (dual / hidden-states only / queries only).

use burn::prelude::*;
use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::payload::{input, model_err, value, Conditioning, Sequence};
use crate::backend::B;
use crate::models::qwen2::{bidirectional_mask, position_ids_from_mask, AttentionMask};
use crate::models::unilip::{insert_image_features, Condition, ConditionMode, Unilip};
use crate::register_node;

/// `unilip.condition`.
pub struct HiddenStateCondition {
    schema: NodeSchema,
}

impl HiddenStateCondition {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.condition".into(),
                version: 1,
                category: "unilip/condition".into(),
                description: "UniLIP's dual condition: the connector (last LLM layers, bidirectional) \
                              and projector over the MLLM hidden states. `dual` keeps every position \
                              (prompt, image and queries); `hidden_only` keeps the prompt positions; \
                              `query_only` keeps only the query outputs (MetaQuery-style). For editing, \
                              the raw ViT features are written back at the image positions first. \
                              Row 0 of the input is the condition, row 1 the CFG negative."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new("hidden", PortType::HiddenStates { dim: None }, "MLLM last hidden states"),
                ],
                outputs: vec![PortSpec::new(
                    "conditioning",
                    PortType::Conditioning { dim: None },
                    "Condition (+ negative) for the DiT",
                )],
                params: vec![
                    ParamSpec::choice(
                        "mode",
                        "dual",
                        &ConditionMode::NAMES,
                        "Which connector outputs condition the DiT",
                    ),
                    ParamSpec::int(
                        "connector_depth",
                        -1,
                        -1,
                        256,
                        "Connector layers to run (-1 = all; 0 = skip the connector, projector only)",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

/// Connector (first `depth` layers) + projector on `[b, l, H]` with a bidirectional mask.
fn connect(
    model: &Unilip<B>,
    hidden: Tensor<B, 3>,
    mask: Tensor<B, 2, Int>,
    positions: Tensor<B, 2, Int>,
    depth: Option<usize>,
) -> Result<Tensor<B, 3>, NodeError> {
    let connector = model
        .llm_connector
        .as_ref()
        .ok_or_else(|| NodeError::msg("checkpoint loaded without `connector`"))?;
    let x = match depth {
        None => model.connect(hidden, mask, positions).map_err(model_err)?,
        Some(0) => hidden,
        Some(k) if k > connector.layers.len() => {
            return Err(NodeError::msg(format!(
                "connector_depth {k} but the connector has {} layers",
                connector.layers.len()
            )))
        }
        Some(k) => {
            let mut c = connector.clone();
            c.layers.truncate(k);
            let bias = AttentionMask::Additive(bidirectional_mask(mask));
            c.forward(hidden, &bias, Some(positions))
                .map_err(model_err)?
        }
    };
    model.project(x).map_err(model_err)
}

impl Node for HiddenStateCondition {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let seq = input::<Sequence>(ctx, "hidden")?;
        let depth = usize::try_from(ctx.int("connector_depth")?).ok();
        let [rows, l, _] = seq.states.dims();
        let n = seq.n_query;
        let lt = l - n;
        // Editing: the image positions carry the raw ViT features again (UniLIP's training code).
        let mut hidden = seq.states.clone();
        if let Some(f) = &seq.image_features {
            let prompt = hidden.clone().narrow(1, 0, lt);
            let prompt = insert_image_features(prompt, &seq.ids, f, model.config.image_token_id)
                .map_err(model_err)?;
            hidden = if n > 0 {
                Tensor::cat(vec![prompt, hidden.narrow(1, lt, n)], 1)
            } else {
                prompt
            };
        }
        let positions = position_ids_from_mask(seq.mask.clone());
        let mode: ConditionMode = ctx.str("mode")?.parse().map_err(NodeError::msg)?;
        let (states, mask, positions) = match ctx.str("mode")? {
            "dual" => (hidden, seq.mask.clone(), positions),
            "hidden_only" => {
                let m = seq.mask.clone().narrow(1, 0, lt);
                let p = position_ids_from_mask(m.clone());
                (hidden.narrow(1, 0, lt), m, p)
            }
            _ if n == 0 => return Err(NodeError::msg("query_only needs queries in the sequence")),
            _ => (
                hidden.narrow(1, lt, n),
                Tensor::ones([rows, n], &seq.mask.device()),
                positions.narrow(1, lt, n),
            ),
        };
        let embeds = connect(model, states, mask.clone(), positions, depth)?;
        let row = |i: usize| Condition {
            embeds: embeds.clone().narrow(0, i, 1),
            mask: mask.clone().narrow(0, i, 1),
        };
        let conditioning = Conditioning {
            cond: row(0),
            uncond: (rows > 1).then(|| row(1)),
            regions: Vec::new(),
            mode,
        };
        Ok(vec![value(conditioning)])
    }
}

register_node!(HiddenStateCondition);
