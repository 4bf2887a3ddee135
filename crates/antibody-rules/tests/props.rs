//! Property tests: compiling arbitrary or mangled rule text and evaluating arbitrary events
//! never panics (the fuzz target calls `RuleSet::compile` directly on raw bytes).

use antibody_core::{AttrValue, Event, TenantId};
use antibody_rules::{default_pack_sources, RuleSet, RuleSource};
use proptest::prelude::*;
use std::sync::OnceLock;

fn compile(text: &str) {
    let _ = RuleSet::compile(&[RuleSource::new("fuzz.yml", text)]);
}

fn pack_text() -> String {
    default_pack_sources()
        .into_iter()
        .map(|s| s.text)
        .collect::<Vec<_>>()
        .join("\n")
}

fn pack() -> &'static RuleSet {
    static PACK: OnceLock<RuleSet> = OnceLock::new();
    PACK.get_or_init(RuleSet::default_pack)
}

/// Rule-shaped YAML built from the format's own vocabulary, so generated text gets past
/// the YAML parser and exercises validation.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "- ",
        "id: ",
        "kind: ",
        "severity: ",
        "events: ",
        "kinds: [http]",
        "where: {outcome: failure}",
        "signature: ",
        "fields: [query]",
        "literals: ",
        "regexes: ",
        "threshold: ",
        "group_by: src_ip",
        "count: ",
        "window: ",
        "distinct: dst_port",
        "max_keys: ",
        "rules:",
        "\n",
        "\n  ",
        "\n    ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "'",
        "\"",
        "(",
        "\\",
        "*",
        "10",
        "0",
        "-1",
        "60s",
        "5m",
        "high",
        "x",
        "&a",
        "*a",
        "!tag ",
        "# c",
        "???",
        "\u{feff}",
        "99999999999999999999",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), "\\PC{1,8}|[:\\[\\]{}'\"\\-#&*!|>\\n ]{1,6}")
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn char_floor(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut text: String, m: &Mutation) -> String {
    match m {
        Mutation::Delete(at, n) => {
            let start = char_floor(&text, *at);
            let end = char_floor(&text, (start + n).min(text.len()));
            text.replace_range(start..end.max(start), "");
        }
        Mutation::Insert(at, s) => {
            let at = char_floor(&text, *at);
            text.insert_str(at, s);
        }
        Mutation::DuplicateLine(at) => {
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = at % lines.len();
                let mut out: Vec<&str> = lines[..=i].to_vec();
                out.extend_from_slice(&lines[i..]);
                text = out.join("\n");
            }
        }
        Mutation::Truncate(at) => {
            let at = char_floor(&text, *at);
            text.truncate(at);
        }
    }
    text
}

fn attr_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,80}",
        "[%&#;xXuU0-9a-fA-F+./\\\\<>'\"=() -]{0,80}",
        prop::collection::vec(
            prop::sample::select(vec![
                "%",
                "%2",
                "%25",
                "%c0%ae",
                "%u2215",
                "&#",
                "&#x3c",
                "&lt;",
                "../",
                "union",
                " select ",
                "'",
                "or 1=1",
                "<script",
                "onload=",
                ";id",
                "$(",
                "ignore previous instructions",
                "\u{FF0E}",
                "\u{0}",
                "\u{b}",
            ]),
            0..20
        )
        .prop_map(|v| v.concat()),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let kind = prop::sample::select(vec!["http", "llm", "vitals", "net", "auth", "other"]);
    let name = prop::sample::select(vec![
        "query", "body", "path", "prompt", "src_ip", "dst_port", "outcome", "user", "method", "x",
    ]);
    let attr = (
        name,
        prop_oneof![
            attr_value().prop_map(AttrValue::Str),
            any::<f64>().prop_map(AttrValue::Num),
            any::<bool>().prop_map(AttrValue::Bool),
        ],
    );
    (
        kind,
        prop::collection::vec(attr, 0..8),
        any::<i64>(),
        prop::sample::select(vec!["a", "b"]),
    )
        .prop_map(|(kind, attrs, ts, tenant)| Event {
            tenant: TenantId::new(tenant),
            ts,
            entity: "host:x".into(),
            kind: kind.into(),
            metrics: vec![],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            id: None,
        })
}

proptest! {
    #[test]
    fn compile_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        compile(&text);
    }

    #[test]
    fn compile_never_panics_on_rule_shaped_text(text in yamlish()) {
        compile(&text);
    }

    #[test]
    fn evaluate_never_panics(events in prop::collection::vec(event(), 1..24), now in any::<i64>()) {
        let set = pack();
        let mut state = set.new_state();
        let mut out = Vec::new();
        for ev in &events {
            set.evaluate(&mut state, ev, &mut out);
        }
        set.expire(&mut state, now);
        for hit in &out {
            prop_assert!((0.0..=1.0).contains(&hit.score));
            if let Some(excerpt) = hit.evidence.get("excerpt").and_then(|e| e.as_str()) {
                prop_assert!(excerpt.len() <= 120);
            }
        }
    }
}

proptest! {
    // Each case compiles the whole pack (about twenty regex sets): fewer cases keep it quick.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn compile_never_panics_on_a_mangled_default_pack(muts in prop::collection::vec(mutation(), 1..6)) {
        let text = muts.iter().fold(pack_text(), apply);
        compile(&text);
    }
}
