//! How many events a partition worker holds that it has not processed yet.
//!
//! Bounded in events rather than in messages: a checkpoint pauses a worker for tens of
//! milliseconds, and a queue of a few messages then filled and stopped the committer (and
//! every ingest request) behind it. A budget in events rides out such a pause at any batch
//! size and still bounds memory; past it, the committer waits, the ingest queue fills and
//! clients get 429s.

use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Default)]
struct Count {
    held: usize,
    closed: bool,
}

pub(crate) struct Inflight {
    count: Mutex<Count>,
    freed: Condvar,
    max: usize,
}

impl Inflight {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            count: Mutex::default(),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    /// Waits until `n` more events fit (a batch larger than the budget goes alone), unless
    /// the worker is gone.
    pub(crate) fn acquire(&self, n: usize) {
        let mut c = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        while !c.closed && c.held > 0 && c.held + n > self.max {
            c = self.freed.wait(c).unwrap_or_else(PoisonError::into_inner);
        }
        c.held += n;
    }

    pub(crate) fn release(&self, n: usize) {
        let mut c = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        c.held = c.held.saturating_sub(n);
        self.freed.notify_all();
    }

    /// The worker stopped: nobody waits for it any more.
    pub(crate) fn close(&self) {
        let mut c = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        c.closed = true;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn acquire_waits_for_room_and_never_for_a_closed_worker() {
        let f = Arc::new(Inflight::new(10));
        f.acquire(8);
        let waiter = std::thread::spawn({
            let f = f.clone();
            move || f.acquire(5)
        });
        f.release(8);
        waiter.join().unwrap();
        // An oversized batch goes alone once the worker is idle.
        f.release(5);
        f.acquire(50);
        let waiter = std::thread::spawn({
            let f = f.clone();
            move || f.acquire(1)
        });
        f.close();
        waiter.join().unwrap();
    }
}
