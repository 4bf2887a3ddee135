//! Incidents people work: a person's ack, assign, note, resolve or reopen, and the engine's
//! own resolutions ([`Decision::Resolved`]), applied to the incident's [`IncidentWork`] in
//! its response view, audited and stored in one transaction, then published (`incident` on
//! `/v1/stream`). A resolved incident is sealed in its detection partition (a later anomaly
//! opens a new incident) and gets a post-mortem, except a quiet close nobody acted on.

use super::{RespondStage, StreamItem};
use antibody_core::{Incident, IncidentStatus, Resolution, TenantId, TimestampMs};
use antibody_respond::postmortem::{self, Sources, MAX_EVIDENCE};
use antibody_respond::{AuditRecord, Cause, Decision, IncidentOp, RespondError};
use antibody_store::{ResponseBatch, StoreError};
use std::collections::BTreeMap;

impl RespondStage {
    /// A person's operation on incident `id`.
    pub(super) fn work_incident(
        &mut self,
        t: &TenantId,
        who: &str,
        id: &str,
        op: IncidentOp,
        now: TimestampMs,
    ) -> Result<(), RespondError> {
        let inc = self
            .store
            .get_incident(t, id)
            .map_err(unavailable)?
            .ok_or_else(|| RespondError::IncidentNotFound(id.to_owned()))?;
        let view = self.view_or(t, id, Some(&inc));
        // Applied to a copy: a refused operation leaves the view as it was.
        let mut work = view.work.clone();
        let text = work.apply(id, &op, inc.status, who, now)?;
        view.work = work;
        let view = view.clone();
        let status = view.work.status(inc.status);
        let record = op_record(t, who, &inc, &op, status, text, now);
        let entry = self.chains.entry(t.clone()).or_default().append(record);
        let views = [(t.clone(), id.to_owned(), view)];
        let batch = ResponseBatch {
            audit: std::slice::from_ref(&entry),
            actions: &[],
            now_ms: now,
            incidents: &[],
            views: &views,
        };
        self.store_retrying(|s| s.write_response_batch(&batch));
        match op {
            IncidentOp::Resolve { root_cause, .. } => {
                // A diagnosis cause teaches the diagnosis, exactly as `POST /v1/feedback`.
                if let Some(cause) = root_cause.filter(|c| Cause::parse(c.trim()).is_some()) {
                    self.feedback(t, who, &inc.kinds, cause.trim(), now)?;
                }
                (self.seal)(t, &inc.entity, id, now);
                self.resolved(t, id, true);
            }
            IncidentOp::Reopen => {
                self.store_retrying(|s| s.delete_postmortem(t, id));
                self.publish_incident(t, id);
            }
            _ => {
                self.publish_incident(t, id);
            }
        }
        Ok(())
    }

    /// Detection still correlating into an incident resolved here means its seal was lost
    /// (engine checkpoints do not record seals, so a crash replay can reopen it there):
    /// seal it again. A seal naming an incident the partition no longer holds does nothing.
    pub(super) fn reseal(&mut self, incidents: &[Incident], now: TimestampMs) {
        for inc in incidents
            .iter()
            .filter(|i| i.status == IncidentStatus::Open)
        {
            let work = &self.view(&inc.tenant, &inc.id).work;
            if work.status == Some(IncidentStatus::Resolved) {
                (self.seal)(&inc.tenant, &inc.entity, &inc.id, now);
            }
        }
    }

    /// Applies an engine resolution to the incident's view; false when it changes nothing
    /// (a person decided, or a quiet close is what detection's record says), and the
    /// decision is then neither recorded nor published.
    pub(super) fn admit(&mut self, d: &Decision, now: TimestampMs) -> bool {
        match d {
            Decision::Resolved {
                tenant,
                incident,
                resolution,
                reason,
                ..
            } => self
                .view(tenant, incident)
                .work
                .engine_resolve(*resolution, reason, now),
            _ => true,
        }
    }

