//! The entity list (`GET /v1/entities`): detection's entities of a tenant, spread over the
//! partitions, with the response engine's lifecycle state overlaid (it owns the lifecycle).
//!
//! Each partition scans its own entities of the tenant once ([`scan`]): it counts those the
//! responder does not hold (healthy, or initializing while every baseline is learning) and
//! keeps the first `limit + 1` matches after the cursor in name order, so a page costs one
//! pass and O(limit) memory per partition however many entities there are. [`merge`] adds
//! the responder's entities (counted by their state, listed even when no partition knows
//! them any more) and cuts the page.
//!
//! `counts` cover the whole tenant after the `kind` and `q` filters and before the `state`
//! filter, so one request gives both a page of one state and the totals of every state.

use antibody_core::TimestampMs;
use antibody_detect::EntityFacts;
use antibody_respond::LifecycleState;
use std::collections::{BTreeMap, BinaryHeap};

/// One page request, with the responder's view of the tenant.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The name's prefix before the first `:` (`agent`, `host`, `ip`, …).
    pub kind: Option<String>,
    /// A substring of the name (case-sensitive).
    pub q: Option<String>,
    pub state: Option<LifecycleState>,
    /// Names strictly after this one.
    pub after: Option<String>,
    pub limit: usize,
    /// Entities the responder holds in a state other than healthy.
    pub held: BTreeMap<String, LifecycleState>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub entity: String,
    pub state: LifecycleState,
    /// `None` for an entity only the responder still knows.
    pub last_seen: Option<TimestampMs>,
    pub open_incident: Option<String>,
}

/// One partition's (or the merged) answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// In name order; a partition returns up to `limit + 1`, the merge up to `limit`.
    pub rows: Vec<Row>,
    pub counts: BTreeMap<LifecycleState, u64>,
    /// Set by [`merge`] when more rows follow the page.
    pub more: bool,
}

impl Listing {
    fn named(&self, name: &str) -> bool {
        let kind_ok = self
            .kind
            .as_deref()
            .is_none_or(|k| name.split_once(':').is_some_and(|(prefix, _)| prefix == k));
        kind_ok && self.q.as_deref().is_none_or(|q| name.contains(q))
    }

    fn wanted(&self, name: &str, state: LifecycleState) -> bool {
        self.state.is_none_or(|s| s == state) && self.after.as_deref().is_none_or(|a| name > a)
    }

    fn state_of(&self, f: &EntityFacts<'_>) -> LifecycleState {
        self.held
            .get(f.entity)
            .copied()
            .unwrap_or(LifecycleState::Healthy)
            .shown(f.learning)
    }
}

/// Orders rows by name in the bounded heap (the largest name on top, to be dropped).
struct ByName(Row);

impl PartialEq for ByName {
    fn eq(&self, o: &Self) -> bool {
        self.0.entity == o.0.entity
    }
}
impl Eq for ByName {}
impl PartialOrd for ByName {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByName {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.entity.cmp(&o.0.entity)
    }
}

/// One partition's entities: counts of those the responder does not hold, and the first
/// `limit + 1` wanted rows in name order.
pub fn scan<'a>(facts: impl Iterator<Item = EntityFacts<'a>>, q: &Listing) -> Page {
    let keep = q.limit.saturating_add(1);
    let mut counts = BTreeMap::new();
    let mut best: BinaryHeap<ByName> = BinaryHeap::with_capacity(keep + 1);
    for f in facts.filter(|f| q.named(f.entity)) {
        let state = q.state_of(&f);
        if !q.held.contains_key(f.entity) {
            *counts.entry(state).or_insert(0) += 1;
        }
        if !q.wanted(f.entity, state) {
            continue;
        }
        if best.len() == keep
            && best
                .peek()
                .is_some_and(|top| f.entity >= top.0.entity.as_str())
        {
            continue;
        }
        best.push(ByName(Row {
            entity: f.entity.to_owned(),
            state,
            last_seen: Some(f.last_seen),
            open_incident: f.open_incident.map(str::to_owned),
        }));
        if best.len() > keep {
            best.pop();
        }
    }
    Page {
        rows: best.into_sorted_vec().into_iter().map(|b| b.0).collect(),
        counts,
        more: false,
    }
}

/// The page over every partition's answer and the responder's entities.
pub fn merge(q: &Listing, parts: Vec<Page>) -> Page {
    let mut counts: BTreeMap<LifecycleState, u64> =
        LifecycleState::ALL.iter().map(|s| (*s, 0)).collect();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for part in parts {
        for (s, n) in part.counts {
            *counts.entry(s).or_insert(0) += n;
        }
        rows.extend(part.rows.into_iter().map(|r| (r.entity.clone(), r)));
    }
    for (name, state) in q.held.iter().filter(|(n, _)| q.named(n)) {
        *counts.entry(*state).or_insert(0) += 1;
        if q.wanted(name, *state) {
            rows.entry(name.clone()).or_insert_with(|| Row {
                entity: name.clone(),
                state: *state,
                last_seen: None,
                open_incident: None,
            });
        }
    }
    let more = rows.len() > q.limit;
    Page {
        rows: rows.into_values().take(q.limit).collect(),
        counts,
        more,
    }
}

