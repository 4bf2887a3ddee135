//! `antibody playbooks`, `antibody rules`, `antibody policy`: a tenant's own playbooks,
//! rules and response policy on a running server (the key's tenant), over the global layer:
//! show what is in force, fetch and store documents (validated by the server, every error
//! with `file:line`), list versions with their diffs, roll back. `--global` addresses the
//! bootstrap admin's global files instead. One request per command, through the client of
//! `antibody models`.

use crate::models_cli::{answer, encode_segment, table, text, Client, ServerArgs};
use anyhow::{bail, Context, Result};
use hyper::Method;
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct DocsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    cmd: DocsCmd,
}

#[derive(clap::Subcommand)]
enum DocsCmd {
    /// Without NAME: what is in force for the key's tenant, each marked `tenant` (its own) or
    /// `global`. With NAME: the tenant's document NAME, else the global file NAME.yml, as YAML.
    Get {
        /// Document name (`brute_force` for the default pack's brute_force.yml).
        name: Option<String>,
        /// Show this stored version of NAME instead of the newest.
        #[arg(long, requires = "name")]
        version: Option<u32>,
        /// The global layer instead of the tenant's.
        #[arg(long)]
        global: bool,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store FILE (`-` for stdin, YAML) as the next version of the tenant's document NAME.
    /// A playbook or rule id in it replaces the global one for this tenant; new ids add. The
    /// server validates it with the rest (every error, `tenant/NAME.yml:LINE`), puts it in
    /// force at once and audits the change.
    Put {
        /// Document name: 1–64 letters, digits, `-` and `_`.
        name: String,
        /// The YAML file, or `-` for stdin.
        file: PathBuf,
        /// Replace the global file `<data-dir>/<kind>/NAME.yml` (bootstrap admin only).
        #[arg(long)]
        global: bool,
    },
    /// The stored versions of NAME (version, time, actor, sha256); with --show, one
    /// version's line diff against the version before it.
    Versions(VersionsArgs),
    /// Store version VERSION of NAME again, as the newest version (validated, in force, audited).
    Rollback {
        /// Document name.
        name: String,
        /// The version to restore (see `versions`).
        version: u32,
    },
}

#[derive(clap::Args)]
struct VersionsArgs {
    /// Document name.
    name: String,
    #[command(flatten)]
    show: ShowArgs,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// Show this version's diff.
    #[arg(long, value_name = "VERSION")]
    show: Option<u32>,
    /// Compare with this version instead of the one before.
    #[arg(long, value_name = "VERSION", requires = "show")]
    against: Option<u32>,
    /// Print the server's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    cmd: PolicyCmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PolicyFormat {
    Toml,
    Json,
}

#[derive(clap::Subcommand)]
enum PolicyCmd {
    /// The response policy in force for the key's tenant (its own document over the
    /// configured `[respond]` policy), as JSON.
    Get {
        /// Print the tenant's stored document as it was sent instead.
        #[arg(long)]
        document: bool,
    },
    /// Store FILE (`-` for stdin) as the tenant's policy: `mode` / `modes` (auto, approval,
    /// notify, dry_run, for all playbooks or per playbook id), approval thresholds,
    /// `allow` (entities, cidrs), `guard` caps. Keys left out keep the configured value.
    Put {
        /// A `.toml` or `.json` file, or `-` for stdin (with --format).
        file: PathBuf,
        /// The document's language; default: from FILE's extension (`.toml`, `.json`).
        #[arg(long, value_enum)]
        format: Option<PolicyFormat>,
    },
    /// The stored versions of the policy; with --show, one version's line diff.
    Versions(ShowArgs),
    /// Store version VERSION of the policy again, as the newest version.
    Rollback {
        /// The version to restore (see `versions`).
        version: u32,
    },
}

/// Runs `antibody playbooks …` (`kind` = `playbooks`) or `antibody rules …` (`rules`).
pub fn run_docs(kind: &'static str, args: DocsArgs) -> Result<()> {
    answer(docs(kind, args))
}

pub fn run_policy(args: PolicyArgs) -> Result<()> {
    answer(policy(args))
}

fn docs(kind: &str, args: DocsArgs) -> Result<()> {
    let client = Client::new(&args.server)?;
    let scope = |global: bool| if global { "?scope=global" } else { "" };
    match args.cmd {
        DocsCmd::Get {
            name: None,
            global,
            json,
            ..
        } => {
            let v = client.call(Method::GET, &format!("/v1/{kind}{}", scope(global)), None)?;
            print_json_or(&v, json, || render_in_force(kind, &v))
        }
        DocsCmd::Get {
            name: Some(name),
            version,
            global,
            json,
        } => {
            let doc = doc_path(kind, &name);
            let path = match version {
                Some(n) => format!("{doc}/versions/{n}"),
                None => format!("{doc}{}", scope(global)),
            };
            let v = client.call(Method::GET, &path, None)?;
            print_json_or(&v, json, || text(&v["text"]))
        }
        DocsCmd::Put { name, file, global } => {
            let body = read_input(&file)?;
            let path = format!("{}{}", doc_path(kind, &name), scope(global));
            let v = client.call_as(Method::PUT, &path, Some(body), "application/yaml")?;
            println!("{}", stored(kind, &v));
            Ok(())
        }
        DocsCmd::Versions(a) => versions(&client, &doc_path(kind, &a.name), &a.show),
        DocsCmd::Rollback { name, version } => {
            let path = format!("{}/rollback", doc_path(kind, &name));
            let body = json!({ "version": version }).to_string();
            let v = client.call(Method::POST, &path, Some(body))?;
            println!("{}", stored(kind, &v));
            Ok(())
        }
    }
}

fn policy(args: PolicyArgs) -> Result<()> {
    let client = Client::new(&args.server)?;
    match args.cmd {
        PolicyCmd::Get { document } => {
            let v = client.call(Method::GET, "/v1/policy", None)?;
            if document {
                match v["document"]["text"].as_str() {
                    Some(t) => print!("{t}"),
                    None => bail!(
                        "the tenant has no policy document: the configured policy is in force"
                    ),
                }
            } else {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            Ok(())
        }
        PolicyCmd::Put { file, format } => {
            let format = match format {
                Some(f) => f,
                None => format_of(&file)?,
            };
            let ct = match format {
                PolicyFormat::Toml => "application/toml",
                PolicyFormat::Json => "application/json",
            };
            let v = client.call_as(Method::PUT, "/v1/policy", Some(read_input(&file)?), ct)?;
            println!("{}", stored("policy", &v));
            Ok(())
        }
        PolicyCmd::Versions(show) => versions(&client, "/v1/policy", &show),
        PolicyCmd::Rollback { version } => {
            let body = json!({ "version": version }).to_string();
            let v = client.call(Method::POST, "/v1/policy/rollback", Some(body))?;
            println!("{}", stored("policy", &v));
            Ok(())
        }
    }
}

fn doc_path(kind: &str, name: &str) -> String {
    format!("/v1/{kind}/{}", encode_segment(name))
}

fn versions(client: &Client, doc: &str, a: &ShowArgs) -> Result<()> {
    let Some(n) = a.show else {
        let v = client.call(Method::GET, &format!("{doc}/versions"), None)?;
        return print_json_or(&v, a.json, || render_versions(&v));
    };
    let against = a.against.map(|u| format!("?diff={u}")).unwrap_or_default();
    let v = client.call(Method::GET, &format!("{doc}/versions/{n}{against}"), None)?;
    print_json_or(&v, a.json, || {
        let base = v["against"]
            .as_u64()
            .map_or("nothing".to_owned(), |u| format!("version {u}"));
        let mut out = format!("version {n} against {base}\n");
        for line in v["diff"].as_array().into_iter().flatten() {
            out.push_str(line.as_str().unwrap_or(""));
            out.push('\n');
        }
        out
    })
}

fn print_json_or(v: &Value, json: bool, render: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        print!("{}", render());
    }
    Ok(())
}

/// One line for a stored change.
fn stored(kind: &str, v: &Value) -> String {
    let n = v["in_force"].as_u64().unwrap_or(0);
    match v["version"].as_u64() {
        Some(version) => {
            let sha = text(&v["sha256"]);
            let back = v["rollback_of"]
                .as_u64()
                .map(|u| format!(", restoring version {u}"))
                .unwrap_or_default();
            format!(
                "stored {kind} `{}` version {version}{back} (sha256 {}…); {n} in force for the tenant",
                text(&v["name"]),
                sha.get(..12).unwrap_or(&sha)
            )
        }
        None => format!(
            "replaced the global file {}; {n} in force globally",
            text(&v["file"])
        ),
    }
}

fn render_in_force(kind: &str, v: &Value) -> String {
    let items: Vec<Value> = v["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return format!("no {kind} in force\n");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let what = if kind == "rules" {
                &i["kind"]
            } else {
                &i["mode"]
            };
            vec![
                text(&i["id"]),
                text(what),
                text(&i["layer"]),
                text(&i["file"]),
            ]
        })
        .collect();
    let second = if kind == "rules" { "KIND" } else { "MODE" };
    table(&["ID", second, "LAYER", "FILE"], &rows)
}

