//! The built-in notifications inbox. Until a channel is configured (`[executors.notify]`),
//! a playbook's `notify` step is delivered here; every escalation and every action that
//! waits for a person's approval is too, so what a person must see reaches one on a stock
//! install. A notification is stored (SQLite, idempotent by
//! an id derived from what it is about, so a decision re-derived after a crash is not
//! repeated), then published on `/v1/stream` as `notification`; `GET /v1/notifications`
//! lists them. A delivered action's result — and so its audit record — names the inbox.

use crate::pipeline::StreamItem;
use antibody_core::{Severity, TenantId, TimestampMs};
use antibody_respond::{Action, ParamValue, Responder};
use antibody_store::{Notification, NotificationKind, Store, StoreError};
use std::sync::Arc;
use tokio::sync::broadcast;

/// The result of a `notify` action delivered to the inbox.
pub(crate) const DELIVERED: &str =
    "delivered to the built-in inbox (GET /v1/notifications): no notify channel is configured";

pub(crate) struct Inbox {
    store: Arc<Store>,
    stream: broadcast::Sender<StreamItem>,
}

impl Inbox {
    pub(crate) fn new(store: Arc<Store>, stream: broadcast::Sender<StreamItem>) -> Self {
        Self { store, stream }
    }

    /// Delivers a `notify` action; returns its outcome for the action's result.
    pub(crate) fn notify(
        &self,
        tenant: &TenantId,
        entity: &str,
        action: &Action,
        severity: Severity,
        now: TimestampMs,
    ) -> (bool, String) {
        match self.deliver(tenant, &for_action(entity, action, severity, now)) {
            Ok(()) => (true, DELIVERED.to_owned()),
            Err(e) => (false, format!("the built-in inbox could not store it: {e}")),
        }
    }

    /// Delivers an escalation (`Decision::Escalation`).
    pub(crate) fn escalate(
        &self,
        tenant: &TenantId,
        entity: &str,
        incident: &str,
        reason: &str,
        severity: Severity,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        let n = Notification {
            id: notification_id(&[
                NotificationKind::Escalation.as_str(),
                incident,
                entity,
                reason,
            ]),
            ts: now,
            kind: NotificationKind::Escalation,
            severity,
            incident: incident.to_owned(),
            entity: entity.to_owned(),
            channel: None,
            subject: format!("escalation: {entity} needs a person"),
            message: reason.to_owned(),
            action: None,
            playbook: None,
        };
        self.deliver(tenant, &n)
    }

    /// Tells people an action waits for them (`pending_approval` or `proposed`), once per
    /// action.
    pub(crate) fn approval_needed(
        &self,
        tenant: &TenantId,
        entity: &str,
        action: &Action,
        severity: Severity,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        let n = Notification {
            id: notification_id(&[NotificationKind::Approval.as_str(), &action.id]),
            ts: now,
            kind: NotificationKind::Approval,
            severity,
            incident: action.incident.clone(),
            entity: entity.to_owned(),
            channel: None,
            subject: format!("approval needed: {} {}", action.kind, action.target),
            message: format!(
                "{} (approve or reject: POST /v1/actions/{}/approve | /reject)",
                action.why.text, action.id
            ),
            action: Some(action.id.clone()),
            playbook: Some(action.why.playbook.clone()),
        };
        self.deliver(tenant, &n)
    }

    /// Stores, then publishes what was new (a replayed decision is neither stored nor shown
    /// twice).
    fn deliver(&self, tenant: &TenantId, n: &Notification) -> Result<(), StoreError> {
        if !self.store.insert_notification(tenant, n)? || self.stream.receiver_count() == 0 {
            return Ok(());
        }
        if let Ok(data) = serde_json::to_string(n) {
            let _ = self.stream.send(StreamItem {
                tenant: tenant.clone(),
                event: "notification",
                data: data.into(),
            });
        }
        Ok(())
    }
}

/// The severity a notification about `incident` carries: the incident's, or medium once the
/// responder no longer tracks it.
pub(crate) fn severity(responder: &Responder, tenant: &TenantId, incident: &str) -> Severity {
    responder
        .brief_facts(tenant, incident)
        .map_or(Severity::Medium, |b| b.severity)
}

