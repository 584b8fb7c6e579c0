//! `unilip.mllm_answer`: understanding — the MLLM answers a question about an image.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{input_size, model_input, model_port};
use super::convert::pixel_values;
use super::payload::model_err;
use crate::models::qwen2::{GenerationConfig, Sampling};
use crate::register_node;

/// `unilip.mllm_answer`.
pub struct MllmAnswer {
    schema: NodeSchema,
}

impl MllmAnswer {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.mllm_answer".into(),
                version: 1,
                category: "unilip/understand".into(),
                description: "Understanding as in InternVL3: the image (if any) is encoded by the vision \
                              tower, its tokens spliced into the chat prompt, and the MLLM generates an \
                              answer with a KV cache (greedy, or temperature + top-p sampling)."
                    .into(),
                inputs: vec![model_port(), PortSpec::optional("image", PortType::Image, "Image to ask about")],
                outputs: vec![PortSpec::new("answer", PortType::Text, "Generated answer")],
                params: vec![
                    ParamSpec::text("question", "Describe the image.", "Question"),
                    ParamSpec::int(
                        "size",
                        0,
                        0,
                        2016,
                        "Image input size (multiple of patch × 2); 0 = the checkpoint's own",
                    ),
                    ParamSpec::int("max_tokens", 64, 1, 4096, "Maximum answer length"),
                    ParamSpec::choice("sampling", "greedy", &["greedy", "top_p"], "Decoding"),
                    ParamSpec::float("temperature", 0.7, 0.01, 5.0, "Softmax temperature (top_p)"),
                    ParamSpec::float("top_p", 0.9, 0.01, 1.0, "Nucleus mass (top_p)"),
                    ParamSpec::seed("seed", 0, "Sampling seed"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for MllmAnswer {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let tokenizer = handle.tokenizer()?;
        let px = match ctx.opt_input("image") {
            Some(v) => Some(pixel_values(
                v.as_image().map_err(model_err)?,
                input_size(&handle.model, ctx.int("size")?),
            )),
            None => None,
        };
        let sampling = match ctx.str("sampling")? {
            "top_p" => Sampling::Sample {
                temperature: ctx.float("temperature")?,
                top_p: ctx.float("top_p")?,
            },
            _ => Sampling::Greedy,
        };
        let generation = GenerationConfig {
            max_new_tokens: ctx.int("max_tokens")? as usize,
            sampling,
            eos_token_ids: vec![tokenizer.special().im_end, tokenizer.special().endoftext],
            seed: ctx.int("seed")? as u64,
            output_logits: false,
        };
        let answer = handle
            .model
            .understand_text(tokenizer, ctx.str("question")?, px, None, &generation)
            .map_err(model_err)?;
        Ok(vec![Value::Text(answer.trim().to_string())])
    }
}

register_node!(MllmAnswer);
