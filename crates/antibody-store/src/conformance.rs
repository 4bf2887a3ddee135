//! The behaviour every store backend must show, as plain functions over a fresh store.
//! `store_suite!` turns them into `#[test]`s for one backend; a PostgreSQL backend runs the
//! same list by invoking the macro with its own constructor.

use crate::{FindingCursor, FindingQuery, IncidentQuery, Role, Store, StoreError, MAX_LIMIT};
use antibody_core::{
    Explanation, Finding, Hypothesis, Incident, IncidentStatus, Severity, TenantId, TimelineEntry,
};

/// Expands to one `#[test]` per suite function. `$open` must evaluate to
/// `(guard, Store)`; the guard (e.g. a temp dir) lives as long as the test.
macro_rules! store_suite {
    ($open:expr) => {
        $crate::conformance::store_suite!(@tests $open;
            tenants_crud, default_tenant_has_fixed_id, tenant_name_conflict,
            keys_crud_and_authenticate, key_for_unknown_tenant, preset_key_is_idempotent,
            keys_are_isolated, findings_are_idempotent, findings_round_trip,
            findings_filters_and_order, findings_limit_and_cursor, findings_are_isolated,
            non_finite_numbers_are_refused, incidents_upsert_updates,
            incidents_filters_and_order, incidents_are_isolated, write_batch_is_atomic,
            meta_kv, checkpoint_commits_with_batch, tenant_delete_revokes_its_keys,
            tenant_docs_are_versioned, the_last_working_admin_key_of_a_tenant_stays,
            keys_expire_and_rotate_without_a_gap);
    };
    (@tests $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_guard, store) = $open;
                $crate::conformance::$name(&store);
            }
        )*
    };
}
pub(crate) use store_suite;

const NOW: i64 = 1_795_000_000_000;

pub(crate) fn finding(tenant: &TenantId, id: &str, ts: i64, entity: &str, kind: &str) -> Finding {
    let mut evidence = serde_json::Map::new();
    evidence.insert("metric".into(), "tokens".into());
    evidence.insert("sigma".into(), 4.5.into());
    Finding {
        id: id.to_owned(),
        tenant: tenant.clone(),
        ts,
        entity: entity.to_owned(),
        kind: kind.to_owned(),
        detector: antibody_core::Detector::Baseline,
        severity: Severity::High,
        score: 0.8,
        explanation: Explanation::text(format!("{kind} on {entity}")),
        evidence,
        incident: None,
    }
}

pub(crate) fn incident(
    tenant: &TenantId,
    id: &str,
    entity: &str,
    status: IncidentStatus,
    updated: i64,
) -> Incident {
    Incident {
        id: id.to_owned(),
        tenant: tenant.clone(),
        entity: entity.to_owned(),
        status,
        opened: updated - 1_000,
        updated,
        risk: 6.5,
        severity: Severity::Medium,
        kinds: vec!["token_spike".to_owned()],
        finding_count: 1,
        max_score: 0.8,
        diagnosis: vec![Hypothesis {
            cause: "prompt injection".to_owned(),
            confidence: 0.7,
        }],
        findings: vec!["f-1".to_owned()],
        actions: vec![serde_json::json!({"kind": "throttle"})],
        timeline: vec![TimelineEntry {
            ts: updated,
            event: "opened".to_owned(),
            finding: None,
        }],
        workflow: Default::default(),
    }
}

fn two_tenants(s: &Store) -> (TenantId, TenantId) {
    let a = s.create_tenant("alpha", NOW).unwrap().id;
    let b = s.create_tenant("beta", NOW + 1).unwrap().id;
    (a, b)
}

fn ids(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.id.as_str()).collect()
}

