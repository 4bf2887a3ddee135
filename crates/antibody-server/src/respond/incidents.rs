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

/// Missing post-mortems written at one start at most (the rest at the next).
const MAX_RECOVERED: usize = 1_000;

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
        let mut view = self.view_or(t, id, Some(&inc)).clone();
        // Applied to a copy: a refused operation, or one that cannot be stored, leaves the
        // view and the audit chain as they were.
        let text = view.work.apply(id, &op, inc.status, who, now)?;
        let status = view.work.status(inc.status);
        let record = op_record(t, who, &inc, &op, status, text, now);
        let mut chain = self.chains.get(t).cloned().unwrap_or_default();
        let entry = chain.append(record);
        let views = [(t.clone(), id.to_owned(), view)];
        let batch = ResponseBatch {
            audit: std::slice::from_ref(&entry),
            actions: &[],
            now_ms: now,
            incidents: &[],
            views: &views,
        };
        if self
            .store_retrying(|s| s.write_response_batch(&batch))
            .is_err()
        {
            return Err(RespondError::Unavailable(
                "the incident's change could not be stored; retry shortly".into(),
            ));
        }
        self.chains.insert(t.clone(), chain);
        let [(_, _, view)] = views;
        self.views.insert((t.clone(), id.to_owned()), view);
        match op {
            IncidentOp::Resolve {
                resolution,
                root_cause,
            } => {
                // The responder stops working it: waiting actions rejected, its ladder
                // stopped, and for a resolution that needed no containment, that lifted.
                let decisions = self.responder.resolve_incident(who, t, id, resolution, now);
                self.apply(decisions, now);
                // A diagnosis cause teaches the diagnosis, exactly as `POST /v1/feedback`.
                if let Some(cause) = root_cause.filter(|c| Cause::parse(c.trim()).is_some()) {
                    self.feedback(t, who, &inc.kinds, cause.trim(), now)?;
                }
                (self.seal)(t, &inc.entity, id, now);
                self.resolved(t, id, true);
            }
            IncidentOp::Reopen => {
                let _ = self.store_retrying(|s| s.delete_postmortem(t, id));
                self.publish_incident(t, id);
            }
            _ => {
                self.publish_incident(t, id);
            }
        }
        Ok(())
    }

    /// An action of an incident a person resolved is not approved: that person closed the
    /// case (reopen it first). Their resolution rejected what waited then; this guards what
    /// arrives later (a late investigator proposal). An engine resolution does not count:
    /// going quiet is no reason to drop a containment that still waits for a person.
    pub(super) fn approvable(&mut self, t: &TenantId, action: &str) -> Result<(), RespondError> {
        let Some(incident) = self.responder.action(t, action).map(|a| a.incident.clone()) else {
            // The responder answers for an unknown action.
            return Ok(());
        };
        let work = &self.view(t, &incident).work;
        let by_person = work
            .workflow
            .resolved_by
            .as_deref()
            .is_some_and(|who| who != antibody_respond::decision::ENGINE);
        if work.status == Some(IncidentStatus::Resolved) && by_person {
            return Err(RespondError::IncidentStatus {
                id: incident,
                status: IncidentStatus::Resolved.to_string(),
                expected: "its actions are not approved; reopen it first",
            });
        }
        Ok(())
    }

    /// Detection still correlating into an incident resolved here means its seal was lost
    /// (engine checkpoints do not record seals, so a crash replay can reopen it there):
    /// seal it again. A seal naming an incident the partition no longer holds does nothing.
    /// Returns the ids of the incidents sealed again.
    pub(super) fn reseal(&mut self, incidents: &[Incident], now: TimestampMs) -> Vec<String> {
        let mut sealed = Vec::new();
        for inc in incidents
            .iter()
            .filter(|i| i.status == IncidentStatus::Open)
        {
            let work = &self.view(&inc.tenant, &inc.id).work;
            if work.status == Some(IncidentStatus::Resolved) {
                (self.seal)(&inc.tenant, &inc.entity, &inc.id, now);
                sealed.push(inc.id.clone());
            }
        }
        sealed
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
            // Retried like every response write; one that still fails marks the service
            // not ready, and the next start writes it (`recover_postmortems`).
            let _ = self.store_retrying(|_| self.write_postmortem(t, &inc));
        }
    }

    /// Writes the post-mortems a crash or a failed write left out: those of incidents
    /// resolved here (not quiet) that have none, at most [`MAX_RECOVERED`] per start.
    pub(super) fn recover_postmortems(&self) {
        let missing = match self.store.resolved_without_postmortem(MAX_RECOVERED) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "finding resolved incidents without a post-mortem failed");
                return;
            }
        };
        for (t, id) in missing {
            match self.store.get_incident(&t, &id) {
                Ok(Some(inc)) => {
                    tracing::info!(
                        incident = id,
                        "writing a post-mortem missing since the last run"
                    );
                    let _ = self.store_retrying(|_| self.write_postmortem(&t, &inc));
                }
                Ok(None) => {}
                Err(e) => tracing::error!(incident = id, error = %e, "reading an incident failed"),
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
