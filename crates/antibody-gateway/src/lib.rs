//! The LLM gateway: an OpenAI-compatible proxy on its own listener. Agents point
//! `OPENAI_BASE_URL` at it with an antibody key as their API key; each call is tied to an
//! agent, judged by the enforcement view's verdicts and the tenant's gateway policy in the
//! request path, sent to a configured provider with the provider's own key, streamed back
//! chunk by chunk, and reported as one `llm` event (latency, time to first token, tokens,
//! tool calls, cost) through the server's durable pipeline.
//!
//! Plain functions own the decisions — [`identity`], [`request`] (facts, usage injection),
//! [`usage`] (buffered and SSE usage, stripping the injected chunk), [`cost`], [`limits`]
//! (policy charging), [`gate`] (verdicts), [`upstream`] (routing, headers) — and
//! [`proxy`] sequences them around the I/O. [`backend::Backend`] is the seam to the
//! service: keys, policies, verdicts, durable events. [`mcp`] is the MCP proxy on the same
//! listener (`/mcp/{name}`), with the same keys, agents, verdicts and emitter.

pub mod backend;
pub mod bindings;
pub mod config;
pub mod cost;
pub mod emitter;
pub mod gate;
pub mod http;
pub mod identity;
pub mod limits;
pub mod mcp;
pub mod proxy;
pub mod refusal;
pub mod request;
pub mod scan;
pub mod upstream;
pub mod usage;
pub mod vitals;

pub use backend::{Backend, BoxFuture, KeyRefusal, SubmitRefusal};
pub use config::{GatewayConfig, RawGatewayConfig};
pub use proxy::Gateway;
