//! Segment files: naming, discovery, recovery of the last segment, and header scans.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::{CorruptReason, LogError};
use crate::frame::{FrameError, FrameReader};

const EXTENSION: &str = "seg";
const NAME_DIGITS: usize = 20;
const READ_BUFFER: usize = 64 * 1024;

/// Path of the segment whose first record has offset `base`.
pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:0NAME_DIGITS$}.{EXTENSION}"))
}

fn parse_name(name: &OsStr) -> Option<u64> {
    let digits = name.to_str()?.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir` as `(base offset, byte length)`, oldest first. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, u64)>, LogError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let Some(base) = parse_name(&entry.file_name()) else {
            continue;
        };
        let len = entry
            .metadata()
            .map_err(|e| LogError::io(entry.path(), e))?
            .len();
        found.push((base, len));
    }
    found.sort_unstable();
    Ok(found)
}

/// Flushes directory metadata so created or removed segment files survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

/// Turns a framing failure at `position` of `segment` into the crate error.
pub(crate) fn frame_error(segment: &Path, position: u64, err: FrameError) -> LogError {
    match err {
        FrameError::Io(e) => LogError::io(segment, e),
        FrameError::Corrupt(reason) => LogError::Corrupt {
            segment: segment.to_path_buf(),
            position,
            reason,
        },
    }
}

/// Opens a segment for sequential reading from its start.
pub(crate) fn open_frames(path: &Path) -> Result<FrameReader<BufReader<File>>, LogError> {
    let file = File::open(path).map_err(|e| LogError::io(path, e))?;
    let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    Ok(FrameReader::new(
        BufReader::with_capacity(READ_BUFFER, file),
        len,
    ))
}

/// What survived validation of the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub(crate) bytes: u64,
    pub(crate) records: u64,
    pub(crate) newest_ts: Option<i64>,
}

/// Validates every record of the segment at `path` and truncates the file at the first torn or
/// corrupt one: framing cannot be trusted past a bad record, and nothing past it was acknowledged
/// (see the crate docs).
pub(crate) fn recover(path: &Path) -> Result<Recovered, LogError> {
    let file_len = fs::metadata(path).map_err(|e| LogError::io(path, e))?.len();
    let mut frames = open_frames(path)?;
    let mut payload = Vec::new();
    let mut found = Recovered {
        bytes: 0,
        records: 0,
        newest_ts: None,
    };
    let bad = loop {
        match frames.read_into(&mut payload) {
            Ok(Some(ts)) => {
                found.records += 1;
                found.newest_ts = found.newest_ts.max(Some(ts));
            }
            Ok(None) => break None,
            Err(FrameError::Corrupt(reason)) => break Some(reason),
            Err(FrameError::Io(e)) => return Err(LogError::io(path, e)),
        }
    };
    found.bytes = frames.position();
    if let Some(reason) = bad {
        truncate(path, file_len, found.bytes, reason)?;
    }
    Ok(found)
}

fn truncate(path: &Path, file_len: u64, keep: u64, reason: CorruptReason) -> Result<(), LogError> {
    warn!(
        segment = %path.display(),
        position = keep,
        dropped_bytes = file_len - keep,
        %reason,
        "truncating torn or corrupt tail of the last log segment"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LogError::io(path, e))?;
    file.set_len(keep)
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io(path, e))
}

/// Newest timestamp in a closed segment, which must hold exactly `expected` records (its
/// successor's base minus its own). Reads headers only.
pub(crate) fn newest_ts(path: &Path, expected: u64) -> Result<i64, LogError> {
    let mut frames = open_frames(path)?;
    let mut found = 0u64;
    let mut newest = None;
    loop {
        let position = frames.position();
        match frames.skip() {
            Ok(Some(ts)) => {
                found += 1;
                newest = newest.max(Some(ts));
            }
            Ok(None) => break,
            Err(e) => return Err(frame_error(path, position, e)),
        }
    }
    match newest {
        Some(ts) if found == expected => Ok(ts),
        _ => Err(LogError::Corrupt {
            segment: path.to_path_buf(),
            position: frames.position(),
            reason: CorruptReason::RecordCount { expected, found },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_into;

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for base in [0u64, 42, u64::MAX] {
            let path = segment_path(dir.path(), base);
            assert_eq!(parse_name(path.file_name().unwrap()), Some(base));
            fs::write(&path, b"").unwrap();
        }
        assert_eq!(
            segment_path(dir.path(), 42).file_name().unwrap(),
            "00000000000000000042.seg"
        );
        for stranger in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.tmp",
        ] {
            fs::write(dir.path().join(stranger), b"").unwrap();
        }
        let bases: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(bases, vec![0, 42, u64::MAX]);
    }

    #[test]
    fn recover_keeps_valid_records_and_cuts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = Vec::new();
        encode_into(&mut bytes, 3, b"one");
        encode_into(&mut bytes, 9, b"two");
        let valid = bytes.len() as u64;
        bytes.extend_from_slice(&[0xAB; 5]);
        fs::write(&path, &bytes).unwrap();
        let found = recover(&path).unwrap();
        assert_eq!(
            found,
            Recovered {
                bytes: valid,
                records: 2,
                newest_ts: Some(9)
            }
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), valid);
    }

    #[test]
    fn newest_ts_checks_the_record_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = Vec::new();
        encode_into(&mut bytes, 30, b"a");
        encode_into(&mut bytes, 10, b"b");
        fs::write(&path, &bytes).unwrap();
        assert_eq!(newest_ts(&path, 2).unwrap(), 30);
        assert!(matches!(
            newest_ts(&path, 3),
            Err(LogError::Corrupt {
                reason: CorruptReason::RecordCount {
                    expected: 3,
                    found: 2
                },
                ..
            })
        ));
    }
}
