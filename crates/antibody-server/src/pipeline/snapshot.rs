//! Engine checkpoints on disk: `snapshots/engine-<next_offset>.snap`, written to a temporary
//! file, fsynced and renamed, so a crash leaves either the old or the new one whole.
//!
//! Format: `ABSNAP01` · next_offset u64 · partitions u32 · (len u64 · bytes)* · crc32 u32 of
//! everything before it. All integers little-endian.

use super::PipelineError;
use std::fs;
use std::path::PathBuf;

const MAGIC: &[u8; 8] = b"ABSNAP01";
const KEEP: usize = 2;

pub(crate) struct Snapshot {
    pub next_offset: u64,
    pub partitions: Vec<Vec<u8>>,
}

pub(crate) struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    pub(crate) fn new(dir: PathBuf) -> Result<Self, PipelineError> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn files(&self) -> Result<Vec<(u64, PathBuf)>, PipelineError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(off) = name
                .strip_prefix("engine-")
                .and_then(|n| n.strip_suffix(".snap"))
            {
                if let Ok(off) = off.parse::<u64>() {
                    out.push((off, path));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub(crate) fn write(&self, next_offset: u64, parts: &[Vec<u8>]) -> Result<(), PipelineError> {
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum::<usize>() + 24);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&next_offset.to_le_bytes());
        buf.extend_from_slice(&(parts.len() as u32).to_le_bytes());
        for p in parts {
            buf.extend_from_slice(&(p.len() as u64).to_le_bytes());
            buf.extend_from_slice(p);
        }
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let path = self.dir.join(format!("engine-{next_offset:020}.snap"));
        crate::durable_file::replace(&path, &[&buf])?;
        let files = self.files()?;
        for (_, old) in files.iter().take(files.len().saturating_sub(KEEP)) {
            let _ = fs::remove_file(old);
        }
        Ok(())
    }

    /// The newest snapshot that is whole and has `partitions` partitions; corrupt or
    /// mismatched ones are skipped with a warning (the log replay then covers more).
    pub(crate) fn load_latest(&self, partitions: usize) -> Result<Option<Snapshot>, PipelineError> {
        for (_, path) in self.files()?.into_iter().rev() {
            let bytes = fs::read(&path)?;
            match decode(&bytes) {
                Some(s) if s.partitions.len() == partitions => return Ok(Some(s)),
                Some(s) => tracing::warn!(
                    path = %path.display(),
                    have = s.partitions.len(),
                    want = partitions,
                    "snapshot has another partition count; rebuilding state from the log"
                ),
                None => tracing::warn!(path = %path.display(), "snapshot is corrupt; ignoring it"),
            }
        }
        Ok(None)
    }
}

fn decode(bytes: &[u8]) -> Option<Snapshot> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let next_offset = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let n = u32::from_le_bytes(body[16..20].try_into().ok()?) as usize;
    let mut pos = 20;
    let mut partitions = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = u64::from_le_bytes(body.get(pos..pos + 8)?.try_into().ok()?) as usize;
        pos += 8;
        partitions.push(body.get(pos..pos.checked_add(len)?)?.to_vec());
        pos += len;
    }
    (pos == body.len()).then_some(Snapshot {
        next_offset,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_load_and_keep_two() {
        let dir = tempfile::tempdir().unwrap();
        let s = SnapshotDir::new(dir.path().to_path_buf()).unwrap();
        for off in [10u64, 20, 30] {
            s.write(off, &[vec![1, 2, 3], vec![off as u8]]).unwrap();
        }
        let got = s.load_latest(2).unwrap().unwrap();
        assert_eq!(got.next_offset, 30);
        assert_eq!(got.partitions, vec![vec![1, 2, 3], vec![30]]);
        assert_eq!(s.files().unwrap().len(), 2);
        assert!(
            s.load_latest(3).unwrap().is_none(),
            "partition count must match"
        );
    }

    #[test]
    fn corrupt_newest_falls_back_to_older() {
        let dir = tempfile::tempdir().unwrap();
        let s = SnapshotDir::new(dir.path().to_path_buf()).unwrap();
        s.write(10, &[vec![7]]).unwrap();
        s.write(20, &[vec![8]]).unwrap();
        let newest = dir.path().join(format!("engine-{:020}.snap", 20));
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0xff;
        fs::write(&newest, bytes).unwrap();
        assert_eq!(s.load_latest(1).unwrap().unwrap().next_offset, 10);
    }

    #[test]
    fn decode_never_panics_on_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let s = SnapshotDir::new(dir.path().to_path_buf()).unwrap();
        s.write(5, &[vec![1; 100], vec![2; 50]]).unwrap();
        let bytes = fs::read(dir.path().join(format!("engine-{:020}.snap", 5))).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none());
        }
    }
}
