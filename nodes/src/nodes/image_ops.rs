//! Small image utilities: resize, crop, blend and per-pixel arithmetic.

use std::sync::Arc;

use image::imageops::FilterType;
use unilip_core::{
    ExecCtx, ImageBatch, InferCtx, InferIssue, Node, NodeError, NodeSchema, ParamSpec, PortSpec,
    PortType, Value,
};

use super::failed;
use crate::register_node;

fn image_in(doc: &str) -> PortSpec {
    PortSpec::new("image", PortType::Image, doc)
}

fn image_out(doc: &str) -> PortSpec {
    PortSpec::new("image", PortType::Image, doc)
}

fn input_image(ctx: &ExecCtx<'_>, port: &str) -> Result<Arc<ImageBatch>, NodeError> {
    Ok(ctx.input(port)?.as_image().map_err(failed)?.clone())
}

/// Resizes every image of a batch with the given filter.
pub fn resize(batch: &ImageBatch, w: usize, h: usize, filter: FilterType) -> ImageBatch {
    let mut out = ImageBatch::zeros(batch.n, h, w);
    for i in 0..batch.n {
        let src = image::Rgb32FImage::from_fn(batch.w as u32, batch.h as u32, |x, y| {
            let v = |c| batch.data[batch.idx(i, c, y as usize, x as usize)];
            image::Rgb([v(0), v(1), v(2)])
        });
        let dst = image::imageops::resize(&src, w as u32, h as u32, filter);
        for (x, y, p) in dst.enumerate_pixels() {
            for c in 0..3 {
                let j = out.idx(i, c, y as usize, x as usize);
                out.data[j] = p.0[c];
            }
        }
    }
    out
}

/// Maps a filter name (`nearest`, `bilinear`, `bicubic`, `lanczos`) to the `image` crate filter.
pub fn filter_by_name(name: &str) -> FilterType {
    match name {
        "nearest" => FilterType::Nearest,
        "bicubic" => FilterType::CatmullRom,
        "lanczos" => FilterType::Lanczos3,
        _ => FilterType::Triangle,
    }
}

/// `image.resize`.
pub struct Resize {
    schema: NodeSchema,
}