pub(crate) fn tenants_crud(s: &Store) {
    let t = s.create_tenant("acme", NOW).unwrap();
    assert!(
        t.id.as_str().starts_with("t-") && t.id.as_str().len() == 14,
        "{}",
        t.id
    );
    assert_eq!(s.get_tenant(&t.id).unwrap(), Some(t.clone()));
    assert_eq!(
        s.get_tenant(&TenantId::new("t-000000000000")).unwrap(),
        None
    );
    let u = s.create_tenant("umbrella", NOW + 5).unwrap();
    assert_eq!(s.list_tenants().unwrap(), vec![t, u]);
}

pub(crate) fn default_tenant_has_fixed_id(s: &Store) {
    let t = s.create_tenant("default", NOW).unwrap();
    assert_eq!(t.id.as_str(), "default");
    assert!(s.get_tenant(&TenantId::new("default")).unwrap().is_some());
}

pub(crate) fn tenant_name_conflict(s: &Store) {
    s.create_tenant("acme", NOW).unwrap();
    assert!(matches!(
        s.create_tenant("acme", NOW),
        Err(StoreError::Conflict(_))
    ));
    s.create_tenant("default", NOW).unwrap();
    assert!(matches!(
        s.create_tenant("default", NOW),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_tenants().unwrap().len(), 2);
}

pub(crate) fn tenant_delete_revokes_its_keys(s: &Store) {
    let (a, b) = two_tenants(s);
    let key = s.create_key(&a, Role::Admin, false, NOW, None).unwrap();
    let kept = s.create_key(&b, Role::Admin, false, NOW, None).unwrap();
    assert!(s.delete_tenant(&a).unwrap());
    assert!(!s.delete_tenant(&a).unwrap());
    assert_eq!(s.get_tenant(&a).unwrap(), None);
    assert!(s.authenticate(&key.secret).unwrap().is_none());
    assert!(s.authenticate(&kept.secret).unwrap().is_some());
    assert!(matches!(
        s.delete_tenant(&TenantId::new(crate::DEFAULT_TENANT)),
        Err(StoreError::Conflict(_))
    ));
}

pub(crate) fn tenant_docs_are_versioned(s: &Store) {
    use crate::{doc_sha256, DocFormat, DocKind, NewDoc};
    let new = |name: &'static str, text: &'static str, ts: i64| NewDoc {
        kind: DocKind::Playbooks,
        name,
        format: DocFormat::Yaml,
        text,
        actor: "k-1",
        ts,
        rollback_of: None,
    };
    let (a, b) = two_tenants(s);
    assert_eq!(s.put_doc(&a, &new("bf", "one", 1)).unwrap().version, 1);
    let v2 = s.put_doc(&a, &new("bf", "two", 2)).unwrap();
    assert_eq!(
        (v2.version, v2.sha256.as_str()),
        (2, doc_sha256("two").as_str())
    );
    s.put_doc(&a, &new("web", "w", 3)).unwrap();
    s.put_doc(&b, &new("bf", "theirs", 4)).unwrap();
    let back = NewDoc {
        rollback_of: Some(1),
        ..new("bf", "one", 5)
    };
    assert_eq!(s.put_doc(&a, &back).unwrap().version, 3);

    let newest = s.doc(&a, DocKind::Playbooks, "bf", None).unwrap().unwrap();
    assert_eq!((newest.info.version, newest.text.as_str()), (3, "one"));
    assert_eq!(newest.info.rollback_of, Some(1));
    let second = s
        .doc(&a, DocKind::Playbooks, "bf", Some(2))
        .unwrap()
        .unwrap();
    assert_eq!(second.text, "two");
    assert!(s
        .doc(&a, DocKind::Playbooks, "bf", Some(9))
        .unwrap()
        .is_none());
    assert!(s.doc(&a, DocKind::Rules, "bf", None).unwrap().is_none());
    let versions: Vec<u32> = s
        .doc_versions(&a, DocKind::Playbooks, "bf")
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    let current: Vec<(String, String)> = s
        .current_docs(&a, DocKind::Playbooks)
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.text))
        .collect();
    assert_eq!(
        current,
        [("bf".into(), "one".into()), ("web".into(), "w".into())]
    );
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(s.doc_tenants(DocKind::Playbooks).unwrap(), both);
    assert!(s.doc_tenants(DocKind::Policy).unwrap().is_empty());
}

