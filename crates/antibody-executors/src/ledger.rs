//! The idempotency ledger every executor keeps: which action ids it applied or undid, so a
//! repeated `Apply` (a retry, a replay after a crash) never runs twice. Bounded: the oldest
//! ids are forgotten first; the server's stored action status covers anything older.

use antibody_respond::executor::ExecOp;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// Ids remembered per executor unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Applying,
    Applied,
    Undoing { was_applied: bool },
    Undone,
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Go ahead, then call [`Ledger::finish`].
    Proceed,
    /// Already done (or being done): report success without acting.
    AlreadyDone(&'static str),
    /// Refused: report failure without acting.
    Refuse(&'static str),
}

#[derive(Debug)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    seq: u64,
    ids: HashMap<String, (State, u64)>,
    /// Insertion order; an entry whose sequence number no longer matches is stale.
    order: VecDeque<(String, u64)>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Ledger {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                seq: 0,
                ids: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// Claims `id` for `op`.
    pub fn begin(&self, id: &str, op: ExecOp) -> Begin {
        let mut inner = self.lock();
        let state = inner.ids.get(id).map(|(s, _)| *s);
        let (next, answer) = match (op, state) {
            (ExecOp::Apply, None) => (State::Applying, Begin::Proceed),
            (ExecOp::Apply, Some(State::Applying)) => {
                return Begin::AlreadyDone("already being applied")
            }
            (ExecOp::Apply, Some(State::Applied)) => return Begin::AlreadyDone("already applied"),
            (ExecOp::Apply, Some(State::Undoing { .. } | State::Undone)) => {
                return Begin::Refuse("this action was undone; a new action is needed")
            }
            (ExecOp::Undo, Some(State::Applying)) => {
                return Begin::Refuse("the action is still being applied; undo it afterwards")
            }
            (ExecOp::Undo, Some(State::Undoing { .. })) => {
                return Begin::AlreadyDone("already being undone")
            }
            (ExecOp::Undo, Some(State::Undone)) => return Begin::AlreadyDone("already undone"),
            (ExecOp::Undo, prior) => (
                State::Undoing {
                    was_applied: prior == Some(State::Applied),
                },
                Begin::Proceed,
            ),
        };
        inner.set(id, next);
        answer
    }

    /// Records the outcome of a request [`Ledger::begin`] let through. A failed apply is
    /// forgotten so it may be retried; a failed undo leaves the action as it was.
    pub fn finish(&self, id: &str, op: ExecOp, ok: bool) {
        let mut inner = self.lock();
        let Some(&(state, _)) = inner.ids.get(id) else {
            return;
        };
        match (op, state, ok) {
            (ExecOp::Apply, State::Applying, true) => inner.set(id, State::Applied),
            (ExecOp::Apply, State::Applying, false) => {
                inner.ids.remove(id);
            }
            (ExecOp::Undo, State::Undoing { .. }, true) => inner.set(id, State::Undone),
            (ExecOp::Undo, State::Undoing { was_applied: true }, false) => {
                inner.set(id, State::Applied)
            }
            (ExecOp::Undo, State::Undoing { was_applied: false }, false) => {
                inner.ids.remove(id);
            }
            _ => {}
        }
    }

    /// Whether `id` is currently applied (and not undone).
    pub fn is_applied(&self, id: &str) -> bool {
        self.lock()
            .ids
            .get(id)
            .is_some_and(|(s, _)| *s == State::Applied)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn set(&mut self, id: &str, state: State) {
        if let Some(entry) = self.ids.get_mut(id) {
            entry.0 = state;
            return;
        }
        self.seq += 1;
        self.ids.insert(id.to_owned(), (state, self.seq));
        self.order.push_back((id.to_owned(), self.seq));
        while self.ids.len() > self.capacity {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.ids.get(&old).is_some_and(|(_, s)| *s == seq) {
                self.ids.remove(&old);
            }
        }
        // Stale order entries (failed applies) are dropped lazily; cap them too.
        if self.order.len() > self.capacity * 2 {
            let ids = &self.ids;
            self.order
                .retain(|(id, seq)| ids.get(id).is_some_and(|(_, s)| s == seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecOp::{Apply, Undo};

    #[test]
    fn apply_once_then_undo_once() {
        let l = Ledger::default();
        assert_eq!(l.begin("a", Apply), Begin::Proceed);
        assert_eq!(
            l.begin("a", Apply),
            Begin::AlreadyDone("already being applied")
        );
        assert!(matches!(l.begin("a", Undo), Begin::Refuse(_)));
        l.finish("a", Apply, true);
        assert!(l.is_applied("a"));
        assert_eq!(l.begin("a", Apply), Begin::AlreadyDone("already applied"));
        assert_eq!(l.begin("a", Undo), Begin::Proceed);
        l.finish("a", Undo, true);
        assert_eq!(l.begin("a", Undo), Begin::AlreadyDone("already undone"));
        assert!(matches!(l.begin("a", Apply), Begin::Refuse(_)));
        assert!(!l.is_applied("a"));
    }

    #[test]
    fn failures_leave_the_action_retryable() {
        let l = Ledger::default();
        assert_eq!(l.begin("a", Apply), Begin::Proceed);
        l.finish("a", Apply, false);
        assert_eq!(l.begin("a", Apply), Begin::Proceed);
        l.finish("a", Apply, true);
        assert_eq!(l.begin("a", Undo), Begin::Proceed);
        l.finish("a", Undo, false);
        assert!(l.is_applied("a"));
        assert_eq!(l.begin("never", Undo), Begin::Proceed);
        l.finish("never", Undo, false);
        assert_eq!(l.begin("never", Undo), Begin::Proceed);
    }

    #[test]
    fn bounded_oldest_forgotten_first() {
        let l = Ledger::new(3);
        for id in ["a", "b", "c", "d"] {
            assert_eq!(l.begin(id, Apply), Begin::Proceed);
            l.finish(id, Apply, true);
        }
        assert!(!l.is_applied("a"));
        assert!(l.is_applied("b") && l.is_applied("d"));
        for i in 0..100 {
            let id = format!("f{i}");
            l.begin(&id, Apply);
            l.finish(&id, Apply, false);
        }
        let inner = l.lock();
        assert!(inner.ids.len() <= 3);
        assert!(inner.order.len() <= 7, "{}", inner.order.len());
    }
}
