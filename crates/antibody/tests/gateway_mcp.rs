//! The MCP proxy over the real binary, against a fake MCP server written here (a std
//! `TcpListener`, a thread per connection, keep-alive): JSON and SSE answers, a session id,
//! the stateless style's headers, batches, tool errors, a slow tool, a stream cut midway, a
//! server-to-client GET stream and DELETE. Requests become `mcp` events with the contract's
//! attributes; the server's own credentials go to it and the client's key never does;
//! revoked tools vanish from lists and are refused on call; a quarantined agent is refused.

mod common;

use common::{eventually, request, Resp, TestServer, ADMIN_KEY};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MCP_KEY: &str = "mcp-upstream-secret-0001";
const MCP_TOKEN: &str = "mcp-tenant-token-0002";
const SESSION: &str = "sess-42";
const TOOLS: [&str; 6] = ["search", "shell", "slow", "broken", "fails", "cut"];

#[derive(Clone, Debug, Default)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let log = log.clone();
                std::thread::spawn(move || serve_connection(stream, &log));
            }
        });
        Fake { addr, seen }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The tools the server was asked to run.
    fn called(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|s| match s.json() {
                Value::Array(items) => items,
                one => vec![one],
            })
            .filter(|m| m["method"] == "tools/call")
            .filter_map(|m| m["params"]["name"].as_str().map(str::to_owned))
            .collect()
    }
}

fn serve_connection(stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    while let Some(req) = read_request(&mut reader) {
        log.lock().unwrap().push(req.clone());
        if !answer(&req, &mut out) {
            return;
        }
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    r.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let mut words = line.split(' ');
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let seen = Seen {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let len: usize = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen { body, ..seen })
}

fn tool_list() -> Value {
    let tools: Vec<Value> = TOOLS
        .iter()
        .map(|t| json!({"name": t, "inputSchema": {"type": "object"}}))
        .collect();
    json!({ "tools": tools })
}

/// The answer to one request (`None`: a notification or a client's answer).
fn reply(m: &Value) -> Option<Value> {
    let id = m.get("id")?.clone();
    let method = m["method"].as_str()?;
    let result = match method {
        "initialize" => json!({"protocolVersion": m["params"]["protocolVersion"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}),
        "server/discover" => json!({"supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}),
        "tools/list" => tool_list(),
        "tools/call" => match m["params"]["name"].as_str().unwrap_or("") {
            "broken" => {
                return Some(json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32603, "message": "the tool broke"}}))
            }
            "fails" => json!({"isError": true, "content": [{"type": "text", "text": "no"}]}),
            name => json!({"content": [{"type": "text",
                "text": format!("{name}: {}", m["params"]["arguments"])}]}),
        },
        _ => json!({}),
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// Writes the scripted answer; `false` closes the connection.
fn answer(req: &Seen, out: &mut TcpStream) -> bool {
    match req.method.as_str() {
        "DELETE" => return plain(out, 200, "", &[]),
        // The server-to-client stream: a notification, and a tool list (as a server that
        // redelivers an answer after a reconnect would send it).
        "GET" => {
            let list = json!({"jsonrpc": "2.0", "id": 99, "result": tool_list()});
            let events = [
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n".to_owned(),
                format!("event: message\nid: 7\ndata: {list}\n\n"),
            ];
            return stream(out, &events, false);
        }
        _ => {}
    }
    let body = req.json();
    let first = match &body {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        one => one.clone(),
    };
    let tool = first["params"]["name"].as_str().unwrap_or("");
    if tool == "slow" {
        std::thread::sleep(Duration::from_secs(3));
        return false;
    }
    let answer = match &body {
        Value::Array(items) => {
            let all: Vec<Value> = items.iter().filter_map(reply).collect();
            (!all.is_empty()).then_some(Value::Array(all))
        }
        one => reply(one),
    };
    let Some(answer) = answer else {
        return plain(out, 202, "", &[]);
    };
    let session: &[(&str, &str)] = if first["method"] == "initialize" {
        &[("mcp-session-id", SESSION)]
    } else {
        &[]
    };
    if tool == "cut" {
        let progress = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n";
        return stream(out, &[progress.to_owned()], true);
    }
    if req.header("x-fake-sse").is_some() {
        let progress = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n";
        let events = [
            progress.to_owned(),
            format!("event: message\nid: 1\ndata: {answer}\n\n"),
        ];
        return stream(out, &events, false);
    }
    plain(out, 200, &answer.to_string(), session)
}

fn plain(out: &mut TcpStream, status: u16, body: &str, headers: &[(&str, &str)]) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes()).is_ok() && out.write_all(body.as_bytes()).is_ok()
}

/// A chunked event stream, one chunk per event; `cut` closes without the final chunk.
fn stream(out: &mut TcpStream, events: &[String], cut: bool) -> bool {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return false;
    }
    for e in events {
        if out
            .write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes())
            .is_err()
        {
            return false;
        }
        let _ = out.flush();
    }
    if cut {
        let _ = out.shutdown(std::net::Shutdown::Both);
        return false;
    }
    out.write_all(b"0\r\n\r\n").is_ok()
}

