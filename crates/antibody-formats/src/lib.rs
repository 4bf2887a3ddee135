//! Parsers for external log formats, turning one line of someone else's log into antibody
//! [`Event`](antibody_core::Event)s:
//!
//! - [`authlog`]: syslog auth lines (OpenSSH `sshd`, PAM, `su`, `login`, `ftpd`, …) → `auth`
//!   events of entity `host:<hostname>`;
//! - [`eve`]: Suricata EVE JSON lines → `alert`, `net`, `http` and `dns` events of entity
//!   `ip:<src_ip>`;
//! - [`rawhttp`]: raw HTTP/1.x requests one after another → `http` events.
//!
//! Every parser is line-at-a-time and never panics, whatever the input: a line is either an
//! event, a well-formed line that carries nothing to detect on (skipped), or a [`ParseError`].

pub mod authlog;
pub mod eve;
pub mod rawhttp;
mod syslog;

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
