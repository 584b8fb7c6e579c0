//! Runtime values on wires. Scalars are inline; images and every model-side tensor travel by
//! `Arc` handle and are never copied between nodes.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::types::{Coercion, PortType};

/// A batch of RGB images on the host, `[n, 3, h, w]` row-major, values in [0, 1].
#[derive(Clone, PartialEq)]
pub struct ImageBatch {
    /// Number of images.
    pub n: usize,
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// `n * 3 * h * w` values, channel-major within each image.
    pub data: Vec<f32>,
}

impl fmt::Debug for ImageBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageBatch[{}x3x{}x{}]", self.n, self.h, self.w)
    }
}

impl ImageBatch {
    /// An all-zero batch.
    pub fn zeros(n: usize, h: usize, w: usize) -> Self {
        Self {
            n,
            h,
            w,
            data: vec![0.0; n * 3 * h * w],
        }
    }

    /// Index of pixel `(i, c, y, x)` in `data`.
    pub fn idx(&self, i: usize, c: usize, y: usize, x: usize) -> usize {
        ((i * 3 + c) * self.h + y) * self.w + x
    }

    /// Number of values per image.
    pub fn image_len(&self) -> usize {
        3 * self.h * self.w
    }
}

/// Statistics of a tensor-like value, shown by the CLI and on hover in the editor.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Element type name.
    pub dtype: String,
    /// Minimum (NaN when empty).
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises a slice of values with a given shape.
    pub fn of(shape: Vec<usize>, dtype: &str, values: &[f32]) -> Self {
        let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0f64);
        for &v in values {
            min = min.min(v as f64);
            max = max.max(v as f64);
            sum += v as f64;
        }
        let n = values.len().max(1) as f64;
        Self {
            shape,
            dtype: dtype.to_string(),
            min: if values.is_empty() { f64::NAN } else { min },
            max: if values.is_empty() { f64::NAN } else { max },
            mean: sum / n,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {} min {:.4} max {:.4} mean {:.4}",
            self.shape, self.dtype, self.min, self.max, self.mean
        )
    }
}

/// A value that lives outside core (a Burn tensor, a loaded model, conditioning...). Nodes that
/// produce one declare its [`PortType`]; consumers downcast with [`Value::payload`], which fails
/// with a typed error instead of panicking.
pub trait Payload: Any + Send + Sync + fmt::Debug {
    /// Shape and statistics, when the payload is tensor-like.
    fn summary(&self) -> Option<Summary>;
    /// Bytes held, for the cache budget (0 for handles to resident models).
    fn byte_size(&self) -> usize;
    /// Upcast for downcasting.
    fn as_any(&self) -> &dyn Any;
}

/// A value on a wire.
#[derive(Clone, Debug)]
pub enum Value {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Text.
    Text(String),
    /// Seed.
    Seed(u64),
    /// Host image batch.
    Image(Arc<ImageBatch>),
    /// Anything else, by handle.
    Data(Arc<dyn Payload>),
}

/// A value did not have the type a node expected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("expected {expected}, got {found}")]
pub struct TypeError {
    /// What the node asked for.
    pub expected: String,
    /// What arrived.
    pub found: String,
}

impl Value {
    fn kind(&self) -> String {
        match self {
            Value::Int(_) => "Int".into(),
            Value::Float(_) => "Float".into(),
            Value::Bool(_) => "Bool".into(),
            Value::Text(_) => "Text".into(),
            Value::Seed(_) => "Seed".into(),
            Value::Image(_) => "Image".into(),
            Value::Data(d) => format!("{d:?}").chars().take(60).collect(),
        }
    }

    fn mismatch(&self, expected: &str) -> TypeError {
        TypeError {
            expected: expected.into(),
            found: self.kind(),
        }
    }

    /// The integer inside, if any.
    pub fn as_int(&self) -> Result<i64, TypeError> {
        match self {
            Value::Int(v) => Ok(*v),
            other => Err(other.mismatch("Int")),
        }
    }

    /// The float inside (integers are widened).
    pub fn as_float(&self) -> Result<f64, TypeError> {
        match self {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => Err(other.mismatch("Float")),
        }
    }

    /// The boolean inside.
    pub fn as_bool(&self) -> Result<bool, TypeError> {
        match self {
            Value::Bool(v) => Ok(*v),
            other => Err(other.mismatch("Bool")),
        }
    }

    /// The text inside.
    pub fn as_text(&self) -> Result<&str, TypeError> {
        match self {
            Value::Text(v) => Ok(v),
            other => Err(other.mismatch("Text")),
        }
    }

    /// The seed inside.
    pub fn as_seed(&self) -> Result<u64, TypeError> {
        match self {
            Value::Seed(v) => Ok(*v),
            Value::Int(v) if *v >= 0 => Ok(*v as u64),
            other => Err(other.mismatch("Seed")),
        }
    }

    /// The image batch inside.
    pub fn as_image(&self) -> Result<&Arc<ImageBatch>, TypeError> {
        match self {
            Value::Image(v) => Ok(v),
            other => Err(other.mismatch("Image")),
        }
    }

    /// The payload inside, downcast to `T`.
    pub fn payload<T: Payload>(&self) -> Result<&T, TypeError> {
        match self {
            Value::Data(d) => d
                .as_any()
                .downcast_ref::<T>()
                .ok_or_else(|| self.mismatch(std::any::type_name::<T>())),
            other => Err(other.mismatch(std::any::type_name::<T>())),
        }
    }

    /// Shape/statistics for display.
    pub fn summary(&self) -> Option<Summary> {
        match self {
            Value::Image(img) => Some(Summary::of(vec![img.n, 3, img.h, img.w], "f32", &img.data)),
            Value::Data(d) => d.summary(),
            _ => None,
        }
    }

    /// One-line description for logs and the CLI.
    pub fn describe(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::Float(v) => format!("{v}"),
            Value::Bool(v) => v.to_string(),
            Value::Text(t) => format!("{t:?}"),
            Value::Seed(s) => format!("seed {s}"),
            other => other
                .summary()
                .map(|s| s.to_string())
                .unwrap_or_else(|| other.kind()),
        }
    }

    /// Approximate bytes held, for the cache budget.
    pub fn byte_size(&self) -> usize {
        match self {
            Value::Text(t) => t.len(),
            Value::Image(i) => i.data.len() * 4,
            Value::Data(d) => d.byte_size(),
            _ => 8,
        }
    }

    /// Applies a coercion from the table in [`crate::types`].
    pub fn coerce(self, c: Coercion) -> Value {
        match (c, self) {
            (Coercion::IntToFloat, Value::Int(v)) => Value::Float(v as f64),
            (Coercion::IntToSeed, Value::Int(v)) => Value::Seed(v.max(0) as u64),
            (Coercion::SeedToInt, Value::Seed(v)) => Value::Int(v as i64),
            (_, v) => v,
        }
    }
}

/// Declared type of a value, for run-time checks of node outputs against their schema.
pub fn matches_family(v: &Value, t: &PortType) -> bool {
    match (v, t) {
        (Value::Int(_), PortType::Int)
        | (Value::Float(_), PortType::Float)
        | (Value::Bool(_), PortType::Bool)
        | (Value::Text(_), PortType::Text)
        | (Value::Seed(_), PortType::Seed)
        | (Value::Image(_), PortType::Image) => true,
        (Value::Data(_), t) => !matches!(
            t,
            PortType::Int | PortType::Float | PortType::Bool | PortType::Text | PortType::Seed
        ),
        _ => false,
    }
}
