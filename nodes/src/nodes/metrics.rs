//! Measurements for ablations: PSNR and SSIM between images, cosine similarity between features.

use unilip_core::{ExecCtx, ImageBatch, Node, NodeError, NodeSchema, PortSpec, PortType, Value};

use super::failed;
use super::unilip::payload::{input, Features};
use crate::register_node;

/// `b` on the pixel grid of `a` (bilinear resize when the sizes differ; counts must agree).
fn on_grid_of(ctx: &ExecCtx<'_>, a: &ImageBatch, b: &ImageBatch) -> Result<ImageBatch, NodeError> {
    if a.n != b.n {
        return Err(NodeError::msg(format!(
            "{} reference images but {} images",
            a.n, b.n
        )));
    }
    if (a.h, a.w) == (b.h, b.w) {
        return Ok(b.clone());
    }
    ctx.warn(format!(
        "resizing {}×{} to the reference's {}×{}",
        b.w, b.h, a.w, a.h
    ));
    Ok(super::image_ops::resize(
        b,
        a.w,
        a.h,
        image::imageops::FilterType::Triangle,
    ))
}

/// PSNR in dB of `b` against reference `a`, values in [0, 1] (infinite for identical images).
pub fn psnr(a: &ImageBatch, b: &ImageBatch) -> f64 {
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.data.len().max(1) as f64;
    10.0 * (1.0 / mse).log10()
}

/// Mean SSIM over channels and images with an 8×8 sliding window (stride 4), constants of Wang et al.
pub fn ssim(a: &ImageBatch, b: &ImageBatch) -> f64 {
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let (win, stride) = (8.min(a.h).min(a.w), 4);
    let mut total = 0.0;
    let mut count = 0usize;
    for i in 0..a.n {
        for c in 0..3 {
            let mut y = 0;
            while y + win <= a.h {
                let mut x = 0;
                while x + win <= a.w {
                    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for dy in 0..win {
                        for dx in 0..win {
                            let k = a.idx(i, c, y + dy, x + dx);
                            let (p, q) = (a.data[k] as f64, b.data[k] as f64);
                            sa += p;
                            sb += q;
                            saa += p * p;
                            sbb += q * q;
                            sab += p * q;
                        }
                    }
                    let n = (win * win) as f64;
                    let (ma, mb) = (sa / n, sb / n);
                    let (va, vb, cov) = (saa / n - ma * ma, sbb / n - mb * mb, sab / n - ma * mb);
                    total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                        / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                    count += 1;
                    x += stride;
                }
                y += stride;
            }
        }
    }
    total / count.max(1) as f64
}

macro_rules! image_metric {
    ($name:ident, $id:literal, $doc:literal, $f:path) => {
        #[doc = $doc]
        pub struct $name {
            schema: NodeSchema,
        }

        impl $name {
            /// The node.
            pub fn new() -> Self {
                Self {
                    schema: NodeSchema {
                        id: $id.into(),
                        version: 1,
                        category: "metrics".into(),
                        description: $doc.into(),
                        inputs: vec![
                            PortSpec::new("reference", PortType::Image, "Reference images"),
                            PortSpec::new("image", PortType::Image, "Images to score"),
                        ],
                        outputs: vec![PortSpec::new("value", PortType::Float, "Score")],
                        params: vec![],
                        output_node: true,
                    },
                }
            }
        }

        impl Node for $name {
            fn schema(&self) -> &NodeSchema {
                &self.schema
            }

            fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
                let a = ctx.input("reference")?.as_image().map_err(failed)?;
                let b = ctx.input("image")?.as_image().map_err(failed)?;
                let b = on_grid_of(ctx, a, b)?;
                Ok(vec![Value::Float($f(a, &b))])
            }
        }

        register_node!($name);
    };
}

image_metric!(
    Psnr,
    "metric.psnr",
    "Peak signal-to-noise ratio in dB (images in [0, 1]).",
    psnr
);
image_metric!(
    Ssim,
    "metric.ssim",
    "Structural similarity (8×8 windows, stride 4), mean over channels.",
    ssim
);

/// `metric.cosine`: mean cosine similarity of two feature sets token by token (e.g. a distilled
/// encoder against the original: the drift of self-distillation).
pub struct Cosine {
    schema: NodeSchema,
}

impl Cosine {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "metric.cosine".into(),
                version: 1,
                category: "metrics".into(),
                description:
                    "Mean token-wise cosine similarity between two feature sets of equal shape \
                              (student vs teacher encoder: the self-distillation drift)."
                        .into(),
                inputs: vec![
                    PortSpec::new("a", PortType::VisionFeatures { dim: None }, "Features"),
                    PortSpec::new("b", PortType::VisionFeatures { dim: None }, "Features"),
                ],
                outputs: vec![PortSpec::new(
                    "value",
                    PortType::Float,
                    "Mean cosine similarity",
                )],
                params: vec![],
                output_node: true,
            },
        }
    }
}

impl Node for Cosine {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let a = input::<Features>(ctx, "a")?.tokens.clone();
        let b = input::<Features>(ctx, "b")?.tokens.clone();
        if a.dims() != b.dims() {
            return Err(NodeError::msg(format!(
                "shapes differ: {:?} vs {:?}",
                a.dims(),
                b.dims()
            )));
        }
        let dot = (a.clone() * b.clone()).sum_dim(2);
        let norms = (a.powi_scalar(2).sum_dim(2) * b.powi_scalar(2).sum_dim(2)).sqrt() + 1e-12;
        let cos: f32 = (dot / norms).mean().into_scalar();
        Ok(vec![Value::Float(cos as f64)])
    }
}

register_node!(Cosine);