pub(crate) fn keys_crud_and_authenticate(s: &Store) {
    let (a, _) = two_tenants(s);
    let admin = s.create_key(&a, Role::Admin, true, NOW, None).unwrap();
    let ingest = s
        .create_key(&a, Role::Ingest, false, NOW + 1, None)
        .unwrap();
    let id_part = admin.info.id.strip_prefix("k-").unwrap();
    assert!(
        admin.secret.starts_with(&format!("ab_{id_part}_")),
        "{}",
        admin.secret
    );
    assert!(admin.secret.len() >= "ab__".len() + id_part.len() + 32);
    assert_ne!(admin.secret, ingest.secret);

    assert_eq!(
        s.authenticate(&admin.secret).unwrap(),
        Some(admin.info.clone())
    );
    assert_eq!(
        s.authenticate(&ingest.secret).unwrap(),
        Some(ingest.info.clone())
    );
    let mut wrong = admin.secret.clone();
    wrong.push('x');
    assert_eq!(s.authenticate(&wrong).unwrap(), None);
    assert_eq!(s.authenticate("").unwrap(), None);

    assert_eq!(
        s.list_keys(&a).unwrap(),
        vec![admin.info.clone(), ingest.info.clone()]
    );
    assert_eq!(
        s.delete_key(&a, &ingest.info.id, NOW).unwrap(),
        Some(ingest.info.clone())
    );
    assert_eq!(s.delete_key(&a, &ingest.info.id, NOW).unwrap(), None);
    assert_eq!(s.authenticate(&ingest.secret).unwrap(), None);
    assert_eq!(s.list_keys(&a).unwrap(), vec![admin.info]);
}

pub(crate) fn key_for_unknown_tenant(s: &Store) {
    let ghost = TenantId::new("t-ghost");
    let err = s
        .create_key(&ghost, Role::Admin, false, NOW, None)
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownTenant(_)), "{err}");
    let err = s
        .insert_key_with_secret(&ghost, Role::Admin, false, "preset", NOW)
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownTenant(_)), "{err}");
}

pub(crate) fn preset_key_is_idempotent(s: &Store) {
    let (a, b) = two_tenants(s);
    let secret = "operator-chosen-secret-123";
    let first = s
        .insert_key_with_secret(&a, Role::Admin, true, secret, NOW)
        .unwrap();
    let again = s
        .insert_key_with_secret(&a, Role::Admin, true, secret, NOW + 9)
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(s.list_keys(&a).unwrap().len(), 1);
    assert_eq!(s.authenticate(secret).unwrap(), Some(first));

    let other_tenant = s.insert_key_with_secret(&b, Role::Admin, true, secret, NOW);
    assert!(matches!(other_tenant, Err(StoreError::Conflict(_))));
    let other_role = s.insert_key_with_secret(&a, Role::Ingest, true, secret, NOW);
    assert!(matches!(other_role, Err(StoreError::Conflict(_))));
    let empty = s.insert_key_with_secret(&a, Role::Admin, false, "", NOW);
    assert!(matches!(empty, Err(StoreError::Invalid(_))));
}

pub(crate) fn keys_are_isolated(s: &Store) {
    let (a, b) = two_tenants(s);
    let key_a = s.create_key(&a, Role::Admin, false, NOW, None).unwrap();
    let key_b = s.create_key(&b, Role::Analyst, false, NOW, None).unwrap();
    assert_eq!(s.delete_key(&b, &key_a.info.id, NOW).unwrap(), None);
    assert_eq!(s.list_keys(&b).unwrap(), vec![key_b.info.clone()]);
    assert_eq!(s.authenticate(&key_a.secret).unwrap().unwrap().tenant, a);
    assert_eq!(s.authenticate(&key_b.secret).unwrap().unwrap().tenant, b);
}

