//! Replacing a whole file (a snapshot) durably: written beside, fsynced, renamed, so a crash
//! leaves either the old or the new file whole.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Bytes written between two fdatasyncs. The disk has one write cache and every fsync waits
/// for all of it, so one fsync after megabytes would stall the log's group commit (and with
/// it every ingest request) for tens of milliseconds; a flush per chunk keeps each stall short.
const CHUNK: usize = 1 << 20;

/// Writes `parts` one after another to `path` (via `<path>.tmp`).
pub(crate) fn replace(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        let mut unsynced = 0;
        for part in parts {
            for chunk in part.chunks(CHUNK) {
                f.write_all(chunk)?;
                unsynced += chunk.len();
                if unsynced >= CHUNK {
                    f.sync_data()?;
                    unsynced = 0;
                }
            }
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        fs::write(&path, b"old").unwrap();
        let big = vec![7u8; CHUNK * 2 + 5];
        replace(&path, &[b"head", &big, b"tail"]).unwrap();
        let got = fs::read(&path).unwrap();
        assert_eq!(got.len(), 4 + big.len() + 4);
        assert!(got.starts_with(b"head") && got.ends_with(b"tail"));
        assert!(!path.with_extension("tmp").exists());
    }
}
