//! Runs one child process from an argv (never a shell) with a timeout, capturing its exit
//! code and the first 4 KiB of stdout and stderr. The child gets its own process group so a
//! timeout kills it and anything it started; the pipes are drained to the end so a chatty
//! child cannot block on a full pipe, and output still held open by a daemon the child left
//! behind is waited for only briefly.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Output kept per stream.
pub const CAPTURE_BYTES: usize = 4096;
/// How long output is still collected after the child exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutput {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// One phrase for a result message: `exit code 1`, `killed by signal 9`, `timed out`.
    pub fn describe(&self, timeout: Duration) -> String {
        match self.exit {
            Exit::Code(c) => format!("exit code {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::TimedOut => format!("timed out after {} ms", timeout.as_millis()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("empty argv")]
    Empty,
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot wait for `{program}`: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
}

/// Runs `argv` and waits at most `timeout` for it to exit.
pub fn run(argv: &[String], timeout: Duration) -> Result<RunOutput, RunError> {
    let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    // The pid stays ours until `wait` reaps it, so signalling it after a timeout cannot hit
    // a recycled pid.
    let pid = i32::try_from(child.id()).map(Pid::from_raw).ok();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = rx.recv_timeout(timeout).is_err();
    if let (true, Some(pid)) = (timed_out, pid) {
        // The group takes what the child started; the pid itself, in case the child left
        // the group.
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
    }
    let status = waiter
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("waiter thread panicked")))
        .map_err(|source| RunError::Wait {
            program: program.clone(),
            source,
        })?;
    let deadline = Instant::now() + OUTPUT_GRACE;
    Ok(RunOutput {
        exit: if timed_out {
            Exit::TimedOut
        } else {
            exit_of(status)
        },
        stdout: collect(stdout, deadline),
        stderr: collect(stderr, deadline),
    })
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}

/// A pipe being read on its own thread: what it kept so far, and a signal at its end.
struct Drain {
    kept: Arc<Mutex<Vec<u8>>>,
    ended: mpsc::Receiver<()>,
}

/// Reads a pipe to its end on a thread, keeping the first [`CAPTURE_BYTES`].
fn drain(mut pipe: impl Read + Send + 'static) -> Drain {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (tx, ended) = mpsc::channel();
    let sink = kept.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut kept = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = CAPTURE_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        let _ = tx.send(());
    });
    Drain { kept, ended }
}

/// What the pipe delivered by its end or by `deadline`, whichever comes first.
fn collect(drain: Option<Drain>, deadline: Instant) -> String {
    let Some(drain) = drain else {
        return String::new();
    };
    let _ = drain
        .ended
        .recv_timeout(deadline.saturating_duration_since(Instant::now()));
    let kept = drain.kept.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const LONG: Duration = Duration::from_secs(10);

    #[test]
    fn captures_exit_code_and_output() {
        let out = run(&argv(&["/bin/echo", "hello", "; world"]), LONG).unwrap();
        assert_eq!(out.exit, Exit::Code(0));
        assert_eq!(out.stdout, "hello ; world\n");
        assert!(out.success());
        let out = run(&argv(&["/bin/false"]), LONG).unwrap();
        assert_eq!(out.exit, Exit::Code(1));
        assert_eq!(out.describe(LONG), "exit code 1");
        let out = run(&argv(&["/bin/ls", "/definitely/not/here"]), LONG).unwrap();
        assert!(!out.success());
        assert!(
            out.stderr.contains("/definitely/not/here"),
            "{}",
            out.stderr
        );
    }

    #[test]
    fn keeps_only_the_first_4_kib_but_drains_everything() {
        // 1 MiB through the pipe: more than its buffer, so an undrained pipe would hang.
        let out = run(
            &argv(&["/usr/bin/head", "-c", "1048576", "/dev/zero"]),
            LONG,
        )
        .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), CAPTURE_BYTES);
    }

    #[test]
    fn timeout_kills_the_child() {
        let started = Instant::now();
        let out = run(&argv(&["/bin/sleep", "30"]), Duration::from_millis(50)).unwrap();
        assert_eq!(out.exit, Exit::TimedOut);
        assert_eq!(
            out.describe(Duration::from_millis(50)),
            "timed out after 50 ms"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_held_open_by_a_leftover_process_does_not_hang() {
        // `setsid --fork` exits at once, leaving a `sleep` in its own session that keeps
        // stdout open for 3 s.
        let started = Instant::now();
        let out = run(
            &argv(&["/usr/bin/setsid", "--fork", "/bin/sleep", "3"]),
            LONG,
        )
        .unwrap();
        assert!(out.success(), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn spawn_failure_is_an_error_not_a_panic() {
        assert!(matches!(
            run(&argv(&["/no/such/program"]), LONG),
            Err(RunError::Spawn { .. })
        ));
        assert!(matches!(run(&[], LONG), Err(RunError::Empty)));
    }
}
