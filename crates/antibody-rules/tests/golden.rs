//! Golden tests: each `tests/golden/<case>/` holds `rules.yml`, `events.ndjson` (one
//! `Event` per line, `ts` in epoch ms, `attrs` as `[name, value]` pairs) and
//! `expected.ndjson` (one hit per line: the 1-based event line, rule id, kind, severity,
//! evidence and explanation). Run with `UPDATE_GOLDEN=1` to rewrite the expected files.

use antibody_core::Event;
use antibody_rules::{RuleSet, RuleSource};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn run_case(dir: &Path) -> Vec<Value> {
    let rules = std::fs::read_to_string(dir.join("rules.yml")).unwrap();
    let set = RuleSet::compile(&[RuleSource::new("rules.yml", rules)])
        .unwrap_or_else(|e| panic!("{}: rules do not compile:\n{e}", dir.display()));
    let mut state = set.new_state();
    let events = std::fs::read_to_string(dir.join("events.ndjson")).unwrap();
    let mut got = Vec::new();
    for (i, line) in events
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let ev: Event = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: events.ndjson:{}: {e}", dir.display(), i + 1));
        let mut hits = Vec::new();
        set.evaluate(&mut state, &ev, &mut hits);
        got.extend(hits.into_iter().map(|h| {
            json!({
                "event": i + 1,
                "rule_id": &*h.rule_id,
                "kind": &*h.kind,
                "severity": h.severity,
                "evidence": h.evidence,
                "explanation": h.explanation,
            })
        }));
    }
    got
}

#[test]
fn golden_cases() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "golden cases missing");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for dir in cases {
        let got = run_case(&dir);
        let expected_path = dir.join("expected.ndjson");
        if update {
            let text: String = got.iter().map(|v| format!("{v}\n")).collect();
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            got,
            expected,
            "golden case {} differs (UPDATE_GOLDEN=1 rewrites it)",
            dir.display()
        );
    }
}
