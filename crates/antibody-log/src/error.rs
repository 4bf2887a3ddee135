//! The crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Why a stored record was judged invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CorruptReason {
    /// The file ends inside a record's 16-byte header.
    #[error("incomplete record header")]
    TornHeader,
    /// The file ends inside a record's payload.
    #[error("incomplete payload ({len} bytes announced)")]
    TornPayload {
        /// The payload length the header announced.
        len: u32,
    },
    /// The header announces a payload larger than [`crate::MAX_PAYLOAD_LEN`].
    #[error("announced payload length {len} exceeds the maximum")]
    BadLength {
        /// The payload length the header announced.
        len: u32,
    },
    /// The CRC-32 over timestamp and payload does not match the header.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// A closed segment holds a different number of records than its successor's name implies.
    #[error("segment holds {found} records, expected {expected}")]
    RecordCount {
        /// Records implied by the segment names.
        expected: u64,
        /// Records actually found.
        found: u64,
    },
}

/// Everything that can go wrong in the segment log.
#[derive(Debug, Error)]
pub enum LogError {
    /// An I/O call failed on `path`.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stored record failed validation while reading.
    #[error("corrupt record in {} at byte {position}: {reason}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte position of the record's header within the segment.
        position: u64,
        /// What was wrong with it.
        reason: CorruptReason,
    },
    /// A payload passed to `append` is larger than [`crate::MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The rejected payload's length.
        len: usize,
        /// The maximum allowed length.
        max: usize,
    },
    /// The requested offset was removed by retention.
    #[error("offset {requested} was removed by retention; the oldest retained offset is {oldest}")]
    OffsetTruncated {
        /// The offset the caller asked for.
        requested: u64,
        /// The oldest offset still stored.
        oldest: u64,
    },
    /// The requested offset has not been written yet.
    #[error("offset {requested} is beyond the end of the log (next offset is {next})")]
    OffsetBeyondEnd {
        /// The offset the caller asked for.
        requested: u64,
        /// The offset the next appended record will get.
        next: u64,
    },
    /// An earlier write or sync failed, so the on-disk tail is unknown; reopening recovers it.
    #[error("the log is unusable after an earlier write or sync failure; reopen it")]
    Poisoned,
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
