//! The JSON-RPC messages of an MCP exchange, read as far as the proxy needs them: which
//! requests a POST carries (method, id, the tool a `tools/call` names, its argument size,
//! the per-request protocol version of the stateless style), whether the routing headers of
//! the 2026-07-28 style agree with the body, what a server's answer says (an error, a tool
//! error), and a `tools/list` result without the tools an agent may not use. Plain
//! functions over `serde_json::Value`; no I/O.

use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// JSON-RPC codes the proxy answers with itself.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
/// A revoked tool (the contract's code).
pub const INVALID_PARAMS: i64 = -32602;
/// `Mcp-Method` / `Mcp-Name` disagree with the body (the 2026-07-28 code).
pub const HEADER_MISMATCH: i64 = -32020;
/// The gateway refused the agent or could not reach the server (server-defined range); the
/// reason is in `error.data.code`, a code of the gateway's error table.
pub const GATEWAY_REFUSED: i64 = -32001;

/// The `_meta` key of the 2026-07-28 per-request protocol version.
const META_PROTOCOL: &str = "io.modelcontextprotocol/protocolVersion";

/// The methods the proxy reports as `mcp` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    Initialize,
    /// `server/discover`: the stateless style's `initialize`.
    Discover,
    ToolsList,
    ToolsCall,
}

impl Watched {
    pub fn of(method: &str) -> Option<Self> {
        Some(match method {
            "initialize" => Self::Initialize,
            "server/discover" => Self::Discover,
            "tools/list" => Self::ToolsList,
            "tools/call" => Self::ToolsCall,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialize => "initialize",
            Self::Discover => "server/discover",
            Self::ToolsList => "tools/list",
            Self::ToolsCall => "tools/call",
        }
    }
}

/// How a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `initialize`, then `Mcp-Session-Id` (2025-06-18, 2025-11-25).
    Session,
    /// Every request self-contained: `_meta` and `Mcp-Method` / `Mcp-Name` (2026-07-28).
    Stateless,
}

impl Style {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Stateless => "stateless",
        }
    }
}

