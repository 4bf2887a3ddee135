//! The model registry as a service: turns stored versions into engine bindings, decides slot
//! changes (upload, promote, roll back, retrain), and hands the engine a new [`ModelSet`]
//! after each change.
//!
//! Slots per `(tenant, name)`: at most one `active` (reports findings) and one `shadow`
//! (scored on the same events, never reports, its agreement with the active one counted);
//! every other version is `retired`. Promoting makes a version active and remembers the one
//! it replaced; rolling back retires the active version and reactivates the one it replaced.
//! A retrained version always lands in the shadow slot.

use crate::error::ApiError;
use antibody_core::TenantId;
use antibody_detect::{ModelBinding, ModelSet, Slot, Source};
use antibody_ml::model::Model;
use antibody_ml::serve::{Scorer, ServedModel};
use antibody_store::{ModelFormat, ModelRecord, ModelSlot, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Operator settings of the model registry (`[models]` in the config file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Largest model file accepted (bytes, before base64).
    pub max_file_bytes: usize,
    /// Labels on a model's findings, given since its active version was registered, that
    /// trigger a retrain into the shadow slot; 0 turns retraining off.
    pub retrain_min_labels: usize,
    /// ONNX sandbox: longest a probe batch may take at load (ms).
    pub onnx_max_batch_ms: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 << 20,
            retrain_min_labels: 50,
            onnx_max_batch_ms: 50,
        }
    }
}

/// How a version is bound to events; stored as the record's `binding`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// The event kind the model scores, e.g. `vitals`.
    pub event_kind: String,
    /// Model input column → event field (`metrics.<m>`, `attrs.<a>`, `ts.hour`, `ts.weekday`).
    pub mapping: BTreeMap<String, String>,
    #[serde(default = "default_review_band")]
    pub review_band: f32,
    #[serde(default = "default_drift_psi")]
    pub drift_psi: f64,
    #[serde(default = "default_drift_window")]
    pub drift_window: usize,
    /// For ONNX models: the feature list and output reading (`antibody_onnx::OnnxSpec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<serde_json::Value>,
}

fn default_review_band() -> f32 {
    0.1
}
fn default_drift_psi() -> f64 {
    0.2
}
fn default_drift_window() -> usize {
    1000
}

/// A loaded, checked model of either format.
pub struct Loaded {
    pub scorer: Arc<dyn Scorer>,
    /// What people see about it in `GET /v1/models`.
    pub info: serde_json::Value,
}

/// Parses and checks a model file of `format`.
pub fn load_file(
    format: ModelFormat,
    file: &[u8],
    spec: &BindingSpec,
    cfg: &ModelsConfig,
) -> Result<Loaded, String> {
    if file.len() > cfg.max_file_bytes {
        return Err(format!(
            "the model file has {} bytes; the limit is {} (`[models] max_file_bytes`)",
            file.len(),
            cfg.max_file_bytes
        ));
    }
    match format {
        ModelFormat::Ensemble => {
            let model = Model::from_bundle(file).map_err(|e| e.to_string())?;
            let info = ensemble_info(&model);
            Ok(Loaded {
                scorer: Arc::new(ServedModel::new(model)),
                info,
            })
        }
        ModelFormat::Onnx => load_onnx(file, spec, cfg),
    }
}

#[cfg(feature = "onnx")]
fn load_onnx(file: &[u8], spec: &BindingSpec, cfg: &ModelsConfig) -> Result<Loaded, String> {
    let raw = spec
        .onnx
        .clone()
        .ok_or("an ONNX model needs `onnx`: {\"features\": [...], \"output\": \"probability|logit|two_class\"}")?;
    let onnx: antibody_onnx::OnnxSpec =
        serde_json::from_value(raw).map_err(|e| format!("invalid `onnx`: {e}"))?;
    let limits = antibody_onnx::Limits {
        max_bytes: cfg.max_file_bytes,
        max_batch_ms: cfg.onnx_max_batch_ms,
    };
    let scorer =
        antibody_onnx::OnnxScorer::load(file, onnx.clone(), &limits).map_err(|e| e.to_string())?;
    let info = serde_json::json!({
        "features": onnx.features,
        "threshold": onnx.threshold,
        "probe_ms": scorer.probe_time().as_secs_f64() * 1e3,
    });
    Ok(Loaded {
        scorer: Arc::new(scorer),
        info,
    })
}

