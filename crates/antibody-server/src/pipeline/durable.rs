//! The log's durable watermark: how far the group commit has fsynced.
//!
//! The committer hands a batch to the partitions as soon as it is written, and fsyncs while
//! they run the engine on it; a worker publishes the batch's findings only once the
//! watermark has passed its last event. Detection then overlaps the fsync instead of
//! following it, and nothing derived from an event is ever visible before the event is
//! durable. If the log fails, the watermark stops for good and waiting workers drop what
//! they derived (the service is marked unready and those events were never acknowledged).

use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Default)]
struct Mark {
    /// One past the last durable offset.
    durable: u64,
    failed: bool,
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

    /// The log can no longer be written: nothing past the watermark will become durable.
    pub fn fail(&self) {
        let mut m = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        m.failed = true;
        self.moved.notify_all();
    }

    /// Blocks until everything below `end` is durable (`true`) or the log failed (`false`).
    pub fn wait_for(&self, end: u64) -> bool {
        let mut m = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if m.durable >= end {
                return true;
            }
            if m.failed {
                return false;
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
    fn waiters_wake_when_the_mark_passes_them_or_the_log_fails() {
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
        w.fail();
        assert!(!waiter.join().unwrap());
        // A mark never moves back.
        w.advance(3);
        assert!(w.wait_for(15));
    }
}
