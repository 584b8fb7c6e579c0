//! Reading the parity fixtures (`$UNILIP_FIXTURES`, default `../shared/fixtures`): each fixture is a
//! directory with `config.json`, `weights.safetensors`, `io.safetensors` and `trace.safetensors`.
//! Used by the parity tests and the model benchmark.

use std::path::PathBuf;
use std::sync::Arc;

use crate::weights::{Checkpoint, HostTensor, WeightError};

/// The fixture root: `$UNILIP_FIXTURES`, else `../shared/fixtures` relative to the workspace root.
pub fn root() -> PathBuf {
    match std::env::var_os("UNILIP_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

/// Whether the fixture root was given explicitly (then a missing fixture is a failure, not a skip).
pub fn root_is_explicit() -> bool {
    std::env::var_os("UNILIP_FIXTURES").is_some()
}

/// One fixture directory.
pub struct Fixture {
    /// Directory of the fixture.
    pub dir: PathBuf,
    /// Parsed `config.json`.
    pub config: serde_json::Value,
    /// `weights.safetensors`.
    pub weights: Arc<Checkpoint>,
    /// `io.safetensors`.
    pub io: Checkpoint,
    /// `trace.safetensors`, if the fixture has one.
    pub trace: Option<Checkpoint>,
}

impl Fixture {
    /// Opens `root()/name`. Returns `Ok(None)` (skip) when the root is the default and the fixture
    /// is absent; with `UNILIP_FIXTURES` set, absence is an error.
    pub fn open(name: &str) -> Result<Option<Self>, WeightError> {
        let dir = root().join(name);
        if !dir.exists() && !root_is_explicit() {
            eprintln!("skipping: fixture {} not found", dir.display());
            return Ok(None);
        }
        let config = crate::weights::read_json(&dir.join("config.json"))?;
        let weights_path = dir.join("weights.safetensors");
        let weights = if weights_path.exists() {
            Checkpoint::open(&weights_path)?
        } else {
            Checkpoint::from_files(&[])?
        };
        let io = Checkpoint::open(dir.join("io.safetensors"))?;
        let trace_path = dir.join("trace.safetensors");
        let trace = if trace_path.exists() {
            Some(Checkpoint::open(&trace_path)?)
        } else {
            None
        };
        Ok(Some(Self {
            dir,
            config,
            weights: Arc::new(weights),
            io,
            trace,
        }))
    }

    /// `(atol, rtol)` from `config.json` → `tolerance` (keys `atol`/`rtol`,
    /// `suggested_*` or `recommended_*`), defaulting to 1e-4 each.
    pub fn tolerance(&self) -> (f64, f64) {
        self.tolerance_of(&self.config["tolerance"])
    }

    /// `(atol, rtol)` of one group of `tolerance.per_group` (e2e fixture), falling back to the
    /// fixture-wide tolerance when the group or a key is absent.
    pub fn group_tolerance(&self, group: &str) -> (f64, f64) {
        let g = &self.config["tolerance"]["per_group"][group];
        if g.is_null() {
            self.tolerance()
        } else {
            self.tolerance_of(g)
        }
    }

    fn tolerance_of(&self, t: &serde_json::Value) -> (f64, f64) {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| t.get(*n).and_then(|v| v.as_f64()))
                .unwrap_or(1e-4)
        };
        (
            get(&["atol", "suggested_atol", "recommended_atol"]),
            get(&["rtol", "suggested_rtol", "recommended_rtol"]),
        )
    }
}

/// Largest violation of `|got - want| <= atol + rtol·|want|`, as an error message naming the
/// tensor, the index and both values; `Ok(max_abs_diff)` when every element is within tolerance.
pub fn compare(
    name: &str,
    got: &HostTensor,
    want: &HostTensor,
    atol: f64,
    rtol: f64,
) -> Result<f64, String> {
    if got.shape != want.shape {
        return Err(format!(
            "{name}: shape {:?} != expected {:?}",
            got.shape, want.shape
        ));
    }
    let mut max_diff = 0f64;
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        let d = (g as f64 - w as f64).abs();
        if !d.is_finite() && g.to_bits() != w.to_bits() {
            return Err(format!("{name}[{i}]: got {g}, expected {w}"));
        }
        max_diff = max_diff.max(d);
        let excess = d - (atol + rtol * (w as f64).abs());
        if excess > 0.0 && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    match worst {
        None => Ok(max_diff),
        Some((i, _)) => Err(format!(
            "{name}: max |diff| {max_diff:.3e} exceeds atol {atol:e} + rtol {rtol:e}; worst at flat index {i}: got {}, expected {}",
            got.data[i], want.data[i]
        )),
    }
}

/// Reads tensor `key` of a fixture file, panicking with the key in the message (test helper).
pub fn expect_tensor(ck: &Checkpoint, key: &str) -> HostTensor {
    ck.read(key).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Reads integer tensor `key` (ids, masks) as a Burn `Int` tensor, panicking with the key in the
/// message (test helper).
pub fn expect_int_tensor<B: burn::prelude::Backend, const D: usize>(
    ck: &Checkpoint,
    key: &str,
) -> burn::prelude::Tensor<B, D, burn::prelude::Int> {
    let (shape, data) = ck.read_i64(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    burn::prelude::Tensor::from_data(
        burn::prelude::TensorData::new(data, shape),
        &Default::default(),
    )
}

/// The UniLIP config of the end-to-end fixture: `upstream_config.unilip` with the `dit`, `dcae`
/// and `scheduler` sections as `dit_config`, `vae_config` and `scheduler_config`.
pub fn unilip_config(fx: &Fixture) -> Result<crate::models::unilip::UnilipConfig, String> {
    let up = &fx.config["upstream_config"];
    let mut json = up["unilip"].clone();
    json["dit_config"] = up["dit"].clone();
    json["vae_config"] = up["dcae"].clone();
    json["scheduler_config"] = up["scheduler"].clone();
    crate::models::unilip::UnilipConfig::from_json(json)
}

/// The dual condition of the end-to-end fixture's text-to-image prompts (`t2i.input_ids`,
/// `t2i.attention_mask`: the positive row, then the negative), panicking on error (test helper).
pub fn t2i_condition<B: burn::prelude::Backend>(
    fx: &Fixture,
    model: &crate::models::unilip::Unilip<B>,
) -> crate::models::unilip::Condition<B> {
    model
        .condition(
            expect_int_tensor::<B, 2>(&fx.io, "t2i.input_ids"),
            expect_int_tensor::<B, 2>(&fx.io, "t2i.attention_mask"),
            None,
            crate::models::unilip::ConditionMode::Dual,
        )
        .expect("t2i condition")
}
