//! Test seam: makes the log's file calls fail as a full disk, a failing device or an
//! exhausted descriptor table would, on the current thread, until cleared.

use std::cell::Cell;
use std::io;

/// A failure to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Writes take this many more bytes in all, then fail (a disk filling up).
    Full(usize),
    /// Every `fdatasync` fails.
    Sync,
    /// Creating a segment fails (no descriptor left).
    Create,
}

thread_local! {
    static PLAN: Cell<Option<Fault>> = const { Cell::new(None) };
}

pub(crate) fn inject(fault: Fault) {
    PLAN.with(|p| p.set(Some(fault)));
}

pub(crate) fn clear() {
    PLAN.with(|p| p.set(None));
}

/// Fails when `fault` is the one injected.
pub(crate) fn check(fault: Fault) -> io::Result<()> {
    if PLAN.with(Cell::get) == Some(fault) {
        return Err(io::Error::other(format!("injected {fault:?}")));
    }
    Ok(())
}

/// With a full disk injected and fewer than `len` bytes of room: how many bytes still fit
/// (they are written, then the write fails). `None`: the write goes through.
pub(crate) fn room(len: usize) -> Option<usize> {
    PLAN.with(|p| match p.get() {
        Some(Fault::Full(left)) if left < len => {
            p.set(Some(Fault::Full(0)));
            Some(left)
        }
        Some(Fault::Full(left)) => {
            p.set(Some(Fault::Full(left - len)));
            None
        }
        _ => None,
    })
}
