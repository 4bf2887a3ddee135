//! The log's durable watermark: how far the group commit has fsynced.
//!
//! The committer hands a batch to the partitions as soon as it is written, and fsyncs while
//! they run the engine on it; a worker publishes the batch's findings only once the
//! watermark has passed its last event. Detection then overlaps the fsync instead of
//! following it, and nothing derived from an event is ever visible before the event is
//! durable. If an fsync fails, the batch's offsets are lost: workers waiting on them drop
//! what they derived (those events were never acknowledged), and the watermark moves on
//! once the committer has brought the log back.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Condvar, Mutex, PoisonError};

/// Lost ranges remembered; a worker is never this many log failures behind.
const MAX_LOST: usize = 64;

#[derive(Default)]
struct Mark {
    /// One past the last durable offset.
    durable: u64,
    /// Offsets handed to the engine whose fsync failed: never durable, whatever comes later.
    lost: VecDeque<Range<u64>>,
}

#[derive(Default)]
pub struct Watermark {
    mark: Mutex<Mark>,
    moved: Condvar,
}

impl Watermark {
    /// Everything below `offset` is on disk (recovery starts here with the log's end).
    pub fn starting_at(offset: u64) -> Self {
        let w = Self::default();
        w.advance(offset);
        w
    }

    pub fn advance(&self, to: u64) {
        let mut m = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        if to > m.durable {
            m.durable = to;
            self.moved.notify_all();
        }
    }

    /// The fsync of `offsets` failed: they will never be durable (the committer fills them
    /// with empty records once the log is back, so later offsets can still pass).
    pub fn lose(&self, offsets: Range<u64>) {
        let mut m = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        if m.lost.len() == MAX_LOST {
            m.lost.pop_front();
        }
        m.lost.push_back(offsets);
        self.moved.notify_all();
    }

    /// Blocks until everything below `end` is durable (`true`) or the batch ending at `end`
    /// was lost to a failed fsync (`false`).
    pub fn wait_for(&self, end: u64) -> bool {
        let mut m = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if m.lost.iter().any(|r| r.start < end && end <= r.end) {
                return false;
            }
            if m.durable >= end {
                return true;
            }
            m = self.moved.wait(m).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiters_wake_when_the_mark_passes_them_or_their_batch_is_lost() {
        let w = Arc::new(Watermark::starting_at(10));
        assert!(w.wait_for(10));
        let waiter = std::thread::spawn({
            let w = w.clone();
            move || w.wait_for(15)
        });
        w.advance(12);
        w.advance(15);
        assert!(waiter.join().unwrap());
        let waiter = std::thread::spawn({
            let w = w.clone();
            move || w.wait_for(20)
        });
        w.lose(15..20);
        assert!(!waiter.join().unwrap());
        // A mark never moves back.
        w.advance(3);
        assert!(w.wait_for(15));
        // The log came back (the lost offsets filled with empty records): later batches
        // pass, the lost one never does.
        w.advance(30);
        assert!(w.wait_for(25));
        assert!(!w.wait_for(20));
        assert!(!w.wait_for(17));
    }
}
