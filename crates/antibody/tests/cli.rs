//! The admin subcommands work on a data dir directly (while no server holds it), and the
//! keys they print work against a server on that data dir.

mod common;

use common::TestServer;
use std::process::Command;

fn antibody(args: &[&str]) -> serde_json::Value {
    let out = common::run_ok(args);
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn tenants_and_keys_created_offline_work_online() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let t = antibody(&["tenants", "create", "acme", "--data-dir", dir]);
    let tenant = t["id"].as_str().unwrap().to_owned();
    let admin = t["admin_key"].as_str().unwrap().to_owned();
    let k = antibody(&[
        "keys",
        "create",
        "--tenant",
        &tenant,
        "--role",
        "analyst",
        "--data-dir",
        dir,
    ]);
    assert_eq!(k["role"], "analyst");
    let analyst = k["key"].as_str().unwrap().to_owned();

    let s = TestServer::start_in(tmp.path(), &[]);
    assert_eq!(s.get("/v1/findings", &analyst).status, 200);
    assert_eq!(
        s.get("/v1/keys", &admin).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The CLI writes to a data dir only while no server holds it.
    drop(s);
    let bad = Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args([
            "keys",
            "create",
            "--tenant",
            "nope",
            "--role",
            "admin",
            "--data-dir",
            dir,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no tenant `nope`"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["replay", "--help"],
        vec!["bench", "--help"],
        vec!["tenants", "create", "--help"],
        vec!["keys", "create", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_antibody"))
            .args(&sub)
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub:?}"
        );
    }
}

#[test]
fn demo_mode_feeds_the_simulated_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(tmp.path(), &["--demo"]);
    let n = common::eventually(std::time::Duration::from_secs(10), || {
        let r = s.get("/v1/entities/agent:demo-0", common::ADMIN_KEY);
        (r.status == 200).then(|| r.json()["baselines"]["tokens"]["n"].as_u64().unwrap_or(0))
    });
    assert!(n >= 1);
}
