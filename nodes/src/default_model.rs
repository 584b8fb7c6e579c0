//! The embedded default model: a tiny UniLIP trained on ShapesWorld by
//! `unilip train-recipe shapesworld`, shipped in the repository under `models/shapesworld/`
//! (HF layout). Graphs whose `unilip.load_checkpoint` has an empty `dir` use it.

use std::path::{Path, PathBuf};

/// Repository-relative location of the embedded model.
pub const RELATIVE_DIR: &str = "models/shapesworld";

/// The embedded model's directory, or why it is not there: the checkout the binary was built in,
/// else `models/shapesworld` under the working directory (a binary copied to another machine and
/// run from a checkout there).
pub fn dir() -> Result<PathBuf, String> {
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cwd = std::env::current_dir().unwrap_or_default();
    find(&[built_in.as_path(), cwd.as_path()])
}

/// The first of `roots` that holds the model under [`RELATIVE_DIR`].
fn find(roots: &[&Path]) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = roots.iter().map(|r| r.join(RELATIVE_DIR)).collect();
    if let Some(dir) = candidates.iter().find(|d| d.join("config.json").exists()) {
        return Ok(dir.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "no checkpoint given and the embedded default model is missing (looked in {}); set the \
         checkpoint directory (e.g. `--set ckpt.dir=DIR`) or train one with \
         `unilip train-recipe shapesworld --out runs/shapes`",
        looked.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_root_holding_the_model_wins_and_a_miss_names_every_place() {
        let tmp = std::env::temp_dir().join(format!("unilip-default-model-{}", std::process::id()));
        let (empty, full) = (tmp.join("empty"), tmp.join("full"));
        std::fs::create_dir_all(empty.join(RELATIVE_DIR)).unwrap();
        std::fs::create_dir_all(full.join(RELATIVE_DIR)).unwrap();
        std::fs::write(full.join(RELATIVE_DIR).join("config.json"), "{}").unwrap();

        let found = find(&[&empty, &full]).unwrap();
        assert_eq!(found, full.join(RELATIVE_DIR));
        let err = find(&[&empty, &tmp.join("elsewhere")]).unwrap_err();
        assert!(err.contains(&empty.join(RELATIVE_DIR).display().to_string()));
        assert!(err.contains(
            &tmp.join("elsewhere")
                .join(RELATIVE_DIR)
                .display()
                .to_string()
        ));
        assert!(err.contains("--set ckpt.dir="));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