#[cfg(not(feature = "onnx"))]
fn load_onnx(_: &[u8], _: &BindingSpec, _: &ModelsConfig) -> Result<Loaded, String> {
    Err("this build has no ONNX support: rebuild antibody with `--features onnx`".into())
}

fn ensemble_info(m: &Model) -> serde_json::Value {
    let man = &m.manifest;
    serde_json::json!({
        "feature_set": man.feature_set.name(),
        "schema_hash": man.schema_hash,
        "features": man.feature_names,
        "threshold": m.ensemble.threshold,
        "metrics": man.metrics,
        "training": {"data_file": man.training.data_file, "rows": man.training.rows},
        "lineage": man.lineage,
        "drift_reference": man.reference.is_some(),
    })
}

/// The engine binding of a stored version.
pub fn binding(
    tenant: &TenantId,
    rec: &ModelRecord,
    scorer: Arc<dyn Scorer>,
) -> Result<ModelBinding, String> {
    let spec: BindingSpec =
        serde_json::from_value(rec.binding.clone()).map_err(|e| format!("invalid binding: {e}"))?;
    let sources = sources(&spec.mapping, scorer.input_columns())?;
    let slot = match rec.slot {
        ModelSlot::Active => Slot::Active,
        ModelSlot::Shadow => Slot::Shadow,
        other => return Err(format!("a `{other}` version is not served")),
    };
    let b = ModelBinding {
        id: rec.id.clone(),
        tenant: tenant.clone(),
        name: rec.name.clone(),
        version: rec.version,
        event_kind: spec.event_kind,
        slot,
        sources,
        scorer,
        review_band: spec.review_band,
        drift_psi: spec.drift_psi,
        drift_window: spec.drift_window,
    };
    b.validate()?;
    Ok(b)
}

/// One source per model input, in the model's order; every input mapped, nothing else.
fn sources(mapping: &BTreeMap<String, String>, inputs: &[String]) -> Result<Vec<Source>, String> {
    let missing: Vec<&str> = inputs
        .iter()
        .filter(|c| !mapping.contains_key(*c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "`mapping` has no field for the model inputs {}",
            missing.join(", ")
        ));
    }
    let unknown: Vec<&str> = mapping
        .keys()
        .filter(|k| !inputs.contains(k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "`mapping` names {} which the model does not read (its inputs: {})",
            unknown.join(", "),
            inputs.join(", ")
        ));
    }
    inputs
        .iter()
        .map(|c| Source::parse(&mapping[c]).map_err(|e| format!("mapping of `{c}`: {e}")))
        .collect()
}

/// Every served version of every tenant. A version that no longer loads (e.g. a build
/// without ONNX) is skipped with an error in the log, not fatal to the service.
pub fn load_live(store: &Store, cfg: &ModelsConfig) -> Result<ModelSet, StoreError> {
    let mut bindings = Vec::new();
    for (tenant, rec, file) in store.live_models()? {
        let built = serde_json::from_value::<BindingSpec>(rec.binding.clone())
            .map_err(|e| e.to_string())
            .and_then(|spec| load_file(rec.format, &file, &spec, cfg))
            .and_then(|l| binding(&tenant, &rec, l.scorer));
        match built {
            Ok(b) => bindings.push(b),
            Err(e) => {
                tracing::error!(tenant = %tenant, model = %rec.id, error = %e, "model not served")
            }
        }
    }
    Ok(ModelSet::new(bindings))
}

