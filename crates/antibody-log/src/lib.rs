//! The embedded durable segment log: what makes "an accepted event is durable before it is
//! acknowledged" true for the single-node deployment.
//!
//! Synchronous and std-only; the caller owns threading (one writer, typically behind a mutex)
//! and the clock (every append carries the caller's timestamp, which retention by age uses).
//!
//! # On-disk format
//!
//! A log is one directory of segment files. Each file is named after the offset of its first
//! record, zero-padded to 20 digits: `00000000000000001000.seg`. Offsets are record sequence
//! numbers: the first record ever is 0, they are contiguous across segments and are never
//! reused, so the name of the last segment plus its record count gives the next offset even
//! after retention has deleted everything older.
//!
//! A segment is a plain concatenation of records, each framed as (little endian):
//!
//! ```text
//! [len: u32][crc32: u32][append_ts_ms: i64][payload: len bytes]
//! ```
//!
//! where `crc32` is CRC-32 (IEEE) over the 8 timestamp bytes followed by the payload, and `len`
//! is at most [`MAX_PAYLOAD_LEN`] (16 MiB). There is no file header and no index: a reader
//! seeks to an offset by stepping over record headers from the segment start.
//!
//! # Durability and recovery
//!
//! [`SegmentLog::append`] hands records to the OS; [`SegmentLog::sync`] `fdatasync`s the
//! active segment (and the directory after a new segment was created). Records are
//! durable, and may be acknowledged, only once a `sync` after their append has returned — many
//! appends per sync is the group commit. When a segment is closed it is synced, with its
//! directory entry, before the next segment is created, so every segment but the last is
//! always complete on disk.
//!
//! The recovery rule on [`SegmentLog::open`] follows: only the last segment can be damaged
//! by a crash, so it alone is validated record by record, and the file is truncated at the
//! first record that is torn (the file ends inside it) or corrupt (bad length or checksum),
//! with a `warn!` giving the bytes dropped. Everything from that point on was written after
//! the last completed `sync`, so nothing acknowledged is lost; framing after a bad record
//! cannot be trusted, so later intact-looking bytes are dropped too. Earlier segments are
//! trusted at open; a bad record found in one later is reported as [`LogError::Corrupt`].
//!
//! # Retention
//!
//! [`SegmentLog::enforce_retention`] deletes whole closed segments, oldest first, by total
//! size or by the age of their newest record, and never one holding an offset the caller
//! still needs (`keep_from`, e.g. the offset of the last state snapshot).

mod error;
mod frame;
mod log;
mod reader;
mod segment;

pub use error::{CorruptReason, LogError};
pub use frame::{HEADER_LEN, MAX_PAYLOAD_LEN};
pub use log::{LogOptions, RetentionReport, SegmentLog};
pub use reader::LogReader;
