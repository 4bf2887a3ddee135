//! The MCP proxy for the Streamable HTTP transport, at `/mcp/{name}` on the gateway's
//! listener: only `[[gateway.mcp_servers]]` are reachable, each with its own credentials
//! from config. POSTs (one message or a batch) are forwarded and answered in JSON or SSE,
//! streamed through event by event; GET (the server's stream) and DELETE (session end) pass
//! through. Both client styles work: `initialize` then `Mcp-Session-Id` (2025-06-18,
//! 2025-11-25), and self-contained requests with `_meta` and `Mcp-Method` / `Mcp-Name`
//! (2026-07-28), whose headers must agree with the body.
//!
//! `initialize`, `server/discover`, `tools/list` and `tools/call` become `mcp` events. The
//! enforcement view's verdicts act at call time: a quarantined or blocked agent is refused
//! with a JSON-RPC error (the LLM path's HTTP status), a revoked tool is removed from
//! `tools/list` answers and a `tools/call` of it gets -32602 without reaching the server.
//!
//! [`message`] and [`sse`] are plain functions; [`proxy`] sequences them around the I/O and
//! `body` reads the server's answer on its way back.

mod body;
pub mod message;
pub mod proxy;
pub mod record;
pub mod sse;
