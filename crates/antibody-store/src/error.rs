//! The store's error type.

/// Everything that can go wrong in the store. The HTTP layer maps `Conflict` to 409,
/// `UnknownTenant` / `Invalid` to 4xx and the rest to 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("tenant {0} does not exist")]
    UnknownTenant(String),
    #[error("invalid record: {0}")]
    Invalid(String),
    #[error("stored {what} could not be decoded: {source}")]
    Corrupt {
        what: String,
        source: serde_json::Error,
    },
    #[error("could not encode {what}: {source}")]
    Encode {
        what: String,
        source: serde_json::Error,
    },
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("operating system random source failed: {0}")]
    Random(getrandom::Error),
}