/// Slot changes, computed on the versions of one `(tenant, name)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotChange<'a> {
    /// A new version enters `slot` (`active` or `shadow`).
    Enter {
        id: &'a str,
        slot: ModelSlot,
    },
    Promote {
        id: &'a str,
    },
    Rollback {
        id: &'a str,
    },
}

/// The records whose slot (or `replaced`) changes, or why the change is refused.
/// `versions` must include the version the change is about.
pub fn plan(
    versions: &[ModelRecord],
    change: SlotChange<'_>,
) -> Result<Vec<ModelRecord>, ApiError> {
    let find = |id: &str| {
        versions
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("model `{id}`")))
    };
    let in_slot = |slot: ModelSlot, except: &str| {
        versions
            .iter()
            .find(|r| r.slot == slot && r.id != except)
            .cloned()
    };
    let retire = |mut r: ModelRecord| {
        r.slot = ModelSlot::Retired;
        r
    };
    let mut out = Vec::new();
    match change {
        SlotChange::Enter { id, slot } => {
            let mut new = find(id)?;
            if let Some(old) = in_slot(slot, id) {
                if slot == ModelSlot::Active {
                    new.replaced = Some(old.id.clone());
                }
                out.push(retire(old));
            }
            new.slot = slot;
            out.push(new);
        }
        SlotChange::Promote { id } => {
            let mut target = find(id)?;
            if target.slot == ModelSlot::Active {
                return Err(ApiError::Conflict(format!(
                    "model `{id}` is already active"
                )));
            }
            target.replaced = None;
            if let Some(old) = in_slot(ModelSlot::Active, id) {
                target.replaced = Some(old.id.clone());
                out.push(retire(old));
            }
            target.slot = ModelSlot::Active;
            out.push(target);
        }
        SlotChange::Rollback { id } => {
            let target = find(id)?;
            if target.slot != ModelSlot::Active {
                return Err(ApiError::Conflict(format!(
                    "model `{id}` is {}; only the active version can be rolled back",
                    target.slot
                )));
            }
            let prev_id = target.replaced.clone().ok_or_else(|| {
                ApiError::Conflict(format!(
                    "model `{id}` replaced no earlier version; there is nothing to roll back to"
                ))
            })?;
            let mut prev = find(&prev_id)?;
            prev.slot = ModelSlot::Active;
            out.push(retire(target));
            // A shadow that was the rolled-back version's replacement stays a shadow.
            out.push(prev);
        }
    }
    Ok(out)
}

/// Model names: what ids, finding kinds (`model:<name>`) and URLs are made of.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "model name `{name}`: use 1–64 characters of a–z, 0–9, `-` and `_`"
        )))
    }
}

pub fn version_id(name: &str, version: u32) -> String {
    format!("{name}-v{version}")
}

/// The registry's shared state in the server.
#[derive(Default)]
pub struct ModelsState {
    pub cfg: ModelsConfig,
    /// Serialises slot changes, so two concurrent promotes cannot leave two active versions.
    pub lock: tokio::sync::Mutex<()>,
    /// `(tenant, name)` being retrained now.
    retraining: std::sync::Mutex<std::collections::HashSet<(TenantId, String)>>,
}

impl ModelsState {
    pub fn new(cfg: ModelsConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }
}

/// Appends a registry change to the tenant's audit chain (through the response stage, which
/// owns the chain). A stopped response stage is logged, not fatal: the change itself stands.
pub async fn audit(
    st: &crate::state::AppState,
    tenant: &TenantId,
    actor: &str,
    kind: &str,
    subject: &str,
    detail: &str,
) {
    let note = crate::audit::AuditNote::new(kind, subject, detail.to_owned());
    crate::audit::record(&st.pipeline, tenant, actor, note).await;
}

