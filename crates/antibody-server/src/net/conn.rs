//! One connection's hygiene: what it is doing (reading a head, serving a request, idle),
//! the deadlines that follow from that, the JSON body for the errors hyper answers by itself,
//! and the lingering close that lets a client still sending read the answer.

use super::NetLimits;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// After the answer, how long and how much the server keeps reading (and discarding) what a
/// client still sends, before it closes. Closing with unread bytes makes the kernel send a
/// reset, which destroys the answer in the client's buffers (Python's urllib then reports
/// BrokenPipe instead of the 413 it was sent).
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 256 << 20;
const NONE: u64 = u64::MAX;

/// Why a connection was closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A request head did not arrive whole within `header_timeout` (slow loris).
    HeaderTimeout,
    /// Nothing happened for `idle_timeout` between requests.
    Idle,
}

/// What one connection is doing, shared by its I/O wrapper and its request service.
pub(crate) struct ConnState {
    born: Instant,
    /// Milliseconds since `born` of the last byte read or written.
    last_io: AtomicU64,
    /// When the first byte of the next request head arrived (`NONE`: no head pending).
    head_since: AtomicU64,
    /// Requests whose response has not ended.
    in_flight: AtomicU32,
    /// Set once the connection is closing (lingering has its own deadline).
    closing: std::sync::atomic::AtomicBool,
    /// The server is shutting down: close without lingering.
    stopping: std::sync::atomic::AtomicBool,
    /// Wakes the watchdog when a head starts (its deadline is sooner than the idle one).
    head_started: tokio::sync::Notify,
}

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            born: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            in_flight: AtomicU32::new(0),
            closing: Default::default(),
            stopping: Default::default(),
            head_started: tokio::sync::Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now();
        self.last_io.store(now, Relaxed);
        if self.in_flight.load(Relaxed) == 0 {
            // Only the first byte of a head starts its clock.
            if self
                .head_since
                .compare_exchange(NONE, now, Relaxed, Relaxed)
                .is_ok()
            {
                self.head_started.notify_one();
            }
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now(), Relaxed);
    }

    /// The server is shutting down: a close need not wait for the client.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Relaxed);
    }

    /// A request head was parsed: the request is in flight until the guard (held by its
    /// response body) drops.
    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_since.store(NONE, Relaxed);
        RequestGuard(self.clone())
    }

    /// The deadline that applies now, or how long until it must be checked again.
    fn check(&self, now: u64, limits: &NetLimits) -> Result<Expiry, Duration> {
        let ms = |d: Duration| d.as_millis() as u64;
        if self.closing.load(Relaxed) || self.in_flight.load(Relaxed) > 0 {
            // A request being served (a slow fsync, a live stream) is not idle.
            return Err(limits.idle_timeout.max(limits.header_timeout));
        }
        let head = self.head_since.load(Relaxed);
        let (deadline, why) = if head != NONE {
            (
                head.saturating_add(ms(limits.header_timeout)),
                Expiry::HeaderTimeout,
            )
        } else {
            let last = self.last_io.load(Relaxed);
            (last.saturating_add(ms(limits.idle_timeout)), Expiry::Idle)
        };
        if now >= deadline {
            Ok(why)
        } else {
            Err(Duration::from_millis(deadline - now))
        }
    }

    /// Resolves when the connection has overstayed a deadline.
    pub(crate) async fn expired(&self, limits: &NetLimits) -> Expiry {
        loop {
            match self.check(self.now(), limits) {
                Ok(why) => return why,
                Err(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.head_started.notified() => {}
                    }
                }
            }
        }
    }
}

/// Ends a request's time in flight when dropped (with its response body).
pub(crate) struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
        self.0.on_write();
    }
}

/// hyper answers a request head it cannot parse by itself, with a status and an empty body
/// (400 malformed, 414 URI too long, 431 headers too large). The API promises a JSON error
/// for everything, so such a head-only answer is replaced by the API's shape. The
/// application never sends these statuses without a body (every `ApiError` has one), so the
/// match cannot take one of its responses.
pub(crate) fn json_for_canned(buf: &[u8]) -> Option<Vec<u8>> {
    let (code, message) = match buf.get(..13)? {
        b"HTTP/1.1 400 " => (
            "bad_request",
            "the request line or a header is malformed (HTTP/1.1 expected)",
        ),
        b"HTTP/1.1 414 " => ("uri_too_long", "the request URI is too long"),
        b"HTTP/1.1 431 " => (
            "headers_too_large",
            "the request headers are too large or too many",
        ),
        _ => return None,
    };
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if end + 4 != buf.len() || !head.contains("\r\ncontent-length: 0") {
        return None;
    }
    Some(super::json_response(code, message))
}

