//! Learned detection for antibody: feature sets, a synthetic agent-behaviour generator, and
//! CPU-fast models that score rows deterministically and explain every score.
//!
//! - [`features`]: declarative feature sets (`agent-behavior`, `tabular`) with schema hashes.
//! - [`gen`]: the seeded generator of the seven agent-behaviour scenarios.
//! - [`data`]: CSV → [`data::Dataset`] (feature matrix, binary labels, threat types), splits.
//! - [`iforest`], [`gbt`], [`shap`], [`fusion`]: the models and their explanations.
//! - [`seq`]: the GRU-with-attention sequence model over an entity's last rows.
//! - [`tree`]: the trees both forests share, and their compiled branch-free form.
//! - [`model`]: the trained ensemble, its `score_batch` API and its model-file directory;
//!   [`bundle`]: the same model as one file, for upload.
//! - [`drift`]: PSI of live rows against the training distribution, over a rolling window.
//! - [`sample`], [`retrain`]: the training sample a model keeps, and retraining from labels.
//! - [`serve`]: the [`serve::Scorer`] trait the engine runs any model through.
//! - [`train`], [`metrics`]: the training pipeline and evaluation.
//!
//! Nothing here reads the clock or the environment; all randomness comes from [`rng`] with an
//! explicit seed.

pub mod bundle;
pub mod csv;
pub mod data;
pub mod drift;
pub mod error;
pub mod features;
pub mod fusion;
pub mod gbt;
pub mod gen;
pub mod iforest;
pub mod metrics;
pub mod model;
pub mod retrain;
pub mod rng;
pub mod sample;
pub mod seq;
pub mod serve;
pub mod shap;
pub mod train;
pub mod tree;

pub use error::{MlError, Result};
