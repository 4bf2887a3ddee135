//! `antibody replay` driven through the built binary: detection on a real SSH brute force
//! (loghub's OpenSSH_2k.log, logpai/loghub, research use), byte-identical reruns, and a
//! golden NDJSON case (`UPDATE_GOLDEN=1 cargo test -p antibody --test replay` rewrites it).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn openssh_log() -> Option<PathBuf> {
    let path = manifest_path("../../../shared/data/loghub/OpenSSH/OpenSSH_2k.log");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is missing (the shared data set is not mounted)",
            path.display()
        );
        None
    }
}

fn replay(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_antibody"));
    cmd.arg("replay")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "replay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Failed password attempts per source address, counted straight from the raw log.
fn failures_per_ip(log: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        if let Some((_, rest)) = line.split_once("Failed password for ") {
            if let Some((_, peer)) = rest.rsplit_once(" from ") {
                let ip = peer.split_whitespace().next().unwrap().to_owned();
                *counts.entry(ip).or_default() += 1;
            }
        }
    }
    counts
}

#[test]
fn openssh_brute_force_is_found_for_the_attacking_addresses() {
    let Some(log) = openssh_log() else { return };
    let out = replay(&[log.to_str().unwrap()], None);
    let findings: Vec<Value> = lines(&out)
        .into_iter()
        .filter(|v| v["type"] == "finding")
        .collect();
    let flagged: BTreeSet<String> = findings
        .iter()
        .filter(|f| f["kind"] == "brute_force")
        .map(|f| f["evidence"]["group"].as_str().unwrap().to_owned())
        .collect();
    let failures = failures_per_ip(&log);
    for (ip, n) in &failures {
        if *n >= 15 {
            assert!(
                flagged.contains(ip),
                "{ip} failed {n} times but was not flagged; flagged: {flagged:?}"
            );
        }
    }
    for ip in &flagged {
        assert!(
            failures.contains_key(ip),
            "{ip} was flagged but never failed a password"
        );
    }
    assert!(
        !flagged.contains("119.137.62.142"),
        "the one successful login is not an attacker"
    );
    assert!(findings.iter().all(|f| f["entity"] == "host:LabSZ"));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("2000 lines read"), "{summary}");
}

/// The golden test pins the default flags' output; this covers other flags and real logs.
#[test]
fn replay_is_byte_identical_across_runs() {
    let golden = manifest_path("tests/golden/events.ndjson");
    let args = [golden.to_str().unwrap(), "--partitions", "4"];
    assert_eq!(replay(&args, None).stdout, replay(&args, None).stdout);
    if let Some(log) = openssh_log() {
        let args = [
            log.to_str().unwrap(),
            "--format",
            "authlog",
            "--year",
            "2015",
        ];
        let first = replay(&args, None).stdout;
        assert!(!first.is_empty());
        assert_eq!(first, replay(&args, None).stdout);
    }
}

#[test]
fn golden_ndjson() {
    let input = manifest_path("tests/golden/events.ndjson");
    let expected_path = manifest_path("tests/golden/expected.ndjson");
    let out = replay(&[input.to_str().unwrap()], None);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &out.stdout).unwrap();
    }
    let expected = std::fs::read(&expected_path).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected),
        "replay output changed; if intended, rerun with UPDATE_GOLDEN=1"
    );
}

#[test]
fn stdin_and_gzip_inputs_give_the_golden_output() {
    let input = manifest_path("tests/golden/events.ndjson");
    let plain = std::fs::read(&input).unwrap();
    let from_file = std::fs::read(manifest_path("tests/golden/expected.ndjson")).unwrap();
    assert_eq!(replay(&["-"], Some(&plain)).stdout, from_file);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("events.ndjson.gz");
    std::fs::write(&gz_path, &gz).unwrap();
    assert_eq!(replay(&[gz_path.to_str().unwrap()], None).stdout, from_file);
    assert_eq!(
        replay(&["-", "--format", "ndjson"], Some(&gz)).stdout,
        from_file
    );
}

/// `--respond` on the real brute force: every attacking address is blocked with a TTL, the
/// TTL runs out within the log's own time and the block is undone, the repeat offender's
/// second block lasts longer, and the decisions are byte-identical on a rerun.
#[test]
fn respond_blocks_expires_and_escalates_repeat_offenders() {
    let Some(log) = openssh_log() else { return };
    let log = log.to_str().unwrap();
    let first = replay(&[log, "--respond"], None);
    assert_eq!(
        first.stdout,
        replay(&[log, "--respond"], None).stdout,
        "not deterministic"
    );
    let mut blocks: BTreeMap<String, BTreeSet<(String, u64)>> = BTreeMap::new();
    let mut undone = BTreeSet::new();
    for v in lines(&first)
        .into_iter()
        .filter(|v| v["type"] == "decision")
    {
        let d = &v["decision"];
        let a = &d["action"];
        if a["kind"] != "block_ip" {
            continue;
        }
        let target = a["target"].as_str().unwrap().to_owned();
        if d["type"] == "undo" {
            undone.insert(target.clone());
        }
        blocks.entry(target).or_default().insert((
            a["status"].as_str().unwrap().to_owned(),
            a["ttl"].as_u64().unwrap(),
        ));
    }
    let flagged: BTreeSet<String> = failures_per_ip(Path::new(log))
        .into_iter()
        .filter(|(_, n)| *n >= 15)
        .map(|(ip, _)| ip)
        .collect();
    for ip in &flagged {
        let b = blocks
            .get(ip)
            .unwrap_or_else(|| panic!("{ip} was never blocked"));
        assert!(b.contains(&("succeeded".into(), 3600)), "{ip}: {b:?}");
    }
    assert!(!undone.is_empty(), "no block expired within the log's time");
    let longer = blocks
        .values()
        .any(|b| b.iter().any(|(s, ttl)| s == "succeeded" && *ttl > 3600));
    assert!(longer, "no repeat offender got a longer block: {blocks:?}");
}

