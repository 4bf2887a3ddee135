//! `antibody models`: the model registry of a running server from the command line. List the
//! versions with their live counters, upload a bundle from `antibody train --bundle` (or an
//! ONNX file) with its field mapping, promote, roll back, and read the review queue.
//!
//! Each command is one plain HTTP/1.1 request over a hyper connection, like `antibody bench`.
//! A refusal is shown as the server worded it (`{"error": {"message"}}`) with the status,
//! and the command fails (exit code 1).

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest one request may take, answer included: the server parses, probes and binds an
/// uploaded model before it answers, which can take seconds for a large file.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of a non-JSON error body is shown (a proxy's HTML page, say).
const MAX_SHOWN_ERROR: usize = 300;

#[derive(clap::Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    cmd: ModelsCmd,
}

/// Where the server is and which key to use; shared with `antibody playbooks|rules|policy`.
#[derive(clap::Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the antibody server (plain HTTP).
    #[arg(
        long,
        env = "ANTIBODY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        help_heading = "Server"
    )]
    url: String,

    /// API key (it picks the tenant): `analyst` reads, `admin` changes. Falls back to
    /// `ANTIBODY_ADMIN_KEY`, then to `<data-dir>/admin.key`.
    #[arg(
        long,
        env = "ANTIBODY_KEY",
        hide_env_values = true,
        global = true,
        help_heading = "Server"
    )]
    key: Option<String>,

    /// Data directory of a local server, to read `admin.key` from when no key is given.
    #[arg(
        long,
        env = "ANTIBODY_DATA_DIR",
        default_value = "./antibody-data",
        global = true,
        help_heading = "Server"
    )]
    data_dir: PathBuf,
}

#[derive(clap::Subcommand)]
enum ModelsCmd {
    /// The tenant's model versions: slot, format, event kind, live counters, shadow agreement
    /// and the largest input drift (PSI).
    List {
        /// Print the server's JSON (`{"items": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Upload a model and bind it to an event kind through a field mapping. The first version
    /// of a name goes active, later ones to the shadow slot (scored, never reporting).
    Upload(Box<UploadArgs>),
    /// Make a version the active one; the version it replaces is retired and remembered as
    /// the rollback target.
    Promote {
        /// Version id, e.g. `agents-v2` (see `antibody models list`).
        id: String,
    },
    /// Retire the active version and reactivate the one it replaced.
    Rollback {
        /// Id of the active version, e.g. `agents-v2`.
        id: String,
    },
    /// Low-confidence model findings awaiting a label, newest first (label them with
    /// `POST /v1/feedback`; enough labels retrain the model into the shadow slot).
    Review {
        /// At most this many findings (server default and bounds apply).
        #[arg(long)]
        limit: Option<u32>,
        /// Print the server's JSON (`{"items": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// A single-file bundle written by `antibody train --bundle`.
    #[default]
    Ensemble,
    /// An ONNX model, described by --onnx-spec.
    Onnx,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Ensemble => "ensemble",
            Format::Onnx => "onnx",
        }
    }
}

#[derive(clap::Args)]
struct UploadArgs {
    /// Model name (1–64 of a–z, 0–9, `-`, `_`); versions of one name share the slots.
    #[arg(long)]
    name: String,

    /// The model file: a bundle from `antibody train --bundle`, or ONNX with `--format onnx`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,

    /// The event kind the model scores, e.g. `vitals`.
    #[arg(long, value_name = "KIND")]
    kind: String,

    /// One model input and the event field it reads: `COL=metrics.<m>`, `COL=attrs.<a>`,
    /// `COL=ts.hour` or `COL=ts.weekday` (repeatable; wins over --map-file and --map-prefix).
    #[arg(long = "map", value_name = "COL=FIELD", value_parser = parse_pair)]
    map: Vec<(String, String)>,

    /// A mapping file: a flat table of `column = "field"` (`.toml`) or
    /// `{"column": "field"}` (`.json`); wins over --map-prefix.
    #[arg(long, value_name = "FILE")]
    map_file: Option<PathBuf>,

    /// Map every model input not mapped otherwise to `<PREFIX><input>`, e.g. `metrics.`
    /// (the inputs are read from the model file).
    #[arg(long, value_name = "PREFIX")]
    map_prefix: Option<String>,

    /// `active` or `shadow`; default: active for a new name, shadow for a later version.
    #[arg(long, value_parser = ["active", "shadow"])]
    slot: Option<String>,

    /// The model file's format.
    #[arg(long, value_enum, default_value_t = Format::Ensemble)]
    format: Format,

