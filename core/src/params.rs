//! Node parameters: constants stored by name in the graph file, with a declared kind, default,
//! range or choices, and documentation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A parameter value as written in a graph file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `true` / `false`.
    Bool(bool),
    /// Integer literal.
    Int(i64),
    /// Float literal.
    Float(f64),
    /// String literal (also enums, paths, text).
    Str(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Str(v) => write!(f, "{v:?}"),
        }
    }
}

/// What kind of value a parameter takes (drives validation and the editor's widget).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParamKind {
    /// Integer, optionally bounded.
    Int,
    /// Float, optionally bounded.
    Float,
    /// Boolean.
    Bool,
    /// One line of text.
    String,
    /// Multi-line text (prompts).
    Text,
    /// One of `choices`.
    Enum,
    /// Random seed (editor offers randomise/lock).
    Seed,
    /// A file path (editor offers a file picker).
    FilePath,
    /// A directory path (editor offers a folder picker).
    DirPath,
}

/// Declaration of one parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Name, unique within the node.
    pub name: String,
    /// Kind.
    pub kind: ParamKind,
    /// Default value.
    pub default: ParamValue,
    /// Inclusive range for Int/Float/Seed.
    pub range: Option<(f64, f64)>,
    /// Allowed values for Enum.
    pub choices: Vec<String>,
    /// What it does.
    pub doc: String,
}

impl ParamSpec {
    fn new(name: &str, kind: ParamKind, default: ParamValue, doc: &str) -> Self {
        Self {
            name: name.into(),
            kind,
            default,
            range: None,
            choices: Vec::new(),
            doc: doc.into(),
        }
    }

    /// An integer parameter with an inclusive range.
    pub fn int(name: &str, default: i64, min: i64, max: i64, doc: &str) -> Self {
        Self {
            range: Some((min as f64, max as f64)),
            ..Self::new(name, ParamKind::Int, ParamValue::Int(default), doc)
        }
    }

    /// A float parameter with an inclusive range.
    pub fn float(name: &str, default: f64, min: f64, max: f64, doc: &str) -> Self {
        Self {
            range: Some((min, max)),
            ..Self::new(name, ParamKind::Float, ParamValue::Float(default), doc)
        }
    }

    /// A boolean parameter.
    pub fn bool(name: &str, default: bool, doc: &str) -> Self {
        Self::new(name, ParamKind::Bool, ParamValue::Bool(default), doc)
    }

    /// A one-line string parameter.
    pub fn string(name: &str, default: &str, doc: &str) -> Self {
        Self::new(
            name,
            ParamKind::String,
            ParamValue::Str(default.into()),
            doc,
        )
    }

    /// A multi-line text parameter.
    pub fn text(name: &str, default: &str, doc: &str) -> Self {
        Self::new(name, ParamKind::Text, ParamValue::Str(default.into()), doc)
    }

    /// An enum parameter.
    pub fn choice(name: &str, default: &str, choices: &[&str], doc: &str) -> Self {
        Self {
            choices: choices.iter().map(|c| c.to_string()).collect(),
            ..Self::new(name, ParamKind::Enum, ParamValue::Str(default.into()), doc)
        }
    }

    /// A seed parameter.
    pub fn seed(name: &str, default: u64, doc: &str) -> Self {
        Self {
            range: Some((0.0, u64::MAX as f64)),
            ..Self::new(name, ParamKind::Seed, ParamValue::Int(default as i64), doc)
        }
    }

    /// A file path parameter.
    pub fn file(name: &str, default: &str, doc: &str) -> Self {
        Self::new(
            name,
            ParamKind::FilePath,
            ParamValue::Str(default.into()),
            doc,
        )
    }

    /// A directory path parameter.
    pub fn dir(name: &str, default: &str, doc: &str) -> Self {
        Self::new(
            name,
            ParamKind::DirPath,
            ParamValue::Str(default.into()),
            doc,
        )
    }

    /// Checks a value against kind, range and choices; returns the (possibly widened) value.
    pub fn check(&self, v: &ParamValue) -> Result<ParamValue, ParamProblem> {
        let wrong = || ParamProblem::WrongType {
            expected: format!("{:?}", self.kind),
            found: v.to_string(),
        };
        let v = match (&self.kind, v) {
            (ParamKind::Float, ParamValue::Int(i)) => ParamValue::Float(*i as f64),
            (ParamKind::Float, ParamValue::Float(_))
            | (ParamKind::Int | ParamKind::Seed, ParamValue::Int(_))
            | (ParamKind::Bool, ParamValue::Bool(_)) => v.clone(),
            (
                ParamKind::String
                | ParamKind::Text
                | ParamKind::Enum
                | ParamKind::FilePath
                | ParamKind::DirPath,
                ParamValue::Str(_),
            ) => v.clone(),
            _ => return Err(wrong()),
        };
        if let (Some((lo, hi)), Some(x)) = (self.range, v.as_f64()) {
            if !(x >= lo && x <= hi) {
                return Err(ParamProblem::OutOfRange {
                    value: v.to_string(),
                    min: lo,
                    max: hi,
                });
            }
        }
        if self.kind == ParamKind::Enum {
            let s = v.as_str().unwrap_or_default();
            if !self.choices.iter().any(|c| c == s) {
                return Err(ParamProblem::NotInChoices {
                    value: s.to_string(),
                    choices: self.choices.clone(),
                });
            }
        }
        Ok(v)
    }

    /// Parses a command-line string (`--set node.param=VALUE`) according to the kind.
    pub fn parse(&self, s: &str) -> Result<ParamValue, ParamProblem> {
        let bad = || ParamProblem::WrongType {
            expected: format!("{:?}", self.kind),
            found: s.to_string(),
        };
        let v = match self.kind {
            ParamKind::Int | ParamKind::Seed => {
                ParamValue::Int(s.trim().parse().map_err(|_| bad())?)
            }
            ParamKind::Float => ParamValue::Float(s.trim().parse().map_err(|_| bad())?),
            ParamKind::Bool => ParamValue::Bool(s.trim().parse().map_err(|_| bad())?),
            _ => ParamValue::Str(s.to_string()),
        };
        self.check(&v)
    }
}

/// Why a parameter value was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamProblem {
    /// The literal has the wrong type.
    WrongType {
        /// Expected kind.
        expected: String,
        /// What was given.
        found: String,
    },
    /// Outside the declared range.
    OutOfRange {
        /// Value given.
        value: String,
        /// Minimum.
        min: f64,
        /// Maximum.
        max: f64,
    },
    /// Not one of the allowed choices.
    NotInChoices {
        /// Value given.
        value: String,
        /// Allowed values.
        choices: Vec<String>,
    },
}

impl fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamProblem::WrongType { expected, found } => {
                write!(f, "expected {expected}, got `{found}`")
            }
            ParamProblem::OutOfRange { value, min, max } => {
                write!(f, "{value} is outside [{min}, {max}]")
            }
            ParamProblem::NotInChoices { value, choices } => {
                write!(f, "`{value}` is not one of: {}", choices.join(", "))
            }
        }
    }
}

impl ParamValue {
    /// Numeric value, if numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// String value, if a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Canonical text for cache keys: floats by bit pattern, so 0.1 and 0.1000000001 differ.
    pub fn canonical(&self) -> String {
        match self {
            ParamValue::Float(f) => format!("f{:016x}", f.to_bits()),
            ParamValue::Int(i) => format!("i{i}"),
            ParamValue::Bool(b) => format!("b{b}"),
            ParamValue::Str(s) => format!("s{}:{s}", s.len()),
        }
    }
}