fn for_action(entity: &str, action: &Action, severity: Severity, now: TimestampMs) -> Notification {
    let text = |name: &str| match action.params.get(name) {
        Some(ParamValue::Str(s)) => Some(s.clone()),
        _ => None,
    };
    Notification {
        id: notification_id(&[NotificationKind::Notify.as_str(), &action.id]),
        ts: now,
        kind: NotificationKind::Notify,
        severity,
        incident: action.incident.clone(),
        entity: entity.to_owned(),
        channel: text("channel"),
        subject: format!("{}: {entity}", action.why.playbook),
        message: text("message").unwrap_or_else(|| action.why.text.clone()),
        action: Some(action.id.clone()),
        playbook: Some(action.why.playbook.clone()),
    }
}

/// FNV-1a over the parts (each ended by 0xff): stable across runs and builds.
fn notification_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("n-{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_respond::{ActionKind, ActionStatus, Mode, Params, Why};
    use antibody_store::NotificationQuery;
    use std::collections::BTreeMap;

    fn inbox() -> (Inbox, broadcast::Receiver<StreamItem>, Arc<Store>) {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let (tx, rx) = broadcast::channel(16);
        (Inbox::new(store.clone(), tx), rx, store)
    }

    fn notify_action(params: Params) -> Action {
        Action {
            id: "a-1".into(),
            incident: "i-1".into(),
            kind: ActionKind::Notify,
            target: "host:web".into(),
            params,
            mode: Mode::Auto,
            status: ActionStatus::Executing,
            ttl: 60,
            executor: "notify".into(),
            result: None,
            why: Why {
                playbook: "web-attack".into(),
                rule: "r".into(),
                text: "playbook `web-attack`: notify".into(),
                numbers: BTreeMap::new(),
            },
        }
    }

    fn listed(store: &Store, tenant: &str) -> Vec<Notification> {
        store
            .list_notifications(&TenantId::new(tenant), &NotificationQuery::default())
            .unwrap()
    }

    #[test]
    fn a_notify_action_is_stored_once_published_and_named_in_its_result() {
        let (inbox, mut rx, store) = inbox();
        let t = TenantId::new("acme");
        let params: Params =
            serde_json::from_str(r#"{"channel":"security","message":"source blocked"}"#).unwrap();
        let action = notify_action(params);
        let (ok, result) = inbox.notify(&t, "host:web", &action, Severity::High, 5);
        assert!(ok);
        assert!(result.contains("built-in inbox"), "{result}");
        let got = listed(&store, "acme");
        assert_eq!(got.len(), 1);
        let n = &got[0];
        assert_eq!(
            (n.kind, n.severity),
            (NotificationKind::Notify, Severity::High)
        );
        assert_eq!(n.channel.as_deref(), Some("security"));
        assert_eq!(n.message, "source blocked");
        assert_eq!(n.action.as_deref(), Some("a-1"));
        assert_eq!(
            (n.incident.as_str(), n.entity.as_str()),
            ("i-1", "host:web")
        );
        let item = rx.try_recv().unwrap();
        assert_eq!((item.event, item.tenant.as_str()), ("notification", "acme"));
        assert!(item.data.contains("source blocked"));
        // Re-delivered after a crash: still one, and not shown again.
        assert!(inbox.notify(&t, "host:web", &action, Severity::High, 9).0);
        assert_eq!(listed(&store, "acme").len(), 1);
        assert!(rx.try_recv().is_err());
        assert!(listed(&store, "other").is_empty());
    }

    #[test]
    fn without_a_message_the_why_is_the_text() {
        let (inbox, _rx, store) = inbox();
        let action = notify_action(Params::new());
        inbox.notify(
            &TenantId::new("acme"),
            "host:web",
            &action,
            Severity::Low,
            5,
        );
        let n = &listed(&store, "acme")[0];
        assert_eq!(n.message, action.why.text);
        assert_eq!(n.channel, None);
    }

    #[test]
    fn escalations_land_once_per_reason() {
        let (inbox, mut rx, store) = inbox();
        let t = TenantId::new("acme");
        let esc = |reason: &str, now| {
            inbox
                .escalate(&t, "agent:a", "i-1", reason, Severity::High, now)
                .unwrap()
        };
        esc("rate_limit a-1 failed: timeout", 10);
        esc("rate_limit a-1 failed: timeout", 20);
        esc("approval of quarantine a-2 timed out", 30);
        let got = listed(&store, "acme");
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|n| n.kind == NotificationKind::Escalation));
        assert_eq!(got[0].message, "approval of quarantine a-2 timed out");
        assert_eq!(rx.try_recv().unwrap().event, "notification");
    }
}