/// Findings that show what the `mcp` events carried, and the effects the response engine
/// puts on an agent from one `tool` event.
const RULES: &str = "\
- id: mcp-tool
  kind: mcp_tool_search
  severity: low
  events: {kinds: [mcp]}
  signature: {fields: [tool], literals: [search]}
- id: mcp-method
  kind: mcp_method_list
  severity: low
  events: {kinds: [mcp]}
  signature: {fields: [method], literals: [tools/list]}
- id: mcp-server
  kind: mcp_server_fake
  severity: low
  events: {kinds: [mcp]}
  signature: {fields: [server], literals: [fake]}
- id: mcp-stateless
  kind: mcp_stateless
  severity: low
  events: {kinds: [mcp]}
  signature: {fields: [style], literals: [stateless]}
- id: gw-q
  kind: gw_quarantine
  severity: high
  events: {kinds: [tool]}
  signature: {fields: [command], literals: [quarantine-me]}
- id: gw-r
  kind: gw_revoke
  severity: high
  events: {kinds: [tool]}
  signature: {fields: [command], literals: [revoke-me]}
";

const PLAYBOOKS: &str = "\
- id: gw-quarantine
  trigger: {kinds: [gw_quarantine]}
  mode: auto
  steps:
    - action: quarantine
      ttl: 1h
- id: gw-revoke
  trigger: {kinds: [gw_revoke]}
  mode: auto
  steps:
    - action: revoke_tools
      params: {tools: [shell]}
      ttl: 1h
";

struct Gw {
    server: TestServer,
    gateway: SocketAddr,
    fake: Fake,
}

fn start_in(dir: &Path, fake: Fake) -> Gw {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("rules")).unwrap();
    std::fs::create_dir_all(data.join("playbooks")).unwrap();
    std::fs::write(data.join("rules/mcp.yml"), RULES).unwrap();
    std::fs::write(data.join("playbooks/mcp.yml"), PLAYBOOKS).unwrap();
    let cfg = dir.join("antibody.toml");
    // MCP servers only: the gateway runs without an LLM provider.
    let text = format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
[[gateway.mcp_servers]]
name = "fake"
url = "http://{a}/mcp"
api_key = "env:MCP_TEST_KEY"
headers = {{ "x-tenant-token" = "env:MCP_TEST_TOKEN" }}
timeout_ms = 1000
[[gateway.mcp_servers]]
name = "down"
url = "http://127.0.0.1:1/mcp"
"#,
        a = fake.addr
    );
    std::fs::write(&cfg, text).unwrap();
    std::env::set_var("MCP_TEST_KEY", MCP_KEY);
    std::env::set_var("MCP_TEST_TOKEN", MCP_TOKEN);
    let server = TestServer::start_in(&data, &["--config", cfg.to_str().unwrap()]);
    let gateway = server
        .startup
        .iter()
        .find_map(|l| l.split("gateway serving on ").nth(1))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gateway line in {:?}", server.startup));
    Gw {
        server,
        gateway,
        fake,
    }
}

const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");

impl Gw {
    fn rpc(&self, agent: &str, body: &Value, extra: &[(&str, &str)]) -> Resp {
        let mut headers = vec![("X-Agent-Id", agent), ACCEPT, JSON];
        headers.extend_from_slice(extra);
        request(
            self.gateway,
            "POST",
            "/mcp/fake",
            Some(ADMIN_KEY),
            &headers,
            body.to_string().as_bytes(),
        )
    }

    fn baseline(&self, entity: &str, metric: &str, n: u64) -> Value {
        eventually(Duration::from_secs(15), || {
            let r = self
                .server
                .get(&format!("/v1/entities/{entity}"), ADMIN_KEY);
            let b = r.json()["baselines"][metric].clone();
            (b["n"].as_u64() == Some(n)).then_some(b)
        })
    }