    /// For `--format onnx`: a JSON file `{"features": [inputs in order], "output":
    /// "probability|logit|two_class", "threshold"?, "baseline"?}`.
    #[arg(long, value_name = "FILE", required_if_eq("format", "onnx"))]
    onnx_spec: Option<PathBuf>,

    /// Distance from the threshold within which a finding waits for review (server default 0.1).
    #[arg(long)]
    review_band: Option<f32>,

    /// PSI at which an input's drift is reported as `model_drift` (server default 0.2).
    #[arg(long)]
    drift_psi: Option<f64>,

    /// Rows in the rolling drift window (server default 1000).
    #[arg(long)]
    drift_window: Option<usize>,
}

/// Runs one command. A failure (a refusal by the server above all) is an answer, not a bug:
/// it is printed as one plain line, without the backtrace `main` would add, and exits 1.
pub fn run(args: ModelsArgs) -> Result<()> {
    answer(execute(args))
}

/// A command's failure is printed as one plain line and exits 1 (see [`run`]).
pub(crate) fn answer(result: Result<()>) -> Result<()> {
    if let Err(e) = result {
        let _ = std::io::stdout().flush();
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

fn execute(args: ModelsArgs) -> Result<()> {
    let client = Client::new(&args.server)?;
    match args.cmd {
        ModelsCmd::List { json } => {
            let v = client.call(Method::GET, "/v1/models", None)?;
            print_items(&v, json, render_models)
        }
        ModelsCmd::Upload(up) => upload(&client, &up),
        ModelsCmd::Promote { id } => change(&client, &id, "promote"),
        ModelsCmd::Rollback { id } => change(&client, &id, "rollback"),
        ModelsCmd::Review { limit, json } => {
            let path = match limit {
                Some(n) => format!("/v1/review-queue?limit={n}"),
                None => "/v1/review-queue".to_owned(),
            };
            let v = client.call(Method::GET, &path, None)?;
            print_items(&v, json, render_review)
        }
    }
}

fn print_items(v: &Value, json: bool, render: fn(&[Value]) -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    let items = v["items"]
        .as_array()
        .context("the server's answer has no `items` list")?;
    print!("{}", render(items));
    Ok(())
}

fn upload(client: &Client, up: &UploadArgs) -> Result<()> {
    let file = std::fs::read(&up.model)
        .with_context(|| format!("reading the model file {}", up.model.display()))?;
    let onnx = match &up.onnx_spec {
        Some(path) => Some(read_json(path)?),
        None => None,
    };
    let from_file = match &up.map_file {
        Some(path) => read_map_file(path)?,
        None => BTreeMap::new(),
    };
    let inputs = match &up.map_prefix {
        Some(_) => model_inputs(up.format, &file, onnx.as_ref())?,
        None => Vec::new(),
    };
    let mapping = build_mapping(&inputs, up.map_prefix.as_deref(), from_file, &up.map);
    let body = upload_body(up, &file, mapping, onnx);
    let v = client.call(Method::POST, "/v1/models", Some(body.to_string()))?;
    println!(
        "uploaded {} → {}",
        v["id"].as_str().unwrap_or("?"),
        v["slot"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// The `POST /v1/models` body; options left out take the server's defaults.
fn upload_body(
    up: &UploadArgs,
    file: &[u8],
    mapping: BTreeMap<String, String>,
    onnx: Option<Value>,
) -> Value {
    let mut body = json!({
        "name": up.name,
        "format": up.format.as_str(),
        "file": base64::engine::general_purpose::STANDARD.encode(file),
        "event_kind": up.kind,
        "mapping": mapping,
    });
    let optional = [
        ("slot", up.slot.as_ref().map(|s| json!(s))),
        ("review_band", up.review_band.map(|v| json!(v))),
        ("drift_psi", up.drift_psi.map(|v| json!(v))),
        ("drift_window", up.drift_window.map(|v| json!(v))),
        ("onnx", onnx),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    body
}

fn change(client: &Client, id: &str, what: &str) -> Result<()> {
    let path = format!("/v1/models/{}/{what}", encode_segment(id));
    let v = client.call(Method::POST, &path, None)?;
    for r in v["changed"].as_array().into_iter().flatten() {
        println!(
            "{} → {}",
            r["id"].as_str().unwrap_or("?"),
            r["slot"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `COL=FIELD` of `--map`.
fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((col, field)) if !col.trim().is_empty() && !field.trim().is_empty() => {
            Ok((col.trim().to_owned(), field.trim().to_owned()))
        }
        _ => Err(format!(
            "`{s}` is not COL=FIELD (e.g. tokens=metrics.tokens)"
        )),
    }
}

/// Precedence: `--map` over the mapping file over `--map-prefix` for the model's `inputs`.
fn build_mapping(
    inputs: &[String],
    prefix: Option<&str>,
    from_file: BTreeMap<String, String>,
    pairs: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut mapping: BTreeMap<String, String> = match prefix {
        Some(p) => inputs
            .iter()
            .map(|c| (c.clone(), format!("{p}{c}")))
            .collect(),
        None => BTreeMap::new(),
    };
    mapping.extend(from_file);
    mapping.extend(pairs.iter().cloned());
    mapping
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn read_map_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_map_file(path, &text)
}

fn parse_map_file(path: &Path, text: &str) -> Result<BTreeMap<String, String>> {
    let what = || {
        format!(
            "{}: expected a flat table of column = \"field\"",
            path.display()
        )
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(text).with_context(what),
        Some("json") => serde_json::from_str(text).with_context(what),
        _ => bail!(
            "{}: a mapping file must end in .toml or .json",
            path.display()
        ),
    }
}

/// The model's input columns, read from the file (ensemble) or the ONNX spec, for
/// `--map-prefix`.
fn model_inputs(format: Format, file: &[u8], onnx: Option<&Value>) -> Result<Vec<String>> {
    match format {
        Format::Ensemble => {
            let model = antibody_ml::model::Model::from_bundle(file)
                .context("--map-prefix needs the model's inputs, but the model file is not a bundle from `antibody train --bundle`")?;
            Ok(model.manifest.feature_set.input_columns())
        }
        Format::Onnx => onnx
            .and_then(|s| s["features"].as_array())
            .and_then(|f| f.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .context("--map-prefix needs the model's inputs: --onnx-spec must list `features` as strings"),
    }
}

/// The model table of `list`.
fn render_models(items: &[Value]) -> String {
    if items.is_empty() {
        return "no models; upload one with `antibody models upload`\n".to_owned();
    }
    let header = [
        "ID",
        "SLOT",
        "FORMAT",
        "KIND",
        "SCORED",
        "REPORTED",
        "SHADOW AGREEMENT",
        "MAX PSI",
    ];
    let rows: Vec<Vec<String>> = items.iter().map(model_row).collect();
    table(&header, &rows)
}

fn model_row(m: &Value) -> Vec<String> {
    let live = &m["live"];
    let count = |v: &Value| v.as_u64().map_or("-".to_owned(), |n| n.to_string());
    let agreement = live["shadow_agreement"]
        .as_f64()
        .map_or("-".to_owned(), |a| format!("{:.1}%", a * 100.0));
    let max_psi = live["drift"]["psi"]
        .as_object()
        .and_then(|psi| psi.values().filter_map(Value::as_f64).reduce(f64::max))
        .map_or("-".to_owned(), |p| format!("{p:.3}"));
    vec![
        text(&m["id"]),
        text(&m["slot"]),
        text(&m["format"]),
        text(&m["binding"]["event_kind"]),
        count(&live["scored"]),
        count(&live["reported"]),
        agreement,
        max_psi,
    ]
}

/// The finding table of `review`.
fn render_review(items: &[Value]) -> String {
    if items.is_empty() {
        return "the review queue is empty\n".to_owned();
    }
    let header = ["FINDING", "TIME", "ENTITY", "MODEL", "SEVERITY", "SCORE"];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|f| {
            vec![
                text(&f["id"]),
                text(&f["ts"]),
                text(&f["entity"]),
                text(&f["detector"]),
                text(&f["severity"]),
                f["score"]
                    .as_f64()
                    .map_or("-".to_owned(), |s| format!("{s:.3}")),
            ]
        })
        .collect();
    table(&header, &rows)
}

pub(crate) fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_owned()
}

/// Left-aligned columns two spaces apart, padded to the widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Percent-encodes one path segment (ids are typed by people).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The sentence to show for a refused request: the API's `error.message` when the body is
/// the API's error shape, else the start of the body as text.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(msg) = parsed.as_ref().and_then(|v| v["error"]["message"].as_str()) {
        return msg.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_owned();
    }
    text.chars().take(MAX_SHOWN_ERROR).collect()
}

/// One server, one key; each call is a fresh connection (a command makes one request).
pub(crate) struct Client {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header.
    authority: String,
    /// The URL's path, prepended to every API path.
    base: String,
    bearer: String,
}

impl Client {
    pub(crate) fn new(server: &ServerArgs) -> Result<Self> {
        let uri: Uri = server
            .url
            .parse()
            .with_context(|| format!("invalid --url {:?}", server.url))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must start with http:// (the CLI speaks plain HTTP/1.1)");
        }
        let authority = uri.authority().context("--url has no host")?;
        Ok(Self {
            addr: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            authority: authority.as_str().to_owned(),
            base: uri.path().trim_end_matches('/').to_owned(),
            bearer: format!(
                "Bearer {}",
                crate::bench::resolve_key(server.key.as_deref(), &server.data_dir)?
            ),
        })
    }

    /// Sends one request (a JSON body, if any); a 2xx answer's JSON, or the server's
    /// refusal as the error.
    pub(crate) fn call(&self, method: Method, path: &str, body: Option<String>) -> Result<Value> {
        self.call_as(method, path, body, "application/json")
    }

    /// [`Client::call`] with a body of another `content_type` (YAML, TOML).
    pub(crate) fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> Result<Value> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let what = format!("{method} {path}");
        let (status, bytes) = runtime
            .block_on(async {
                let sent = self.send(method, path, body, content_type);
                tokio::time::timeout(REQUEST_TIMEOUT, sent).await
            })
            .map_err(|_| anyhow::anyhow!("{what}: no answer within {REQUEST_TIMEOUT:?}"))??;
        if !status.is_success() {
            bail!("HTTP {status}: {}", error_message(&bytes));
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{what}: the server's answer is not JSON"))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> Result<(StatusCode, Bytes)> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("cannot connect to {} (--url, ANTIBODY_URL)", self.addr))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        // The connection future does the socket I/O; it ends when the request is done.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(HOST, self.authority.as_str())
            .header(AUTHORIZATION, self.bearer.as_str())
            .header(ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, content_type);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("sending the request to {}", self.addr))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .context("reading the server's answer")?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_pair("tokens=metrics.tokens"),
            Ok(("tokens".into(), "metrics.tokens".into()))
        );
        assert_eq!(
            parse_pair(" a = attrs.b=c "),
            Ok(("a".into(), "attrs.b=c".into()))
        );
        for bad in ["tokens", "=metrics.x", "x=", " = ", ""] {
            assert!(parse_pair(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pairs_round_trip_whatever_the_spacing() {
        // Property over a grid of awkward pieces: `col=field` always parses to the trimmed
        // pieces, with any further `=` kept in the field.
        let cols = ["a", " tokens", "hour_of_day ", "é", "x y"];
        let fields = ["metrics.a", " ts.hour ", "attrs.q=1", "=x"];
        for c in cols {
            for f in fields {
                let (col, field) = parse_pair(&format!("{c}={f}")).unwrap();
                assert_eq!((col.as_str(), field.as_str()), (c.trim(), f.trim()));
            }
        }
    }

    #[test]
    fn the_upload_body_has_the_api_shape_and_leaves_defaults_to_the_server() {
        let mut up = UploadArgs {
            name: "agents".into(),
            model: PathBuf::from("m.bundle"),
            kind: "vitals".into(),
            map: Vec::new(),
            map_file: None,
            map_prefix: None,
            slot: None,
            format: Format::Ensemble,
            onnx_spec: None,
            review_band: None,
            drift_psi: None,
            drift_window: None,
        };
        let mapping = BTreeMap::from([("a".to_owned(), "metrics.a".to_owned())]);
        let body = upload_body(&up, b"\x00model", mapping.clone(), None);
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["event_kind", "file", "format", "mapping", "name"]);
        assert_eq!(body["file"], "AG1vZGVs");
        assert_eq!(body["format"], "ensemble");
        assert_eq!(body["mapping"]["a"], "metrics.a");
        up.slot = Some("shadow".into());
        up.drift_window = Some(200);
        up.format = Format::Onnx;
        let body = upload_body(&up, b"", mapping, Some(json!({"features": ["a"]})));
        assert_eq!(body["slot"], "shadow");
        assert_eq!(body["drift_window"], 200);
        assert_eq!(body["format"], "onnx");
        assert_eq!(body["onnx"]["features"][0], "a");
        assert!(body.get("review_band").is_none());
    }

    #[test]
    fn explicit_pairs_win_over_the_file_which_wins_over_the_prefix() {
        let inputs = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let file = BTreeMap::from([("b".to_owned(), "attrs.b".to_owned())]);
        let pairs = [("c".to_owned(), "ts.hour".to_owned())];
        let m = build_mapping(&inputs, Some("metrics."), file, &pairs);
        assert_eq!(m["a"], "metrics.a");
        assert_eq!(m["b"], "attrs.b");
        assert_eq!(m["c"], "ts.hour");
        assert_eq!(m.len(), 3);
        // Without a prefix the inputs are not consulted: the server names what is missing.
        let m = build_mapping(&inputs, None, BTreeMap::new(), &pairs);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn mapping_files_are_toml_or_json_flat_tables() {
        let toml = parse_map_file(Path::new("m.toml"), "a = \"metrics.a\"\nb = \"ts.hour\"\n");
        assert_eq!(toml.unwrap()["b"], "ts.hour");
        let json = parse_map_file(Path::new("m.json"), r#"{"a": "attrs.x"}"#);
        assert_eq!(json.unwrap()["a"], "attrs.x");
        assert!(parse_map_file(Path::new("m.toml"), "[mapping]\na = \"x\"\n").is_err());
        assert!(parse_map_file(Path::new("m.json"), r#"{"a": 1}"#).is_err());
        let err = parse_map_file(Path::new("m.yaml"), "a: b").unwrap_err();
        assert!(err.to_string().contains(".toml or .json"), "{err}");
    }

    #[test]
    fn onnx_inputs_come_from_the_spec() {
        let spec = json!({"features": ["x", "y"], "output": "probability"});
        assert_eq!(
            model_inputs(Format::Onnx, b"", Some(&spec)).unwrap(),
            ["x", "y"]
        );
        let bad = json!({"features": ["x", 1]});
        assert!(model_inputs(Format::Onnx, b"", Some(&bad)).is_err());
        assert!(model_inputs(Format::Onnx, b"", None).is_err());
        let err = model_inputs(Format::Ensemble, b"not a bundle", None).unwrap_err();
        assert!(err.to_string().contains("--map-prefix"), "{err}");
    }

    #[test]
    fn the_api_error_message_is_shown_as_is() {
        let body = br#"{"error": {"code": "unauthorized", "message": "unknown API key"}}"#;
        assert_eq!(error_message(body), "unknown API key");
        assert_eq!(error_message(b"  bad gateway \n"), "bad gateway");
        assert_eq!(error_message(b""), "(no message)");
        let long = vec![b'x'; 1000];
        assert_eq!(error_message(&long).len(), MAX_SHOWN_ERROR);
    }

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        assert_eq!(encode_segment("agents-v2"), "agents-v2");
        assert_eq!(encode_segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn the_list_table_shows_live_counters_agreement_and_max_psi() {
        let items = [
            json!({"id": "agents-v1", "slot": "active", "format": "ensemble",
                   "binding": {"event_kind": "vitals"},
                   "live": {"scored": 300, "reported": 41, "shadow_agreement": null,
                            "drift": {"psi": {"a": 0.01, "b": 0.25}}}}),
            json!({"id": "agents-v2", "slot": "shadow", "format": "ensemble",
                   "binding": {"event_kind": "vitals"},
                   "live": {"scored": 12, "reported": 0, "shadow_agreement": 0.9,
                            "drift": {"psi": {}}}}),
            json!({"id": "old-v1", "slot": "retired", "format": "onnx",
                   "binding": {"event_kind": "http"}, "live": null}),
        ];
        let out = render_models(&items);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("ID "), "{out}");
        let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            cells(lines[1]),
            [
                "agents-v1",
                "active",
                "ensemble",
                "vitals",
                "300",
                "41",
                "-",
                "0.250"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "agents-v2",
                "shadow",
                "ensemble",
                "vitals",
                "12",
                "0",
                "90.0%",
                "-"
            ]
        );
        assert_eq!(
            cells(lines[3]),
            ["old-v1", "retired", "onnx", "http", "-", "-", "-", "-"]
        );
        // Columns line up: every row's second cell starts where the header's does.
        let col = lines[0].find("SLOT").unwrap();
        assert!(lines[1..]
            .iter()
            .all(|l| l[col..].starts_with(|c: char| c != ' ')));
        assert!(render_models(&[]).contains("no models"));
    }

    #[test]
    fn the_review_table_lists_findings() {
        let items = [json!({"id": "f-1a-0", "ts": "2026-11-21T10:00:00Z",
            "entity": "agent:7", "detector": "model:agents", "severity": "info",
            "score": 0.4567})];
        let out = render_review(&items);
        assert!(
            out.lines().nth(1).unwrap().ends_with("info      0.457"),
            "{out}"
        );
        assert!(render_review(&[]).contains("empty"));
    }
}
