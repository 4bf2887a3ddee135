//! API errors: one enum, one table of (status, code), one JSON shape:
//! `{"error": {"code": "snake_case", "message": "human sentence"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Invalid {
        code: &'static str,
        status: u16,
        message: String,
    },
    #[error("missing or unknown API key: send `Authorization: Bearer <key>`")]
    Unauthorized,
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
    #[error("the ingest queue is full; retry after {retry_after_s} s")]
    Overloaded { retry_after_s: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid { code, status, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                code,
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Overloaded { .. } => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
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
            status: e.status(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        let body = json!({"error": {"code": code, "message": self.to_string()}});
        let mut resp = (status, axum::Json(body)).into_response();
        if let Self::Overloaded { retry_after_s } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
