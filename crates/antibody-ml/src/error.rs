//! The crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Malformed CSV structure (unterminated quote, wrong field count, bad UTF-8).
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    /// A field that does not parse as its column requires.
    #[error("line {line}, column `{column}`: {message}")]
    Field {
        line: u64,
        column: String,
        message: String,
    },
    #[error("the data has no column `{column}` (columns: {available})")]
    MissingColumn { column: String, available: String },
    #[error("model file {}: {message}", path.display())]
    ModelFile { path: PathBuf, message: String },
    #[error("model format version {found} is not supported (this build reads version {supported}); retrain the model")]
    FormatVersion { found: u32, supported: u32 },
    #[error("schema mismatch: the model was trained on feature schema {expected}, but {context} gives {found}; retrain the model or use matching data")]
    SchemaMismatch {
        expected: String,
        found: String,
        context: String,
    },
    #[error("invalid data: {0}")]
    Data(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A single-file model bundle that is not one, or whose parts disagree.
    #[error("model bundle: {0}")]
    Bundle(String),
    /// Retraining from labels cannot start or finish.
    #[error("cannot retrain: {0}")]
    Retrain(String),
}

impl MlError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MlError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = MlError> = std::result::Result<T, E>;
