//! Errors of the response engine: one enum for runtime calls (approvals, assets, snapshots)
//! and a list type for playbook validation, which reports every problem at once.

use std::fmt;

/// What a call into the responder can refuse. Each maps to one API error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    #[error("action `{0}` not found")]
    ActionNotFound(String),
    #[error("entity `{0}` not found")]
    EntityNotFound(String),
    #[error("action `{id}` is {status}; {expected}")]
    WrongStatus {
        id: String,
        status: String,
        expected: &'static str,
    },
    #[error("action `{id}` was already approved by key `{actor}`")]
    DuplicateApprover { id: String, actor: String },
    #[error("entity `{entity}` is {state}; heal-now applies to a contained or exhausted entity")]
    NotHealable { entity: String, state: String },
    #[error("unknown root cause `{0}`")]
    UnknownCause(String),
    #[error("invalid asset: {0}")]
    InvalidAsset(String),
    #[error("snapshot: {0}")]
    Snapshot(#[from] crate::SnapshotError),
    #[error("incident `{0}` not found")]
    IncidentNotFound(String),
    #[error("incident `{id}` is {status}; {expected}")]
    IncidentStatus {
        id: String,
        status: String,
        expected: &'static str,
    },
    #[error("{0}")]
    InvalidInput(String),
    /// What the call needed to read is out of reach now (storage); retry.
    #[error("{0}")]
    Unavailable(String),
}

impl RespondError {
    /// The snake_case code of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ActionNotFound(_) | Self::EntityNotFound(_) | Self::IncidentNotFound(_) => {
                "not_found"
            }
            Self::WrongStatus { .. } | Self::NotHealable { .. } | Self::IncidentStatus { .. } => {
                "conflict"
            }
            Self::InvalidInput(_) => "bad_request",
            Self::Unavailable(_) => "unavailable",
            Self::DuplicateApprover { .. } => "duplicate_approver",
            Self::InvalidAsset(_) => "invalid_asset",
            Self::UnknownCause(_) => "unknown_cause",
            Self::Snapshot(_) => "snapshot",
        }
    }
}

/// One problem in one playbook file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybookError {
    /// The source name (a file name for files on disk).
    pub file: String,
    /// 1-based line, when the problem can be pinned to one.
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for PlaybookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for PlaybookError {}

/// Every problem found while loading a playbook set, in file order; displays one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybookErrors(pub Vec<PlaybookError>);

impl fmt::Display for PlaybookErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlaybookErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playbook_errors_display_one_per_line() {
        let errs = PlaybookErrors(vec![
            PlaybookError {
                file: "a.yml".into(),
                line: Some(4),
                reason: "unknown action `nuke`".into(),
            },
            PlaybookError {
                file: "b.yml".into(),
                line: None,
                reason: "empty".into(),
            },
        ]);
        assert_eq!(
            errs.to_string(),
            "a.yml:4: unknown action `nuke`\nb.yml: empty"
        );
    }

    #[test]
    fn codes_are_snake_case() {
        assert_eq!(RespondError::ActionNotFound("a".into()).code(), "not_found");
        let dup = RespondError::DuplicateApprover {
            id: "a".into(),
            actor: "k".into(),
        };
        assert_eq!(dup.code(), "duplicate_approver");
    }
}
