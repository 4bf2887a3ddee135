//! The built-in notifications inbox: what a person must see — `notify` actions while no
//! notify channel is configured, and escalations. Idempotent by `(tenant, id)` (ids are
//! derived from what was notified, so a decision re-derived after a crash is stored once),
//! listed newest first with the same `<ts>:<id>` cursor as findings.

use crate::findings::{FindingCursor, DEFAULT_LIMIT, MAX_LIMIT};
use crate::{Store, StoreError};
use antibody_core::{Severity, TenantId, TimestampMs};
use rusqlite::params_from_iter;
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A playbook's `notify` step.
    Notify,
    /// The responder handed an entity to a human (a step failed, a ladder is spent, an
    /// approval timed out).
    Escalation,
    /// An action waits for a person's approval (or is proposed to people).
    Approval,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::Escalation => "escalation",
            Self::Approval => "approval",
        }
    }

    pub const ALL: [Self; 3] = [Self::Notify, Self::Escalation, Self::Approval];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of the inbox, as `GET /v1/notifications` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Notification {
    pub id: String,
    #[serde(with = "antibody_core::clock::rfc3339")]
    #[schemars(with = "antibody_core::clock::Rfc3339")]
    pub ts: TimestampMs,
    pub kind: NotificationKind,
    /// The incident's severity.
    pub severity: Severity,
    pub incident: String,
    pub entity: String,
    /// The notify step's `channel`; none for an escalation or a step that names none.
    pub channel: Option<String>,
    /// One line: what happened to which entity.
    pub subject: String,
    pub message: String,
    /// The notify action; none for an escalation.
    pub action: Option<String>,
    /// The playbook that asked; none for an escalation.
    pub playbook: Option<String>,
}

/// Filters for [`Store::list_notifications`]. All present filters must match.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationQuery {
    pub incident: Option<String>,
    pub entity: Option<String>,
    pub kind: Option<NotificationKind>,
    /// Only notifications with `ts >= since_ms`.
    pub since_ms: Option<TimestampMs>,
    /// Capped at `MAX_LIMIT`.
    pub limit: usize,
    /// Only notifications strictly older (in list order) than this one: the next page.
    pub before: Option<FindingCursor>,
}

impl Default for NotificationQuery {
    fn default() -> Self {
        Self {
            incident: None,
            entity: None,
            kind: None,
            since_ms: None,
            limit: DEFAULT_LIMIT,
            before: None,
        }
    }
}

impl Store {
    /// Stores a notification; `false` when the tenant already has one with its id.
    pub fn insert_notification(
        &self,
        tenant: &TenantId,
        n: &Notification,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(n).map_err(|source| StoreError::Encode {
            what: format!("notification {}", n.id),
            source,
        })?;
        self.write(|tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO notifications (tenant, id, ts, kind, incident, entity, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute((
                    tenant.as_str(),
                    &n.id,
                    n.ts,
                    n.kind.as_str(),
                    &n.incident,
                    &n.entity,
                    &body,
                ))?;
            Ok(inserted == 1)
        })
    }

    /// The tenant's notifications matching `q`, newest first (`ts` desc, then `id` desc).
    pub fn list_notifications(
        &self,
        tenant: &TenantId,
        q: &NotificationQuery,
    ) -> Result<Vec<Notification>, StoreError> {
        let (sql, params) = list_sql(tenant, q);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let body = crate::findings::body_text(row, 0)?;
                out.push(
                    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
                        what: "notification".to_owned(),
                        source,
                    })?,
                );
            }
            Ok(out)
        })
    }
}

fn list_sql(tenant: &TenantId, q: &NotificationQuery) -> (String, Vec<Value>) {
    let mut sql = String::from("SELECT body FROM notifications WHERE tenant = ?");
    let mut params = vec![Value::Text(tenant.as_str().to_owned())];
    let text_filters = [
        ("incident", q.incident.clone()),
        ("entity", q.entity.clone()),
        ("kind", q.kind.map(|k| k.as_str().to_owned())),
    ];
    for (column, value) in text_filters {
        if let Some(v) = value {
            sql.push_str(&format!(" AND {column} = ?"));
            params.push(Value::Text(v));
        }
    }
    if let Some(since) = q.since_ms {
        sql.push_str(" AND ts >= ?");
        params.push(Value::Integer(since));
    }
    if let Some(cursor) = &q.before {
        sql.push_str(" AND (ts, id) < (?, ?)");
        params.push(Value::Integer(cursor.ts));
        params.push(Value::Text(cursor.id.clone()));
    }
    sql.push_str(" ORDER BY ts DESC, id DESC LIMIT ?");
    params.push(Value::Integer(q.limit.min(MAX_LIMIT) as i64));
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: &str, ts: TimestampMs, kind: NotificationKind, incident: &str) -> Notification {
        Notification {
            id: id.into(),
            ts,
            kind,
            severity: Severity::High,
            incident: incident.into(),
            entity: "host:web".into(),
            channel: Some("security".into()),
            subject: "web-attack: host:web".into(),
            message: "blocked".into(),
            action: Some("a-1".into()),
            playbook: Some("web-attack".into()),
        }
    }

    fn all() -> NotificationQuery {
        NotificationQuery::default()
    }

    #[test]
    fn stored_once_listed_newest_first_and_isolated() {
        let s = Store::open_in_memory().unwrap();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let first = note("n-1", 10, NotificationKind::Notify, "i-1");
        assert!(s.insert_notification(&a, &first).unwrap());
        assert!(!s.insert_notification(&a, &first).unwrap(), "a replay");
        let esc = note("n-2", 20, NotificationKind::Escalation, "i-2");
        assert!(s.insert_notification(&a, &esc).unwrap());
        assert_eq!(s.list_notifications(&a, &all()).unwrap(), [esc, first]);
        assert!(s.list_notifications(&b, &all()).unwrap().is_empty());
        // The same id in another tenant is another notification.
        assert!(s
            .insert_notification(&b, &note("n-1", 10, NotificationKind::Notify, "i-1"))
            .unwrap());
    }

    #[test]
    fn filters_and_the_cursor_page_through() {
        let s = Store::open_in_memory().unwrap();
        let t = TenantId::new("a");
        for i in 0..5 {
            let kind = if i % 2 == 0 {
                NotificationKind::Notify
            } else {
                NotificationKind::Escalation
            };
            let n = note(&format!("n-{i}"), 100 + i, kind, &format!("i-{}", i % 2));
            s.insert_notification(&t, &n).unwrap();
        }
        let ids = |q: &NotificationQuery| -> Vec<String> {
            s.list_notifications(&t, q)
                .unwrap()
                .into_iter()
                .map(|n| n.id)
                .collect()
        };
        let page = NotificationQuery { limit: 2, ..all() };
        assert_eq!(ids(&page), ["n-4", "n-3"]);
        let next = NotificationQuery {
            before: Some(FindingCursor {
                ts: 103,
                id: "n-3".into(),
            }),
            ..page
        };
        assert_eq!(ids(&next), ["n-2", "n-1"]);
        let escalations = NotificationQuery {
            kind: Some(NotificationKind::Escalation),
            ..all()
        };
        assert_eq!(ids(&escalations), ["n-3", "n-1"]);
        let recent_of_one = NotificationQuery {
            incident: Some("i-0".into()),
            since_ms: Some(102),
            ..all()
        };
        assert_eq!(ids(&recent_of_one), ["n-4", "n-2"]);
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for k in [NotificationKind::Notify, NotificationKind::Escalation] {
            assert_eq!(NotificationKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(NotificationKind::parse("email"), None);
    }
}
