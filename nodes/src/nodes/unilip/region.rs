//! Regional prompting ([`crate::models::regions`]): `unilip.region` lets a second prompt's
//! condition drive one box of the canvas through the DiT's cross-attention (chain it to add more
//! regions); `unilip.caption_regions` plans the regions of a ShapesWorld caption by itself (one
//! per group, or one per object).

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::checkpoint::{model_input, model_port};
use super::payload::{input, model_err, value, Conditioning};
use crate::backend::device;
use crate::models::regions::{caption_regions, Area, RegionLayout, RegionPlan, RegionPrompt};
use crate::register_node;
use crate::shapesworld::{SceneSpec, Style};

/// `unilip.region`.
pub struct Region {
    schema: NodeSchema,
}

impl Region {
    /// The node.
    pub fn new() -> Self {
        let edge =
            |name: &str, default: f64, doc: &str| ParamSpec::float(name, default, 0.0, 1.0, doc);
        Self {
            schema: NodeSchema {
                id: "unilip.region".into(),
                version: 1,
                category: "unilip/condition".into(),
                description: "Regional prompting: the image tokens inside the box read the \
                              `region` prompt's condition in the DiT's cross-attention (with the \
                              base prompt too when `with_base`); the rest of the canvas reads the \
                              base. One DiT pass per step, so objects stay whole across the box's \
                              edge (A1111 Regional Prompter's attention mode). Chain it to add \
                              regions; the region's own negative is not used."
                    .into(),
                inputs: vec![
                    PortSpec::new(
                        "conditioning",
                        PortType::Conditioning { dim: None },
                        "Base condition (+ negative, + earlier regions)",
                    ),
                    PortSpec::new(
                        "region",
                        PortType::Conditioning { dim: None },
                        "The condition of the region's prompt",
                    ),
                ],
                outputs: vec![PortSpec::new(
                    "conditioning",
                    PortType::Conditioning { dim: None },
                    "The base condition with this region added",
                )],
                params: vec![
                    edge("x0", 0.0, "Left edge, as a fraction of the width"),
                    edge("y0", 0.0, "Top edge, as a fraction of the height"),
                    edge("x1", 0.5, "Right edge, as a fraction of the width"),
                    edge("y1", 1.0, "Bottom edge, as a fraction of the height"),
                    ParamSpec::bool(
                        "with_base",
                        true,
                        "The box also reads the base prompt (false: the region's prompt alone)",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for Region {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let base = input::<Conditioning>(ctx, "conditioning")?;
        let region = input::<Conditioning>(ctx, "region")?;
        let area = Area {
            x0: ctx.float("x0")? as f32,
            y0: ctx.float("y0")? as f32,
            x1: ctx.float("x1")? as f32,
            y1: ctx.float("y1")? as f32,
        };
        area.validate()
            .map_err(|e| NodeError::msg(format!("params x0..x1, y0..y1: {e}")))?;
        let mut out = base.clone();
        out.regions.push(RegionPrompt {
            cond: region.cond.clone(),
            areas: vec![area],
            with_base: ctx.bool("with_base")?,
        });
        Ok(vec![value(out)])
    }
}

register_node!(Region);

/// `unilip.caption_regions`.
pub struct CaptionRegions {
    schema: NodeSchema,
}

impl CaptionRegions {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "unilip.caption_regions".into(),
                version: 1,
                category: "unilip/condition".into(),
                description:
                    "Plans regional prompts from the prompt's text, as `unilip.region` nodes \
                              would (the caption grammar and ShapesWorld's layout sampler play \
                              the layout-planning LLM of LLM-grounded diffusion). Layout \
                              `groups`: a ShapesWorld caption relating two groups (\"two red \
                              circles left of a blue square\") gets each group's own caption \
                              over the half of the canvas its layout puts the group in. Layout \
                              `objects`: every caption is laid out (from `seed`) and each object \
                              gets its own caption (\"a small red circle\") over its box. The \
                              regions' captions are conditioned in the base condition's mode, \
                              through the whole connector. Text that does not parse passes the \
                              conditioning through, with a warning."
                        .into(),
                inputs: vec![
                    model_port(),
                    PortSpec::new(
                        "conditioning",
                        PortType::Conditioning { dim: None },
                        "Base condition (+ negative)",
                    ),
                    PortSpec::new(
                        "text",
                        PortType::Text,
                        "The prompt's text (unilip.prompt.text)",
                    ),
                ],
                outputs: vec![PortSpec::new(
                    "conditioning",
                    PortType::Conditioning { dim: None },
                    "The base condition with the groups' regions added",
                )],
                params: vec![
                    ParamSpec::bool(
                        "with_base",
                        true,
                        "Each region also reads the whole prompt (false: its own caption alone)",
                    ),
                    ParamSpec::choice(
                        "layout",
                        RegionLayout::Groups.name(),
                        &RegionLayout::NAMES,
                        "groups: one region per group of a two-group caption; objects: one \
                         region per object of a sampled layout",
                    ),
                    ParamSpec::seed("seed", 0, "Seed of the object layout (layout `objects`)"),
                    ParamSpec::int(
                        "layouts",
                        1,
                        1,
                        64,
                        "Layout `objects`: layouts drawn (seeds seed, seed + 1, ...), one per \
                         candidate of a batch (set it to unilip.dit_denoise's batch); 1 shares \
                         one layout",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for CaptionRegions {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let handle = model_input(ctx)?;
        let base = input::<Conditioning>(ctx, "conditioning")?;
        let text = ctx.input("text")?.as_text().map_err(model_err)?.to_string();
        let spec = match SceneSpec::parse(&text) {
            Ok(spec) => spec,
            Err(e) => {
                ctx.warn(format!(
                    "no regions: `{text}` is not a ShapesWorld caption ({e})"
                ));
                return Ok(vec![value(base.clone())]);
            }
        };
        let regions = caption_regions(
            &handle.model,
            handle.tokenizer()?,
            &spec,
            &Style::default(),
            base.mode,
            RegionPlan {
                layout: RegionLayout::from_name(ctx.str("layout")?)
                    .ok_or_else(|| NodeError::msg("unknown layout"))?,
                seed: ctx.int("seed")? as u64,
                layouts: ctx.int("layouts")?.max(1) as usize,
                with_base: ctx.bool("with_base")?,
            },
            &device(),
        )
        .map_err(model_err)?;
        let mut out = base.clone();
        out.regions.extend(regions);
        Ok(vec![value(out)])
    }
}

register_node!(CaptionRegions);
