//! `unilip.query_embed`: token embeddings (+ image features at `<IMG_CONTEXT>`) ++ learnable queries.

use burn::prelude::*;
use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::payload::{input, model_err, value, Features, Sequence, Tokens};
use crate::register_node;

/// `unilip.query_embed`.
pub struct QueryEmbed {
    schema: NodeSchema,
}

impl QueryEmbed {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.query_embed".into(),
                version: 1,
                category: "unilip/condition".into(),
                description: "Embeds the prompt tokens, writes image features into the <IMG_CONTEXT> \
                              rows (editing), and appends the learnable queries. `queries` = -1 uses \
                              all trained queries; fewer truncates (with a warning), more is an error."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new("tokens", PortType::TokenIds, "Prompt tokens"),
                    PortSpec::optional(
                        "image_features",
                        PortType::VisionFeatures { dim: None },
                        "Features to insert at <IMG_CONTEXT> positions",
                    ),
                ],
                outputs: vec![PortSpec::new(
                    "sequence",
                    PortType::HiddenStates { dim: None },
                    "Embeddings ++ queries, with mask",
                )],
                params: vec![ParamSpec::int("queries", -1, -1, 4096, "Number of queries (-1 = all)")],
                output_node: false,
            },
        }
    }
}

impl Node for QueryEmbed {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let model = &model_input(ctx)?.model;
        let tokens = input::<Tokens>(ctx, "tokens")?;
        let features = match ctx.opt_input("image_features") {
            Some(_) => Some(input::<Features>(ctx, "image_features")?.tokens.clone()),
            None => None,
        };
        let [rows, _] = tokens.ids.dims();
        let features = features.map(|f| {
            let [b, n, h] = f.dims();
            if b == 1 && rows > 1 {
                f.expand([rows, n, h])
            } else {
                f
            }
        });
        let embeds = model
            .embed_prompt(tokens.ids.clone(), features.as_ref())
            .map_err(model_err)?;
        let trained = model.config.n_query;
        let wanted = ctx.int("queries")?;
        let n = if wanted < 0 { trained } else { wanted as usize };
        if n > trained {
            return Err(NodeError::msg(format!(
                "{n} queries requested but the checkpoint has {trained}"
            )));
        }
        if n < trained {
            ctx.warn(format!(
                "using {n} of {trained} trained queries (truncated)"
            ));
        }
        let queries = model
            .latent_queries
            .as_ref()
            .ok_or_else(|| NodeError::msg("checkpoint loaded without `connector` (queries)"))?
            .val();
        let (states, mask) = if n == 0 {
            (embeds, tokens.mask.clone())
        } else {
            let [b, _, h] = embeds.dims();
            let queries = queries.narrow(1, 0, n).expand([b, n, h]);
            let ones = Tensor::ones([b, n], &embeds.device());
            (
                Tensor::cat(vec![embeds, queries], 1),
                Tensor::cat(vec![tokens.mask.clone(), ones], 1),
            )
        };
        Ok(vec![value(Sequence {
            states,
            mask,
            n_query: n,
            ids: tokens.ids.clone(),
            image_features: features,
        })])
    }
}

register_node!(QueryEmbed);
