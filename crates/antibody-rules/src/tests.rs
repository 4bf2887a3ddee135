//! Behaviour of the compiled rule set as a whole: compile → evaluate → state.

use crate::{RuleErrors, RuleHit, RuleSet, RuleSource};
use antibody_core::{AttrValue, Event, Severity, TenantId};

fn event(tenant: &str, ts: i64, kind: &str, attrs: &[(&str, &str)]) -> Event {
    Event {
        tenant: TenantId::new(tenant),
        ts,
        entity: "service:web".into(),
        kind: kind.into(),
        metrics: vec![],
        attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttrValue::Str((*v).to_owned())))
            .collect(),
        id: None,
    }
}

fn eval(set: &RuleSet, state: &mut crate::RuleState, ev: &Event) -> Vec<RuleHit> {
    let mut out = Vec::new();
    set.evaluate(state, ev, &mut out);
    out
}

/// The default pack, compiled once for all tests.
fn pack() -> &'static RuleSet {
    static PACK: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    PACK.get_or_init(RuleSet::default_pack)
}

fn compile(text: &str) -> Result<RuleSet, RuleErrors> {
    RuleSet::compile(&[RuleSource::new("test.yml", text)])
}

const THRESHOLD: &str = "\
- id: fails
  kind: brute_force
  severity: high
  events: {kinds: [auth], where: {outcome: failure}}
  threshold: {group_by: src_ip, count: 3, window: 60s, label: failed logins}
";

#[test]
fn default_pack_compiles_with_every_category() {
    let set = RuleSet::default_pack();
    let kinds: Vec<&str> = set.rules().map(|r| &*r.kind).collect();
    for k in [
        "sqli",
        "xss",
        "path_traversal",
        "cmd_injection",
        "prompt_injection",
        "brute_force",
        "port_scan",
        "request_flood",
    ] {
        assert!(kinds.contains(&k), "default pack lacks {k}");
    }
    assert_eq!(set.len(), set.rules().count());
    assert!(!set.is_empty());
}

#[test]
fn sqli_hit_carries_evidence_and_explanation() {
    let set = pack();
    let mut state = set.new_state();
    let ev = event(
        "t",
        0,
        "http",
        &[
            ("src_ip", "1.2.3.4"),
            (
                "query",
                "id=1%20UNION%20ALL%20SELECT%20password%20FROM%20users",
            ),
        ],
    );
    let hits = eval(set, &mut state, &ev);
    assert_eq!(hits.len(), 1, "{hits:?}");
    let h = &hits[0];
    assert_eq!(
        (&*h.rule_id, &*h.kind, h.severity),
        ("sqli", "sqli", Severity::High)
    );
    assert_eq!(h.evidence["field"], "query");
    assert_eq!(
        h.evidence["excerpt"],
        "id=1 union all select password from users"
    );
    assert!(h
        .explanation
        .starts_with("query parameter matched a SQL injection pattern on `union all select`"));
    assert!(
        h.explanation.ends_with("after URL-decoding"),
        "{}",
        h.explanation
    );
    assert!((0.0..=1.0).contains(&h.score));
}

#[test]
fn literal_hits_name_the_literal() {
    let set = pack();
    let mut state = set.new_state();
    let ev = event(
        "t",
        0,
        "http",
        &[("body", "q=&lt;script&gt;alert(1)&lt;/script&gt;")],
    );
    let hits = eval(set, &mut state, &ev);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].evidence["pattern"], "<script");
    assert_eq!(
        hits[0].explanation,
        "request body matched cross-site scripting pattern `<script` after HTML-entity-decoding"
    );
}

#[test]
fn benign_and_unselected_events_produce_nothing() {
    let set = pack();
    let mut state = set.new_state();
    let benign = event(
        "t",
        0,
        "http",
        &[
            ("query", "page=2&sort=name&q=caf%C3%A9+au+lait"),
            ("path", "/shop/items"),
        ],
    );
    assert!(eval(set, &mut state, &benign).is_empty());
    let other_kind = event("t", 0, "metrics", &[("query", "' or 1=1--")]);
    assert!(eval(set, &mut state, &other_kind).is_empty());
    let numeric = Event {
        attrs: vec![("query".into(), AttrValue::Num(1.0))],
        ..benign
    };
    assert!(eval(set, &mut state, &numeric).is_empty());
}

