//! The output directory of a training run:
//!
//! ```text
//! OUT/model/                     the final model (HF layout: config.json, model.safetensors, tokenizer.json)
//! OUT/checkpoints/step-000120/   a resumable checkpoint: the same HF files (EMA weights) plus
//!     train_state/raw.safetensors     the raw (non-EMA) weights of the loaded components
//!     train_state/optim-*.bin         AdamW moments per parameter group
//!     train_state/state.json          step, data position, seed, settings (by name and hashed)
//!                                     and data fingerprint
//! OUT/latest                     name of the newest complete checkpoint
//! OUT/log.csv, OUT/loss.png      per-step losses and learning rate, and their plot
//! ```
//!
//! A checkpoint is written into a hidden staging directory and renamed into place, and `latest` is
//! replaced atomically after that, so an interrupted write never damages the last good checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Resume information stored with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: usize,
    /// Samples consumed from the data stream (the epoch order restores from it).
    pub position: u64,
    /// The run seed (data order, noise, timesteps and dropout derive from it and the step).
    pub seed: u64,
    /// Fingerprint of the settings that must not change on resume.
    pub settings: String,
    /// The same settings by their `train.run` parameter names, as written, so a refused resume
    /// can name what changed (empty in checkpoints written before it was added).
    #[serde(default)]
    pub settings_by_name: BTreeMap<String, String>,
    /// Fingerprint of the dataset.
    pub data: String,
}

/// Paths of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

/// Checkpoints kept on disk (the newest ones).
const KEEP: usize = 2;

impl RunDir {
    /// The run directory `root` (created on first write).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the final model goes.
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    /// The per-step CSV log.
    pub fn log_csv(&self) -> PathBuf {
        self.root.join("log.csv")
    }

    /// The loss plot.
    pub fn loss_png(&self) -> PathBuf {
        self.root.join("loss.png")
    }

    fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>, String> {
        let pointer = self.root.join("latest");
        match std::fs::read_to_string(&pointer) {
            Ok(name) => {
                let dir = self.checkpoints().join(name.trim());
                if dir.join("train_state").join("state.json").exists() {
                    Ok(Some(dir))
                } else {
                    Err(format!(
                        "{} names {}, which is not a complete checkpoint",
                        pointer.display(),
                        dir.display()
                    ))
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", pointer.display())),
        }
    }

    /// Writes a checkpoint for `step`: `fill(staging_dir)` writes the files, then the staging
    /// directory is renamed to `checkpoints/step-NNNNNN`, `latest` is updated and older
    /// checkpoints beyond the newest two are removed.
    pub fn write_checkpoint(
        &self,
        step: usize,
        fill: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<PathBuf, String> {
        let name = format!("step-{step:06}");
        let final_dir = self.checkpoints().join(&name);
        let staging = self.checkpoints().join(format!(".{name}.partial"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e: std::io::Error| format!("{}: {e}", p.display())
        };
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        std::fs::create_dir_all(staging.join("train_state")).map_err(io(&staging))?;
        fill(&staging)?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
        }
        std::fs::rename(&staging, &final_dir).map_err(io(&final_dir))?;
        unilip_core::atomic_write(&self.root.join("latest"), name.as_bytes())
            .map_err(io(&self.root.join("latest")))?;
        self.prune(&name)?;
        Ok(final_dir)
    }

    fn prune(&self, newest: &str) -> Result<(), String> {
        let dir = self.checkpoints();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("step-") && n.as_str() <= newest)
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(KEEP);
        for n in &names[..excess] {
            let p = dir.join(n);
            std::fs::remove_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Copies the HF-layout files of `checkpoint` to `model/` (staged, then swapped in).
    pub fn export_model(&self, checkpoint: &Path) -> Result<PathBuf, String> {
        let target = self.model_dir();
        let staging = self.root.join(".model.partial");
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
        for entry in std::fs::read_dir(checkpoint).map_err(|e| io(checkpoint, e))? {
            let entry = entry.map_err(|e| io(checkpoint, e))?;
            if entry.path().is_file() {
                std::fs::copy(entry.path(), staging.join(entry.file_name()))
                    .map_err(|e| io(&entry.path(), e))?;
            }
        }
        let old = self.root.join(".model.old");
        if target.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
            }
            std::fs::rename(&target, &old).map_err(|e| io(&target, e))?;
        }
        std::fs::rename(&staging, &target).map_err(|e| io(&target, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        Ok(target)
    }
}

/// Reads `train_state/state.json` of a checkpoint.
pub fn read_state(checkpoint: &Path) -> Result<TrainState, String> {
    let path = checkpoint.join("train_state").join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `train_state/state.json` into a (staging) checkpoint directory.
pub fn write_state(checkpoint: &Path, state: &TrainState) -> Result<(), String> {
    let path = checkpoint.join("train_state").join("state.json");
    let text = serde_json::to_string_pretty(state).expect("state serialises");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
