//! Sequential reading of records over a snapshot of the segment list.

use std::fs::File;
use std::io::BufReader;
use std::iter::FusedIterator;
use std::path::PathBuf;

use crate::error::{CorruptReason, LogError};
use crate::frame::FrameReader;
use crate::segment::{frame_error, open_frames};

/// One segment's share of a read: the records `base..end` stored in `path`.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSpan {
    pub(crate) path: PathBuf,
    pub(crate) base: u64,
    pub(crate) end: u64,
}

/// Iterator over `(offset, append_ts_ms, payload)` from a starting offset to the end of the log
/// as it was when the reader was created.
///
/// It owns its file handles, so the log stays free for appends while it runs. Segment files are
/// opened lazily; one deleted by retention before the reader reaches it yields an `Io` error.
/// After the first error the iterator ends.
#[derive(Debug)]
pub struct LogReader {
    spans: std::vec::IntoIter<SegmentSpan>,
    current: Option<(SegmentSpan, FrameReader<BufReader<File>>)>,
    next: u64,
    failed: bool,
}

impl LogReader {
    pub(crate) fn new(spans: Vec<SegmentSpan>, from: u64) -> Self {
        Self {
            spans: spans.into_iter(),
            current: None,
            next: from,
            failed: false,
        }
    }

    /// The offset of the record the next call to `next` returns.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    fn read_next(&mut self) -> Result<Option<(u64, i64, Vec<u8>)>, LogError> {
        loop {
            let Some((span, frames)) = &mut self.current else {
                let Some(span) = self.spans.next() else {
                    return Ok(None);
                };
                let frames = open_at(&span, self.next)?;
                self.current = Some((span, frames));
                continue;
            };
            if self.next >= span.end {
                self.current = None;
                continue;
            }
            let position = frames.position();
            let mut payload = Vec::new();
            return match frames.read_into(&mut payload) {
                Ok(Some(ts)) => {
                    let offset = self.next;
                    self.next += 1;
                    Ok(Some((offset, ts, payload)))
                }
                Ok(None) => Err(ended_early(span, self.next, position)),
                Err(e) => Err(frame_error(&span.path, position, e)),
            };
        }
    }
}

/// Opens `span`'s file positioned at record `offset` by stepping over the records before it.
fn open_at(span: &SegmentSpan, offset: u64) -> Result<FrameReader<BufReader<File>>, LogError> {
    let mut frames = open_frames(&span.path)?;
    for at in span.base..offset {
        let position = frames.position();
        match frames.skip() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(ended_early(span, at, position)),
            Err(e) => return Err(frame_error(&span.path, position, e)),
        }
    }
    Ok(frames)
}

fn ended_early(span: &SegmentSpan, reached: u64, position: u64) -> LogError {
    LogError::Corrupt {
        segment: span.path.clone(),
        position,
        reason: CorruptReason::RecordCount {
            expected: span.end - span.base,
            found: reached - span.base,
        },
    }
}

impl Iterator for LogReader {
    type Item = Result<(u64, i64, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.read_next().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

impl FusedIterator for LogReader {}