/// The opaque cursor of a page that ends at `name`.
pub fn cursor(name: &str) -> String {
    hex::encode(name)
}

/// The entity name a cursor stands for; `None` when it is not one of ours.
pub fn parse_cursor(c: &str) -> Option<String> {
    String::from_utf8(hex::decode(c).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleState::*;

    fn fact(entity: &str, learning: bool) -> EntityFacts<'_> {
        EntityFacts {
            entity,
            learning,
            last_seen: 7,
            open_incident: None,
        }
    }

    fn listing(limit: usize) -> Listing {
        Listing {
            limit,
            ..Listing::default()
        }
    }

    fn names(p: &Page) -> Vec<&str> {
        p.rows.iter().map(|r| r.entity.as_str()).collect()
    }

    #[test]
    fn a_partition_keeps_the_first_matches_in_name_order_and_counts_all() {
        let facts = [
            fact("agent:d", false),
            fact("agent:b", true),
            fact("host:a", false),
            fact("agent:c", false),
            fact("agent:a", false),
        ];
        let q = Listing {
            kind: Some("agent".into()),
            ..listing(2)
        };
        let p = scan(facts.iter().copied(), &q);
        assert_eq!(names(&p), ["agent:a", "agent:b", "agent:c"], "limit + 1");
        assert_eq!(p.rows[1].state, Initializing);
        assert_eq!(p.counts[&Healthy], 3);
        assert_eq!(p.counts[&Initializing], 1);
    }

    #[test]
    fn the_responders_state_wins_and_its_entities_are_listed() {
        let facts = [fact("agent:a", false), fact("agent:b", false)];
        let mut q = listing(10);
        q.held.insert("agent:b".into(), Quarantined);
        q.held.insert("agent:gone".into(), Exhausted);
        let part = scan(facts.iter().copied(), &q);
        assert_eq!(
            part.counts.get(&Quarantined),
            None,
            "counted once, by the merge"
        );
        let page = merge(&q, vec![part]);
        assert_eq!(names(&page), ["agent:a", "agent:b", "agent:gone"]);
        assert_eq!(page.rows[1].state, Quarantined);
        assert_eq!(page.rows[1].last_seen, Some(7));
        assert_eq!(page.rows[2].last_seen, None);
        assert_eq!(
            (
                page.counts[&Healthy],
                page.counts[&Quarantined],
                page.counts[&Exhausted]
            ),
            (1, 1, 1)
        );
        assert_eq!(page.counts[&Probation], 0, "every state is counted");
        q.state = Some(Quarantined);
        let page = merge(&q, vec![scan(facts.iter().copied(), &q)]);
        assert_eq!(names(&page), ["agent:b"]);
        assert_eq!(page.counts[&Healthy], 1, "counts ignore the state filter");
    }

    #[test]
    fn pages_cover_every_entity_once_across_partitions() {
        let all: Vec<String> = (0..250).map(|i| format!("agent:{i:04}")).collect();
        let parts: Vec<Vec<EntityFacts<'_>>> = (0..3)
            .map(|p| {
                all.iter()
                    .enumerate()
                    .filter(|(i, _)| i % 3 == p)
                    .map(|(_, n)| fact(n, false))
                    .collect()
            })
            .collect();
        let mut seen = Vec::new();
        let mut q = listing(40);
        loop {
            let pages = parts.iter().map(|p| scan(p.iter().copied(), &q)).collect();
            let page = merge(&q, pages);
            assert_eq!(page.counts[&Healthy], 250);
            seen.extend(page.rows.iter().map(|r| r.entity.clone()));
            if !page.more {
                break;
            }
            let last = page.rows.last().unwrap().entity.clone();
            q.after = parse_cursor(&cursor(&last));
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn q_is_a_substring_and_kind_the_prefix() {
        let facts = [
            fact("agent:web-1", false),
            fact("host:web-2", false),
            fact("web", false),
        ];
        let q = Listing {
            q: Some("web".into()),
            ..listing(10)
        };
        assert_eq!(
            names(&merge(&q, vec![scan(facts.iter().copied(), &q)])).len(),
            3
        );
        let q = Listing {
            kind: Some("host".into()),
            ..listing(10)
        };
        assert_eq!(
            names(&merge(&q, vec![scan(facts.iter().copied(), &q)])),
            ["host:web-2"]
        );
        assert_eq!(parse_cursor("zz"), None);
        assert_eq!(parse_cursor(&cursor("agent:ü")).as_deref(), Some("agent:ü"));
    }
}
