//! `unilip.region`: regional prompting. A second prompt's condition drives one box of the
//! canvas through the DiT's cross-attention ([`crate::models::regions`]); chain the node to add
//! more regions.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use super::payload::{input, value, Conditioning};
use crate::models::regions::{Area, RegionPrompt};
use crate::register_node;

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
            area,
            with_base: ctx.bool("with_base")?,
        });
        Ok(vec![value(out)])
    }
}

register_node!(Region);
