//! The server's answer on its way to the client, read as it passes: JSON held whole (it is
//! one message or a batch), SSE split into events that leave as each completes. Each answer
//! to an observed request becomes that request's `mcp` event; a `tools/list` answer loses the
//! revoked tools. What is never answered is reported when the exchange ends (cut, client
//! gone, no answer).

use super::message::{read_reply, reply_id, Revoked, Watched};
use super::record::{Base, Watch};
use super::sse::{data_of, with_data, Framer};
use crate::identity::fingerprint;
use crate::proxy::Gateway;
use crate::upstream::{relayed_head, Sender};
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::CONTENT_TYPE;
use hyper::{Response, StatusCode};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A JSON answer is held for reading up to this size; a larger one is passed on unread
/// (unless tools must be removed from it: then it is cut, never passed whole).
const MAX_INSPECT: usize = 16 << 20;

enum Mode {
    Sse(Framer),
    Json(Vec<u8>),
    Plain,
}

/// The server's answer on its way to the client, read as it passes.
pub(crate) struct McpBody {
    inner: Incoming,
    mode: Mode,
    gw: Arc<Gateway>,
    /// The connection, back to the pool once the answer was read to its end.
    sender: Option<Sender>,
    pool: usize,
    /// Observed requests not answered yet.
    watches: Vec<Watch>,
    base: Base,
    revoked: Revoked,
    filter_any: bool,
    /// Revoked tools may be listed in this answer: it is never passed on unread.
    must_filter: bool,
    /// A JSON answer too large to read was passed on as it came.
    unread: bool,
    done: bool,
}

impl McpBody {
    /// The client's response: the server's status and end-to-end headers (without
    /// `Content-Length` when the body may be rewritten), the body read on its way.
    pub(crate) fn response(
        response: Response<Incoming>,
        gw: Arc<Gateway>,
        (sender, pool): (Sender, usize),
        mut base: Base,
        watches: Vec<Watch>,
        revoked: Revoked,
        filter_any: bool,
    ) -> Response<Body> {
        let (parts, incoming) = response.into_parts();
        base.status = parts.status.as_u16();
        if base.session.is_none() {
            base.session = parts
                .headers
                .get("mcp-session-id")
                .map(|v| fingerprint(v.as_bytes()));
        }
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let reading = !watches.is_empty() || filter_any;
        let mode = if content_type.starts_with("text/event-stream") && reading {
            Mode::Sse(Framer::default())
        } else if content_type.starts_with("application/json") && reading {
            Mode::Json(Vec::new())
        } else {
            Mode::Plain
        };
        let must_filter = !revoked.is_empty()
            && !matches!(mode, Mode::Plain)
            && (filter_any || watches.iter().any(|w| w.method == Watched::ToolsList));
        let builder = relayed_head(&parts, must_filter);
        let body = McpBody {
            inner: incoming,
            mode,
            gw,
            sender: Some(sender),
            pool,
            watches,
            base,
            revoked,
            filter_any,
            must_filter,
            unread: false,
            done: false,
        };
        builder.body(Body::new(body)).unwrap_or_else(|_| {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        })
    }

    /// Reads one JSON-RPC message from the server; `true` when it was changed.
    fn answered(&mut self, msg: &mut Value) -> bool {
        let Some(id) = reply_id(msg) else {
            return false;
        };
        let Some(i) = self.watches.iter().position(|w| &w.id == id) else {
            return self.filter_any && read_reply(msg, &self.revoked).hidden > 0;
        };
        let w = self.watches.swap_remove(i);
        let none = Revoked::default();
        let revoked = if w.method == Watched::ToolsList {
            &self.revoked
        } else {
            &none
        };
        let reply = read_reply(msg, revoked);
        let mut record = self.base.record(&w, reply.error);
        record.rpc_code = reply.rpc_code;
        record.tools = reply.tools;
        record.hidden = reply.hidden;
        self.gw.emitter.emit(record.to_event());
        reply.hidden > 0
    }