#[test]
fn playbooks_what_if_prints_what_would_change() {
    let Some(log) = openssh_log() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strict.yml"),
        "- id: ssh-strict\n  description: Day-long blocks, with approval\n  trigger:\n    kinds: [brute_force]\n  mode: approve\n  steps:\n    - action: block_ip\n      target: \"{{src_ip}}\"\n      ttl: 24h\n",
    )
    .unwrap();
    let out = replay(
        &[
            log.to_str().unwrap(),
            "--playbooks",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    let changes: Vec<Value> = lines(&out)
        .into_iter()
        .filter(|v| v["type"] == "what_if")
        .collect();
    assert!(!changes.is_empty());
    assert!(
        changes
            .iter()
            .all(|c| c["action"]["mode"] == "approval" && c["action"]["ttl"] == 86_400),
        "{changes:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("what-if:"));
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("bad.yml"), "- id: x\n  mode: sometimes\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args([
            "replay",
            log.to_str().unwrap(),
            "--playbooks",
            bad.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory named with `--playbooks` or `--rules` that does not exist is a mistake, not
/// an empty set: the replay refuses it and names it, instead of reporting "0 changed".
#[test]
fn a_missing_playbooks_or_rules_dir_is_refused() {
    let events = manifest_path("tests/golden/events.ndjson");
    let missing = tempfile::tempdir().unwrap().path().join("no-such-dir");
    for flag in ["--playbooks", "--rules"] {
        let out = Command::new(env!("CARGO_BIN_EXE_antibody"))
            .args(["replay", events.to_str().unwrap(), flag])
            .arg(&missing)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag}: {stderr}");
        assert!(
            stderr.contains("no-such-dir") && stderr.contains(flag),
            "{flag}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{flag}: nothing replayed");
    }
}

/// `n` ordinary product views then one injection, as NDJSON.
fn shop_traffic(n: usize) -> Vec<u8> {
    let mut out = String::new();
    let line = |ts: usize, q: &str| {
        serde_json::json!({"ts": ts as i64 * 1000, "entity": format!("ip:10.0.0.{}", ts % 7),
            "kind": "http", "attrs": {"method": "GET", "path": "/shop/item.jsp", "query": q,
            "host": "shop.example", "src_ip": format!("10.0.0.{}", ts % 7)}})
        .to_string()
    };
    for i in 0..n {
        out.push_str(&line(i, &format!("id={}&q=red+wine", i % 9 + 1)));
        out.push('\n');
    }
    out.push_str(&line(n, "id=1+AND+1%3D1&q=red"));
    out.push('\n');
    out.into_bytes()
}

/// Replay runs the profiles as `serve` does, with the `[engine]` section of `--config`:
/// it learns the normal requests and judges the new one with what it learned.
#[test]
fn replay_learns_web_profiles_with_the_engine_section_of_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("antibody.toml");
    let input = shop_traffic(30);
    std::fs::write(&cfg, "[engine.web_profiles]\nlearn_requests = 20\n").unwrap();
    let out = replay(&["--config", cfg.to_str().unwrap(), "-"], Some(&input));
    let found: Vec<Value> = lines(&out)
        .into_iter()
        .filter(|v| v["type"] == "finding" && v["kind"] == "web_anomaly")
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["detector"], "profile");
    assert_eq!(found[0]["entity"], "ip:10.0.0.2");
    assert_eq!(found[0]["evidence"]["template"], "/shop/item.jsp");
    assert!(found[0]["explanation"]["text"]
        .as_str()
        .unwrap()
        .contains("parameter `id` expected digits"));

    // The default (200 requests to learn) judges nothing yet; `enabled = false` nothing ever.
    let out = replay(&["-"], Some(&input));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("web_anomaly"));
    std::fs::write(
        &cfg,
        "[engine.web_profiles]\nenabled = false\nlearn_requests = 20\n",
    )
    .unwrap();
    let out = replay(&["--config", cfg.to_str().unwrap(), "-"], Some(&input));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("web_anomaly"));

    std::fs::write(&cfg, "[engine.web_profiles]\nthreshold = 2.0\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(["replay", "--config", cfg.to_str().unwrap(), "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("threshold"));
}
