//! Findings the sink has published but whose SQLite transaction has not committed yet.
//!
//! A finding is derived deterministically from events that are already in the fsynced log,
//! so it is as durable as the log the moment the engine emits it (a crash re-derives it with
//! the same id); the SQLite row is an index for queries. Each partition worker therefore
//! makes its batch visible here and on `/v1/stream` as it hands the batch to the sink, and
//! the read endpoints merge this set into what they read from SQLite. A slow commit (a WAL
//! checkpoint) or batches queued ahead in the sink then delay nobody's view of a finding.
//!
//! Readers take this set *before* querying the store: a finding leaves the set only after its
//! commit, so a reader sees it in one place or the other and never in neither.
//!
//! What the sink derives in the same transaction (incidents, the rows feedback reads) is not
//! in this set, so those readers first wait for [`Uncommitted::settled`]: a finding a client
//! has seen then always names an incident the API can show.

use antibody_core::{Finding, TenantId};
use antibody_store::{newest_first, FindingQuery};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a reader waits for shown findings to commit before it reads the store anyway
/// (a commit normally takes milliseconds; this bounds a stuck disk, it is not a timeout a
/// healthy server reaches).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The batches shown and not yet committed: one per worker flush still on its way through
/// the sink (bounded by the sink's channel).
#[derive(Default)]
pub struct Uncommitted {
    batches: RwLock<Vec<Arc<Vec<Finding>>>>,
    commits: Notify,
}

impl Uncommitted {
    /// Makes `batch` visible until [`Uncommitted::committed`] is called with it.
    pub(crate) fn show(&self, batch: Arc<Vec<Finding>>) {
        self.batches
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(batch);
    }

    /// These batches are in the store now.
    pub(crate) fn committed(&self, done: &[Arc<Vec<Finding>>]) {
        self.batches
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|b| !done.iter().any(|d| Arc::ptr_eq(b, d)));
        self.commits.notify_waiters();
    }

    /// Waits until every batch holding a finding of `tenant` that is shown now has committed
    /// (or [`SETTLE_TIMEOUT`] passed). Batches shown later do not hold the reader up.
    pub async fn settled(&self, tenant: &TenantId) {
        let pending: Vec<_> = self
            .current()
            .into_iter()
            .filter(|b| b.iter().any(|f| f.tenant == *tenant))
            .collect();
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, async {
            loop {
                // Registered before the check, so a commit in between still wakes us.
                let commit = self.commits.notified();
                let shown = self.current();
                if !pending
                    .iter()
                    .any(|p| shown.iter().any(|b| Arc::ptr_eq(b, p)))
                {
                    return;
                }
                commit.await;
            }
        })
        .await;
    }

    fn current(&self) -> Vec<Arc<Vec<Finding>>> {
        self.batches
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The tenant's uncommitted findings that `query` selects.
    pub fn matching(&self, tenant: &TenantId, query: &FindingQuery) -> Vec<Finding> {
        self.current()
            .iter()
            .flat_map(|b| b.iter())
            .filter(|f| f.tenant == *tenant && query.matches(f))
            .cloned()
            .collect()
    }

    pub fn get(&self, tenant: &TenantId, id: &str) -> Option<Finding> {
        self.current()
            .iter()
            .flat_map(|b| b.iter())
            .find(|f| f.tenant == *tenant && f.id == id)
            .cloned()
    }
}

/// A store page merged with the uncommitted findings read just before it: the union, in
/// list order, without duplicates, cut to `limit`.
pub fn merge_page(stored: Vec<Finding>, early: Vec<Finding>, limit: usize) -> Vec<Finding> {
    if early.is_empty() {
        return stored;
    }
    let mut all = stored;
    for f in early {
        if !all.iter().any(|s| s.id == f.id) {
            all.push(f);
        }
    }
    all.sort_by(newest_first);
    all.truncate(limit);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::{Explanation, Severity};

    fn finding(tenant: &str, id: &str, ts: i64) -> Finding {
        Finding {
            id: id.into(),
            tenant: TenantId::new(tenant),
            ts,
            entity: "e".into(),
            kind: "k".into(),
            detector: "baseline".into(),
            severity: Severity::High,
            score: 0.9,
            explanation: Explanation::text("x"),
            evidence: Default::default(),
            incident: None,
        }
    }

    #[test]
    fn shown_findings_are_visible_to_their_tenant_only_until_committed() {
        let u = Uncommitted::default();
        let t = TenantId::new("t");
        let a = Arc::new(vec![finding("t", "f-1-0", 5), finding("u", "f-2-0", 6)]);
        let b = Arc::new(vec![finding("t", "f-3-0", 7)]);
        u.show(a.clone());
        u.show(b.clone());
        let q = FindingQuery::default();
        assert_eq!(u.matching(&t, &q).len(), 2);
        assert!(u.get(&t, "f-1-0").is_some());
        assert!(u.get(&t, "f-2-0").is_none());
        u.committed(&[a]);
        assert_eq!(u.matching(&t, &q).len(), 1);
        assert!(u.get(&t, "f-1-0").is_none());
        u.committed(&[b]);
        assert!(u.matching(&t, &q).is_empty());
    }

    #[tokio::test]
    async fn settled_waits_for_the_tenants_shown_batches_only() {
        let u = Arc::new(Uncommitted::default());
        let t = TenantId::new("t");
        let mine = Arc::new(vec![finding("t", "f-1-0", 5)]);
        let other = Arc::new(vec![finding("u", "f-2-0", 6)]);
        u.show(mine.clone());
        u.show(other.clone());
        let waiter = tokio::spawn({
            let u = u.clone();
            let t = t.clone();
            async move { u.settled(&t).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        u.committed(&[mine]);
        waiter.await.unwrap();
        // Another tenant's uncommitted batch does not hold this tenant's reader.
        u.settled(&t).await;
    }

    #[test]
    fn merge_keeps_order_and_limit_without_duplicates() {
        let stored = vec![finding("t", "f-3-0", 9), finding("t", "f-1-0", 5)];
        let early = vec![finding("t", "f-3-0", 9), finding("t", "f-2-0", 7)];
        let ids: Vec<String> = merge_page(stored, early, 2)
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids, ["f-3-0", "f-2-0"]);
    }
}