    fn finding(&self, entity: &str, kind: &str) -> Value {
        eventually(Duration::from_secs(15), || {
            let r = self.server.get(
                &format!("/v1/findings?entity={entity}&kind={kind}"),
                ADMIN_KEY,
            );
            r.json()["items"].as_array()?.first().cloned()
        })
    }

    /// Posts one `tool` event whose command a rule above turns into an effect, and waits
    /// for the verdict to show it.
    fn effect(&self, agent: &str, command: &str, shows: impl Fn(&Value) -> bool) -> Value {
        let line = json!({"entity": agent, "kind": "tool", "attrs": {"command": command}});
        assert_eq!(
            self.server
                .post_ndjson(ADMIN_KEY, &format!("{line}\n"))
                .status,
            202
        );
        eventually(Duration::from_secs(15), || {
            let v = self
                .server
                .get(&format!("/v1/entities/{agent}/verdict"), ADMIN_KEY)
                .json();
            shows(&v).then_some(v)
        })
    }
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args}})
}

fn list(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

/// The 2026-07-28 envelope on a request, and its routing headers.
fn stateless(mut m: Value) -> (Value, Vec<(&'static str, String)>) {
    m["params"]["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let mut h = vec![
        ("MCP-Protocol-Version", "2026-07-28".to_owned()),
        ("Mcp-Method", m["method"].as_str().unwrap().to_owned()),
    ];
    if let Some(n) = m["params"]["name"].as_str() {
        h.push(("Mcp-Name", n.to_owned()));
    }
    (m, h)
}

fn pairs<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The JSON-RPC messages of an SSE body.
fn sse_messages(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|e| {
            let data: Vec<&str> = e
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
        })
        .collect()
}

fn names(list_result: &Value) -> Vec<String> {
    list_result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn mcp_requests_pass_through_in_both_styles_and_become_mcp_events() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = start_in(tmp.path(), Fake::start());
    let agent = "mcp-a";

    // Session style: initialize, the session id back, then requests carrying it.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = gw.rpc(agent, &init, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("mcp-session-id"), Some(SESSION));
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25");
    let s = [
        ("Mcp-Session-Id", SESSION),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(gw.rpc(agent, &note, &s).status, 202);
    // An SSE answer passes event by event, the server's notification included.
    let mut sse = s.to_vec();
    sse.push(("X-Fake-Sse", "1"));
    let r = gw.rpc(agent, &list(1), &sse);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let msgs = sse_messages(&r.text());
    assert_eq!(msgs[0]["method"], "notifications/message", "{}", r.text());
    assert_eq!(names(&msgs[1]["result"]), TOOLS);
    let r = gw.rpc(agent, &call(2, "search", json!({"q": "rust"})), &s);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "search: {\"q\":\"rust\"}"
    );
    let r = gw.rpc(agent, &call(3, "fails", json!({})), &sse);
    assert_eq!(sse_messages(&r.text())[1]["result"]["isError"], true);
    let r = gw.rpc(agent, &call(4, "broken", json!({})), &s);
    assert_eq!(r.json()["error"]["code"], -32603, "errors pass through");
    let batch = json!([list(5), call(6, "search", json!({"q": "batch"}))]);
    let r = gw.rpc(agent, &batch, &s);
    assert_eq!(r.json().as_array().map(Vec::len), Some(2), "{}", r.text());

    // The server's stream (GET) and the session's end (DELETE) pass through.
    let get = request(
        gw.gateway,
        "GET",
        "/mcp/fake",
        Some(ADMIN_KEY),
        &[("X-Agent-Id", agent), ("Accept", "text/event-stream"), s[0]],
        b"",
    );
    assert_eq!(get.status, 200);
    assert!(get.text().contains("notifications/tools/list_changed"));
    let del = request(
        gw.gateway,
        "DELETE",
        "/mcp/fake",
        Some(ADMIN_KEY),
        &[("X-Agent-Id", agent), s[0]],
        b"",
    );
    assert_eq!(del.status, 200);

    // Stateless style: every request self-contained, its headers passed on.
    let (discover, h) =
        stateless(json!({"jsonrpc": "2.0", "id": 10, "method": "server/discover", "params": {}}));
    assert_eq!(gw.rpc("mcp-s", &discover, &pairs(&h)).status, 200);
    let (c, h) = stateless(call(11, "search", json!({"q": "modern"})));
    let r = gw.rpc("mcp-s", &c, &pairs(&h));
    assert_eq!(r.status, 200, "{}", r.text());
    // Headers that disagree with the body are refused, never forwarded.
    let mut lying = h.clone();
    lying[2].1 = "shell".into();
    let r = gw.rpc("mcp-s", &c, &pairs(&lying));
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32020))
    );

    // What the server saw: its own credentials, the session, the stateless headers; never
    // the client's antibody key or agent header.
    let seen = gw.fake.requests();
    for s in &seen {
        assert_eq!(s.path, "/mcp");
        assert_eq!(
            s.header("authorization"),
            Some(&*format!("Bearer {MCP_KEY}"))
        );
        assert_eq!(s.header("x-tenant-token"), Some(MCP_TOKEN));
        assert!(s.header("x-agent-id").is_none());
        assert!(!s.headers.iter().any(|(_, v)| v.contains(ADMIN_KEY)));
    }
    let with_session = seen
        .iter()
        .filter(|s| s.header("mcp-session-id") == Some(SESSION))
        .count();
    assert_eq!(with_session, 8, "every request after initialize");
    assert!(seen.iter().any(|s| s.method == "DELETE"));
    let modern = seen
        .iter()
        .find(|s| s.json()["id"] == 11)
        .expect("the stateless call");
    assert_eq!(modern.header("mcp-method"), Some("tools/call"));
    assert_eq!(modern.header("mcp-name"), Some("search"));
    assert_eq!(
        gw.fake.called().iter().filter(|t| *t == "search").count(),
        3
    );

    // Failures: a slow tool, a server that is down, a stream cut midway.
    let r = gw.rpc(agent, &call(20, "slow", json!({})), &s);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["data"]["code"], "upstream_timeout");
    assert_eq!(r.json()["id"], 20);
    let down = request(
        gw.gateway,
        "POST",
        "/mcp/down",
        Some(ADMIN_KEY),
        &[("X-Agent-Id", agent), ACCEPT],
        list(21).to_string().as_bytes(),
    );
    assert_eq!(down.status, 502, "{}", down.text());
    let r = gw.rpc(agent, &call(22, "cut", json!({})), &s);
    assert!(r.text().contains("notifications/progress") && !r.text().contains("\"id\":22"));
    for r in [&r, &down] {
        assert!(!r.text().contains(MCP_KEY) && !r.text().contains(MCP_TOKEN));
    }

    // What the gateway refuses itself.
    let code = |r: &Resp| r.json()["error"]["code"].clone();
    let r = request(gw.gateway, "POST", "/mcp/nope", Some(ADMIN_KEY), &[], b"{}");
    assert_eq!((r.status, code(&r)), (404, json!(-32600)));
    let r = request(
        gw.gateway,
        "POST",
        "/mcp/fake",
        None,
        &[],
        list(1).to_string().as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["data"]["code"], "invalid_api_key");
    let r = request(
        gw.gateway,
        "POST",
        "/mcp/fake",
        Some(ADMIN_KEY),
        &[],
        b"{oops",
    );
    assert_eq!((r.status, code(&r)), (400, json!(-32700)));
    let r = request(gw.gateway, "PUT", "/mcp/fake", Some(ADMIN_KEY), &[], b"");
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, POST, DELETE"))
    );
    let r = request(
        gw.gateway,
        "POST",
        "/v1/chat/completions",
        Some(ADMIN_KEY),
        &[],
        b"{}",
    );
    assert_eq!(r.status, 404, "no LLM provider configured");

    // Events: one per observed request, the contract's attributes on them.
    // tools/call: search, fails, broken, batch search, slow, cut → 6 with arg_bytes.
    let args = gw.baseline("agent:mcp-a", "arg_bytes", 6);
    assert!(args["mean"].as_f64().unwrap() > 1.0, "{args}");
    // initialize, 3 lists (one to the server that is down), 6 calls; errors: fails,
    // broken, slow, down, cut.
    let errors = gw.baseline("agent:mcp-a", "error", 10);
    assert_eq!(errors["mean"].as_f64(), Some(0.5), "{errors}");
    let tools = gw.baseline("agent:mcp-a", "tools", 2);
    assert_eq!(tools["mean"], 6.0, "{tools}");
    let f = gw.finding("agent:mcp-a", "mcp_tool_search");
    assert_eq!(f["evidence"]["field"], "tool", "{f}");
    gw.finding("agent:mcp-a", "mcp_method_list");
    gw.finding("agent:mcp-a", "mcp_server_fake");
    gw.finding("agent:mcp-s", "mcp_stateless");
    gw.baseline("agent:mcp-s", "arg_bytes", 1);
    gw.baseline("agent:mcp-s", "latency_ms", 2);
}

