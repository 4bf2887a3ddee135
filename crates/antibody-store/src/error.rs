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

impl StoreError {
    /// Whether the store refused these records themselves (a constraint, a type, a size):
    /// writing them again fails again. Anything else (disk full, I/O, busy, locked,
    /// read-only, a damaged schema) is the database's state, which can change.
    pub fn is_about_the_record(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                C::ConstraintViolation | C::TypeMismatch | C::TooBig | C::ParameterOutOfRange
            ),
            // Other rusqlite errors are about binding or converting values.
            StoreError::Sqlite(_) => true,
            StoreError::Conflict(_)
            | StoreError::UnknownTenant(_)
            | StoreError::Invalid(_)
            | StoreError::Encode { .. } => true,
            StoreError::Corrupt { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::Random(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn the_database_state_is_retried_the_record_is_not() {
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_ERROR,
        ] {
            assert!(!sqlite(code).is_about_the_record(), "{code}");
        }
        for code in [
            rusqlite::ffi::SQLITE_CONSTRAINT,
            rusqlite::ffi::SQLITE_TOOBIG,
        ] {
            assert!(sqlite(code).is_about_the_record(), "{code}");
        }
        assert!(StoreError::Invalid("x".into()).is_about_the_record());
    }
}