fn render_versions(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let sha = text(&i["sha256"]);
            vec![
                i["version"].to_string(),
                i["ts"].to_string(),
                text(&i["actor"]),
                text(&i["format"]),
                sha.get(..12).unwrap_or(&sha).to_owned(),
                i["rollback_of"]
                    .as_u64()
                    .map_or("-".to_owned(), |u| u.to_string()),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "TS_MS",
            "ACTOR",
            "FORMAT",
            "SHA256",
            "ROLLBACK_OF",
        ],
        &rows,
    )
}

fn format_of(file: &Path) -> Result<PolicyFormat> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("toml") => Ok(PolicyFormat::Toml),
        Some("json") => Ok(PolicyFormat::Json),
        _ => bail!(
            "{}: name a .toml or .json file, or pass --format",
            file.display()
        ),
    }
}

/// FILE's text, or stdin's for `-`.
fn read_input(file: &Path) -> Result<String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_changes_read_as_one_line() {
        let v = json!({"name": "bf", "version": 3, "rollback_of": 1, "sha256": "0123456789abcdef", "in_force": 9});
        assert_eq!(
            stored("playbooks", &v),
            "stored playbooks `bf` version 3, restoring version 1 (sha256 0123456789ab…); 9 in force for the tenant"
        );
        let g = json!({"name": "x", "file": "x.yml", "in_force": 12});
        assert_eq!(
            stored("rules", &g),
            "replaced the global file x.yml; 12 in force globally"
        );
    }

    #[test]
    fn policy_format_follows_the_extension() {
        assert_eq!(format_of(Path::new("p.toml")).unwrap(), PolicyFormat::Toml);
        assert_eq!(format_of(Path::new("p.json")).unwrap(), PolicyFormat::Json);
        assert!(format_of(Path::new("p.yml")).is_err());
    }
}
