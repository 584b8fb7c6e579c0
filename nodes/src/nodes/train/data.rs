//! `data.folder`: a dataset from a folder of captioned images, edit triplets or VQA items.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use unilip_core::{
    ExecCtx, Node, NodeError, NodeSchema, ParamSpec, ParamValue, PortSpec, PortType, Value,
};

use crate::models::regions::RegionLayout;
use crate::nodes::unilip::payload::input;
use crate::nodes::unilip::payload::payload;
use crate::nodes::{failed, path_param};
use crate::register_node;
use crate::shapesworld::{Domain, GenConfig, QuestionKind, Split};
use crate::train::data::{
    CopyEdits, Dataset, DatasetKind, FolderDataset, MixDataset, DEFAULT_COPY_INSTRUCTION,
};
use crate::train::shapes::ShapesDataset;

/// A dataset on a wire.
#[derive(Debug, Clone)]
pub struct DatasetValue(pub Arc<dyn Dataset>);

payload!(DatasetValue, |_s| None, 0);

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

/// `data.shapesworld`: procedural ShapesWorld samples (see [`crate::shapesworld`]).
pub struct ShapesWorldData {
    schema: NodeSchema,
}

impl ShapesWorldData {
    /// The node.
    pub fn new() -> Self {
        let domains: Vec<&str> = Domain::ALL.iter().map(|d| d.name()).collect();
        let questions: Vec<&str> = std::iter::once("all")
            .chain(QuestionKind::ALL.iter().map(|k| k.name()))
            .collect();
        Self {
            schema: NodeSchema {
                id: "data.shapesworld".into(),
                version: 1,
                category: "train/data".into(),
                description: "Procedural ShapesWorld data, rendered on demand and identical for \
                              the same seed: captioned scenes of coloured shapes, edit triplets \
                              (recolour, move, add, remove, resize, swap) or VQA items."
                    .into(),
                inputs: vec![],
                outputs: vec![PortSpec::new("data", PortType::Dataset, "The samples")],
                params: vec![
                    ParamSpec::choice(
                        "kind",
                        "captions",
                        &["captions", "edits", "vqa"],
                        "What each sample holds",
                    ),
                    ParamSpec::choice("split", "train", &["train", "val"], "Item stream"),
                    ParamSpec::int("n", 4096, 1, 100_000_000, "Number of samples"),
                    ParamSpec::seed("seed", 0, "Generator seed"),
                    ParamSpec::int("resolution", 64, 32, 256, "Image side in pixels"),
                    ParamSpec::choice("domain", "default", &domains, "Style and vocabulary"),
                    ParamSpec::choice(
                        "questions",
                        "all",
                        &questions,
                        "VQA: every question kind, or one alone",
                    ),
                    ParamSpec::bool(
                        "regions",
                        false,
                        "Captions: ground captions with regional prompts (see region_layout), so \
                         training lets each region read its own caption beside the whole caption \
                         (as `--regions with-base` samples)",
                    ),
                    ParamSpec::choice(
                        "region_layout",
                        RegionLayout::Groups.name(),
                        &RegionLayout::NAMES,
                        "With regions: groups (each group of a two-group caption over its half) \
                         or objects (each object's caption over its box, for every caption)",
                    ),
                    ParamSpec::float(
                        "region_share",
                        1.0,
                        0.0,
                        1.0,
                        "With regions: the share of captions grounded (drawn per item); the rest \
                         train on the whole caption alone, as plain sampling reads it",
                    ),
                    ParamSpec::text(
                        "edits",
                        "all",
                        "Edits: `all`, or a comma-separated list of the kinds to keep \
                         (recolour, move, add, remove, resize, swap)",
                    ),
                ],
                output_node: false,
            },
        }
    }
}