enum Linger {
    Open,
    Draining {
        until: Pin<Box<tokio::time::Sleep>>,
        left: usize,
    },
    Done,
}

/// The connection's I/O as hyper sees it: records activity in [`ConnState`], swaps hyper's
/// empty error answers for JSON ones and lingers on close.
pub(crate) struct Watched<IO> {
    io: IO,
    state: Arc<ConnState>,
    /// A replacement answer still being written, and how much of it is.
    pending: Option<(Vec<u8>, usize)>,
    linger: Linger,
}

impl<IO> Watched<IO> {
    pub(crate) fn new(io: IO, state: Arc<ConnState>) -> Self {
        Self {
            io,
            state,
            pending: None,
            linger: Linger::Open,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Watched<IO> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Half-closes, then reads and drops what the client still sends until it closes too,
    /// the budget is spent or the time is up.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.linger {
                Linger::Open => {
                    self.state.closing.store(true, Relaxed);
                    let shut = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    if shut.is_err() || self.state.stopping.load(Relaxed) {
                        self.linger = Linger::Done;
                        continue;
                    }
                    self.linger = Linger::Draining {
                        until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        left: LINGER_BYTES,
                    };
                }
                Linger::Draining { until, left } => {
                    if until.as_mut().poll(cx).is_ready() {
                        self.linger = Linger::Done;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => {
                            *left = left.saturating_sub(buf.filled().len());
                            if *left == 0 {
                                self.linger = Linger::Done;
                            }
                        }
                        // End of stream or an error: the client is gone.
                        _ => self.linger = Linger::Done,
                    }
                }
                Linger::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = ready!(Pin::new(&mut me.io).poll_read(cx, buf));
        if r.is_ok() && buf.filled().len() > before {
            me.state.on_read();
        }
        Poll::Ready(r)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_pending(cx))?;
        if let Some(json) = json_for_canned(buf) {
            me.pending = Some((json, 0));
            // Written on this or a later poll (flush and shutdown finish it first).
            if let Poll::Ready(Err(e)) = me.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut me.io).poll_write(cx, buf))?;
        me.state.on_write();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_pending(cx))?;
        Pin::new(&mut me.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_pending(cx))?;
        ready!(Pin::new(&mut me.io).poll_flush(cx))?;
        me.poll_linger(cx)
    }

    // One buffer per write, so hyper's own error answer arrives whole in one call.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> NetLimits {
        NetLimits {
            header_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1000),
            ..NetLimits::default()
        }
    }

    #[test]
    fn a_started_head_must_finish_within_the_header_timeout() {
        let s = ConnState::new();
        let l = limits();
        assert_eq!(s.check(0, &l), Err(Duration::from_millis(1000)));
        s.head_since.store(50, Relaxed);
        assert_eq!(s.check(120, &l), Err(Duration::from_millis(30)));
        assert_eq!(s.check(150, &l), Ok(Expiry::HeaderTimeout));
        // Once the head is parsed the request is in flight: no deadline while it is served.
        let guard = s.begin();
        assert!(s.check(10_000, &l).is_err());
        s.last_io.store(5_000, Relaxed);
        drop(guard);
        let last = s.last_io.load(Relaxed);
        assert_eq!(s.check(last + 999, &l), Err(Duration::from_millis(1)));
        assert_eq!(s.check(last + 1000, &l), Ok(Expiry::Idle));
    }

    #[test]
    fn only_hypers_empty_error_answers_are_replaced() {
        let canned =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(json_for_canned(canned).unwrap()).unwrap();
        assert!(json.starts_with("HTTP/1.1 431 "), "{json}");
        assert!(json.contains("\"code\":\"headers_too_large\""), "{json}");
        assert!(json.contains("connection: close"), "{json}");
        let uri = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(json_for_canned(uri).unwrap())
            .unwrap()
            .contains("uri_too_long"));
        // An application answer has a body: never touched.
        let app = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert!(json_for_canned(app).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(json_for_canned(ok).is_none());
        assert!(json_for_canned(b"HTTP/1.1 4").is_none());
    }

    proptest::proptest! {
        /// Whatever the application writes, the check never panics, and anything with a
        /// body after the head is left alone.
        #[test]
        fn only_head_only_error_answers_are_touched(
            status in proptest::sample::select(vec![200u16, 202, 400, 401, 413, 414, 431, 500]),
            headers in "([a-z-]{1,12}: [ -~]{0,20}\r\n){0,4}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 1..64),
        ) {
            let mut buf = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{headers}\r\n").into_bytes();
            let head_only = json_for_canned(&buf);
            proptest::prop_assert_eq!(head_only.is_some(), [400, 414, 431].contains(&status));
            buf.extend_from_slice(&body);
            proptest::prop_assert!(json_for_canned(&buf).is_none());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = json_for_canned(&bytes);
        }
    }
}