pub(crate) fn the_last_working_admin_key_of_a_tenant_stays(s: &Store) {
    let (a, _) = two_tenants(s);
    let first = s.create_key(&a, Role::Admin, false, NOW, None).unwrap();
    let ingest = s.create_key(&a, Role::Ingest, false, NOW, None).unwrap();
    let refused = s.delete_key(&a, &first.info.id, NOW).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Conflict(m) if m.contains("last admin key")),
        "{refused}"
    );
    // An admin key that has expired does not count as a way in.
    let expiring = s
        .create_key(&a, Role::Admin, false, NOW, Some(NOW + 10))
        .unwrap();
    assert!(s.delete_key(&a, &first.info.id, NOW + 10).is_err());
    assert!(s.delete_key(&a, &first.info.id, NOW).unwrap().is_some());
    assert!(s.delete_key(&a, &expiring.info.id, NOW).is_err());
    // Once expired, it may go; other roles always may.
    assert!(s
        .delete_key(&a, &expiring.info.id, NOW + 10)
        .unwrap()
        .is_some());
    assert!(s.delete_key(&a, &ingest.info.id, NOW).unwrap().is_some());
}

pub(crate) fn keys_expire_and_rotate_without_a_gap(s: &Store) {
    let (a, _) = two_tenants(s);
    let old = s
        .create_key(&a, Role::Ingest, false, NOW, Some(NOW + 1_000_000))
        .unwrap();
    let found = s.authenticate(&old.secret).unwrap().unwrap();
    assert_eq!(found.expires_ms, Some(NOW + 1_000_000));
    assert!(!found.is_expired(NOW + 999_999));
    assert!(found.is_expired(NOW + 1_000_000));

    let r = s
        .rotate_key(&a, &old.info.id, NOW + 10, 500, None)
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.new.info.role, r.new.info.bootstrap),
        (Role::Ingest, false)
    );
    assert_ne!(r.new.secret, old.secret);
    // Both work during the grace period; then only the new one.
    let old_now = s.authenticate(&old.secret).unwrap().unwrap();
    assert_eq!(old_now.expires_ms, Some(NOW + 510));
    assert_eq!(old_now, r.old);
    assert!(!old_now.is_expired(NOW + 509) && old_now.is_expired(NOW + 510));
    let new_now = s.authenticate(&r.new.secret).unwrap().unwrap();
    assert_eq!(new_now.expires_ms, None);
    // A grace longer than the key had left keeps its own expiry; an expired key or one of
    // another tenant does not rotate.
    let short = s
        .create_key(&a, Role::Analyst, false, NOW, Some(NOW + 5))
        .unwrap();
    let r = s
        .rotate_key(&a, &short.info.id, NOW, 1_000, None)
        .unwrap()
        .unwrap();
    assert_eq!(r.old.expires_ms, Some(NOW + 5));
    assert!(s
        .rotate_key(&a, &short.info.id, NOW + 5, 1, None)
        .unwrap()
        .is_none());
    assert!(s
        .rotate_key(&TenantId::new("t-other"), &new_now.id, NOW, 1, None)
        .unwrap()
        .is_none());

    s.touch_key(&new_now.id, NOW + 100).unwrap();
    s.touch_key(&new_now.id, NOW + 200).unwrap();
    let listed = s.list_keys(&a).unwrap();
    let touched = listed.iter().find(|k| k.id == new_now.id).unwrap();
    assert_eq!(
        touched.last_used_ms,
        Some(NOW + 100),
        "at most once a minute"
    );
    s.touch_key(&new_now.id, NOW + 100 + 60_000).unwrap();
    let listed = s.list_keys(&a).unwrap();
    let touched = listed.iter().find(|k| k.id == new_now.id).unwrap();
    assert_eq!(touched.last_used_ms, Some(NOW + 60_100));
}

