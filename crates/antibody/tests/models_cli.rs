//! `antibody models` over the real binary against a real server: a model trained by
//! `antibody train` is uploaded (inputs mapped with `--map-prefix`), a second version lands in
//! the shadow slot, is promoted and rolled back; refusals show the server's message and fail.

mod common;

use common::{TestServer, ADMIN_KEY};
use serde_json::Value;
use std::process::{Command, Output};

/// Runs the binary with no ambient server settings, so only the given flags count.
fn antibody(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_antibody"));
    for var in [
        "ANTIBODY_URL",
        "ANTIBODY_KEY",
        "ANTIBODY_ADMIN_KEY",
        "ANTIBODY_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("run antibody")
}

fn ok(args: &[&str]) -> String {
    let out = antibody(args, &[]);
    assert!(
        out.status.success(),
        "antibody {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

struct Cli {
    url: String,
}

impl Cli {
    fn models(&self, args: &[&str]) -> String {
        let mut all = vec!["models", "--url", &self.url, "--key", ADMIN_KEY];
        all.extend_from_slice(args);
        ok(&all)
    }

    fn slots(&self) -> Vec<(String, String)> {
        let v: Value = serde_json::from_str(&self.models(&["list", "--json"])).expect("JSON");
        let mut slots: Vec<(String, String)> = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_owned(),
                    m["slot"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        slots.sort();
        slots
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn upload_list_promote_and_roll_back_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = common::train_small_model(tmp.path());
    let bundle = bundle.to_str().unwrap();
    let s = TestServer::start();
    let cli = Cli {
        url: format!("http://{}", s.addr),
    };
    let upload = [
        "upload",
        "--name",
        "agents",
        "--model",
        bundle,
        "--kind",
        "vitals",
        "--map-prefix",
        "metrics.",
        "--drift-window",
        "200",
    ];

    // A partial mapping: the server names the inputs it lacks, and nothing is stored.
    let partial = [&upload[..7], &["--map", "cpu_usage_percent=metrics.cpu"]].concat();
    let mut args = vec!["models", "--url", &cli.url, "--key", ADMIN_KEY];
    args.extend_from_slice(&partial);
    let out = antibody(&args, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP 400 Bad Request"), "{err}");
    assert!(
        err.contains("no field for the model inputs memory_usage_mb"),
        "{err}"
    );
    assert!(cli.slots().is_empty());

    let out = cli.models(&upload);
    assert_eq!(out.trim(), "uploaded agents-v1 → active");
    assert_eq!(cli.slots(), pairs(&[("agents-v1", "active")]));
    let table = cli.models(&["list"]);
    let row = table.lines().nth(1).expect("a row");
    assert!(row.starts_with("agents-v1"), "{table}");
    assert!(row.contains("active") && row.contains("vitals"), "{table}");
    let v: Value = serde_json::from_str(&cli.models(&["list", "--json"])).unwrap();
    let mapping = &v["items"][0]["binding"]["mapping"];
    assert_eq!(mapping["cpu_usage_percent"], "metrics.cpu_usage_percent");
    assert_eq!(mapping.as_object().unwrap().len(), 11, "{mapping}");

    // A later version of the name waits in the shadow slot.
    assert_eq!(cli.models(&upload).trim(), "uploaded agents-v2 → shadow");
    assert_eq!(
        cli.slots(),
        pairs(&[("agents-v1", "active"), ("agents-v2", "shadow")])
    );

    let out = cli.models(&["promote", "agents-v2"]);
    assert!(out.contains("agents-v1 → retired"), "{out}");
    assert!(out.contains("agents-v2 → active"), "{out}");
    assert_eq!(
        cli.slots(),
        pairs(&[("agents-v1", "retired"), ("agents-v2", "active")])
    );

    let out = cli.models(&["rollback", "agents-v2"]);
    assert!(out.contains("agents-v1 → active"), "{out}");
    assert_eq!(
        cli.slots(),
        pairs(&[("agents-v1", "active"), ("agents-v2", "retired")])
    );

    // Nothing has been labelled or scored: the queue is empty, in both forms.
    let v: Value =
        serde_json::from_str(&cli.models(&["review", "--json", "--limit", "5"])).unwrap();
    assert_eq!(v["items"], serde_json::json!([]));
    assert!(cli.models(&["review"]).contains("empty"));

    // The URL and key may come from the environment.
    let out = antibody(
        &["models", "list"],
        &[("ANTIBODY_URL", &cli.url), ("ANTIBODY_KEY", ADMIN_KEY)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("agents-v2"));
}

#[test]
fn every_models_subcommand_has_help() {
    for sub in ["list", "upload", "promote", "rollback", "review"] {
        let out = antibody(&["models", sub, "--help"], &[]);
        assert!(out.status.success(), "{sub}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage: antibody models"), "{sub}: {help}");
        assert!(
            help.contains("--url"),
            "{sub}: the server flags are on every command"
        );
    }
    let help = String::from_utf8(antibody(&["--help"], &[]).stdout).unwrap();
    assert!(help.contains("models"), "{help}");
}

#[test]
fn refusals_show_the_servers_message_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    let url = format!("http://{}", s.addr);
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let out = antibody(
        &["models", "--url", &url, "--key", "not-a-key", "list"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("HTTP 401 Unauthorized"), "{err}");
    assert!(err.contains("unknown API key"), "{err}");
    assert!(out.stdout.is_empty());

    // Not a model: the server's reason, as it worded it.
    let model = tmp.path().join("junk.bundle");
    std::fs::write(&model, b"not a model").unwrap();
    let m = model.to_str().unwrap();
    let upload = ["upload", "--name", "x", "--model", m, "--kind", "vitals"];
    let mut args = vec!["models", "--url", &url, "--key", ADMIN_KEY];
    args.extend_from_slice(&upload);
    let out = antibody(&args, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 400 Bad Request: the model cannot be served"),
        "{}",
        stderr(&out)
    );

    // --map-prefix reads the inputs locally, so a file that is not a bundle fails early.
    args.extend_from_slice(&["--map-prefix", "metrics."]);
    let out = antibody(&args, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a bundle"), "{}", stderr(&out));

    let out = antibody(
        &[
            "models", "--url", &url, "--key", ADMIN_KEY, "promote", "nope-v1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 404 Not Found"),
        "{}",
        stderr(&out)
    );

    // Nobody listening: said plainly.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let out = antibody(&["models", "--url", &closed, "--key", "k", "list"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}
