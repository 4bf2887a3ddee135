//! `antibody sim train` writes a policy file that `antibody sim eval --policy` uses, and the
//! evaluation prints the contract's JSON shape with zero unsafe actions.

mod common;

use std::process::Command;

fn metrics_shape(m: &serde_json::Value) {
    for key in ["mttr_s", "collateral", "approvals", "damage"] {
        assert!(m[key]["mean"].is_number(), "{key} mean in {m}");
        assert!(m[key]["ci95"].is_number(), "{key} ci95 in {m}");
    }
    assert_eq!(m["unsafe"], 0, "unsafe actions in {m}");
}

#[test]
fn train_then_eval_prints_the_contract_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("policy.json");
    let f = file.to_str().unwrap();
    common::run_ok(&["sim", "train", "--episodes", "2", "--seed", "3", "--out", f]);
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(p["format"], "antibody-policy");
    assert!(!p["rows"].as_array().unwrap().is_empty());

    let out = common::run_ok(&[
        "sim",
        "eval",
        "--episodes",
        "2",
        "--seed",
        "5",
        "--scenario",
        "tool_loop",
        "--policy",
        f,
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["episodes"], 2);
    let scenarios = r["scenarios"].as_object().unwrap();
    assert_eq!(scenarios.keys().collect::<Vec<_>>(), ["tool_loop"]);
    for arm in ["static", "learned"] {
        metrics_shape(&r["scenarios"]["tool_loop"][arm]);
        metrics_shape(&r["overall"][arm]);
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let bin = env!("CARGO_BIN_EXE_antibody");
    let out = Command::new(bin)
        .args(["sim", "eval", "--episodes", "1", "--scenario", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario `nope`"));

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.json");
    std::fs::write(&file, "{\"format\":\"other\"}").unwrap();
    let out = Command::new(bin)
        .args([
            "sim",
            "eval",
            "--episodes",
            "1",
            "--policy",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
}