    /// After an engine resolution was stored: detection stops adding to a healed incident
    /// (a quiet one it closed itself), and it is published with its post-mortem.
    pub(super) fn after_resolved(&mut self, d: &Decision, now: TimestampMs) {
        let Decision::Resolved {
            tenant,
            incident,
            entity,
            resolution,
            ..
        } = d
        else {
            return;
        };
        if *resolution == Resolution::Healed {
            (self.seal)(tenant, entity, incident, now);
        }
        self.resolved(tenant, incident, *resolution != Resolution::Quiet);
    }

    /// Publishes a resolved incident and, when `report`, writes its post-mortem.
    fn resolved(&mut self, t: &TenantId, id: &str, report: bool) {
        let Some(inc) = self.publish_incident(t, id) else {
            return;
        };
        if report {
            if let Err(e) = self.write_postmortem(t, &inc) {
                self.metrics
                    .store_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(incident = id, error = %e, "writing a post-mortem failed");
            }
        }
    }

    /// Streams the incident as stored (`incident` event) and returns it.
    fn publish_incident(&self, t: &TenantId, id: &str) -> Option<Incident> {
        let inc = match self.store.get_incident(t, id) {
            Ok(inc) => inc?,
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "reading an incident to publish failed");
                return None;
            }
        };
        if self.stream.receiver_count() > 0 {
            if let Ok(data) = serde_json::to_string(&inc) {
                let _ = self.stream.send(StreamItem {
                    tenant: t.clone(),
                    event: "incident",
                    data: data.into(),
                });
            }
        }
        Some(inc)
    }

    /// Gathers the incident's findings, actions and audit trail and stores its post-mortem.
    fn write_postmortem(&self, t: &TenantId, inc: &Incident) -> Result<(), StoreError> {
        let ids: Vec<String> = inc.findings.iter().take(MAX_EVIDENCE).cloned().collect();
        let findings = self.store.findings_by_id(t, &ids)?;
        let actions = self.store.incident_actions(t, &inc.id)?;
        let mut subjects = vec![inc.id.clone()];
        subjects.extend(actions.iter().map(|a| a.id.clone()));
        let mut audit = self.store.audit_about(t, &subjects, i64::MIN)?;
        // The entity's own lifecycle, from when the engine first saw the incident on.
        let since = audit
            .iter()
            .filter(|r| r.kind == "assessment")
            .map(|r| r.ts)
            .min()
            .unwrap_or(inc.opened);
        audit.extend(
            self.store
                .audit_about(t, std::slice::from_ref(&inc.entity), since)?,
        );
        let src = Sources {
            incident: inc,
            findings: &findings,
            actions: &actions,
            audit: &audit,
            now: self.clock.now_ms(),
        };
        let Some(pm) = postmortem::generate(&src) else {
            return Ok(());
        };
        self.store
            .put_postmortem(t, &pm, &postmortem::render_markdown(&pm))
    }
}

/// The audit record of a person's operation on `inc`, now `status`.
fn op_record(
    t: &TenantId,
    who: &str,
    inc: &Incident,
    op: &IncidentOp,
    status: IncidentStatus,
    detail: String,
    now: TimestampMs,
) -> AuditRecord {
    let mut data = BTreeMap::from([
        ("op".to_owned(), op.name().to_owned()),
        ("status".to_owned(), status.to_string()),
        ("entity".to_owned(), inc.entity.clone()),
    ]);
    if let IncidentOp::Resolve { resolution, .. } = op {
        data.insert("resolution".into(), resolution.to_string());
    }
    AuditRecord {
        ts: now,
        tenant: t.to_string(),
        actor: who.to_owned(),
        kind: "incident".into(),
        subject: inc.id.clone(),
        detail,
        data,
    }
}

fn unavailable(e: StoreError) -> RespondError {
    tracing::error!(error = %e, "reading an incident for the response stage failed");
    RespondError::Unavailable("storage is unavailable; retry shortly".into())
}
