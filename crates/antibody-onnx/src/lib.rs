//! Custom models: a tenant's ONNX file, run with pure-Rust inference (tract) behind the same
//! [`antibody_ml::serve::Scorer`] trait as the built-in ensemble.
//!
//! - [`OnnxSpec`]: the feature mapping (input columns in order), how to read the output
//!   ([`OutputKind`]), the threshold and an optional baseline row for explanations.
//! - [`Limits`]: the sandbox. The file size is checked before parsing; the graph may not use
//!   unbounded loops, random operators or external data files, and every tensor it makes
//!   must have a bounded size; a timed probe batch at load refuses a model slower than
//!   `max_batch_ms` per [`BATCH_ROWS`] rows.
//! - [`OnnxScorer`]: the loaded model. Inference failures score 0 and are counted, never
//!   panic; contributions are occlusion deltas against the baseline.
//!
//! tract can panic on hostile input (an out-of-range `Gather` index does); every call into it
//! runs under `catch_unwind`, which needs the default `panic = "unwind"` in the binary's
//! profile. The panic hook still prints each such panic to stderr.
//!
//! Not sandboxed: memory used while tract folds constants at load (a file may ask for a large
//! constant), and CPU time of a call already running (a thread cannot be pre-empted); real
//! isolation of both needs a separate process.

mod error;
mod graph;
mod scorer;
mod spec;

pub use error::OnnxError;
pub use graph::{BATCH_ROWS, MAX_TENSOR_BYTES};
pub use scorer::OnnxScorer;
pub use spec::{Limits, OnnxSpec, OutputKind, MAX_FEATURES};