/// Records an analyst's label on a model finding (features in the model's order) and, once
/// enough labels have arrived since the newest version of that model, retrains it into the
/// shadow slot in the background. Returns whether a retrain started.
pub async fn on_label(
    st: &crate::state::AppState,
    tenant: &TenantId,
    actor: &str,
    finding: &antibody_core::Finding,
    threat: bool,
    threat_type: Option<String>,
) -> Result<bool, ApiError> {
    let Some(name) = finding.kind.strip_prefix("model:") else {
        return Ok(false);
    };
    let features = finding
        .evidence
        .get("features")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect::<BTreeMap<String, f64>>()
        })
        .unwrap_or_default();
    let label = antibody_store::ModelLabel {
        finding: finding.id.clone(),
        model: name.to_owned(),
        threat,
        threat_type,
        features,
        actor: actor.to_owned(),
        ts: st.clock.now_ms(),
    };
    let (t, n) = (tenant.clone(), name.to_owned());
    let min = st.models.cfg.retrain_min_labels;
    let due = st
        .db(move |s| {
            s.put_model_label(&t, &label)?;
            let versions: Vec<ModelRecord> = s
                .list_models(&t)?
                .into_iter()
                .filter(|r| r.name == n)
                .collect();
            let since = versions.iter().map(|r| r.created_ms).max().unwrap_or(0);
            let labels = s.model_labels(&t, &n, since)?.len();
            Ok(retrain_due(&versions, labels, min))
        })
        .await?;
    if !due {
        return Ok(false);
    }
    let key = (tenant.clone(), name.to_owned());
    {
        let mut busy = st
            .models
            .retraining
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !busy.insert(key.clone()) {
            return Ok(false);
        }
    }
    let st2 = st.clone();
    tokio::spawn(async move {
        let outcome = retrain(&st2, &key.0, &key.1).await;
        st2.models
            .retraining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let (kind, detail) = match outcome {
            Ok((id, 0)) => (
                "model_retrain",
                format!("{id} trained on analyst labels → shadow"),
            ),
            Ok((id, skipped)) => {
                tracing::warn!(tenant = %key.0, model = %key.1, skipped,
                    "labels with a missing or non-finite feature were left out of a retrain");
                (
                    "model_retrain",
                    format!(
                        "{id} trained on analyst labels → shadow; {skipped} labels left out \
                         (a feature missing or not a finite number)"
                    ),
                )
            }
            Err(e) => ("model_retrain_failed", e.to_string()),
        };
        tracing::info!(tenant = %key.0, model = %key.1, kind, %detail, "retrain finished");
        audit(&st2, &key.0, "engine", kind, &key.1, &detail).await;
    });
    Ok(true)
}

/// Whether `labels` labels given since the newest of a model's `versions` make a retrain
/// due. Only an active version antibody can retrain counts: an uploaded ONNX model keeps
/// its labels but never starts (nor reports) a retrain that could only fail.
fn retrain_due(versions: &[ModelRecord], labels: usize, min: usize) -> bool {
    min > 0
        && labels >= min
        && versions
            .iter()
            .any(|r| r.slot == ModelSlot::Active && retrainable(r))
}

/// Only ensembles trained by antibody carry the training sample a retrain starts from.
fn retrainable(rec: &ModelRecord) -> bool {
    rec.format == ModelFormat::Ensemble
}