pub(crate) fn findings_are_idempotent(s: &Store) {
    let (a, _) = two_tenants(s);
    let batch = [
        finding(&a, "f-1", NOW, "agent:x", "token_spike"),
        finding(&a, "f-2", NOW, "agent:x", "sqli"),
    ];
    assert_eq!(s.insert_findings(&batch).unwrap(), 2);
    assert_eq!(s.insert_findings(&batch).unwrap(), 0);
    let mut changed = batch[0].clone();
    changed.score = 0.1;
    let third = finding(&a, "f-3", NOW, "agent:x", "xss");
    assert_eq!(s.insert_findings(&[changed, third]).unwrap(), 1);
    assert_eq!(s.count_findings(&a).unwrap(), 3);
    assert_eq!(s.get_finding(&a, "f-1").unwrap().unwrap().score, 0.8);
}

pub(crate) fn findings_round_trip(s: &Store) {
    let (a, _) = two_tenants(s);
    let mut f = finding(&a, "f-rt", NOW + 123, "agent:x", "model:iforest");
    f.explanation
        .contributions
        .insert("tokens".to_owned(), 0.75);
    f.incident = Some("i-9".to_owned());
    s.insert_findings(std::slice::from_ref(&f)).unwrap();
    assert_eq!(s.get_finding(&a, "f-rt").unwrap(), Some(f.clone()));
    assert_eq!(
        s.list_findings(&a, &FindingQuery::default()).unwrap(),
        vec![f]
    );
}

pub(crate) fn findings_filters_and_order(s: &Store) {
    let (a, _) = two_tenants(s);
    let batch = [
        finding(&a, "f-a", NOW, "agent:x", "token_spike"),
        finding(&a, "f-b", NOW + 10, "agent:y", "token_spike"),
        finding(&a, "f-c", NOW + 10, "agent:x", "sqli"),
        finding(&a, "f-d", NOW + 20, "agent:x", "token_spike"),
    ];
    s.insert_findings(&batch).unwrap();
    let list = |q: FindingQuery| s.list_findings(&a, &q).unwrap();
    assert_eq!(
        ids(&list(FindingQuery::default())),
        ["f-d", "f-c", "f-b", "f-a"]
    );
    let by_entity = list(FindingQuery {
        entity: Some("agent:x".into()),
        ..Default::default()
    });
    assert_eq!(ids(&by_entity), ["f-d", "f-c", "f-a"]);
    let by_kind = list(FindingQuery {
        kind: Some("token_spike".into()),
        ..Default::default()
    });
    assert_eq!(ids(&by_kind), ["f-d", "f-b", "f-a"]);
    let since = list(FindingQuery {
        since_ms: Some(NOW + 10),
        ..Default::default()
    });
    assert_eq!(ids(&since), ["f-d", "f-c", "f-b"]);
    let all = FindingQuery {
        entity: Some("agent:x".into()),
        kind: Some("token_spike".into()),
        since_ms: Some(NOW + 1),
        ..Default::default()
    };
    assert_eq!(ids(&list(all)), ["f-d"]);
    assert!(list(FindingQuery {
        entity: Some("agent:none".into()),
        ..Default::default()
    })
    .is_empty());
}

pub(crate) fn findings_limit_and_cursor(s: &Store) {
    let (a, _) = two_tenants(s);
    let batch: Vec<Finding> = (0..1_205)
        .map(|i| {
            finding(
                &a,
                &format!("f-{i:05}"),
                NOW + i / 3,
                "agent:x",
                "token_spike",
            )
        })
        .collect();
    assert_eq!(s.insert_findings(&batch).unwrap(), 1_205);
    let huge = s
        .list_findings(
            &a,
            &FindingQuery {
                limit: 5_000,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(huge.len(), MAX_LIMIT);

    // Paging with the cursor visits every row exactly once, in order, across equal `ts`.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let q = FindingQuery {
            limit: 7,
            before: before.take(),
            ..Default::default()
        };
        let page = s.list_findings(&a, &q).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(FindingCursor::after(last));
        seen.extend(page.into_iter().map(|f| f.id));
    }
    let mut expected: Vec<String> = batch.iter().map(|f| f.id.clone()).collect();
    expected.reverse();
    assert_eq!(seen, expected);
}

