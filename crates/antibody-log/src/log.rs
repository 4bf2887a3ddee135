//! The segment log itself: open/recover, append, group-commit sync, read and retention.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::iter;
use std::mem;
use std::ops::Range;
use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

use crate::error::LogError;
use crate::frame::{encode_into, record_len, MAX_PAYLOAD_LEN};
use crate::reader::{LogReader, SegmentSpan};
use crate::segment::{list_segments, newest_ts, recover, segment_path, sync_dir};

/// Largest slice handed to one `write` call; bounds the memory a huge batch costs.
const WRITE_CHUNK: usize = 4 * 1024 * 1024;

/// How the log sizes and expires its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A new segment is started when the next record would take the active one past this
    /// many bytes (a single larger record still gets a segment of its own). Default 64 MiB.
    pub segment_bytes: u64,
    /// Retention by size: closed segments are deleted, oldest first, while the log is larger.
    pub max_total_bytes: Option<u64>,
    /// Retention by age: a closed segment whose newest record's append timestamp is older
    /// than `now_ms - max_age_ms` is deleted.
    pub max_age_ms: Option<i64>,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            max_total_bytes: None,
            max_age_ms: None,
        }
    }
}

/// What one [`SegmentLog::enforce_retention`] call removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Segment files deleted.
    pub segments_deleted: usize,
    /// Bytes those files held.
    pub bytes_deleted: u64,
    /// The oldest offset still stored afterwards.
    pub first_offset: u64,
}

/// A segment no longer written to.
#[derive(Debug)]
struct ClosedSegment {
    base: u64,
    path: PathBuf,
    bytes: u64,
    /// Newest append timestamp; `None` until a retention check first needs it.
    newest_ts: Option<i64>,
}

/// The segment appends go to.
#[derive(Debug)]
struct ActiveSegment {
    base: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
    /// Newest append timestamp; `None` while the segment is empty.
    newest_ts: Option<i64>,
}

impl ActiveSegment {
    fn create(dir: &Path, base: u64) -> Result<Self, LogError> {
        let path = segment_path(dir, base);
        let file = create_segment(&path).map_err(|e| LogError::io(&path, e))?;
        Ok(Self {
            base,
            path,
            file,
            bytes: 0,
            newest_ts: None,
        })
    }

    /// Reopens the last segment after validating (and if needed truncating) it.
    fn reopen(dir: &Path, base: u64) -> Result<(Self, u64), LogError> {
        let path = segment_path(dir, base);
        let found = recover(&path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        // The previous process may have died before syncing what we are about to build on.
        sync_segment(&file).map_err(|e| LogError::io(&path, e))?;
        let segment = Self {
            base,
            path,
            file,
            bytes: found.bytes,
            newest_ts: found.newest_ts,
        };
        Ok((segment, found.records))
    }
}

/// Where the log stood after its last successful sync (or open): nothing past it was
/// acknowledged, so a failure discards everything past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SyncedMark {
    /// The segment that was active then.
    base: u64,
    /// Its length then.
    bytes: u64,
}

