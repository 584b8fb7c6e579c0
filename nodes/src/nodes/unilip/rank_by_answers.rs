//! `unilip.rank_by_answers`: the understanding half judges the generation half — of a batch of
//! candidate images, keep the one whose answers to the prompt's questions the MLLM holds most
//! likely (best-of-N with the model's own VQA as the verifier, TIFA / DSG style).

use std::sync::Arc;

use unilip_core::{
    ExecCtx, ImageBatch, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value,
};

use super::checkpoint::{input_size, model_input, model_port};
use super::convert::pixel_values;
use super::payload::model_err;
use crate::register_node;
use crate::shapesworld::verify::spec_questions;
use crate::shapesworld::{SceneSpec, Style};

/// `unilip.rank_by_answers`.
pub struct RankByAnswers {
    schema: NodeSchema,
}

impl RankByAnswers {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.rank_by_answers".into(),
                version: 1,
                category: "unilip/understand".into(),
                description: "Best-of-N by the model's own understanding: asks the MLLM each \
                              question about every image of the batch and keeps the image whose \
                              expected answers have the highest summed log-probability. \
                              `questions` lists `question = answer` lines; left empty, they are \
                              derived from the wired `prompt` in ShapesWorld's caption grammar \
                              (counts of every shape and colour, each group's colour and shape, \
                              the relation between two single objects). Wire a `unilip.dit_denoise` \
                              with `batch` > 1 through `unilip.pixel_decode` into `images`."
                    .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new("images", PortType::Image, "Candidate images"),
                    PortSpec::optional(
                        "prompt",
                        PortType::Text,
                        "Prompt the questions are derived from when `questions` is empty",
                    ),
                ],
                outputs: vec![
                    PortSpec::new("image", PortType::Image, "The best-rated candidate"),
                    PortSpec::new("index", PortType::Int, "Its row in `images`"),
                    PortSpec::new(
                        "rating",
                        PortType::Float,
                        "Its summed answer log-probability (0 = every answer certain)",
                    ),
                ],
                params: vec![
                    ParamSpec::text(
                        "questions",
                        "",
                        "`question = answer` per line; empty = derived from `prompt`",
                    ),
                    ParamSpec::int(
                        "size",
                        0,
                        0,
                        2016,
                        "Image input size (multiple of patch × 2); 0 = the checkpoint's own",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

/// The `(question, answer)` pairs of the `questions` param, or derived from `prompt`.
fn questions(listed: &str, prompt: Option<&str>) -> Result<Vec<(String, String)>, NodeError> {
    let mut pairs = Vec::new();
    for (i, line) in listed.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((q, a)) = line.split_once('=') else {
            return Err(NodeError::msg(format!(
                "param `questions` line {}: {line:?} is not `question = answer`",
                i + 1
            )));
        };
        let (q, a) = (q.trim(), a.trim());
        if q.is_empty() || a.is_empty() {
            return Err(NodeError::msg(format!(
                "param `questions` line {}: empty question or answer",
                i + 1
            )));
        }
        pairs.push((q.to_string(), a.to_string()));
    }
    if !pairs.is_empty() {
        return Ok(pairs);
    }
    let Some(prompt) = prompt else {
        return Err(NodeError::msg(
            "nothing to ask: write `question = answer` lines in param `questions` or wire \
             input `prompt`",
        ));
    };
    let spec = SceneSpec::parse(prompt).map_err(|e| {
        NodeError::msg(format!(
            "input `prompt` {prompt:?} is not a ShapesWorld caption ({e}): write its questions \
             in param `questions`"
        ))
    })?;
    Ok(spec_questions(&spec, &Style::default())
        .into_iter()
        .map(|q| (q.question, q.answer))
        .collect())
}

/// Row `i` of `images` as a batch of one.
fn row(images: &ImageBatch, i: usize) -> ImageBatch {
    let len = 3 * images.h * images.w;
    ImageBatch {
        n: 1,
        h: images.h,
        w: images.w,
        data: images.data[i * len..(i + 1) * len].to_vec(),
    }
}

impl Node for RankByAnswers {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let tokenizer = handle.tokenizer()?;
        let images = ctx.input("images")?.as_image().map_err(model_err)?.clone();
        let prompt = match ctx.opt_input("prompt") {
            Some(v) => Some(v.as_text().map_err(model_err)?),
            None => None,
        };
        let pairs = questions(ctx.str("questions")?, prompt)?;
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(q, a)| (q.as_str(), a.as_str()))
            .collect();
        let size = input_size(&handle.model, ctx.int("size")?);
        let mut best: Option<(usize, f64)> = None;
        for i in 0..images.n {
            let candidate = row(&images, i);
            let log_probs = handle
                .model
                .answer_log_probs(tokenizer, pixel_values(&candidate, size), &pairs)
                .map_err(model_err)?;
            let rating: f64 = log_probs.into_iter().map(f64::from).sum();
            if best.is_none_or(|(_, r)| rating > r) {
                best = Some((i, rating));
            }
            ctx.progress(i as u64 + 1, images.n as u64, None)?;
        }
        let Some((index, rating)) = best else {
            return Err(NodeError::msg("input `images` is an empty batch"));
        };
        Ok(vec![
            Value::Image(Arc::new(row(&images, index))),
            Value::Int(index as i64),
            Value::Float(rating),
        ])
    }
}

register_node!(RankByAnswers);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_questions_win_and_bad_lines_are_named() {
        let pairs = questions(
            "how many circles are there ? = two\n\n what colour is the star ? = red ",
            None,
        )
        .expect("parses");
        assert_eq!(
            pairs,
            vec![
                ("how many circles are there ?".into(), "two".into()),
                ("what colour is the star ?".into(), "red".into())
            ]
        );
        let bad = questions("ok = yes\nno separator", Some("a red circle")).unwrap_err();
        assert!(bad.to_string().contains("line 2"), "{bad}");
        let none = questions("", None).unwrap_err();
        assert!(none.to_string().contains("`questions`"), "{none}");
    }

    #[test]
    fn an_empty_list_derives_the_questions_from_a_caption_prompt() {
        let pairs = questions("  \n", Some("a red circle above a blue square")).expect("derived");
        assert!(pairs.contains(&("is the circle above the square ?".into(), "yes".into())));
        let outside = questions("", Some("a photo of a dog")).unwrap_err();
        assert!(
            outside.to_string().contains("not a ShapesWorld caption"),
            "{outside}"
        );
    }
}
