//! [`Reply`]: a completion that is called exactly once, even when the task carrying it is
//! dropped (runtime shut down, thread panicked) before it finished.

use antibody_respond::executor::{Completion, ExecResult};

pub struct Reply(Option<Completion>);

impl Reply {
    pub fn new(done: Completion) -> Self {
        Self(Some(done))
    }

    pub fn send(mut self, result: ExecResult) {
        if let Some(done) = self.0.take() {
            done(result);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(ExecResult::failed(
                "the executor stopped before the action finished",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn sends_once_or_fails_on_drop() {
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        Reply::new(Box::new(move |r| tx.send(r).unwrap())).send(ExecResult::ok("done"));
        drop(Reply::new(Box::new(move |r| tx2.send(r).unwrap())));
        assert_eq!(rx.recv().unwrap(), ExecResult::ok("done"));
        let dropped = rx.recv().unwrap();
        assert!(!dropped.ok);
        assert!(rx.recv().is_err(), "no third call");
    }
}