#[test]
fn threshold_fires_once_per_window_with_explanation() {
    let set = compile(THRESHOLD).unwrap();
    let mut state = set.new_state();
    let mut hits = Vec::new();
    for i in 0..50 {
        let ev = event(
            "t",
            i * 100,
            "auth",
            &[("src_ip", "1.2.3.4"), ("outcome", "failure")],
        );
        set.evaluate(&mut state, &ev, &mut hits);
    }
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert_eq!(
        h.explanation,
        "3 failed logins from 1.2.3.4 within 60 s (threshold 3)"
    );
    assert_eq!(h.evidence["group"], "1.2.3.4");
    assert_eq!(h.evidence["group_by"], "src_ip");
    assert_eq!(h.evidence["count"], 3);
    assert_eq!(h.evidence["window_ms"], 60_000);
    let success = event(
        "t",
        0,
        "auth",
        &[("src_ip", "9.9.9.9"), ("outcome", "success")],
    );
    for _ in 0..5 {
        assert!(eval(&set, &mut state, &success).is_empty());
    }
}

#[test]
fn windows_are_per_tenant() {
    let set = compile(THRESHOLD).unwrap();
    let mut state = set.new_state();
    for (i, tenant) in ["a", "b", "a", "b"].iter().enumerate() {
        let ev = event(
            tenant,
            i as i64,
            "auth",
            &[("src_ip", "1.2.3.4"), ("outcome", "failure")],
        );
        assert!(eval(&set, &mut state, &ev).is_empty());
    }
    let ev = event(
        "a",
        10,
        "auth",
        &[("src_ip", "1.2.3.4"), ("outcome", "failure")],
    );
    assert_eq!(eval(&set, &mut state, &ev).len(), 1);
    assert_eq!(state.tracked_keys(), 2);
}

#[test]
fn state_survives_a_snapshot_and_a_reload() {
    let set = compile(THRESHOLD).unwrap();
    let mut state = set.new_state();
    for i in 0..2 {
        let ev = event(
            "t",
            i,
            "auth",
            &[("src_ip", "1.2.3.4"), ("outcome", "failure")],
        );
        assert!(eval(&set, &mut state, &ev).is_empty());
    }
    let snapshot = serde_json::to_string(&state).unwrap();
    // A reloaded rule set (new allocations, an extra rule first) adopts the restored windows.
    let reloaded = compile(&format!(
        "{}{THRESHOLD}",
        THRESHOLD.replace("id: fails", "id: other")
    ))
    .unwrap();
    let mut restored: crate::RuleState = serde_json::from_str(&snapshot).unwrap();
    let ev = event(
        "t",
        2,
        "auth",
        &[("src_ip", "1.2.3.4"), ("outcome", "failure")],
    );
    let hits = eval(&reloaded, &mut restored, &ev);
    assert_eq!(
        hits.iter().map(|h| &*h.rule_id).collect::<Vec<_>>(),
        vec!["fails"]
    );
}

#[test]
fn state_round_trips_through_postcard() {
    // The engine snapshots with postcard (not self-describing): every field must be there.
    let set = pack();
    let mut state = set.new_state();
    let mut hits = Vec::new();
    for i in 0..30 {
        let port = (i % 25).to_string();
        let net = event("t", i, "net", &[("src_ip", "6.6.6.6"), ("dst_port", &port)]);
        let http = event("t", i, "http", &[("src_ip", "1.2.3.4"), ("path", "/")]);
        set.evaluate(&mut state, &net, &mut hits);
        set.evaluate(&mut state, &http, &mut hits);
    }
    let bytes = postcard::to_stdvec(&state).unwrap();
    let restored: crate::RuleState = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(restored.tracked_keys(), state.tracked_keys());
    assert_eq!(postcard::to_stdvec(&restored).unwrap().len(), bytes.len());
}

#[test]
fn expire_forgets_finished_windows() {
    let set = compile(THRESHOLD).unwrap();
    let mut state = set.new_state();
    let ev = event(
        "t",
        0,
        "auth",
        &[("src_ip", "1.2.3.4"), ("outcome", "failure")],
    );
    eval(&set, &mut state, &ev);
    set.expire(&mut state, 30_000);
    assert_eq!(state.tracked_keys(), 1);
    set.expire(&mut state, 61_000);
    assert_eq!(state.tracked_keys(), 0);
}

