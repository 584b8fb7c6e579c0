//! `data.folder`: a dataset from a folder of captioned images, edit triplets or VQA items.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use unilip_core::{
    ExecCtx, Node, NodeError, NodeSchema, ParamSpec, ParamValue, Payload, PortSpec, PortType,
    Summary, Value,
};

use crate::nodes::{failed, path_param};
use crate::register_node;
use crate::train::data::{Dataset, DatasetKind, FolderDataset};

/// A dataset on a wire.
#[derive(Debug, Clone)]
pub struct DatasetValue(pub Arc<dyn Dataset>);

impl Payload for DatasetValue {
    fn summary(&self) -> Option<Summary> {
        None
    }
    fn byte_size(&self) -> usize {
        0
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Parses a `kind` param.
pub fn dataset_kind(s: &str) -> Result<DatasetKind, String> {
    match s {
        "captions" => Ok(DatasetKind::Captions),
        "edits" => Ok(DatasetKind::Edits),
        "vqa" => Ok(DatasetKind::Vqa),
        other => Err(format!("unknown dataset kind `{other}`")),
    }
}

fn open(params: &BTreeMap<String, ParamValue>) -> Result<FolderDataset, String> {
    let dir = PathBuf::from(path_param(params, "dir")?);
    let kind = params
        .get("kind")
        .and_then(ParamValue::as_str)
        .map_or(Ok(DatasetKind::Captions), dataset_kind)?;
    FolderDataset::open(&dir, kind).map_err(|e| e.to_string())
}

/// `data.folder`.
pub struct FolderData {
    schema: NodeSchema,
}

impl FolderData {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "data.folder".into(),
                version: 1,
                category: "train/data".into(),
                description: "Training data from a folder. `captions`: NAME.png + NAME.txt; \
                              `edits`: NAME.source.png + NAME.target.png + NAME.txt (instruction); \
                              `vqa`: vqa.jsonl lines {image, question, answer}. \
                              `unilip data shapesworld` writes all three."
                    .into(),
                inputs: vec![],
                outputs: vec![PortSpec::new("data", PortType::Dataset, "The samples")],
                params: vec![
                    ParamSpec::dir("dir", "", "Folder"),
                    ParamSpec::choice("kind", "captions", &["captions", "edits", "vqa"], "Layout"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for FolderData {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn fingerprint(&self, params: &BTreeMap<String, ParamValue>) -> Result<String, String> {
        Ok(open(params)?.fingerprint())
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let data = open(ctx.params).map_err(failed)?;
        Ok(vec![Value::Data(Arc::new(DatasetValue(Arc::new(data))))])
    }
}

register_node!(FolderData);