#[test]
fn revoked_tools_vanish_and_are_refused_on_call_and_quarantine_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = start_in(tmp.path(), Fake::start());
    let agent = "mcp-r";
    assert_eq!(names(&gw.rpc(agent, &list(1), &[]).json()["result"]), TOOLS);

    // The real response path: a finding, its playbook's revoke_tools, the verdict.
    let v = gw.effect("agent:mcp-r", "revoke-me", |v| {
        v["revoked_tools"].as_array().is_some_and(|t| !t.is_empty())
    });
    assert_eq!(v["revoked_tools"], json!(["shell"]), "{v}");
    let without: Vec<&str> = TOOLS.iter().copied().filter(|t| *t != "shell").collect();
    // Gone from the list: JSON, SSE and stateless answers alike.
    let r = gw.rpc(agent, &list(2), &[]);
    assert_eq!(names(&r.json()["result"]), without, "{}", r.text());
    let r = gw.rpc(agent, &list(3), &[("X-Fake-Sse", "1")]);
    let msgs = sse_messages(&r.text());
    assert_eq!(names(&msgs[1]["result"]), without, "{}", r.text());
    assert_eq!(
        msgs[0]["method"], "notifications/message",
        "other events untouched"
    );
    let (l, h) = stateless(list(4));
    assert_eq!(
        names(&gw.rpc(agent, &l, &pairs(&h)).json()["result"]),
        without
    );
    // And on the server's own stream.
    let get = request(
        gw.gateway,
        "GET",
        "/mcp/fake",
        Some(ADMIN_KEY),
        &[("X-Agent-Id", agent), ("Accept", "text/event-stream")],
        b"",
    );
    let msgs = sse_messages(&get.text());
    assert_eq!(names(&msgs[1]["result"]), without, "{}", get.text());

    // Refused on call even by a client that cached the list: -32602, never sent.
    let before = gw.fake.called().len();
    let r = gw.rpc(agent, &call(5, "shell", json!({"cmd": "rm -rf /"})), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], 5);
    assert_eq!(r.json()["error"]["code"], -32602);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("`shell`") && message.contains("incident"),
        "{message}"
    );
    let (c, h) = stateless(call(6, "shell", json!({})));
    let r = gw.rpc(agent, &c, &pairs(&h));
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32602))
    );
    // Without the agent header, the key still ties the call to the agent.
    let r = request(
        gw.gateway,
        "POST",
        "/mcp/fake",
        Some(ADMIN_KEY),
        &[ACCEPT, JSON],
        call(7, "shell", json!({})).to_string().as_bytes(),
    );
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.text());
    // A batch holding the call is not sent at all.
    let batch = json!([call(8, "search", json!({})), call(9, "shell", json!({}))]);
    let r = gw.rpc(agent, &batch, &[]);
    let codes: Vec<Value> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"]["code"].clone())
        .collect();
    assert_eq!(codes, [json!(-32001), json!(-32602)], "{}", r.text());
    assert_eq!(
        gw.fake.called().len(),
        before,
        "no revoked call reached the server"
    );
    assert!(gw.fake.called().iter().all(|t| t != "shell"));
    assert_eq!(
        gw.rpc(agent, &call(10, "search", json!({})), &[]).status,
        200
    );
    // Four lists: one before the verdict, three after (the GET stream is not a request).
    let hidden = gw.baseline("agent:mcp-r", "tools_hidden", 4);
    assert_eq!(hidden["mean"].as_f64(), Some(0.75), "{hidden}");

    // Quarantine: every request refused with the LLM path's status, naming the incident.
    let v = gw.effect("agent:mcp-q", "quarantine-me", |v| {
        v["verdict"] == "quarantine"
    });
    let incident = v["incident"].as_str().unwrap();
    let calls_before = gw.fake.requests().len();
    for body in [list(1), call(2, "search", json!({}))] {
        let r = gw.rpc("mcp-q", &body, &[]);
        assert_eq!(r.status, 403, "{}", r.text());
        let e = &r.json()["error"];
        assert_eq!(
            (e["code"].clone(), e["data"]["code"].clone()),
            (json!(-32001), json!("agent_quarantined"))
        );
        assert!(e["message"].as_str().unwrap().contains(incident), "{e}");
        assert!(!r.text().contains(MCP_KEY));
    }
    assert_eq!(
        gw.fake.requests().len(),
        calls_before,
        "nothing reached the server"
    );
}
