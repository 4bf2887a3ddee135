//! API errors: one enum, one table of codes and their HTTP statuses ([`CODES`]), one JSON
//! shape: `{"error": {"code": "snake_case", "message": "human sentence"}}`. The crates below
//! name their own codes (`IngestError::code`, `RespondError::code`, …); only this table says
//! which status each one answers with.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A refusal with its own code; its status comes from [`CODES`].
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error(
        "no API key: send `Authorization: Bearer <key>`. The bootstrap admin key is in \
         `admin.key` in the server's data dir (./antibody-data/admin.key by default) unless \
         ANTIBODY_ADMIN_KEY set it; other keys come from POST /v1/keys or `antibody keys create`"
    )]
    Unauthorized,
    #[error(
        "unknown API key: check that it was copied whole, without quotes or a line break \
         (the bootstrap admin key is in `admin.key` in the server's data dir), and that it was \
         not deleted or rotated away"
    )]
    UnknownKey,
    #[error(
        "API key {id} expired at {at}; use the key that replaced it, or ask an admin for a \
         new one (POST /v1/keys)"
    )]
    KeyExpired { id: String, at: String },
    #[error("this key's role ({have}) cannot {action}; use a key with the `{need}` role")]
    Forbidden {
        have: &'static str,
        need: &'static str,
        action: &'static str,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{why}; retry after {retry_after_s} s")]
    Overloaded {
        why: &'static str,
        retry_after_s: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every error code the API answers with, and its HTTP status. The one place a status is
/// chosen; docs/API.md lists the same table.
pub const CODES: &[(&str, u16)] = &[
    ("bad_request", 400),
    ("invalid_json", 400),
    ("no_valid_events", 400),
    ("invalid_gzip", 400),
    ("invalid_otlp", 400),
    ("invalid_asset", 400),
    ("invalid_yaml", 400),
    ("invalid_policy", 400),
    ("invalid_resolution", 400),
    ("unknown_cause", 400),
    ("unauthorized", 401),
    ("forbidden", 403),
    ("not_found", 404),
    ("method_not_allowed", 405),
    ("request_timeout", 408),
    ("conflict", 409),
    ("duplicate_approver", 409),
    ("origin_not_allowed", 403),
    ("payload_too_large", 413),
    ("uri_too_long", 414),
    ("headers_too_large", 431),
    ("too_many_events", 413),
    ("unsupported_encoding", 415),
    ("unsupported_media_type", 415),
    ("too_many_connections", 429),
    ("overloaded", 429),
    ("internal", 500),
    ("unavailable", 503),
    ("server_busy", 503),
    ("snapshot", 503),
];

/// The status of `code`; a code missing from [`CODES`] is a bug (a test walks every code
/// the crates produce), answered as an internal error rather than guessed.
pub fn status_of(code: &str) -> StatusCode {
    CODES
        .iter()
        .find(|(c, _)| *c == code)
        .and_then(|(_, s)| StatusCode::from_u16(*s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Invalid { code, .. } => code,
            Self::Unauthorized | Self::UnknownKey | Self::KeyExpired { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Overloaded { .. } => "overloaded",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn status_code(&self) -> (StatusCode, &'static str) {
        let code = self.code();
        (status_of(code), code)
    }
}

impl From<antibody_store::StoreError> for ApiError {
    fn from(e: antibody_store::StoreError) -> Self {
        match e {
            antibody_store::StoreError::Conflict(m) => Self::Conflict(m),
            e => {
                tracing::error!(error = %e, "store error");
                Self::Unavailable("storage is unavailable; retry shortly".into())
            }
        }
    }
}

impl From<antibody_core::ingest::IngestError> for ApiError {
    fn from(e: antibody_core::ingest::IngestError) -> Self {
        Self::Invalid {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<antibody_respond::RespondError> for ApiError {
    fn from(e: antibody_respond::RespondError) -> Self {
        Self::Invalid {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        let body = json!({"error": {"code": code, "message": self.to_string()}});
        let mut resp = (status, axum::Json(body)).into_response();
        if let Self::Overloaded { retry_after_s, .. } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::ingest::IngestError;
    use antibody_respond::RespondError;

    #[test]
    fn every_code_the_crates_produce_has_one_status() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, status) in CODES {
            assert!(seen.insert(*code), "{code} listed twice");
            assert!(StatusCode::from_u16(*status).is_ok(), "{code}: {status}");
        }
        let ingest = [
            IngestError::TooLarge { limit: 1 },
            IngestError::TooManyEvents { limit: 1 },
            IngestError::NothingParseable {
                first_error: String::new(),
            },
            IngestError::InvalidJson {
                line: 1,
                column: 1,
                message: String::new(),
            },
            IngestError::UnsupportedEncoding(String::new()),
            IngestError::BadGzip(String::new()),
        ];
        let respond = [
            RespondError::ActionNotFound(String::new()),
            RespondError::IncidentNotFound(String::new()),
            RespondError::InvalidInput(String::new()),
            RespondError::Unavailable(String::new()),
            RespondError::InvalidAsset(String::new()),
            RespondError::UnknownCause(String::new()),
            RespondError::NotHealable {
                entity: String::new(),
                state: String::new(),
            },
            RespondError::DuplicateApprover {
                id: String::new(),
                actor: String::new(),
            },
        ];
        let codes = ingest
            .iter()
            .map(IngestError::code)
            .chain(respond.iter().map(RespondError::code))
            .chain(["invalid_yaml", "invalid_policy"])
            .chain(otlp_codes());
        for code in codes {
            assert!(
                CODES.iter().any(|(c, _)| *c == code),
                "`{code}` has no status in CODES"
            );
        }
        assert_eq!(status_of("too_many_events"), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(status_of("duplicate_approver"), StatusCode::CONFLICT);
        assert_eq!(status_of("no_such_code"), StatusCode::INTERNAL_SERVER_ERROR);
    }

    fn otlp_codes() -> impl Iterator<Item = &'static str> {
        use antibody_formats::otlp::OtlpError;
        [
            OtlpError::Protobuf {
                signal: "traces",
                reason: String::new(),
            },
            OtlpError::TooMany {
                limit: 1,
                items: "spans",
            },
            OtlpError::TooLarge { budget: 1 },
        ]
        .into_iter()
        .map(|e| e.code())
    }

    #[test]
    fn docs_api_md_lists_every_code() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md"));
        for (code, status) in CODES {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{code}` |")))
                .unwrap_or_else(|| panic!("docs/API.md has no row for `{code}`"));
            assert!(row.contains(&format!("| {status} |")), "{row}");
        }
    }
}
