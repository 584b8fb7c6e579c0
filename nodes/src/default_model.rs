//! The embedded default model: a tiny UniLIP trained on ShapesWorld by
//! `unilip train-recipe shapesworld`, shipped in the repository under `models/shapesworld/`
//! (HF layout). Graphs whose `unilip.load_checkpoint` has an empty `dir` use it.

use std::path::PathBuf;

/// Repository-relative location of the embedded model.
pub const RELATIVE_DIR: &str = "models/shapesworld";

/// The embedded model's directory, or why it is not there.
pub fn dir() -> Result<PathBuf, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(RELATIVE_DIR);
    if dir.join("config.json").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "no checkpoint given and the embedded default model is missing ({}); set the \
             checkpoint directory (e.g. `--set ckpt.dir=DIR`) or train one with \
             `unilip train-recipe shapesworld --out runs/shapes`",
            dir.display()
        ))
    }
}
