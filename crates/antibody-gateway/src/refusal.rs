//! Why the gateway answers a call itself, in OpenAI's error shape
//! `{"error": {"message", "type", "param", "code"}}` so an agent's OpenAI client raises its
//! usual exceptions. One table ([`CODES`]) gives each code its status and type. No message
//! ever carries an upstream key.

/// `code`, HTTP status, OpenAI error `type`.
pub const CODES: &[(&str, u16, &str)] = &[
    ("invalid_request", 400, "invalid_request_error"),
    ("invalid_api_key", 401, "authentication_error"),
    ("permission_denied", 403, "permission_error"),
    ("agent_quarantined", 403, "permission_error"),
    ("agent_blocked", 403, "permission_error"),
    ("model_not_allowed", 403, "permission_error"),
    ("max_tokens_exceeded", 403, "permission_error"),
    ("tool_revoked", 403, "permission_error"),
    ("prompt_injection", 403, "permission_error"),
    ("not_found", 404, "invalid_request_error"),
    ("request_too_large", 413, "invalid_request_error"),
    ("agent_throttled", 429, "rate_limit_error"),
    ("rate_limit_exceeded", 429, "rate_limit_error"),
    ("tokens_limit_exceeded", 429, "rate_limit_error"),
    ("budget_exceeded", 429, "rate_limit_error"),
    ("upstream_unavailable", 502, "api_error"),
    ("unavailable", 503, "api_error"),
    ("upstream_timeout", 504, "api_error"),
];

/// The status and type of `code` (500 / `api_error` for a code not in the table: a bug a
/// test catches).
pub fn status_of(code: &str) -> (u16, &'static str) {
    CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or((500, "api_error"), |(_, s, t)| (*s, t))
}

/// A refusal: its code, a sentence, and when to retry (429s).
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(mut self, ms: i64) -> Self {
        // Whole seconds, rounded up, at least one: a client that waits that long may pass.
        self.retry_after_s = Some((ms.max(1) as u64).div_ceil(1000));
        self
    }

    pub fn status(&self) -> u16 {
        status_of(self.code).0
    }

    /// The OpenAI-shaped body.
    pub fn body(&self) -> Vec<u8> {
        let (_, kind) = status_of(self.code);
        let v = serde_json::json!({"error": {
            "message": self.message, "type": kind, "param": null, "code": self.code,
        }});
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_row_and_a_sensible_status() {
        for (i, (code, status, _)) in CODES.iter().enumerate() {
            assert!(CODES[..i].iter().all(|(c, _, _)| c != code), "{code} twice");
            assert!((400..600).contains(status));
        }
        let r = Refusal::new("budget_exceeded", "spent").retry_after(1_001);
        assert_eq!((r.status(), r.retry_after_s), (429, Some(2)));
        let v: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "budget_exceeded");
        assert_eq!(status_of("nope").0, 500);
    }

    /// docs/API.md's gateway error table and [`CODES`] say the same.
    #[test]
    fn the_documented_table_is_this_table() {
        let api = include_str!("../../../docs/API.md");
        let section = api
            .split("## LLM gateway")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        let documented: Vec<(String, u16, String)> = section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.get(2)?.parse().ok()?;
                let kind = cells.get(3)?.trim_matches('`');
                Some((code.to_owned(), status, kind.to_owned()))
            })
            .collect();
        let ours: Vec<(String, u16, String)> = CODES
            .iter()
            .map(|(c, s, t)| ((*c).to_owned(), *s, (*t).to_owned()))
            .collect();
        assert_eq!(documented, ours);
    }
}