impl Resize {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "image.resize".into(),
                version: 1,
                category: "image".into(),
                description: "Resizes every image of the batch to width × height.".into(),
                inputs: vec![image_in("Images")],
                outputs: vec![image_out("Resized images")],
                params: vec![
                    ParamSpec::int("width", 448, 1, 8192, "Output width"),
                    ParamSpec::int("height", 448, 1, 8192, "Output height"),
                    ParamSpec::choice(
                        "filter",
                        "bicubic",
                        &["nearest", "bilinear", "bicubic", "lanczos"],
                        "Resampling filter",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for Resize {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let img = input_image(ctx, "image")?;
        let (w, h) = (ctx.int("width")? as usize, ctx.int("height")? as usize);
        let out = resize(&img, w, h, filter_by_name(ctx.str("filter")?));
        Ok(vec![Value::Image(Arc::new(out))])
    }
}

/// `image.crop`.
pub struct Crop {
    schema: NodeSchema,
}

impl Crop {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "image.crop".into(),
                version: 1,
                category: "image".into(),
                description:
                    "Cuts a width × height window at (x, y) from every image. A centre crop \
                              when x and y are -1."
                        .into(),
                inputs: vec![image_in("Images")],
                outputs: vec![image_out("Cropped images")],
                params: vec![
                    ParamSpec::int("x", -1, -1, 8192, "Left edge, -1 = centred"),
                    ParamSpec::int("y", -1, -1, 8192, "Top edge, -1 = centred"),
                    ParamSpec::int("width", 448, 1, 8192, "Window width"),
                    ParamSpec::int("height", 448, 1, 8192, "Window height"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for Crop {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let img = input_image(ctx, "image")?;
        let (w, h) = (ctx.int("width")? as usize, ctx.int("height")? as usize);
        if w > img.w || h > img.h {
            return Err(NodeError::msg(format!(
                "crop {w}×{h} is larger than the image {}×{}",
                img.w, img.h
            )));
        }
        let pick = |v: i64, room: usize| if v < 0 { room / 2 } else { v as usize };
        let (x0, y0) = (
            pick(ctx.int("x")?, img.w - w),
            pick(ctx.int("y")?, img.h - h),
        );
        if x0 + w > img.w || y0 + h > img.h {
            return Err(NodeError::msg(format!(
                "crop window ({x0}, {y0}) + {w}×{h} leaves the {}×{} image",
                img.w, img.h
            )));
        }
        let mut out = ImageBatch::zeros(img.n, h, w);
        for i in 0..img.n {
            for c in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        let j = out.idx(i, c, y, x);
                        out.data[j] = img.data[img.idx(i, c, y0 + y, x0 + x)];
                    }
                }
            }
        }
        Ok(vec![Value::Image(Arc::new(out))])
    }
}

/// `image.math`: per-pixel arithmetic of two image batches of equal shape.
pub struct ImageMath {
    schema: NodeSchema,
}

impl ImageMath {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "image.math".into(),
                version: 1,
                category: "image".into(),
                description: "Per-pixel `a op b` on two images of the same size: blend (a·(1−t) + b·t), \
                              add, subtract, multiply, absdiff (|a − b|, for inspecting what an ablation \
                              changed, scaled by `t`). Results are clamped to [0, 1]."
                    .into(),
                inputs: vec![
                    PortSpec::new("a", PortType::Image, "First operand"),
                    PortSpec::new("b", PortType::Image, "Second operand"),
                ],
                outputs: vec![image_out("Result")],
                params: vec![
                    ParamSpec::choice(
                        "op",
                        "blend",
                        &["blend", "add", "subtract", "multiply", "absdiff"],
                        "Operation",
                    ),
                    ParamSpec::float("t", 0.5, 0.0, 100.0, "Blend weight of b, or absdiff gain"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for ImageMath {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn infer(&self, _ctx: &InferCtx<'_>) -> Result<Vec<PortType>, Vec<InferIssue>> {
        Ok(vec![PortType::Image])
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let (a, b) = (input_image(ctx, "a")?, input_image(ctx, "b")?);
        if (a.n, a.h, a.w) != (b.n, b.h, b.w) {
            return Err(NodeError::msg(format!(
                "a is {}×{}×{} but b is {}×{}×{} (resize first)",
                a.n, a.h, a.w, b.n, b.h, b.w
            )));
        }
        let t = ctx.float("t")? as f32;
        let f: fn(f32, f32, f32) -> f32 = match ctx.str("op")? {
            "blend" => |x, y, t| x * (1.0 - t) + y * t,
            "add" => |x, y, _| x + y,
            "subtract" => |x, y, _| x - y,
            "multiply" => |x, y, _| x * y,
            _ => |x, y, t| (x - y).abs() * t,
        };
        let data = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| f(x, y, t).clamp(0.0, 1.0))
            .collect();
        Ok(vec![Value::Image(Arc::new(ImageBatch {
            data,
            ..(*a).clone()
        }))])
    }
}

/// `image.composite`: `over` on `base` where `mask` is set.
pub struct Composite {
    schema: NodeSchema,
}

impl Composite {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "image.composite".into(),
                version: 1,
                category: "image".into(),
                description: "base·(1 − m) + over·m per pixel, m the mask's mean over its \
                              channels (clamped to [0, 1]): e.g. an edit kept only where \
                              unilip.locate found the edited object, the source everywhere \
                              else. `over` (bicubic) and `mask` (bilinear) are resampled to \
                              `base`'s size when theirs differs, so an edit made at the model's \
                              resolution lands on a picture of any size, whose own pixels stay \
                              outside the mask. A one-image mask applies to every image of the \
                              batch."
                    .into(),
                inputs: vec![
                    PortSpec::new("base", PortType::Image, "Where the mask is 0"),
                    PortSpec::new("over", PortType::Image, "Where the mask is 1"),
                    PortSpec::new("mask", PortType::Image, "Weight of `over`, 0..1"),
                ],
                outputs: vec![image_out("Composite")],
                params: Vec::new(),
                output_node: false,
            },
        }
    }
}

impl Node for Composite {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn infer(&self, _ctx: &InferCtx<'_>) -> Result<Vec<PortType>, Vec<InferIssue>> {
        Ok(vec![PortType::Image])
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let base = input_image(ctx, "base")?;
        let at_base_size = |port: &str, filter: FilterType| -> Result<ImageBatch, NodeError> {
            let img = input_image(ctx, port)?;
            Ok(if (img.h, img.w) == (base.h, base.w) {
                (*img).clone()
            } else {
                resize(&img, base.w, base.h, filter)
            })
        };
        let over = at_base_size("over", FilterType::CatmullRom)?;
        let mask = at_base_size("mask", FilterType::Triangle)?;
        if over.n != base.n || (mask.n != 1 && mask.n != base.n) {
            return Err(NodeError::msg(format!(
                "`base` has {} images, `over` {} and `mask` {}: give `over` as many as `base`, \
                 and `mask` one or as many",
                base.n, over.n, mask.n
            )));
        }
        let plane = base.h * base.w;
        let mut data = base.data.clone();
        for i in 0..base.n {
            let m = &mask.data[(i % mask.n) * 3 * plane..][..3 * plane];
            for p in 0..plane {
                let weight = ((m[p] + m[plane + p] + m[2 * plane + p]) / 3.0).clamp(0.0, 1.0);
                for c in 0..3 {
                    let j = (i * 3 + c) * plane + p;
                    data[j] += (over.data[j] - base.data[j]) * weight;
                }
            }
        }
        Ok(vec![Value::Image(Arc::new(ImageBatch {
            data,
            ..(*base).clone()
        }))])
    }
}

register_node!(Resize);
register_node!(Crop);
register_node!(ImageMath);
register_node!(Composite);
