//! The rule language of the detection engine: YAML signature rules (literals and regexes
//! over normalised event fields) and threshold rules (counts or distinct values per group
//! within a sliding window), compiled once into shared matchers and evaluated against a
//! per-partition [`RuleState`]. Rules are pure: no I/O apart from [`RuleSet::load_dir`], no
//! wall clock — time comes from event timestamps. The format is documented in `RULES.md`.

mod duration;
mod error;
mod explain;
mod normalize;
mod parse;
mod pattern;
mod ruleset;
mod selector;
mod signature;
mod threshold;

pub use error::{RuleError, RuleErrors};
pub use parse::RuleSource;
pub use ruleset::{default_pack_sources, Detection, RuleHit, RuleInfo, RuleSet, RuleState};

#[cfg(test)]
mod tests;