pub(crate) fn findings_are_isolated(s: &Store) {
    let (a, b) = two_tenants(s);
    s.insert_findings(&[finding(&a, "f-1", NOW, "agent:x", "sqli")])
        .unwrap();
    // The same id in another tenant is a different finding, not a duplicate.
    assert_eq!(
        s.insert_findings(&[finding(&b, "f-1", NOW, "agent:y", "xss")])
            .unwrap(),
        1
    );
    s.insert_findings(&[finding(&b, "f-2", NOW, "agent:x", "sqli")])
        .unwrap();
    assert_eq!(s.get_finding(&a, "f-1").unwrap().unwrap().kind, "sqli");
    assert_eq!(s.get_finding(&b, "f-1").unwrap().unwrap().kind, "xss");
    assert_eq!(s.get_finding(&a, "f-2").unwrap(), None);
    assert_eq!(
        ids(&s.list_findings(&a, &FindingQuery::default()).unwrap()),
        ["f-1"]
    );
    let q = FindingQuery {
        entity: Some("agent:x".into()),
        ..Default::default()
    };
    assert_eq!(ids(&s.list_findings(&b, &q).unwrap()), ["f-2"]);
    assert_eq!(s.count_findings(&a).unwrap(), 1);
    assert_eq!(s.count_findings(&b).unwrap(), 2);
    for f in s.list_findings(&b, &FindingQuery::default()).unwrap() {
        assert_eq!(f.tenant, b);
    }
}