#[test]
fn distinct_threshold_lists_values() {
    let set = pack();
    let mut state = set.new_state();
    let mut hits = Vec::new();
    for port in 1..=25 {
        let ev = event(
            "t",
            port * 10,
            "net",
            &[("src_ip", "6.6.6.6"), ("dst_port", &port.to_string())],
        );
        set.evaluate(&mut state, &ev, &mut hits);
    }
    assert_eq!(hits.len(), 1);
    assert_eq!(&*hits[0].kind, "port_scan");
    assert_eq!(hits[0].evidence["distinct"], "dst_port");
    assert_eq!(hits[0].evidence["values"][0], "1");
    assert_eq!(
        hits[0].explanation,
        "20 distinct dst_port values in connections from 6.6.6.6 within 10 s (threshold 20)"
    );
}

#[test]
fn where_conditions_gate_signatures() {
    let text = "\
- id: admin-probe
  kind: recon
  severity: low
  events: {kinds: [http], where: {method: [GET, HEAD]}}
  signature: {fields: [path], literals: [/wp-admin]}
";
    let set = compile(text).unwrap();
    let mut state = set.new_state();
    let get = event(
        "t",
        0,
        "http",
        &[("method", "get"), ("path", "/WP-Admin/x")],
    );
    let post = event(
        "t",
        0,
        "http",
        &[("method", "POST"), ("path", "/wp-admin/x")],
    );
    assert_eq!(eval(&set, &mut state, &get).len(), 1);
    assert!(eval(&set, &mut state, &post).is_empty());
}

#[test]
fn duplicate_ids_are_reported_across_files_in_file_order() {
    let a = RuleSource::new("a.yml", THRESHOLD);
    let b = RuleSource::new("b.yml", format!("# comment\n{THRESHOLD}- id: 'x y'\n"));
    let err = RuleSet::compile(&[a, b]).unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![
            "b.yml:2: rule `fails`: duplicate id (first defined at a.yml:1)",
            "b.yml:7: rule `x y`: bad id `x y` (use 1-128 of a-z 0-9 _ . -)",
            "b.yml:7: rule `x y`: missing `kind`",
            "b.yml:7: rule `x y`: missing `severity`",
            "b.yml:7: rule `x y`: missing `events` (e.g. `events: {kinds: [http]}`)",
            "b.yml:7: rule `x y`: missing `signature` or `threshold` (a rule needs exactly one)",
        ]
    );
}

#[test]
fn a_top_layer_replaces_rules_by_id_and_adds_the_rest() {
    let base = [RuleSource::new("global.yml", THRESHOLD)];
    let top = [RuleSource::new(
        "tenant/mine.yml",
        format!(
            "{}- id: canary\n  kind: canary\n  severity: high\n  events: {{kinds: [http]}}\n  signature: {{fields: [query], literals: [canary-7f3a]}}\n",
            THRESHOLD.replace("count: 3", "count: 2")
        ),
    )];
    let set = RuleSet::compile_layered(&base, &top).unwrap();
    let ids: Vec<(&str, &str)> = set.rules().map(|r| (&*r.id, r.file.as_str())).collect();
    assert_eq!(
        ids,
        [("fails", "tenant/mine.yml"), ("canary", "tenant/mine.yml")]
    );
    // The replacement counts to 2, not 3.
    let mut state = set.new_state();
    let fail = event(
        "t",
        0,
        "auth",
        &[("outcome", "failure"), ("src_ip", "192.0.2.1")],
    );
    assert!(eval(&set, &mut state, &fail).is_empty());
    assert_eq!(eval(&set, &mut state, &fail).len(), 1);
    // Errors of both layers come back together, base first.
    let bad_top = [RuleSource::new("tenant/bad.yml", "- id: x\n- id: x\n")];
    let bad_base = [RuleSource::new("global.yml", "- id: [")];
    let err = RuleSet::compile_layered(&bad_base, &bad_top).unwrap_err();
    assert!(err.0[0].file == "global.yml", "{err}");
    assert!(
        err.0
            .iter()
            .any(|e| e.file == "tenant/bad.yml" && e.line == Some(2)),
        "{err}"
    );
}