    /// One SSE event as the client gets it.
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) -> bool {
        let parsed = data_of(event).and_then(|d| serde_json::from_str::<Value>(&d).ok());
        if let Some(mut msg) = parsed {
            if self.answered(&mut msg) {
                out.extend(with_data(event, &msg.to_string()));
                return true;
            }
        }
        out.extend_from_slice(event);
        false
    }

    /// What the client gets of one chunk (`None`: nothing yet).
    fn pass(&mut self, data: Bytes) -> Option<Bytes> {
        match &mut self.mode {
            Mode::Plain => Some(data),
            Mode::Sse(framer) => {
                let mut events = Vec::new();
                framer.push(&data, |e| events.push(e.to_vec()));
                let mut out = Vec::with_capacity(data.len());
                let mut changed = false;
                for e in &events {
                    changed |= self.event(e, &mut out);
                }
                if !changed && out.len() == data.len() {
                    // Whole events, untouched: hand on the chunk itself.
                    return Some(data);
                }
                (!out.is_empty()).then(|| Bytes::from(out))
            }
            Mode::Json(buf) => {
                if buf.len() + data.len() <= MAX_INSPECT {
                    buf.extend_from_slice(&data);
                    return None;
                }
                if self.must_filter {
                    tracing::warn!(server = %self.base.server, "an MCP answer too large to remove revoked tools from was cut");
                    buf.clear();
                    self.end(Some("too_large_to_filter"));
                    return None;
                }
                let mut held = std::mem::take(buf);
                held.extend_from_slice(&data);
                self.mode = Mode::Plain;
                self.unread = true;
                Some(Bytes::from(held))
            }
        }
    }

    /// The server's answer ended well: what is still held, and the exchange finished.
    fn complete(&mut self) -> Option<Bytes> {
        let tail = match std::mem::replace(&mut self.mode, Mode::Plain) {
            Mode::Sse(mut framer) => {
                let rest = framer.finish();
                let mut out = Vec::new();
                if !rest.is_empty() {
                    self.event(&rest, &mut out);
                }
                out
            }
            Mode::Json(buf) => self.json(buf),
            Mode::Plain => Vec::new(),
        };
        let status = self.base.status;
        let unanswered = if self.unread {
            None
        } else if status >= 500 {
            Some("upstream_5xx")
        } else if status >= 400 {
            Some("upstream_4xx")
        } else {
            Some("no_response")
        };
        self.end(unanswered);
        if let Some(s) = self.sender.take() {
            self.gw.mcp_pools[self.pool].checkin(s);
        }
        (!tail.is_empty()).then(|| Bytes::from(tail))
    }

    /// A whole JSON answer (one message or a batch), read and rewritten if tools were
    /// removed.
    fn json(&mut self, buf: Vec<u8>) -> Vec<u8> {
        let Ok(mut v) = serde_json::from_slice::<Value>(&buf) else {
            return buf;
        };
        let changed = match &mut v {
            Value::Array(items) => {
                let mut any = false;
                for m in items.iter_mut() {
                    any |= self.answered(m);
                }
                any
            }
            one => self.answered(one),
        };
        if changed {
            serde_json::to_vec(&v).unwrap_or(buf)
        } else {
            buf
        }
    }

    /// Reports every request still unanswered with `error`.
    fn end(&mut self, error: Option<&'static str>) {
        if self.done {
            return;
        }
        self.done = true;
        for w in std::mem::take(&mut self.watches) {
            self.gw.emitter.emit(self.base.record(&w, error).to_event());
        }
    }
}

impl hyper::body::Body for McpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return Poll::Ready(this.complete().map(|t| Ok(Frame::data(t))))
                }
                Poll::Ready(Some(Err(e))) => {
                    this.end(Some("upstream_cut"));
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let mut out = this.pass(data);
                        // A body of known length may not be polled past its last byte.
                        if !this.done && this.inner.is_end_stream() {
                            if let Some(tail) = this.complete() {
                                out = Some(match out {
                                    Some(o) => {
                                        let mut joined = Vec::from(o);
                                        joined.extend_from_slice(&tail);
                                        Bytes::from(joined)
                                    }
                                    None => tail,
                                });
                            }
                        }
                        if let Some(o) = out {
                            return Poll::Ready(Some(Ok(Frame::data(o))));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.mode, self.must_filter) {
            (Mode::Plain, _) | (_, false) => self.inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for McpBody {
    fn drop(&mut self) {
        // The client went away before the end: the connection is dropped with this body,
        // which cancels the server's work on it.
        self.end(Some("client_disconnected"));
    }
}