/// One request or notification of a POST (the client's answers to server requests are
/// not listed).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `None` for a notification.
    pub id: Option<Value>,
    pub method: String,
    /// `params.name` (`tools/call`, `prompts/get`) or `params.uri` (`resources/*`): what
    /// `Mcp-Name` must repeat.
    pub name: Option<String>,
    /// Compact JSON size of `params.arguments` (`tools/call`).
    pub arg_bytes: usize,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`, else (`initialize`)
    /// `params.protocolVersion`.
    pub protocol: Option<String>,
    /// The request carries the stateless style's `_meta` version.
    pub stateless: bool,
}

impl Request {
    pub fn watched(&self) -> Option<Watched> {
        Watched::of(&self.method)
    }

    /// The tool a `tools/call` names.
    pub fn tool(&self) -> Option<&str> {
        (self.method == "tools/call")
            .then_some(self.name.as_deref())
            .flatten()
    }
}

/// A POST body: one message or a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Post {
    pub batch: bool,
    pub requests: Vec<Request>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadPost {
    #[error("the body is not JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(&'static str),
}

impl BadPost {
    pub fn code(&self) -> i64 {
        match self {
            Self::Json(_) => PARSE_ERROR,
            Self::Shape(_) => INVALID_REQUEST,
        }
    }
}

/// Reads a POST body: a JSON-RPC message or a non-empty array of them.
pub fn read_post(body: &[u8]) -> Result<Post, BadPost> {
    let v: Value = serde_json::from_slice(body).map_err(|e| BadPost::Json(e.to_string()))?;
    match v {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(BadPost::Shape("an empty batch"));
            }
            let mut requests = Vec::with_capacity(items.len());
            for item in &items {
                if let Some(r) = message(item)? {
                    requests.push(r);
                }
            }
            Ok(Post {
                batch: true,
                requests,
            })
        }
        one => Ok(Post {
            batch: false,
            requests: message(&one)?.into_iter().collect(),
        }),
    }
}

fn message(v: &Value) -> Result<Option<Request>, BadPost> {
    let obj = v
        .as_object()
        .ok_or(BadPost::Shape("a JSON-RPC message must be an object"))?;
    let Some(method) = obj.get("method") else {
        // The client's answer to a server request: nothing to judge.
        return if obj.contains_key("id") {
            Ok(None)
        } else {
            Err(BadPost::Shape("a JSON-RPC message needs a method or an id"))
        };
    };
    let method = method
        .as_str()
        .ok_or(BadPost::Shape("`method` must be a string"))?;
    let params = obj.get("params").and_then(Value::as_object);
    let text = |k: &str| params.and_then(|p| p.get(k)).and_then(Value::as_str);
    let name = match method {
        "tools/call" | "prompts/get" => text("name"),
        m if m.starts_with("resources/") => text("uri"),
        _ => None,
    };
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(META_PROTOCOL))
        .and_then(Value::as_str);
    let protocol = meta.or_else(|| (method == "initialize").then(|| text("protocolVersion"))?);
    let arg_bytes = match (method, params.and_then(|p| p.get("arguments"))) {
        ("tools/call", Some(a)) => compact_len(a),
        _ => 0,
    };
    Ok(Some(Request {
        id: obj.get("id").cloned(),
        method: method.to_owned(),
        name: name.map(str::to_owned),
        arg_bytes,
        protocol: protocol.map(str::to_owned),
        stateless: meta.is_some(),
    }))
}

/// The size of `v` written compactly, without writing it.
fn compact_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The stateless style's routing headers agree with the body: `Mcp-Method` is the one
/// request's method and `Mcp-Name` its name (a `=?base64?…?=` value decoded). A proxy that
/// judged the body while the server routed by a header could be steered past a revocation,
/// so a disagreement is refused.
pub fn check_headers(
    post: &Post,
    method: Option<&[u8]>,
    name: Option<&[u8]>,
) -> Result<(), &'static str> {
    if method.is_none() && name.is_none() {
        return Ok(());
    }
    let [one] = post.requests.as_slice() else {
        return Err("Mcp-Method / Mcp-Name name one request; the body holds another count");
    };
    if post.batch {
        return Err("Mcp-Method / Mcp-Name do not apply to a batch");
    }
    if let Some(m) = method {
        if m != one.method.as_bytes() {
            return Err("the Mcp-Method header does not match the request body's method");
        }
    }
    if let (Some(h), Some(body)) = (name, one.name.as_deref()) {
        if decode_header(h).as_deref() != Some(body) {
            return Err("the Mcp-Name header does not match the request body's name");
        }
    }
    Ok(())
}

/// A header value as text: plain visible ASCII, or `=?base64?<payload>?=` for anything else.
pub fn decode_header(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?.trim();
    match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        Some(payload) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(text.to_owned()),
    }
}

/// A JSON-RPC error answer.
pub fn error(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut e = json!({"code": code, "message": message});
    if let (Some(d), Some(obj)) = (data, e.as_object_mut()) {
        obj.insert("data".into(), d);
    }
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": e})
}

/// Tools revoked for an agent, from every verdict the call is tied to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Revoked {
    all: bool,
    names: Vec<Arc<str>>,
}

impl Revoked {
    pub fn add(&mut self, names: &[Arc<str>]) {
        for n in names {
            if &**n == "*" {
                self.all = true;
            } else if !self.names.contains(n) {
                self.names.push(n.clone());
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.names.is_empty()
    }

    pub fn covers(&self, tool: &str) -> bool {
        self.all || self.names.iter().any(|n| &**n == tool)
    }
}

/// A server's answer to one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    /// `rpc_error` (a JSON-RPC error) or `tool_error` (`result.isError`).
    pub error: Option<&'static str>,
    pub rpc_code: Option<i64>,
    /// Tools listed (after filtering), for a `tools/list` answer.
    pub tools: Option<usize>,
    /// Tools removed from the list.
    pub hidden: usize,
}

/// The id of a message that answers a request (`result` or `error`).
pub fn reply_id(msg: &Value) -> Option<&Value> {
    let obj = msg.as_object()?;
    if obj.contains_key("method") || !(obj.contains_key("result") || obj.contains_key("error")) {
        return None;
    }
    obj.get("id")
}

/// Reads an answer and, when `revoked` is not empty, removes revoked tools from a listed
/// `result.tools`.
pub fn read_reply(msg: &mut Value, revoked: &Revoked) -> Reply {
    let mut r = Reply::default();
    let Some(obj) = msg.as_object_mut() else {
        return r;
    };
    if let Some(e) = obj.get("error") {
        r.error = Some("rpc_error");
        r.rpc_code = e.get("code").and_then(Value::as_i64);
        return r;
    }
    let Some(result) = obj.get_mut("result").and_then(Value::as_object_mut) else {
        return r;
    };
    if result.get("isError") == Some(&Value::Bool(true)) {
        r.error = Some("tool_error");
    }
    if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
        let before = tools.len();
        if !revoked.is_empty() {
            tools.retain(|t| !tool_name(t).is_some_and(|n| revoked.covers(n)));
        }
        r.hidden = before - tools.len();
        r.tools = Some(tools.len());
    }
    r
}

fn tool_name(t: &Value) -> Option<&str> {
    t.get("name").and_then(Value::as_str)
}

/// `data` of a gateway refusal: its code in the gateway's error table.
pub fn refusal_data(code: &str) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), Value::String(code.to_owned()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call(tool: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"q":"x y"}}}}}}"#
        )
    }

    #[test]
    fn a_post_is_read_as_its_requests() {
        let p = read_post(call("search").as_bytes()).unwrap();
        assert!(!p.batch);
        let r = &p.requests[0];
        assert_eq!(
            (r.watched(), r.tool(), r.arg_bytes, r.id.clone()),
            (Some(Watched::ToolsCall), Some("search"), 11, Some(json!(7)))
        );
        let batch = format!(
            r#"[{},{{"jsonrpc":"2.0","method":"notifications/initialized"}},{{"jsonrpc":"2.0","id":"s1","result":{{}}}},{{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{{"uri":"file:///a"}}}}]"#,
            call("shell")
        );
        let p = read_post(batch.as_bytes()).unwrap();
        assert!(p.batch);
        let methods: Vec<&str> = p.requests.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            methods,
            ["tools/call", "notifications/initialized", "resources/read"]
        );
        assert_eq!(p.requests[1].id, None);
        assert_eq!(p.requests[2].name.as_deref(), Some("file:///a"));
        assert_eq!(p.requests[2].tool(), None);
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;
        let r = &read_post(init.as_bytes()).unwrap().requests[0];
        assert_eq!(
            (r.protocol.as_deref(), r.stateless),
            (Some("2025-11-25"), false)
        );
        let modern = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        let r = &read_post(modern.as_bytes()).unwrap().requests[0];
        assert_eq!(
            (r.protocol.as_deref(), r.stateless),
            (Some("2026-07-28"), true)
        );
        for (bad, code) in [
            (&b"{nope"[..], PARSE_ERROR),
            (b"[]", INVALID_REQUEST),
            (b"[1]", INVALID_REQUEST),
            (b"{\"jsonrpc\":\"2.0\"}", INVALID_REQUEST),
            (b"{\"method\":5}", INVALID_REQUEST),
        ] {
            assert_eq!(read_post(bad).unwrap_err().code(), code);
        }
    }

    #[test]
    fn routing_headers_must_agree_with_the_body() {
        let p = read_post(call("search").as_bytes()).unwrap();
        assert!(check_headers(&p, None, None).is_ok());
        assert!(check_headers(&p, Some(b"tools/call"), Some(b"search")).is_ok());
        assert!(check_headers(&p, Some(b"tools/list"), None).is_err());
        assert!(
            check_headers(&p, Some(b"tools/call"), Some(b"shell")).is_err(),
            "a header naming another tool than the body is refused"
        );
        assert!(check_headers(&p, None, Some(b"=?base64?c2VhcmNo?=")).is_ok());
        assert!(check_headers(&p, None, Some(b"=?base64?!!?=")).is_err());
        let batch = read_post(format!("[{}]", call("search")).as_bytes()).unwrap();
        assert!(check_headers(&batch, Some(b"tools/call"), None).is_err());
    }

    #[test]
    fn revoked_tools_leave_the_list_and_errors_are_read() {
        let mut revoked = Revoked::default();
        revoked.add(&[Arc::from("shell")]);
        let mut list = json!({"jsonrpc":"2.0","id":2,"result":{"tools":[
            {"name":"search","inputSchema":{}},{"name":"shell","inputSchema":{}}],"nextCursor":"c"}});
        assert_eq!(reply_id(&list), Some(&json!(2)));
        let r = read_reply(&mut list, &revoked);
        assert_eq!((r.tools, r.hidden, r.error), (Some(1), 1, None));
        assert_eq!(list["result"]["tools"][0]["name"], "search");
        assert_eq!(list["result"]["nextCursor"], "c", "the rest is kept");
        let mut all = Revoked::default();
        all.add(&[Arc::from("*")]);
        let mut list2 = json!({"id":3,"result":{"tools":[{"name":"a"}]}});
        assert_eq!(read_reply(&mut list2, &all).tools, Some(0));
        let mut err = json!({"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"no"}});
        let r = read_reply(&mut err, &Revoked::default());
        assert_eq!((r.error, r.rpc_code), (Some("rpc_error"), Some(-32601)));
        let mut tool_err = json!({"id":5,"result":{"isError":true,"content":[]}});
        assert_eq!(
            read_reply(&mut tool_err, &revoked).error,
            Some("tool_error")
        );
        assert_eq!(
            reply_id(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            None,
            "a server request is no answer"
        );
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read_post(&body);
            if let Ok(mut v) = serde_json::from_slice::<Value>(&body) {
                let _ = read_reply(&mut v, &Revoked::default());
            }
        }

        #[test]
        fn any_tool_name_survives_the_round_trip(name in "[a-z_]{1,20}", args in "[ -~]{0,50}") {
            let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":{"a":args}}});
            let p = read_post(body.to_string().as_bytes()).unwrap();
            prop_assert_eq!(p.requests[0].tool(), Some(name.as_str()));
            prop_assert_eq!(p.requests[0].arg_bytes, body["params"]["arguments"].to_string().len());
        }
    }
}
