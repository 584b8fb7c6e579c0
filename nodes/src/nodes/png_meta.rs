//! PNG files with the producing graph embedded (an iTXt chunk named [`GRAPH_KEY`]).

use std::io::BufWriter;
use std::path::Path;

/// iTXt keyword under which the graph's RON text is stored.
pub const GRAPH_KEY: &str = "unilip-graph";

/// Errors reading or writing provenance PNGs.
#[derive(Debug, thiserror::Error)]
pub enum PngMetaError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// PNG encoding/decoding.
    #[error("{path}: {message}")]
    Png {
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
    /// The PNG has no graph.
    #[error("{path}: no `{GRAPH_KEY}` text chunk (not written by unilip's Save Image?)")]
    NoGraph {
        /// File.
        path: String,
    },
}

/// Writes an RGB PNG atomically, embedding `graph` (RON) when given.
pub fn write_png(
    path: &Path,
    img: &image::RgbImage,
    graph: Option<&str>,
) -> Result<(), PngMetaError> {
    let p = path.display().to_string();
    let png_err = |e: png::EncodingError| PngMetaError::Png {
        path: p.clone(),
        message: e.to_string(),
    };
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(BufWriter::new(&mut bytes), img.width(), img.height());
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        if let Some(g) = graph {
            enc.add_itxt_chunk(GRAPH_KEY.to_string(), g.to_string())
                .map_err(png_err)?;
        }
        let mut w = enc.write_header().map_err(png_err)?;
        w.write_image_data(img.as_raw()).map_err(png_err)?;
        w.finish().map_err(png_err)?;
    }
    unilip_core::atomic_write(path, &bytes).map_err(|source| PngMetaError::Io { path: p, source })
}

/// Reads the embedded graph text from a PNG written by [`write_png`].
pub fn read_graph(path: &Path) -> Result<String, PngMetaError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| PngMetaError::Io {
        path: p.clone(),
        source,
    })?;
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let reader = decoder.read_info().map_err(|e| PngMetaError::Png {
        path: p.clone(),
        message: e.to_string(),
    })?;
    for chunk in &reader.info().utf8_text {
        if chunk.keyword == GRAPH_KEY {
            return chunk.get_text().map_err(|e| PngMetaError::Png {
                path: p.clone(),
                message: e.to_string(),
            });
        }
    }
    Err(PngMetaError::NoGraph { path: p })
}
