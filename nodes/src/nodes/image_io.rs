//! Loading and saving images. Save Image embeds the graph that made the picture in the PNG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use unilip_core::{
    ExecCtx, ImageBatch, Node, NodeError, NodeSchema, ParamSpec, ParamValue, PortSpec, PortType,
    Value,
};

use super::{failed, path_param, png_meta};
use crate::register_node;

/// Reads an image file (PNG, JPEG) as a one-image batch in [0, 1].
pub fn read_image(path: &Path) -> Result<ImageBatch, String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: cannot read image ({e})", path.display()))?
        .to_rgb32f();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = ImageBatch::zeros(1, h, w);
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            let i = out.idx(0, c, y as usize, x as usize);
            out.data[i] = p.0[c];
        }
    }
    Ok(out)
}

/// One image of a batch as 8-bit RGB, rounding and clamping to [0, 255].
pub fn to_rgb8(batch: &ImageBatch, i: usize) -> image::RgbImage {
    image::RgbImage::from_fn(batch.w as u32, batch.h as u32, |x, y| {
        let px = |c| {
            let v = batch.data[batch.idx(i, c, y as usize, x as usize)];
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        };
        image::Rgb([px(0), px(1), px(2)])
    })
}

/// An 8-bit RGB picture as a one-image batch in [0, 1].
pub fn from_rgb8(picture: &image::RgbImage) -> ImageBatch {
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    let mut out = ImageBatch::zeros(1, h, w);
    for (x, y, p) in picture.enumerate_pixels() {
        for c in 0..3 {
            let i = out.idx(0, c, y as usize, x as usize);
            out.data[i] = f32::from(p.0[c]) / 255.0;
        }
    }
    out
}

/// `image.load`: reads an image file.
pub struct LoadImage {
    schema: NodeSchema,
}

impl LoadImage {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "image.load".into(),
                version: 1,
                category: "image".into(),
                description: "Reads a PNG or JPEG file as an RGB image in [0, 1].".into(),
                inputs: vec![],
                outputs: vec![PortSpec::new(
                    "image",
                    PortType::Image,
                    "The image, batch of 1",
                )],
                params: vec![ParamSpec::file("path", "", "Image file to read")],
                output_node: false,
            },
        }
    }
}

impl Node for LoadImage {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn fingerprint(&self, params: &BTreeMap<String, ParamValue>) -> Result<String, String> {
        let path = path_param(params, "path")?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        Ok(blake3::hash(&bytes).to_hex().to_string())
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let path = PathBuf::from(ctx.str("path")?);
        Ok(vec![Value::Image(Arc::new(
            read_image(&path).map_err(NodeError::msg)?,
        ))])
    }
}

/// `image.save`: writes each image of the batch as PNG, with the graph embedded.
pub struct SaveImage {
    schema: NodeSchema,
}

impl SaveImage {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "image.save".into(),
                version: 1,
                category: "image".into(),
                description: "Writes PNG files into the run's output directory. The graph that produced \
                              them (RON, effective params and seeds) is stored in an iTXt chunk, so \
                              `unilip graph from-png` and `unilip run IMAGE.png` can restore and re-run it."
                    .into(),
                inputs: vec![PortSpec::new("image", PortType::Image, "Images to save")],
                outputs: vec![PortSpec::new("paths", PortType::Text, "Files written, one per line")],
                params: vec![ParamSpec::string(
                    "filename",
                    "image",
                    "File name stem; `_<index>.png` is appended for batches > 1",
                )],
                output_node: true,
            },
        }
    }
}

impl Node for SaveImage {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let batch = ctx.input("image")?.as_image().map_err(failed)?.clone();
        let stem = ctx.str("filename")?.to_string();
        if stem.contains(['/', '\\']) || stem.is_empty() {
            return Err(NodeError::msg(format!(
                "filename `{stem}` must be a plain file name (files go to the output directory)"
            )));
        }
        let env = ctx.env().clone();
        let mut written = Vec::new();
        for i in 0..batch.n {
            let name = if batch.n == 1 {
                format!("{stem}.png")
            } else {
                format!("{stem}_{i}.png")
            };
            let path = env.out_dir.join(name);
            let provenance = env.provenance.as_deref().map(String::as_str);
            png_meta::write_png(&path, &to_rgb8(&batch, i), provenance).map_err(failed)?;
            written.push(path.display().to_string());
        }
        Ok(vec![Value::Text(written.join("\n"))])
    }
}

register_node!(LoadImage);
register_node!(SaveImage);
