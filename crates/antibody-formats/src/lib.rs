//! Parsers for external formats, turning someone else's logs and telemetry into antibody
//! [`Event`](antibody_core::Event)s:
//!
//! - [`authlog`]: syslog auth lines (OpenSSH `sshd`, PAM, `su`, `login`, `ftpd`, …) → `auth`
//!   events of entity `host:<hostname>`;
//! - [`eve`]: Suricata EVE JSON lines → `alert`, `net`, `http` and `dns` events of entity
//!   `ip:<src_ip>`;
//! - [`otlp`]: OTLP/HTTP trace and log exports (protobuf or JSON) → `llm` events of entity
//!   `agent:<id>` and task `vitals`.
//! - [`rawhttp`]: raw HTTP/1.x requests one after another → `http` events.
//! - [`syslog_frame`]: syslog messages out of a TCP / TLS byte stream (RFC 6587 framing),
//!   each then read by [`AuthLogParser::parse_message`] (RFC 3164 or RFC 5424).
//!
//! Every parser never panics, whatever the input. The line parsers take a line at a time: a
//! line is either an event, a well-formed line that carries nothing to detect on (skipped), or
//! a [`ParseError`]. OTLP takes a whole export request (its own [`otlp::OtlpError`]).

pub mod authlog;
pub mod eve;
pub mod otlp;
pub mod rawhttp;
mod syslog;
pub mod syslog_frame;

pub use authlog::{AuthLogParser, AuthRecord};
pub use eve::EveParser;
pub use rawhttp::{RawHttpReader, RawRequest};

/// Why a line could not be read in the format it was given as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a syslog line: {0}")]
    Syslog(&'static str),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("not an EVE record: {0}")]
    Eve(&'static str),
    #[error("not an HTTP request: {0}")]
    Http(&'static str),
    #[error("invalid timestamp {0:?}")]
    Timestamp(String),
}