pub(crate) fn non_finite_numbers_are_refused(s: &Store) {
    let (a, _) = two_tenants(s);
    let good = finding(&a, "f-ok", NOW, "agent:x", "sqli");
    let mut bad = finding(&a, "f-nan", NOW, "agent:x", "sqli");
    bad.score = f64::NAN;
    let err = s.insert_findings(&[good, bad]).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(
        s.count_findings(&a).unwrap(),
        0,
        "the batch is all or nothing"
    );

    let mut inc = incident(&a, "i-1", "agent:x", IncidentStatus::Open, NOW);
    inc.diagnosis[0].confidence = f64::INFINITY;
    assert!(matches!(
        s.upsert_incidents(&[inc]),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.get_incident(&a, "i-1").unwrap(), None);
}

pub(crate) fn incidents_upsert_updates(s: &Store) {
    let (a, _) = two_tenants(s);
    let mut inc = incident(&a, "i-1", "agent:x", IncidentStatus::Open, NOW);
    s.upsert_incidents(std::slice::from_ref(&inc)).unwrap();
    assert_eq!(s.get_incident(&a, "i-1").unwrap(), Some(inc.clone()));

    inc.status = IncidentStatus::Resolved;
    inc.updated = NOW + 500;
    inc.finding_count = 2;
    inc.findings.push("f-2".to_owned());
    s.upsert_incidents(std::slice::from_ref(&inc)).unwrap();
    assert_eq!(s.get_incident(&a, "i-1").unwrap(), Some(inc.clone()));
    let closed = IncidentQuery {
        status: Some(IncidentStatus::Resolved),
        ..Default::default()
    };
    assert_eq!(s.list_incidents(&a, &closed).unwrap(), vec![inc]);
    let open = IncidentQuery {
        status: Some(IncidentStatus::Open),
        ..Default::default()
    };
    assert!(s.list_incidents(&a, &open).unwrap().is_empty());
}

pub(crate) fn incidents_filters_and_order(s: &Store) {
    let (a, _) = two_tenants(s);
    s.upsert_incidents(&[
        incident(&a, "i-1", "agent:x", IncidentStatus::Open, NOW + 30),
        incident(&a, "i-2", "agent:y", IncidentStatus::Open, NOW + 10),
        incident(&a, "i-3", "agent:x", IncidentStatus::Resolved, NOW + 20),
    ])
    .unwrap();
    let list = |q: IncidentQuery| -> Vec<String> {
        s.list_incidents(&a, &q)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect()
    };
    assert_eq!(list(IncidentQuery::default()), ["i-1", "i-3", "i-2"]);
    assert_eq!(
        list(IncidentQuery {
            entity: Some("agent:x".into()),
            ..Default::default()
        }),
        ["i-1", "i-3"]
    );
    let open_x = IncidentQuery {
        status: Some(IncidentStatus::Open),
        entity: Some("agent:x".into()),
        ..Default::default()
    };
    assert_eq!(list(open_x), ["i-1"]);
    assert_eq!(
        list(IncidentQuery {
            limit: 2,
            ..Default::default()
        }),
        ["i-1", "i-3"]
    );
}

pub(crate) fn incidents_are_isolated(s: &Store) {
    let (a, b) = two_tenants(s);
    s.upsert_incidents(&[incident(&a, "i-1", "agent:x", IncidentStatus::Open, NOW)])
        .unwrap();
    let theirs = incident(&b, "i-1", "agent:z", IncidentStatus::Resolved, NOW + 1);
    s.upsert_incidents(std::slice::from_ref(&theirs)).unwrap();
    // B's upsert of the same id did not touch A's incident.
    assert_eq!(
        s.get_incident(&a, "i-1").unwrap().unwrap().entity,
        "agent:x"
    );
    assert_eq!(s.get_incident(&b, "i-1").unwrap(), Some(theirs));
    assert_eq!(s.get_incident(&b, "i-2").unwrap(), None);
    let a_list = s.list_incidents(&a, &IncidentQuery::default()).unwrap();
    assert_eq!(a_list.len(), 1);
    assert_eq!(a_list[0].tenant, a);
}

pub(crate) fn write_batch_is_atomic(s: &Store) {
    let (a, _) = two_tenants(s);
    let f = finding(&a, "f-1", NOW, "agent:x", "sqli");
    let i = incident(&a, "i-1", "agent:x", IncidentStatus::Open, NOW);
    s.write_batch(std::slice::from_ref(&f), std::slice::from_ref(&i))
        .unwrap();
    assert_eq!(s.get_finding(&a, "f-1").unwrap(), Some(f.clone()));
    assert_eq!(s.get_incident(&a, "i-1").unwrap(), Some(i));

    let mut bad = incident(&a, "i-2", "agent:x", IncidentStatus::Open, NOW);
    bad.risk = f64::NAN;
    let f2 = finding(&a, "f-2", NOW, "agent:x", "sqli");
    assert!(s.write_batch(&[f2], &[bad]).is_err());
    assert_eq!(
        s.get_finding(&a, "f-2").unwrap(),
        None,
        "findings rolled back with the batch"
    );
}

pub(crate) fn meta_kv(s: &Store) {
    assert_eq!(s.get_meta("engine.offset").unwrap(), None);
    s.set_meta("engine.offset", "42").unwrap();
    s.set_meta("engine.offset", "43").unwrap();
    s.set_meta("other", "x").unwrap();
    assert_eq!(s.get_meta("engine.offset").unwrap().as_deref(), Some("43"));
    assert_eq!(s.get_meta("other").unwrap().as_deref(), Some("x"));
}

pub(crate) fn checkpoint_commits_with_batch(s: &Store) {
    let (a, _) = two_tenants(s);
    let f = finding(&a, "f-1", NOW, "agent:x", "sqli");
    s.write_batch_with_meta(std::slice::from_ref(&f), &[], ("engine.offset", "7"))
        .unwrap();
    assert_eq!(s.get_meta("engine.offset").unwrap().as_deref(), Some("7"));

    let mut bad = finding(&a, "f-2", NOW, "agent:x", "sqli");
    bad.score = f64::INFINITY;
    assert!(s
        .write_batch_with_meta(&[bad], &[], ("engine.offset", "8"))
        .is_err());
    assert_eq!(s.get_meta("engine.offset").unwrap().as_deref(), Some("7"));
}