/// Trains a new version of `name` from its active version's training sample plus every label
/// given since it was registered, and registers it in the shadow slot. Returns its id and
/// how many labels were left out (see `antibody_ml::retrain`).
async fn retrain(
    st: &crate::state::AppState,
    tenant: &TenantId,
    name: &str,
) -> Result<(String, u64), ApiError> {
    let (t, n) = (tenant.clone(), name.to_owned());
    let (active, file, labels) = st
        .db(move |s| {
            let versions: Vec<ModelRecord> = s
                .list_models(&t)?
                .into_iter()
                .filter(|r| r.name == n)
                .collect();
            let Some(active) = versions.into_iter().find(|r| r.slot == ModelSlot::Active) else {
                return Ok(None);
            };
            let file = s.model_file(&t, &active.id)?.unwrap_or_default();
            let labels = s.model_labels(&t, &n, active.created_ms)?;
            Ok(Some((active, file, labels)))
        })
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("model `{name}` has no active version")))?;
    if !retrainable(&active) {
        return Err(ApiError::Conflict(format!(
            "model `{name}` is {}: only ensembles trained by antibody can be retrained",
            active.format
        )));
    }
    let seed = u64::from(active.version);
    let trained =
        tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, serde_json::Value), String> {
            let base = Model::from_bundle(&file).map_err(|e| e.to_string())?;
            let names = base.manifest.feature_names.clone();
            let rows: Vec<antibody_ml::retrain::LabelledRow> = labels
                .iter()
                .map(|l| antibody_ml::retrain::LabelledRow {
                    features: names
                        .iter()
                        .map(|n| l.features.get(n).copied().unwrap_or(f64::NAN) as f32)
                        .collect(),
                    threat: l.threat,
                    threat_type: l.threat_type.clone(),
                })
                .collect();
            let mut model =
                antibody_ml::retrain::retrain(&base, &rows, seed).map_err(|e| e.to_string())?;
            let info = ensemble_info(&model);
            Ok((model.to_bundle(), info))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(format!("retraining failed: {e}")))?;
    let (bytes, info) = trained;
    let skipped = info["lineage"]["skipped_labels"].as_u64().unwrap_or(0);
    let _guard = st.models.lock.lock().await;
    let (t, n) = (tenant.clone(), name.to_owned());
    let version = st.db(move |s| s.next_model_version(&t, &n)).await?;
    let rec = ModelRecord {
        id: version_id(name, version),
        name: name.to_owned(),
        version,
        slot: ModelSlot::New,
        format: ModelFormat::Ensemble,
        binding: active.binding.clone(),
        info,
        created_ms: st.clock.now_ms(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        replaced: None,
    };
    let (t, r) = (tenant.clone(), rec.clone());
    st.db(move |s| s.insert_model(&t, &r, &bytes)).await?;
    let (t, n) = (tenant.clone(), name.to_owned());
    let versions: Vec<ModelRecord> = st
        .db(move |s| s.list_models(&t))
        .await?
        .into_iter()
        .filter(|r| r.name == n)
        .collect();
    // Never straight to active: a person promotes it after watching its agreement.
    let changed = plan(
        &versions,
        SlotChange::Enter {
            id: &rec.id,
            slot: ModelSlot::Shadow,
        },
    )?;
    let t = tenant.clone();
    st.db(move |s| s.set_model_slots(&t, &changed)).await?;
    crate::routes::reload_models(st).await?;
    Ok((rec.id, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, slot: ModelSlot, replaced: Option<&str>) -> ModelRecord {
        ModelRecord {
            id: id.into(),
            name: "m".into(),
            version: id.trim_start_matches("m-v").parse().unwrap_or(0),
            slot,
            format: ModelFormat::Ensemble,
            binding: serde_json::json!({}),
            info: serde_json::json!({}),
            created_ms: 0,
            sha256: String::new(),
            replaced: replaced.map(str::to_owned),
        }
    }

    fn slots(changes: &[ModelRecord]) -> Vec<(String, ModelSlot, Option<String>)> {
        changes
            .iter()
            .map(|r| (r.id.clone(), r.slot, r.replaced.clone()))
            .collect()
    }

    #[test]
    fn entering_the_active_slot_retires_and_remembers_the_old_one() {
        let v = [
            rec("m-v1", ModelSlot::Active, None),
            rec("m-v2", ModelSlot::New, None),
        ];
        let c = plan(
            &v,
            SlotChange::Enter {
                id: "m-v2",
                slot: ModelSlot::Active,
            },
        )
        .unwrap();
        assert_eq!(
            slots(&c),
            [
                ("m-v1".into(), ModelSlot::Retired, None),
                ("m-v2".into(), ModelSlot::Active, Some("m-v1".into()))
            ]
        );
        let v = [
            rec("m-v1", ModelSlot::Shadow, None),
            rec("m-v2", ModelSlot::New, None),
        ];
        let c = plan(
            &v,
            SlotChange::Enter {
                id: "m-v2",
                slot: ModelSlot::Shadow,
            },
        )
        .unwrap();
        assert_eq!(c[0].slot, ModelSlot::Retired);
        assert_eq!(c[1].replaced, None);
    }

    #[test]
    fn promote_then_rollback_restores_the_previous_active() {
        let v = vec![
            rec("m-v1", ModelSlot::Active, None),
            rec("m-v2", ModelSlot::Shadow, None),
        ];
        let c = plan(&v, SlotChange::Promote { id: "m-v2" }).unwrap();
        let after: Vec<ModelRecord> = vec![c[0].clone(), c[1].clone()];
        assert_eq!(after[1].replaced.as_deref(), Some("m-v1"));
        let back = plan(&after, SlotChange::Rollback { id: "m-v2" }).unwrap();
        assert_eq!(
            slots(&back),
            [
                ("m-v2".into(), ModelSlot::Retired, Some("m-v1".into())),
                ("m-v1".into(), ModelSlot::Active, None)
            ]
        );
    }

    #[test]
    fn refusals_say_why() {
        let v = vec![
            rec("m-v1", ModelSlot::Active, None),
            rec("m-v2", ModelSlot::Retired, None),
        ];
        let msg = |r: Result<Vec<ModelRecord>, ApiError>| r.unwrap_err().to_string();
        assert!(msg(plan(&v, SlotChange::Promote { id: "m-v1" })).contains("already active"));
        assert!(msg(plan(&v, SlotChange::Rollback { id: "m-v1" })).contains("nothing to roll back"));
        assert!(msg(plan(&v, SlotChange::Rollback { id: "m-v2" })).contains("only the active"));
        assert!(matches!(
            plan(&v, SlotChange::Promote { id: "nope" }),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn mappings_cover_exactly_the_inputs() {
        let inputs = vec!["a".to_owned(), "b".to_owned()];
        let mut m = BTreeMap::new();
        m.insert("a".to_owned(), "metrics.x".to_owned());
        assert!(sources(&m, &inputs)
            .unwrap_err()
            .contains("no field for the model inputs b"));
        m.insert("b".to_owned(), "ts.hour".to_owned());
        assert_eq!(sources(&m, &inputs).unwrap().len(), 2);
        m.insert("c".to_owned(), "attrs.y".to_owned());
        assert!(sources(&m, &inputs).unwrap_err().contains("names c"));
        m.remove("c");
        m.insert("b".to_owned(), "body".to_owned());
        assert!(sources(&m, &inputs).unwrap_err().contains("mapping of `b`"));
    }

    #[test]
    fn only_a_retrainable_active_version_is_ever_due() {
        let ensemble = [rec("m-v1", ModelSlot::Active, None)];
        assert!(retrain_due(&ensemble, 4, 4));
        assert!(!retrain_due(&ensemble, 3, 4));
        assert!(!retrain_due(&ensemble, 4, 0), "0 turns retraining off");
        let mut onnx = ensemble.clone();
        onnx[0].format = ModelFormat::Onnx;
        assert!(!retrain_due(&onnx, 1000, 4));
        // An ensemble in the shadow slot does not make an ONNX active one retrainable.
        let mut shadow = rec("m-v2", ModelSlot::Shadow, None);
        shadow.format = ModelFormat::Ensemble;
        assert!(!retrain_due(&[onnx[0].clone(), shadow], 1000, 4));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("agents-1").is_ok());
        for bad in ["", "Agents", "a b", "../x", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