/// The ShapesWorld dataset described by a node's params.
pub fn shapes_dataset(params: &BTreeMap<String, ParamValue>) -> Result<ShapesDataset, String> {
    let s = |k: &str, d: &'static str| {
        params
            .get(k)
            .and_then(ParamValue::as_str)
            .unwrap_or(d)
            .to_string()
    };
    let i = |k: &str, d: i64| match params.get(k) {
        Some(ParamValue::Int(v)) => *v,
        _ => d,
    };
    let domain = Domain::ALL
        .into_iter()
        .find(|d| d.name() == s("domain", "default"))
        .ok_or_else(|| format!("unknown domain `{}`", s("domain", "default")))?;
    let split = match s("split", "train").as_str() {
        "val" => Split::Val,
        _ => Split::Train,
    };
    let config = GenConfig {
        resolution: i("resolution", 64).clamp(0, u32::MAX as i64) as u32,
        seed: i("seed", 0) as u64,
        split,
        domain,
    };
    let data = ShapesDataset::new(
        config,
        dataset_kind(&s("kind", "captions"))?,
        i("n", 4096).max(1) as usize,
    )?;
    let data = match s("edits", "all").trim() {
        "all" | "" => data,
        list => {
            let kinds: Vec<&str> = list.split(',').map(str::trim).collect();
            data.only_edits(&kinds)?
        }
    };
    let data = match params.get("regions") {
        Some(ParamValue::Bool(true)) => {
            let name = s("region_layout", RegionLayout::Groups.name());
            let layout = RegionLayout::from_name(&name).ok_or_else(|| {
                format!(
                    "unknown region_layout `{name}` (expected {})",
                    RegionLayout::NAMES.join(" or ")
                )
            })?;
            let share = match params.get("region_share") {
                Some(v) => v.as_f64().unwrap_or(f64::NAN),
                None => 1.0,
            };
            data.with_regions(layout, share)?
        }
        _ => data,
    };
    match s("questions", "all").as_str() {
        "all" => Ok(data),
        name => {
            let kind = QuestionKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| format!("unknown question kind `{name}`"))?;
            data.only_questions(kind)
        }
    }
}

impl Node for ShapesWorldData {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let data = shapes_dataset(ctx.params).map_err(failed)?;
        Ok(vec![Value::Data(Arc::new(DatasetValue(Arc::new(data))))])
    }
}

register_node!(ShapesWorldData);

/// `data.mix`.
pub struct MixData {
    schema: NodeSchema,
}

impl MixData {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "data.mix".into(),
                version: 1,
                category: "train/data".into(),
                description: "Two datasets as one; shuffled batches mix them in proportion to \
                              their sizes. Edit triplets + captions train editing while keeping \
                              text-to-image (caption samples train as generation); VQA + \
                              captions train understanding on both."
                    .into(),
                inputs: vec![
                    PortSpec::new("a", PortType::Dataset, "First dataset"),
                    PortSpec::new("b", PortType::Dataset, "Second dataset"),
                ],
                outputs: vec![PortSpec::new("data", PortType::Dataset, "a then b")],
                params: vec![],
                output_node: false,
            },
        }
    }
}

impl Node for MixData {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let a = input::<DatasetValue>(ctx, "a")?.0.clone();
        let b = input::<DatasetValue>(ctx, "b")?.0.clone();
        let mix = MixDataset::new(a, b).map_err(failed)?;
        Ok(vec![Value::Data(Arc::new(DatasetValue(Arc::new(mix))))])
    }
}

register_node!(MixData);

/// `data.copy_edits`.
pub struct CopyEditsData {
    schema: NodeSchema,
}

impl CopyEditsData {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "data.copy_edits".into(),
                version: 1,
                category: "train/data".into(),
                description: "Identity edits: every image (an edit's source image) becomes both \
                              source and target under one instruction. Mixed with edit triplets \
                              (`data.mix`), a curriculum aid whose only lesson is keeping the \
                              source layout, which every edit needs."
                    .into(),
                inputs: vec![PortSpec::new(
                    "data",
                    PortType::Dataset,
                    "Captioned images or edit triplets",
                )],
                outputs: vec![PortSpec::new("data", PortType::Dataset, "Identity edits")],
                params: vec![ParamSpec::string(
                    "instruction",
                    DEFAULT_COPY_INSTRUCTION,
                    "Instruction of every identity edit (words the tokenizer knows)",
                )],
                output_node: false,
            },
        }
    }
}

impl Node for CopyEditsData {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let inner = input::<DatasetValue>(ctx, "data")?.0.clone();
        let copies = CopyEdits::new(inner, ctx.str("instruction")?).map_err(failed)?;
        Ok(vec![Value::Data(Arc::new(DatasetValue(Arc::new(copies))))])
    }
}

register_node!(CopyEditsData);
