//! `unilip.edit_prompts`: turns a ShapesWorld edit instruction into the source and target
//! prompts unilip.flow_edit edits between.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{mode_of, mode_param, model_input, model_port};
use super::payload::{model_err, value, Conditioning};
use crate::backend::device;
use crate::backend::B;
use crate::models::flow_edit::EditPrompts as Prompts;
use crate::models::locate::contrast_condition;
use crate::models::unilip::Condition;
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
                              says: they are refused, as is text outside the grammar. \
                              `source_contrast` / `target_contrast` are what unilip.locate tells \
                              each prompt's object apart from (it in every other colour): the \
                              edit is located once, by the source prompt on the source image \
                              where it names an object, else (add) by the target prompt on the \
                              edited image; the other side's contrast is its prompt itself, \
                              which locates nothing."
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
                    PortSpec::new(
                        "source_contrast",
                        PortType::Conditioning { dim: None },
                        "The source's object in every other colour, one row each",
                    ),
                    PortSpec::new(
                        "target_contrast",
                        PortType::Conditioning { dim: None },
                        "The target's object in every other colour, one row each",
                    ),
                ],
                params: vec![
                    ParamSpec::text("text", "make the red circle blue", "The edit instruction"),
                    mode_param(),
                ],
                output_node: false,
            },
        }
    }
}

/// The ShapesWorld edit `text` (a node's `text` param) describes, or an error quoting it.
pub(super) fn edit_kind(text: &str) -> Result<EditKind, NodeError> {
    EditKind::parse(text).map_err(|e| {
        NodeError::msg(format!(
            "`{text}` is not a ShapesWorld edit instruction: {e}"
        ))
    })
}

impl Node for EditPrompts {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let text = ctx.str("text")?;
        let kind = edit_kind(text)?;
        let style = Style::default();
        let (source, target) = kind.prompt_pair(&style).ok_or_else(|| {
            NodeError::msg(format!(
                "`{text}` is a {} edit: it changes where objects are, which no pair of object \
                 captions describes (edit colour or size, add or remove instead)",
                kind.name()
            ))
        })?;
        let mode = mode_of(ctx)?;
        let p = Prompts::from_captions(
            &handle.model,
            handle.tokenizer()?,
            source.as_deref(),
            target.as_deref(),
            mode,
            &device(),
        )
        .map_err(model_err)?;
        let (source_contrast, target_contrast) = kind.contrast_pair(&style).unwrap_or_default();
        // No captions: the prompt itself, against which it locates nothing.
        let contrast = |captions: &[String], prompt: &Condition<B>| {
            if captions.is_empty() {
                return Ok(prompt.clone());
            }
            contrast_condition(
                &handle.model,
                handle.tokenizer()?,
                captions,
                mode,
                &device(),
            )
            .map_err(model_err)
        };
        let conditioning = |cond, uncond| Conditioning {
            cond,
            uncond,
            regions: Vec::new(),
            mode,
        };
        let contrasts = [
            contrast(&source_contrast, &p.source)?,
            contrast(&target_contrast, &p.target)?,
        ];
        let [source_contrast, target_contrast] = contrasts;
        Ok(vec![
            value(conditioning(p.source, Some(p.source_negative))),
            value(conditioning(p.target, Some(p.target_negative))),
            value(conditioning(source_contrast, None)),
            value(conditioning(target_contrast, None)),
        ])
    }
}

register_node!(EditPrompts);