/// An append-only log of byte records split into segment files in one directory.
///
/// Single writer: the caller serialises access (e.g. behind a mutex) and must not open the
/// same directory twice. See the crate docs for the format and the durability contract.
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    opts: LogOptions,
    closed: VecDeque<ClosedSegment>,
    closed_bytes: u64,
    active: ActiveSegment,
    next_offset: u64,
    /// Encoded records not yet handed to the OS; reused across appends.
    pending: Vec<u8>,
    pending_records: u64,
    unsynced_data: bool,
    unsynced_dir: bool,
    synced: SyncedMark,
    poisoned: bool,
    /// Whether the bytes past `synced` are already gone from disk after a failure.
    rolled_back: bool,
    /// Bytes the failed write tried to add: recovery first checks that much fits again.
    failed_write: usize,
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir`, repairing a torn tail of the last segment.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<Self, LogError> {
        fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let mut found = list_segments(dir)?;
        let (active, next_offset) = match found.pop() {
            Some((base, _)) => {
                let (segment, records) = ActiveSegment::reopen(dir, base)?;
                (segment, base.saturating_add(records))
            }
            None => (ActiveSegment::create(dir, 0)?, 0),
        };
        // Makes the active segment's own directory entry durable before anything is acked.
        sync_dir(dir)?;
        let closed: VecDeque<ClosedSegment> = found
            .into_iter()
            .map(|(base, bytes)| ClosedSegment {
                base,
                path: segment_path(dir, base),
                bytes,
                newest_ts: None,
            })
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            opts,
            closed_bytes: closed.iter().map(|s| s.bytes).sum(),
            closed,
            next_offset,
            pending: Vec::new(),
            pending_records: 0,
            unsynced_data: false,
            unsynced_dir: false,
            synced: SyncedMark {
                base: active.base,
                bytes: active.bytes,
            },
            poisoned: false,
            rolled_back: false,
            failed_write: 0,
            active,
        })
    }

    /// The offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The oldest offset still stored (equal to `next_offset` when the log holds nothing).
    pub fn first_offset(&self) -> u64 {
        self.closed.front().map_or(self.active.base, |s| s.base)
    }

    /// Bytes held by all segment files.
    pub fn total_bytes(&self) -> u64 {
        self.closed_bytes + self.active.bytes
    }

    /// Appends `records`, all stamped `ts_ms`, and returns their offsets.
    ///
    /// The records reach the OS (one `write` per batch and segment where possible) and are
    /// visible to new readers, but are durable only after [`SegmentLog::sync`]. A payload over
    /// [`MAX_PAYLOAD_LEN`] rejects the whole batch before anything is written. An I/O error
    /// discards everything appended since the last successful sync (all or nothing: a
    /// refused batch leaves none of its records behind, even across a crash) and poisons the
    /// log: later calls fail with [`LogError::Poisoned`] until [`SegmentLog::recover`].
    pub fn append(&mut self, ts_ms: i64, records: &[&[u8]]) -> Result<Range<u64>, LogError> {
        self.check_usable()?;
        if let Some(big) = records.iter().find(|r| r.len() > MAX_PAYLOAD_LEN) {
            return Err(LogError::TooLarge {
                len: big.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let start = self.next_offset;
        let written = self.append_all(ts_ms, records);
        self.fail_on_err(written)?;
        Ok(start..self.next_offset)
    }

    /// Makes every appended record durable: flushes the active segment's data to disk and, if
    /// a segment was created since the last sync, the directory entry too. Call once per group
    /// of appends, then acknowledge them all. A failure discards every record appended since
    /// the last successful sync, as a failed append does.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.check_usable()?;
        let synced = self.sync_all();
        self.fail_on_err(synced)?;
        self.synced = SyncedMark {
            base: self.active.base,
            bytes: self.active.bytes,
        };
        Ok(())
    }

    /// Whether a failure left the log unusable until [`SegmentLog::recover`].
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Makes a failed log usable again once the cause is gone (space freed, descriptors
    /// back): finishes discarding what was written since the last successful sync if the
    /// failure could not, reopens the directory as [`SegmentLog::open`] does, and checks
    /// that a write as large as the failed one fits again. Fails, and may be called again,
    /// while the cause persists. A no-op on a healthy log.
    pub fn recover(&mut self) -> Result<(), LogError> {
        if !self.poisoned {
            return Ok(());
        }
        if !self.rolled_back {
            self.roll_back()?;
            self.rolled_back = true;
        }
        let mut fresh = Self::open(&self.dir, self.opts)?;
        fresh.probe(self.failed_write)?;
        *self = fresh;
        info!(dir = %self.dir.display(), next_offset = self.next_offset, "the log is usable again");
        Ok(())
    }

    /// Writes `len` bytes (at most one write chunk) past the end of the active segment and
    /// cuts them off again. Should a crash come between, recovery at open drops the zeros as
    /// a corrupt tail (a zero header fails its checksum).
    fn probe(&mut self, len: usize) -> Result<(), LogError> {
        if len == 0 {
            return Ok(());
        }
        let zeros = vec![0u8; len.min(WRITE_CHUNK)];
        let wrote = write_segment(&mut self.active.file, &zeros);
        let cut = self.active.file.set_len(self.active.bytes);
        wrote
            .and(cut)
            .map_err(|e| LogError::io(&self.active.path, e))
    }

    /// Reads from `offset` to the end of the log as of now, including records appended but not
    /// yet synced (a crash may still take those back). Records appended later are not seen.
    pub fn read_from(&self, offset: u64) -> Result<LogReader, LogError> {
        let oldest = self.first_offset();
        if offset < oldest {
            return Err(LogError::OffsetTruncated {
                requested: offset,
                oldest,
            });
        }
        if offset > self.next_offset {
            return Err(LogError::OffsetBeyondEnd {
                requested: offset,
                next: self.next_offset,
            });
        }
        let starts: Vec<(u64, &Path)> = self
            .closed
            .iter()
            .map(|s| (s.base, s.path.as_path()))
            .chain(iter::once((self.active.base, self.active.path.as_path())))
            .collect();
        let ends = starts
            .iter()
            .skip(1)
            .map(|(base, _)| *base)
            .chain(iter::once(self.next_offset));
        let spans = starts
            .iter()
            .zip(ends)
            .filter(|(_, end)| *end > offset)
            .map(|((base, path), end)| SegmentSpan {
                path: path.to_path_buf(),
                base: *base,
                end,
            })
            .collect();
        Ok(LogReader::new(spans, offset))
    }

    /// Deletes closed segments, oldest first, while the log is over `max_total_bytes` or the
    /// oldest segment's newest record is older than `now_ms - max_age_ms`. Never deletes the
    /// active segment nor any segment holding an offset `>= keep_from` (e.g. the offset of the
    /// engine's last snapshot, whose tail must still be replayable).
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        keep_from: u64,
    ) -> Result<RetentionReport, LogError> {
        let mut report = RetentionReport::default();
        while self.oldest_is_expendable(now_ms, keep_from)? {
            let Some(oldest) = self.closed.front() else {
                break;
            };
            fs::remove_file(&oldest.path).map_err(|e| LogError::io(&oldest.path, e))?;
            info!(segment = %oldest.path.display(), bytes = oldest.bytes, "deleted log segment by retention");
            report.segments_deleted += 1;
            report.bytes_deleted += oldest.bytes;
            self.closed_bytes -= oldest.bytes;
            self.closed.pop_front();
            // Deletions must reach disk in order: a crash must never leave an older segment
            // behind a gap where a newer one was removed.
            sync_dir(&self.dir)?;
        }
        report.first_offset = self.first_offset();
        Ok(report)
    }

    fn oldest_is_expendable(&mut self, now_ms: i64, keep_from: u64) -> Result<bool, LogError> {
        let over_size = self
            .opts
            .max_total_bytes
            .is_some_and(|max| self.total_bytes() > max);
        let end = self.closed.get(1).map_or(self.active.base, |s| s.base);
        let Some(oldest) = self.closed.front_mut() else {
            return Ok(false);
        };
        if end > keep_from {
            return Ok(false);
        }
        if over_size {
            return Ok(true);
        }
        let Some(max_age) = self.opts.max_age_ms else {
            return Ok(false);
        };
        let newest = match oldest.newest_ts {
            Some(ts) => ts,
            None => {
                let ts = newest_ts(&oldest.path, end - oldest.base)?;
                oldest.newest_ts = Some(ts);
                ts
            }
        };
        Ok(newest < now_ms.saturating_sub(max_age))
    }

    fn check_usable(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        Ok(())
    }

    /// After a failed write or fsync the file's tail is unknown (and Linux may have dropped
    /// the dirty pages), so only a reopen, which re-validates the tail, can continue safely.
    /// What was written since the last sync goes at once, not at the reopen: a crash before
    /// it must not bring back part of a batch that was refused.
    fn fail_on_err<T>(&mut self, result: Result<T, LogError>) -> Result<T, LogError> {
        if result.is_err() && !self.poisoned {
            self.poisoned = true;
            match self.roll_back() {
                Ok(()) => self.rolled_back = true,
                Err(e) => {
                    warn!(error = %e, "could not yet discard the records of a failed write; retrying at recovery")
                }
            }
        }
        result
    }

    /// Cuts the log back to the last successful sync: segments created since are deleted
    /// (newest first, before the truncation, so a crash halfway never leaves a later segment
    /// behind a shortened one) and the segment active then is truncated to its length then.
    fn roll_back(&mut self) -> Result<(), LogError> {
        let mark = self.synced;
        let newer = self
            .closed
            .iter()
            .map(|s| (s.base, &s.path))
            .chain(iter::once((self.active.base, &self.active.path)))
            .filter(|(base, _)| *base > mark.base)
            .map(|(_, path)| path.clone())
            .rev()
            .collect::<Vec<_>>();
        for path in &newer {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(path, e)),
            }
        }
        if !newer.is_empty() {
            sync_dir(&self.dir)?;
        }
        let path = segment_path(&self.dir, mark.base);
        let cut = |file: &File| file.set_len(mark.bytes).and_then(|()| file.sync_all());
        if self.active.base == mark.base {
            // No new descriptor needed: running out of them may be the very failure.
            cut(&self.active.file)
        } else {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| cut(&f))
        }
        .map_err(|e| LogError::io(&path, e))?;
        warn!(segment = %path.display(), kept_bytes = mark.bytes, segments_deleted = newer.len(), "discarded the log's unsynced records after a failure");
        Ok(())
    }

    fn append_all(&mut self, ts_ms: i64, records: &[&[u8]]) -> Result<(), LogError> {
        for payload in records {
            let size = record_len(payload.len());
            let filled = self.active.bytes + self.pending.len() as u64;
            if filled > 0 && filled + size > self.opts.segment_bytes {
                self.write_pending(ts_ms)?;
                self.roll()?;
            } else if !self.pending.is_empty()
                && self.pending.len() as u64 + size > WRITE_CHUNK as u64
            {
                self.write_pending(ts_ms)?;
            }
            encode_into(&mut self.pending, ts_ms, payload);
            self.pending_records += 1;
        }
        self.write_pending(ts_ms)
    }

    fn write_pending(&mut self, ts_ms: i64) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = write_segment(&mut self.active.file, &self.pending) {
            self.failed_write = self.pending.len();
            return Err(LogError::io(&self.active.path, e));
        }
        self.active.bytes += self.pending.len() as u64;
        self.active.newest_ts = self.active.newest_ts.max(Some(ts_ms));
        self.next_offset += self.pending_records;
        self.pending.clear();
        // One huge record must not pin its buffer for the life of the log.
        self.pending.shrink_to(WRITE_CHUNK);
        self.pending_records = 0;
        self.unsynced_data = true;
        Ok(())
    }

    /// Closes the active segment and starts the next one at `next_offset`.
    fn roll(&mut self) -> Result<(), LogError> {
        // Recovery repairs only the last segment, so a closed segment and its directory entry
        // must be durable before a later segment can exist on disk.
        sync_segment(&self.active.file).map_err(|e| LogError::io(&self.active.path, e))?;
        sync_dir(&self.dir)?;
        let next = ActiveSegment::create(&self.dir, self.next_offset)?;
        let old = mem::replace(&mut self.active, next);
        debug!(closed = %old.path.display(), bytes = old.bytes, next_base = self.next_offset, "rolled log segment");
        self.closed_bytes += old.bytes;
        self.closed.push_back(ClosedSegment {
            base: old.base,
            path: old.path,
            bytes: old.bytes,
            newest_ts: old.newest_ts,
        });
        self.unsynced_data = false;
        self.unsynced_dir = true;
        Ok(())
    }

    fn sync_all(&mut self) -> Result<(), LogError> {
        if self.unsynced_data {
            sync_segment(&self.active.file).map_err(|e| LogError::io(&self.active.path, e))?;
            self.unsynced_data = false;
        }
        if self.unsynced_dir {
            sync_dir(&self.dir)?;
            self.unsynced_dir = false;
        }
        Ok(())
    }
}

// The file calls a failure can come from, with the test seam that makes them fail
// (`fault`): the recovery paths are tested without filling a real disk.

fn create_segment(path: &Path) -> io::Result<File> {
    #[cfg(test)]
    fault::check(fault::Fault::Create)?;
    OpenOptions::new().append(true).create_new(true).open(path)
}

fn write_segment(file: &mut File, buf: &[u8]) -> io::Result<()> {
    #[cfg(test)]
    if let Some(room) = fault::room(buf.len()) {
        file.write_all(&buf[..room])?;
        return Err(io::ErrorKind::StorageFull.into());
    }
    file.write_all(buf)
}

fn sync_segment(file: &File) -> io::Result<()> {
    #[cfg(test)]
    fault::check(fault::Fault::Sync)?;
    file.sync_data()
}

#[cfg(test)]
pub(crate) mod fault;

#[cfg(test)]
mod tests;
