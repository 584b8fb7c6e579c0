//! Per-item output of an evaluation (`unilip eval shapesworld --dump DIR`), for error
//! analysis: every item's images as PNG files and one JSON record per item in
//! `items.jsonl` (prompt or question, what the scorer found, the per-item scores), plus
//! `metrics.json` with the run's aggregate metrics.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};
use serde_json::Value;

use crate::shapesworld::{detect, Detection, Style};

use super::Metrics;

/// File of the per-item records, one JSON object per line.
pub const ITEMS_FILE: &str = "items.jsonl";
/// File of the aggregate metrics.
pub const METRICS_FILE: &str = "metrics.json";

/// Collects the records and writes the images of one evaluation run.
pub(super) struct Dump {
    dir: PathBuf,
    records: Vec<Value>,
}

impl Dump {
    /// Prepares `dir` (created when missing). A directory that already holds a dump is
    /// refused, so an earlier run's records are never overwritten.
    pub(super) fn create(dir: &Path) -> Result<Self, String> {
        let items = dir.join(ITEMS_FILE);
        if items.exists() {
            return Err(format!(
                "{} already exists: choose another --dump directory or remove it",
                items.display()
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the dump directory {}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            records: Vec::new(),
        })
    }

    /// Writes `img` as `NNNNNN_<role>.png` for item `index` and returns the file name.
    pub(super) fn image(&self, index: usize, role: &str, img: &RgbImage) -> Result<String, String> {
        let name = format!("{index:06}_{role}.png");
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, ImageFormat::Png)
            .map_err(|e| format!("cannot encode {name}: {e}"))?;
        let path = self.dir.join(&name);
        unilip_core::atomic_write(&path, png.get_ref())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(name)
    }

    /// Adds one item's record.
    pub(super) fn record(&mut self, record: Value) {
        self.records.push(record);
    }

    /// Writes `items.jsonl` and `metrics.json`.
    pub(super) fn finish(self, metrics: &Metrics) -> Result<(), String> {
        let mut lines = String::new();
        for record in &self.records {
            lines.push_str(&record.to_string());
            lines.push('\n');
        }
        let write = |name: &str, bytes: &[u8]| {
            let path = self.dir.join(name);
            unilip_core::atomic_write(&path, bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        let metrics = serde_json::to_string_pretty(metrics).map_err(|e| e.to_string())?;
        write(METRICS_FILE, metrics.as_bytes())?;
        write(ITEMS_FILE, lines.as_bytes())
    }
}

/// The objects the scorer finds in `img` (what a GenEval-like or edit check saw).
pub(super) fn detected(img: &RgbImage, style: &Style) -> Value {
    let found: Vec<Detection> = detect(img, style);
    serde_json::to_value(found).unwrap_or(Value::Null)
}
