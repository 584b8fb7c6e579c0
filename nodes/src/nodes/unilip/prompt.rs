//! `unilip.prompt`: applies UniLIP's prompt templates and tokenises (positive + negative rows).

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::payload::{input, model_err, value, Features, Tokens};
use crate::backend::device;
use crate::models::tokenizer::{
    edit_negative, edit_prompt, generation_negative, generation_prompt, understanding_prompt,
};
use crate::models::unilip::encode_prompts;
use crate::register_node;

/// `unilip.prompt`.
pub struct Prompt {
    schema: NodeSchema,
}

impl Prompt {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.prompt".into(),
                version: 1,
                category: "unilip/text".into(),
                description: "Builds UniLIP's chat prompts and tokenises them with the checkpoint's \
                              tokenizer. `generate`: \"Generate an image: {text}\" + the negative \
                              \"Generate an image.\"; `edit`: \"Edit the image: {text}\" with the image \
                              block (one <IMG_CONTEXT> per feature token) + its negative; `understand`: \
                              the InternVL chat prompt (one row). Rows are right-padded."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::optional(
                        "image_features",
                        PortType::VisionFeatures { dim: None },
                        "Features of the image (edit / understand): sets the image-token count",
                    ),
                ],
                outputs: vec![
                    PortSpec::new("tokens", PortType::TokenIds, "Token ids + mask"),
                    PortSpec::new("text", PortType::Text, "The `text` param as given (no template)"),
                ],
                params: vec![
                    ParamSpec::text("text", "a red circle left of a blue square", "Prompt, instruction or question"),
                    ParamSpec::choice(
                        "template",
                        "generate",
                        &["generate", "edit", "understand"],
                        "Which UniLIP template",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for Prompt {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let text = ctx.str("text")?;
        let n_image = match ctx.opt_input("image_features") {
            Some(_) => {
                let f = input::<Features>(ctx, "image_features")?;
                f.tokens.dims()[1]
            }
            None => 0,
        };
        let texts = match ctx.str("template")? {
            "generate" => vec![generation_prompt(text), generation_negative()],
            "edit" if n_image == 0 => {
                return Err(NodeError::msg(
                    "the edit template needs `image_features` connected",
                ))
            }
            "edit" => vec![edit_prompt(text, n_image), edit_negative(n_image)],
            _ => vec![understanding_prompt(text, n_image, None)],
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (ids, mask) =
            encode_prompts(handle.tokenizer()?, &refs, &device()).map_err(model_err)?;
        Ok(vec![
            value(Tokens { ids, mask, texts }),
            Value::Text(text.to_string()),
        ])
    }
}

register_node!(Prompt);
