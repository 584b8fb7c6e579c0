//! `unilip.edit_prompts`: turns a ShapesWorld edit instruction into the source and target
//! prompts unilip.flow_edit edits between.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::payload::{model_err, value, Conditioning};
use crate::backend::device;
use crate::models::flow_edit::EditPrompts as Prompts;
use crate::models::unilip::ConditionMode;
use crate::register_node;
use crate::shapesworld::{EditKind, Style};

/// `unilip.edit_prompts`.
pub struct EditPrompts {
    schema: NodeSchema,
}

impl EditPrompts {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.edit_prompts".into(),
                version: 1,
                category: "unilip/condition".into(),
                description: "Rewrites a ShapesWorld edit instruction as two text-to-image \
                              prompts about the object it names, for unilip.flow_edit (the \
                              instruction grammar plays the rewriting LLM): \"make the red circle \
                              blue\" → \"a red circle\" / \"a blue circle\"; \"make the red \
                              circle larger\" → \"a small red circle\" / \"a large red circle\"; \
                              add and remove pair the object's caption with the unconditional \
                              prompt. Moves and swaps change where objects are, which no such pair \
                              says: they are refused, as is text outside the grammar."
                    .into(),
                inputs: vec![model_port()],
                outputs: vec![
                    PortSpec::new(
                        "source",
                        PortType::Conditioning { dim: None },
                        "Before (+ negative)",
                    ),
                    PortSpec::new(
                        "target",
                        PortType::Conditioning { dim: None },
                        "After (+ negative)",
                    ),
                ],
                params: vec![
                    ParamSpec::text("text", "make the red circle blue", "The edit instruction"),
                    ParamSpec::choice(
                        "mode",
                        ConditionMode::Dual.name(),
                        &ConditionMode::NAMES,
                        "Which connector outputs condition the DiT",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for EditPrompts {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let text = ctx.str("text")?;
        let kind = EditKind::parse(text).map_err(|e| {
            NodeError::msg(format!(
                "`{text}` is not a ShapesWorld edit instruction: {e}"
            ))
        })?;
        let (source, target) = kind.prompt_pair(&Style::default()).ok_or_else(|| {
            NodeError::msg(format!(
                "`{text}` is a {} edit: it changes where objects are, which no pair of object \
                 captions describes (edit colour or size, add or remove instead)",
                kind.name()
            ))
        })?;
        let mode: ConditionMode = ctx.str("mode")?.parse().map_err(NodeError::msg)?;
        let p = Prompts::from_captions(
            &handle.model,
            handle.tokenizer()?,
            source.as_deref(),
            target.as_deref(),
            mode,
            &device(),
        )
        .map_err(model_err)?;
        let conditioning = |cond, negative| Conditioning {
            cond,
            uncond: Some(negative),
            regions: Vec::new(),
            mode,
        };
        Ok(vec![
            value(conditioning(p.source, p.source_negative)),
            value(conditioning(p.target, p.target_negative)),
        ])
    }
}

register_node!(EditPrompts);