#[test]
fn load_dir_adds_user_rules_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let missing = RuleSet::load_dir(&dir.path().join("nope")).unwrap();
    assert_eq!(missing.len(), pack().len());
    std::fs::write(dir.path().join("b.yml"), THRESHOLD).unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        THRESHOLD.replace("id: fails", "id: first"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a rule").unwrap();
    let set = RuleSet::load_dir(dir.path()).unwrap();
    let ids: Vec<&str> = set.rules().map(|r| &*r.id).collect();
    assert_eq!(&ids[ids.len() - 2..], ["first", "fails"]);
    std::fs::write(dir.path().join("c.yml"), "- id: [").unwrap();
    let err = RuleSet::load_dir(dir.path()).unwrap_err();
    assert!(err.0[0].file.ends_with("c.yml"), "{err}");
}

/// Everyday traffic that shares words or characters with attacks must stay quiet.
#[test]
fn benign_requests_and_prompts_do_not_fire() {
    let queries = [
        "q=how+to+cook+rice&page=2",
        "search=O%27Reilly+books&sort=price_asc",
        "redirect=%2Faccount%2Fsettings&lang=en-US&tz=Europe%2FParis",
        "utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale",
        "name=John+O'Connor&city=Saint-Denis&id=7&type=2",
        "filter=price>10&sort=-created_at&ids=1,2,3&fields=id,name",
        "q=rock+%27n%27+roll+or+jazz&q2=cats+%26+dogs",
        "email=jane.doe%2Bnews%40example.com&date=2024-01-01&time=10:30",
        "callback=jQuery1234_5678&_=1699999999&token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
        "q=what+is+sleep+apnea&q=alert+levels+for+storms&q=c%2B%2B+templates",
        "next=%2Fcheckout%3Fstep%3D2&path=docs/guide/intro.md",
        "q=select+a+size+from+the+list&note=drop+me+a+line",
        "q=tom+%26+jerry+ping+pong&q=1+%3D+1+is+true",
    ];
    let paths = [
        "/api/v1/users/42/orders",
        "/static/js/app.3f2a1b.js",
        "/.well-known/acme-challenge/x1",
        "/wp-content/uploads/2023/01/photo.jpg",
    ];
    let bodies = [
        r#"{"user":"alice","password":"hunter2","remember":true}"#,
        r#"{"id": 5, "type": "order", "items": [{"sku": "A-1", "qty": 2}]}"#,
        "comment=Great+post!+I+think+it's+right%2C+and+1+or+2+people+agree.",
        r#"<p>Hello <b>world</b>, see <a href="../about.html">about</a> and <img src="/logo.png"></p>"#,
        "Use the `ls -la` command to list files; run `id` to see your uid.",
        "I have a dog; cat is sleeping. Price: 5 < 10 and 7 > 3.",
        r#"<?xml version="1.0"?><order><id>1</id><note>select one</note></order>"#,
        "| column | net | type |\n| --- | --- | --- |",
    ];
    let prompts = [
        "Summarize the previous chapter in three sentences.",
        "Please ignore typos in my message and fix the grammar.",
        "Ignore the previous error, it was my fault. Can you try again?",
        "Translate the following text into French: Hello, how are you?",
        "Write a good system prompt for a customer support bot.",
        "Forget about the meeting, let's discuss the budget.",
        "You are now a helpful assistant that speaks like a pirate.",
        "Act as a travel agent and plan a trip to Lisbon.",
        "Disregard the last paragraph of my essay and rate the rest.",
    ];
    let set = pack();
    let mut state = set.new_state();
    let mut check = |kind: &str, field: &str, value: &str| {
        let hits = eval(set, &mut state, &event("t", 0, kind, &[(field, value)]));
        assert!(hits.is_empty(), "{field}={value:?} fired: {:?}", hits[0]);
    };
    queries.iter().for_each(|v| check("http", "query", v));
    paths.iter().for_each(|v| check("http", "path", v));
    bodies.iter().for_each(|v| check("http", "body", v));
    prompts.iter().for_each(|v| check("llm", "prompt", v));
}
