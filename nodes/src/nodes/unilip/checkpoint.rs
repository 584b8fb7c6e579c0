//! `unilip.load_checkpoint`: opens a UniLIP checkpoint directory. Models stay resident in a
//! process-wide store keyed by directory and components, so re-runs and several graphs share them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use unilip_core::{
    ExecCtx, ModelKind, Node, NodeError, NodeSchema, ParamSpec, ParamValue, PortSpec, PortType,
    Value,
};

use super::payload::ModelHandle;
use crate::models::tokenizer::Tokenizer;
use crate::models::unilip::{ComponentSet, ConditionMode, Unilip};
use crate::nodes::path_param;
use crate::register_node;

type Store = Mutex<HashMap<(PathBuf, String), Arc<ModelHandle>>>;

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(Default::default)
}

/// Loads (or reuses) the components of the checkpoint at `dir`.
pub fn load_resident(dir: &Path, components: ComponentSet) -> Result<Arc<ModelHandle>, String> {
    let canonical = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let key = (canonical.clone(), format!("{components:?}"));
    if let Some(h) = store().lock().expect("model store").get(&key) {
        return Ok(h.clone());
    }
    let model = Unilip::load(&canonical, components, &crate::backend::device())
        .map_err(|e| e.to_string())?;
    let tok_path = canonical.join("tokenizer.json");
    let tokenizer = if tok_path.exists() {
        Some(Arc::new(
            Tokenizer::from_file(&tok_path).map_err(|e| e.to_string())?,
        ))
    } else {
        None
    };
    let handle = Arc::new(ModelHandle {
        model: Arc::new(model),
        tokenizer,
        dir: canonical,
    });
    store()
        .lock()
        .expect("model store")
        .insert(key, handle.clone());
    Ok(handle)
}

/// The `dir` param, or the embedded default model when it is empty.
fn checkpoint_dir(params: &BTreeMap<String, ParamValue>) -> Result<PathBuf, String> {
    match path_param(params, "dir") {
        Ok(d) => Ok(PathBuf::from(d)),
        Err(_) => crate::default_model::dir(),
    }
}

/// `unilip.load_checkpoint`.
pub struct LoadCheckpoint {
    schema: NodeSchema,
}

const PARTS: [(&str, &str); 7] = [
    (
        "vision",
        "vision tower + projector (CLIP encode, editing, understanding)",
    ),
    ("llm", "the MLLM (Qwen2)"),
    ("lm_head", "the LM head (text answers)"),
    ("connector", "learnable queries, connector and projector"),
    ("dit", "the SANA DiT"),
    ("decoder", "latent head + DC-AE pixel decoder"),
    (
        "unidiff",
        "UniDiff heads (retrieval embeddings) when present",
    ),
];

impl LoadCheckpoint {
    /// The node.
    pub fn new() -> Self {
        let mut params = vec![ParamSpec::dir(
            "dir",
            "",
            "UniLIP checkpoint directory (HF layout: config.json, *.safetensors, tokenizer.json); \
             empty = the embedded ShapesWorld model",
        )];
        params.extend(
            PARTS
                .iter()
                .map(|(name, doc)| ParamSpec::bool(name, true, &format!("Load {doc}"))),
        );
        Self {
            schema: NodeSchema {
                id: "unilip.load_checkpoint".into(),
                version: 1,
                category: "unilip/io".into(),
                description: "Loads the chosen sub-models of a UniLIP checkpoint (bf16/f16/f32, single \
                              or sharded safetensors). Loaded models stay resident and are shared by \
                              every graph in the process."
                    .into(),
                inputs: vec![],
                outputs: vec![PortSpec::new(
                    "model",
                    PortType::Model(ModelKind::Unilip),
                    "The loaded model and its tokenizer",
                )],
                params,
                output_node: false,
            },
        }
    }
}

fn components(params: &BTreeMap<String, ParamValue>) -> ComponentSet {
    let on = |k: &str| matches!(params.get(k), Some(ParamValue::Bool(true)) | None);
    ComponentSet {
        vision: on("vision"),
        llm: on("llm"),
        lm_head: on("lm_head"),
        connector: on("connector"),
        dit: on("dit"),
        decoder: on("decoder"),
        unidiff: on("unidiff"),
    }
}

impl Node for LoadCheckpoint {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn fingerprint(&self, params: &BTreeMap<String, ParamValue>) -> Result<String, String> {
        let dir = checkpoint_dir(params)?;
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut parts: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let mtime = m
                    .modified()
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?;
                Some(format!(
                    "{:?}:{}:{}",
                    e.file_name(),
                    m.len(),
                    mtime.as_nanos()
                ))
            })
            .collect();
        parts.sort();
        Ok(parts.join("|"))
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let dir = checkpoint_dir(ctx.params).map_err(NodeError::msg)?;
        let handle = load_resident(&dir, components(ctx.params)).map_err(NodeError::msg)?;
        Ok(vec![Value::Data(handle)])
    }
}

register_node!(LoadCheckpoint);

/// The model handle on input `model`.
pub fn model_input<'a>(ctx: &'a ExecCtx<'_>) -> Result<&'a ModelHandle, NodeError> {
    super::payload::input::<ModelHandle>(ctx, "model")
}

/// The standard `model` input port.
pub fn model_port() -> PortSpec {
    PortSpec::new("model", PortType::Model(ModelKind::Unilip), "UniLIP model")
}

/// The `mode` param of nodes that condition the DiT themselves: which connector outputs
/// condition it (dual by default, as UniLIP).
pub fn mode_param() -> ParamSpec {
    ParamSpec::choice(
        "mode",
        ConditionMode::Dual.name(),
        &ConditionMode::NAMES,
        "Which connector outputs condition the DiT",
    )
}

/// The value of [`mode_param`].
pub fn mode_of(ctx: &ExecCtx<'_>) -> Result<ConditionMode, NodeError> {
    ctx.str("mode")?.parse().map_err(NodeError::msg)
}

/// An image-size param: `0` means the checkpoint's own vision input size.
pub fn input_size(model: &Unilip<crate::backend::B>, size: i64) -> usize {
    if size > 0 {
        size as usize
    } else {
        model.config.vision.vision_config.image_size.hw()[0]
    }
}
