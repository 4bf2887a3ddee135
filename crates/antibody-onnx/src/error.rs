//! Why a custom model was refused.

/// Everything that can go wrong loading an uploaded ONNX model. Messages are written for the
/// tenant who uploaded it: they name the field, shape or operator at fault.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The spec (or limits) that came with the model is inconsistent.
    #[error("invalid model spec: {0}")]
    Spec(String),
    /// The file is larger than the tenant's limit; it was not parsed.
    #[error("model is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The bytes are not a model tract can read (not protobuf, truncated, unknown operator, …).
    #[error("cannot read the ONNX model: {0}")]
    Parse(String),
    /// The graph uses an operator the sandbox does not run.
    #[error("operator `{op}` (node `{node}`) is not allowed: {why}")]
    ForbiddenOp {
        op: String,
        node: String,
        why: &'static str,
    },
    /// The model's single input is not `[?, k]` or `[1, k]` f32 with k = the spec's features.
    #[error("model input {found} does not fit the spec: {expected}")]
    InputShape { found: String, expected: String },
    /// The chosen output cannot be read as the spec's output kind.
    #[error("model output {found} does not fit the spec: {expected}")]
    OutputShape { found: String, expected: String },
    /// An intermediate tensor would be too large, or its size depends on the data.
    #[error("node `{node}` makes a tensor that is not bounded: {why}")]
    Unbounded { node: String, why: String },
    /// The model failed (or panicked) scoring the probe batch.
    #[error("model failed on a probe batch of {rows} rows: {message}")]
    Probe { rows: usize, message: String },
    /// The model is slower than the tenant's time limit.
    #[error("model takes {took_ms:.1} ms per {rows}-row batch, over the limit of {limit_ms} ms")]
    TooSlow {
        took_ms: f64,
        rows: usize,
        limit_ms: u64,
    },
}
