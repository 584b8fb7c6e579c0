//! Checkpoint loading: HF-layout safetensors (single file or sharded index), bf16/f16/f32 upcast,
//! and a candle-style [`VarBuilder`] that walks the key tree with prefixes.
//!
//! Every model's `load` takes a `VarBuilder` positioned at its own prefix, so the module tree and
//! the checkpoint key tree stay the same shape. PyTorch Linear weights (`[out, in]`) are transposed
//! to Burn's `[in, out]` in exactly one place: [`VarBuilder::linear`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::param_keys::{param_id, ParamKeys};

/// Everything that can go wrong while reading a checkpoint. Each variant names the file and,
/// where there is one, the tensor key.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File or directory that failed.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A safetensors file is truncated or its header is malformed.
    #[error("{file}: not a valid safetensors file ({reason})")]
    Corrupt {
        /// The offending file.
        file: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// `model.safetensors.index.json` is malformed or points at a missing shard.
    #[error("{file}: broken shard index ({reason})")]
    ShardIndex {
        /// The index file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No safetensors file was found where one was expected.
    #[error("{dir}: no model.safetensors, model.safetensors.index.json or *.safetensors file")]
    NoWeights {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("missing tensor `{key}` in {source_desc}{}", hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default())]
    MissingKey {
        /// Full key looked up.
        key: String,
        /// Files that were searched.
        source_desc: String,
        /// Closest key present, if any.
        hint: Option<String>,
    },
    /// A tensor has a different shape than the config implies.
    #[error("tensor `{key}` in {file}: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Full key.
        key: String,
        /// File holding it.
        file: PathBuf,
        /// Shape derived from the config.
        expected: Vec<usize>,
        /// Shape on disk.
        found: Vec<usize>,
    },
    /// A tensor uses a dtype we cannot turn into f32.
    #[error("tensor `{key}` in {file}: unsupported dtype {dtype} (expected F32, F16 or BF16)")]
    UnsupportedDtype {
        /// Full key.
        key: String,
        /// File holding it.
        file: PathBuf,
        /// The dtype found.
        dtype: String,
    },
    /// `config.json` is missing or malformed.
    #[error("{file}: bad config ({reason})")]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias for weight loading.
pub type Result<T> = std::result::Result<T, WeightError>;

/// Where a tensor lives: which mapped file, its dtype, shape and byte range.
#[derive(Debug, Clone)]
pub struct TensorMeta {
    file: usize,
    /// Element type on disk.
    pub dtype: Dtype,
    /// Shape on disk.
    pub shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A host-side f32 tensor (row-major), the common currency between files and Burn tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Converts into a Burn tensor of rank `D`.
    pub fn to_burn<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    /// Reads a Burn tensor back to the host as f32.
    pub fn from_burn<B: Backend, const D: usize>(t: Tensor<B, D>) -> Self {
        let shape = t.dims().to_vec();
        let data = t
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("converted to f32");
        Self { shape, data }
    }
}

/// One or more memory-mapped safetensors files seen as a single key → tensor map.
pub struct Checkpoint {
    files: Vec<(PathBuf, Mmap)>,
    tensors: HashMap<String, TensorMeta>,
    /// Keys read so far (to report unexpected keys after a load).
    read_keys: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The checkpoint's `config.json`, if present next to the weights.
    pub config: Option<serde_json::Value>,
    /// The directory (or file) the checkpoint was opened from.
    pub root: PathBuf,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("root", &self.root)
            .field("files", &self.files.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WeightError + '_ {
    move |source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Checkpoint {
    /// Opens an HF-layout directory (`config.json` + `model.safetensors` or a sharded
    /// `model.safetensors.index.json`, or any `*.safetensors` files) or a single `.safetensors` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        if meta.is_file() {
            let mut ck = Self::from_files(&[path.to_path_buf()])?;
            ck.root = path.to_path_buf();
            return Ok(ck);
        }
        let files = Self::weight_files(path)?;
        let mut ck = Self::from_files(&files)?;
        ck.root = path.to_path_buf();
        let cfg_path = path.join("config.json");
        if cfg_path.exists() {
            ck.config = Some(read_json(&cfg_path)?);
        }
        Ok(ck)
    }

    /// Lists the safetensors files of a checkpoint directory, honouring a shard index.
    fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
        let index = dir.join("model.safetensors.index.json");
        if index.exists() {
            let v = read_json(&index).map_err(|e| match e {
                WeightError::Config { file, reason } => WeightError::ShardIndex { file, reason },
                other => other,
            })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| WeightError::ShardIndex {
                    file: index.clone(),
                    reason: "no `weight_map` object".into(),
                })?;
            let mut shards: Vec<String> = Vec::new();
            for (key, file) in map {
                let file = file.as_str().ok_or_else(|| WeightError::ShardIndex {
                    file: index.clone(),
                    reason: format!("entry `{key}` is not a file name"),
                })?;
                if !shards.iter().any(|s| s == file) {
                    shards.push(file.to_string());
                }
            }
            shards.sort();
            let mut out = Vec::new();
            for s in shards {
                let p = dir.join(&s);
                if !p.exists() {
                    return Err(WeightError::ShardIndex {
                        file: index.clone(),
                        reason: format!("shard `{s}` listed in weight_map does not exist"),
                    });
                }
                out.push(p);
            }
            return Ok(out);
        }
        let single = dir.join("model.safetensors");
        if single.exists() {
            return Ok(vec![single]);
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(WeightError::NoWeights {
                dir: dir.to_path_buf(),
            });
        }
        Ok(found)
    }

    /// Maps the given files and indexes their tensors. A key present in two files is an error.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut tensors = HashMap::new();
        for (fi, p) in paths.iter().enumerate() {
            let file = File::open(p).map_err(io_err(p))?;
            // SAFETY: the map is read-only and lives as long as the checkpoint; a file modified
            // underneath us can only change values, and every read is bounds-checked below.
            let mmap = unsafe { Mmap::map(&file) }.map_err(io_err(p))?;
            // Full validation (offsets, sizes, overlap) before we trust any offset below.
            SafeTensors::deserialize(&mmap).map_err(|e| WeightError::Corrupt {
                file: p.clone(),
                reason: e.to_string(),
            })?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&mmap).map_err(|e| WeightError::Corrupt {
                    file: p.clone(),
                    reason: e.to_string(),
                })?;
            let data_start = 8 + header_len;
            for (name, info) in metadata.tensors() {
                let (s, e) = info.data_offsets;
                let meta = TensorMeta {
                    file: fi,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + s,
                    end: data_start + e,
                };
                if tensors.insert(name.clone(), meta).is_some() {
                    return Err(WeightError::Corrupt {
                        file: p.clone(),
                        reason: format!("tensor `{name}` appears in more than one file"),
                    });
                }
            }
            files.push((p.clone(), mmap));
        }
        Ok(Self {
            files,
            tensors,
            read_keys: Default::default(),
            config: None,
            root: paths.first().cloned().unwrap_or_default(),
        })
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    /// Keys never read so far, sorted: after loading a model, the checkpoint's unexpected keys.
    pub fn unread_keys(&self) -> Vec<&str> {
        let read = self.read_keys.lock().expect("read-keys lock");
        let mut k: Vec<&str> = self
            .tensors
            .keys()
            .filter(|k| !read.contains(*k))
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }

    /// Files of the checkpoint.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// Metadata of one tensor.
    pub fn meta(&self, key: &str) -> Option<&TensorMeta> {
        self.tensors.get(key)
    }

    /// True when `key` exists.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The file holding `key`.
    pub fn file_of(&self, key: &str) -> Option<&Path> {
        self.tensors
            .get(key)
            .map(|m| self.files[m.file].0.as_path())
    }

    fn describe(&self) -> String {
        match self.files.len() {
            1 => self.files[0].0.display().to_string(),
            n => format!("{} ({n} shards)", self.root.display()),
        }
    }

    /// The key that shares the longest suffix with `key`, for "did you mean" hints.
    fn closest(&self, key: &str) -> Option<String> {
        let last = key.rsplit('.').next().unwrap_or(key);
        self.tensors
            .keys()
            .filter(|k| k.ends_with(last))
            .max_by_key(|k| {
                k.chars()
                    .rev()
                    .zip(key.chars().rev())
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .cloned()
    }

    /// Metadata of `key`, or a [`WeightError::MissingKey`] with a "did you mean" hint.
    fn meta_or_missing(&self, key: &str) -> Result<&TensorMeta> {
        self.tensors
            .get(key)
            .ok_or_else(|| WeightError::MissingKey {
                key: key.to_string(),
                source_desc: self.describe(),
                hint: self.closest(key),
            })
    }

    /// Reads one tensor as f32, upcasting bf16/f16.
    pub fn read(&self, key: &str) -> Result<HostTensor> {
        let meta = self.meta_or_missing(key)?;
        self.read_keys
            .lock()
            .expect("read-keys lock")
            .insert(key.to_string());
        let (path, mmap) = &self.files[meta.file];
        let bytes = &mmap[meta.start..meta.end];
        let n: usize = meta.shape.iter().product();
        let unsupported = || WeightError::UnsupportedDtype {
            key: key.to_string(),
            file: path.clone(),
            dtype: format!("{:?}", meta.dtype),
        };
        let width = match meta.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F64 => 8,
            _ => return Err(unsupported()),
        };
        if bytes.len() != n * width {
            return Err(WeightError::Corrupt {
                file: path.clone(),
                reason: format!("tensor `{key}` has {} bytes for {n} elements", bytes.len()),
            });
        }
        let data: Vec<f32> = match meta.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => return Err(unsupported()),
        };
        Ok(HostTensor {
            shape: meta.shape.clone(),
            data,
        })
    }

    /// Reads an integer tensor (i64/i32/u8/bool) as i64, for fixtures (token ids, masks).
    pub fn read_i64(&self, key: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let meta = self.meta_or_missing(key)?;
        let (path, mmap) = &self.files[meta.file];
        let bytes = &mmap[meta.start..meta.end];
        let data: Vec<i64> = match meta.dtype {
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                .collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| b as i64).collect(),
            other => {
                return Err(WeightError::UnsupportedDtype {
                    key: key.to_string(),
                    file: path.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok((meta.shape.clone(), data))
    }
}

/// Reads and parses a JSON file, naming the file on failure.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| WeightError::Config {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Where a [`VarBuilder`] takes its tensors from.
#[derive(Clone)]
enum Source {
    /// A checkpoint on disk.
    Checkpoint(Arc<Checkpoint>),
    /// Random weights (for `init-checkpoint`, benchmarks and tests), recorded as they are made.
    /// The empty checkpoint names the source in errors.
    Random(Arc<RandomSource>, Arc<Checkpoint>),
}

/// Deterministic random weights: each tensor is drawn from a seed derived from its key, so the same
/// key always gets the same values. Since there is no file to ask, an oracle answers which keys
/// "exist" (layer counts, key styles) and, where a loader reads a shape from the file, which shape.
pub struct RandomSource {
    seed: u64,
    oracle: Box<KeyOracle>,
    made: std::sync::Mutex<BTreeMap<String, HostTensor>>,
}

impl RandomSource {
    /// Values for `key`: norm weights 1, biases 0, other tensors N(0, 1/fan_in).
    fn make(&self, key: &str, shape: &[usize]) -> HostTensor {
        use rand::SeedableRng;
        let n: usize = shape.iter().product();
        let last = key.rsplit('.').next().unwrap_or(key);
        let is_norm = key.contains("norm") || key.contains("ln") || last.starts_with("ls");
        let data = if last == "bias" {
            vec![0.0; n]
        } else if is_norm && shape.len() == 1 {
            vec![if last.starts_with("ls") { 0.1 } else { 1.0 }; n]
        } else {
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let std = if shape.len() >= 2 {
                (1.0 / fan_in as f32).sqrt()
            } else {
                0.02
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(
                self.seed
                    ^ u64::from_le_bytes(
                        blake3::hash(key.as_bytes()).as_bytes()[..8]
                            .try_into()
                            .expect("8 bytes"),
                    ),
            );
            (0..n).map(|_| std * standard_normal(&mut rng)).collect()
        };
        let t = HostTensor {
            shape: shape.to_vec(),
            data,
        };
        self.made
            .lock()
            .expect("random source lock")
            .insert(key.to_string(), t.clone());
        t
    }
}

/// One N(0, 1) draw (Box-Muller from two uniforms).
pub fn standard_normal(rng: &mut impl rand::Rng) -> f32 {
    use rand::RngExt;
    let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random::<f32>());
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Answers, for a random source, whether a key exists and with which shape.
pub type KeyOracle = dyn Fn(&str) -> Option<Vec<usize>> + Send + Sync;

/// Walks a [`Checkpoint`] (or a [`RandomSource`]) with a key prefix and builds Burn tensors on a device.
#[derive(Clone)]
pub struct VarBuilder<B: Backend> {
    source: Source,
    prefix: String,
    device: B::Device,
    keys: ParamKeys,
}

impl<B: Backend> VarBuilder<B> {
    /// A builder at the root of `ck`.
    pub fn new(ck: Arc<Checkpoint>, device: &B::Device) -> Self {
        Self {
            source: Source::Checkpoint(ck),
            prefix: String::new(),
            device: device.clone(),
            keys: ParamKeys::default(),
        }
    }

    /// A builder that invents deterministic random weights of whatever shape the model asks for.
    /// `oracle(full_key)` is `None` for keys that do not exist, `Some(shape)` for keys that do
    /// (an empty shape when the loader will not ask for it).
    pub fn random(
        seed: u64,
        oracle: impl Fn(&str) -> Option<Vec<usize>> + Send + Sync + 'static,
        device: &B::Device,
    ) -> Self {
        Self {
            source: Source::Random(
                Arc::new(RandomSource {
                    seed,
                    oracle: Box::new(oracle),
                    made: Default::default(),
                }),
                Arc::new(Checkpoint {
                    files: Vec::new(),
                    tensors: HashMap::new(),
                    read_keys: Default::default(),
                    config: None,
                    root: PathBuf::from("<random weights>"),
                }),
            ),
            prefix: String::new(),
            device: device.clone(),
            keys: ParamKeys::default(),
        }
    }

    /// Every tensor a random builder has made so far, by full key (empty for checkpoints).
    pub fn made(&self) -> BTreeMap<String, HostTensor> {
        match &self.source {
            Source::Random(r, _) => r.made.lock().expect("random source lock").clone(),
            Source::Checkpoint(_) => BTreeMap::new(),
        }
    }

    /// A builder one level down: `pp("layers").pp(3)` looks up `layers.3.*`.
    pub fn pp(&self, name: impl fmt::Display) -> Self {
        let name = name.to_string();
        let prefix = if self.prefix.is_empty() {
            name
        } else if name.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Self {
            source: self.source.clone(),
            prefix,
            device: self.device.clone(),
            keys: self.keys.clone(),
        }
    }

    /// The key of every parameter made through this builder (and its `pp` children) so far.
    pub fn param_keys(&self) -> ParamKeys {
        self.keys.clone()
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The checkpoint underneath (an empty one rooted at `<random weights>` for random weights).
    pub fn checkpoint(&self) -> &Arc<Checkpoint> {
        match &self.source {
            Source::Checkpoint(ck) | Source::Random(_, ck) => ck,
        }
    }

    /// The full key of `name` under this builder's prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// True when `name` exists under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Checkpoint(ck) => ck.contains(&self.key(name)),
            Source::Random(r, _) => (r.oracle)(&self.key(name)).is_some(),
        }
    }

    /// Shape on disk of `name`, if present.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        match &self.source {
            Source::Checkpoint(ck) => ck.meta(&self.key(name)).map(|m| m.shape.clone()),
            Source::Random(r, _) => (r.oracle)(&self.key(name)).filter(|s| !s.is_empty()),
        }
    }

    /// Reads `name` as f32 and checks its shape.
    pub fn host(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let key = self.key(name);
        let ck = match &self.source {
            Source::Checkpoint(ck) => ck,
            Source::Random(r, _) => return Ok(r.make(&key, shape)),
        };
        let t = ck.read(&key)?;
        if t.shape != shape {
            return Err(WeightError::ShapeMismatch {
                file: ck.file_of(&key).unwrap_or(Path::new("?")).to_path_buf(),
                key,
                expected: shape.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }

    /// Loads `name` with the expected `shape` as a Burn tensor.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<B, D>> {
        Ok(self.host(name, &shape)?.to_burn(&self.device))
    }

    /// Loads `name` as a learnable parameter whose id is derived from its key
    /// ([`crate::param_keys::param_id`]) and recorded for saving.
    pub fn param<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<B, D>>> {
        Ok(self.keyed_param(name, self.tensor(name, shape)?, false))
    }

    fn keyed_param<const D: usize>(
        &self,
        name: &str,
        value: Tensor<B, D>,
        transposed: bool,
    ) -> Param<Tensor<B, D>> {
        let key = self.key(name);
        let id = param_id(&key);
        self.keys.record(id, &key, transposed);
        Param::initialized(id, value.require_grad())
    }

    /// Loads a PyTorch `nn.Linear` at this prefix (`weight` `[out, in]`, optional `bias`),
    /// transposing to Burn's `[in, out]` layout. This is the only place Linear weights are transposed.
    pub fn linear(&self, d_in: usize, d_out: usize, bias: bool) -> Result<Linear<B>> {
        let w: Tensor<B, 2> = self.tensor("weight", [d_out, d_in])?;
        let mut lin = LinearConfig::new(d_in, d_out)
            .with_bias(bias)
            .init::<B>(&self.device);
        lin.weight = self.keyed_param("weight", w.transpose(), true);
        if bias {
            lin.bias = Some(self.param("bias", [d_out])?);
        }
        Ok(lin)
    }
}

/// Element type to write a safetensors file in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDtype {
    /// 32-bit float.
    F32,
    /// bfloat16 (round to nearest even), the dtype of released UniLIP checkpoints.
    Bf16,
}

/// Writes tensors to a safetensors file atomically (temp file in the same directory, then rename),
/// so an interrupted write never leaves a truncated checkpoint behind.
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: SaveDtype,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let bytes = match dtype {
                SaveDtype::F32 => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                SaveDtype::Bf16 => t
                    .data
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (k.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let st_dtype = match dtype {
        SaveDtype::F32 => Dtype::F32,
        SaveDtype::Bf16 => Dtype::BF16,
    };
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = encoded
        .iter()
        .map(|(k, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(st_dtype, shape.clone(), bytes)
                .map_err(|e| WeightError::Corrupt {
                    file: path.to_path_buf(),
                    reason: format!("tensor `{k}`: {e}"),
                })?;
            Ok((k.clone(), view))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, metadata).map_err(|e| WeightError::Corrupt {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    atomic_write(path, &bytes)
}

/// Writes `bytes` to `path` through a temp file and a rename (see [`unilip_core::atomic_write`]).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    unilip_core::atomic_write(path, bytes).map_err(io_err(path))
}
