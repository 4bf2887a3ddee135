//! The syslog listener (`serve --syslog-listen ADDR`): UDP datagrams and TCP streams on one
//! address — TCP octet-counted or newline-framed (RFC 6587), TLS-only when `[syslog.tls]` is
//! set (RFC 5425) — read as RFC 3164 / RFC 5424 and mapped by the auth-log parser that
//! `replay --format authlog` uses, into the durable admission `POST /v1/events` uses: the
//! tenant's fair share, the shared ingest slots, the log's fsync.
//!
//! A batch handed to the log survives a crash once fsynced. TCP has nothing to acknowledge,
//! so when the server is at capacity a connection stops reading — the sender's window fills
//! and it waits — rather than dropping lines. UDP cannot wait long: a batch that finds no
//! room within [`UDP_PATIENCE`] is dropped and counted (`antibody_syslog_dropped_total`).

use crate::net::caps::ConnCaps;
use crate::net::{stopped, NetLimits, TlsAcceptor, TlsFiles};
use crate::routes::events::{try_admit, Admitted};
use crate::state::AppState;
use antibody_core::{Event, TenantId, TimestampMs};
use antibody_formats::syslog_frame::{Deframer, Frame, MAX_FRAME_BYTES};
use antibody_formats::AuthLogParser;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Events handed to the log at once: what one read brought, up to this many.
const BATCH_EVENTS: usize = 4096;
/// Batches of one source waiting for the log's fsync at once: reading goes on meanwhile.
const IN_FLIGHT_BATCHES: usize = 4;
/// How long a UDP batch waits for room before it is dropped.
pub const UDP_PATIENCE: Duration = Duration::from_secs(1);
/// Between retries when the server is at capacity.
const RETRY: Duration = Duration::from_millis(5);
/// The name the listener's events count against in the per-key share of fair ingest.
const SENDER: &str = "syslog";

/// `[syslog]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogConfig {
    /// UDP and TCP on this address (TCP only, with TLS).
    pub listen: SocketAddr,
    /// The tenant every message belongs to (`[syslog] tenant`, default `default`).
    pub tenant: TenantId,
    /// `[syslog.tls]`: TLS on the TCP port, and then no UDP (it would bypass client
    /// certificates and encryption alike).
    pub tls: Option<TlsFiles>,
    /// Connection caps and the TLS handshake deadline (`header_timeout`); `idle_timeout`
    /// closes a silent connection.
    pub net: NetLimits,
}

impl SyslogConfig {
    /// Idle senders are common (a quiet host), and a sender writing into a connection the
    /// server closed loses that message before it notices: idle connections get an hour.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tenant: TenantId::new(antibody_store::DEFAULT_TENANT),
            tls: None,
            net: NetLimits {
                idle_timeout: Self::IDLE_TIMEOUT,
                ..NetLimits::default()
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("cannot listen on {addr} for syslog ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    #[error("[syslog.tls]: {0}")]
    Tls(#[from] antibody_executors::tls::TlsError),
    #[error("[syslog] tenant `{0}` does not exist; create it (`antibody tenants create`) or name another")]
    UnknownTenant(String),
    #[error("checking [syslog] tenant: {0}")]
    Store(#[from] antibody_store::StoreError),
}

/// The bound sockets; [`SyslogListener::serve`] runs them.
pub struct SyslogListener {
    cfg: SyslogConfig,
    tcp: TcpListener,
    udp: Option<UdpSocket>,
    tls: Option<Arc<TlsAcceptor>>,
}

impl SyslogListener {
    /// Binds TCP, then UDP on the same port (the one the OS chose, for port 0).
    pub async fn bind(cfg: SyslogConfig) -> Result<Self, SyslogError> {
        let tls = cfg.tls.clone().map(TlsAcceptor::load).transpose()?;
        let bind_err = |proto| {
            move |source| SyslogError::Bind {
                addr: cfg.listen,
                proto,
                source,
            }
        };
        let tcp = TcpListener::bind(cfg.listen)
            .await
            .map_err(bind_err("tcp"))?;
        let udp = if tls.is_some() {
            None
        } else {
            let addr = tcp.local_addr().map_err(bind_err("tcp"))?;
            Some(UdpSocket::bind(addr).await.map_err(bind_err("udp"))?)
        };
        Ok(Self { cfg, tcp, udp, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The TCP port's TLS, for reloading on SIGHUP.
    pub fn tls(&self) -> Option<Arc<TlsAcceptor>> {
        self.tls.clone()
    }

    /// The tenant must exist: checked before serving, so a typo stops the start.
    pub fn check_tenant(&self, st: &AppState) -> Result<(), SyslogError> {
        match st.store.get_tenant(&self.cfg.tenant)? {
            Some(_) => Ok(()),
            None => Err(SyslogError::UnknownTenant(
                self.cfg.tenant.as_str().to_owned(),
            )),
        }
    }

    /// Serves until `stop` turns true; batches already handed to the log finish first.
    pub async fn serve(self, st: AppState, stop: watch::Receiver<bool>) {
        let src = Arc::new(Source {
            st,
            tenant: self.cfg.tenant.clone(),
        });
        let mut tasks = JoinSet::new();
        if let Some(udp) = self.udp {
            tasks.spawn(udp_loop(udp, src.clone(), stop.clone()));
        }
        tasks.spawn(tcp_loop(
            self.tcp,
            self.cfg.net,
            self.tls,
            src,
            stop.clone(),
        ));
        while tasks.join_next().await.is_some() {}
    }
}

/// What every reader of the listener shares.
struct Source {
    st: AppState,
    tenant: TenantId,
}

impl Source {
    fn parser(&self) -> AuthLogParser {
        AuthLogParser::live(self.tenant.clone(), self.st.clock.now_ms())
    }

    /// One message into `out` (a `message repeated N times` line is N events); malformed
    /// messages are counted, never fatal.
    fn read(&self, parser: &mut AuthLogParser, msg: &[u8], out: &mut Vec<Event>) {
        let m = &self.st.metrics;
        m.syslog_messages.fetch_add(1, Relaxed);
        let Ok(text) = std::str::from_utf8(msg) else {
            m.syslog_malformed.fetch_add(1, Relaxed);
            return;
        };
        match parser.parse_message(text) {
            Ok(Some(r)) if admissible(&r.event, &self.st, self.st.clock.now_ms()) => {
                for _ in 0..r.repeat {
                    out.push(r.event.clone());
                }
            }
            Ok(Some(_)) | Err(_) => {
                m.syslog_malformed.fetch_add(1, Relaxed);
            }
            Ok(None) => {}
        }
    }

    /// Hands `events` to the durable log through the same admission as HTTP ingest, retrying
    /// while the server is at capacity — for at most `patience`, then `Err` (the events are
    /// dropped and counted). Returns the admission, which holds the tenant's share until
    /// the log has the events, and the log's answer.
    async fn commit(
        &self,
        mut events: Vec<Event>,
        arrived: Instant,
        patience: Option<Duration>,
        stop: &watch::Receiver<bool>,
    ) -> Result<Committing, ()> {
        let n = events.len() as u64;
        loop {
            if let Ok(mut admitted) = try_admit(&self.st, &self.tenant, SENDER) {
                if admitted.share.reserve_events(n).is_ok() {
                    match self.st.pipeline.try_submit(events, arrived) {
                        Ok(rx) => return Ok(Committing { admitted, rx }),
                        Err((crate::pipeline::SubmitError::Stopped, _)) => break,
                        Err((_, back)) => events = back,
                    }
                }
            }
            if *stop.borrow() || patience.is_some_and(|p| arrived.elapsed() >= p) {
                break;
            }
            tokio::time::sleep(RETRY).await;
        }
        self.st.metrics.syslog_dropped.fetch_add(n, Relaxed);
        Err(())
    }
}

/// The checks `POST /v1/events` makes of a parsed event that a syslog line can fail: the
/// entity (the sender's hostname) and the timestamp's distance into the future. Attr
/// strings are bounded by the frame size.
fn admissible(ev: &Event, st: &AppState, now: TimestampMs) -> bool {
    let l = &st.limits;
    ev.entity.len() <= l.max_entity_bytes
        && !ev.entity.chars().any(char::is_control)
        && ev.ts.saturating_sub(now) <= l.max_future_ms
}

/// A batch in the log's hands.
struct Committing {
    admitted: Admitted,
    rx: tokio::sync::oneshot::Receiver<Result<crate::pipeline::CommitOutcome, String>>,
}

impl Committing {
    async fn finish(self, st: AppState, n: u64) {
        let _share = self.admitted;
        match self.rx.await {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => {
                tracing::warn!(%why, events = n, "syslog batch refused by the log");
                st.metrics.syslog_dropped.fetch_add(n, Relaxed);
            }
            Err(_) => {
                st.metrics.syslog_dropped.fetch_add(n, Relaxed);
            }
        }
    }
}

/// Batches of one source in the log's hands, at most [`IN_FLIGHT_BATCHES`].
struct InFlight {
    slots: Arc<Semaphore>,
}

impl InFlight {
    fn new() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(IN_FLIGHT_BATCHES)),
        }
    }

    /// Commits `events` and waits on the log's answer in the background; returns once the
    /// batch is handed over (reading may go on).
    async fn send(
        &self,
        src: &Source,
        events: Vec<Event>,
        arrived: Instant,
        patience: Option<Duration>,
        stop: &watch::Receiver<bool>,
    ) {
        if events.is_empty() {
            return;
        }
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let n = events.len() as u64;
        if let Ok(c) = src.commit(events, arrived, patience, stop).await {
            let st = src.st.clone();
            tokio::spawn(async move {
                c.finish(st, n).await;
                drop(slot);
            });
        }
    }

    /// Waits for every batch handed over.
    async fn drain(&self) {
        let _ = self.slots.acquire_many(IN_FLIGHT_BATCHES as u32).await;
    }
}

async fn udp_loop(udp: UdpSocket, src: Arc<Source>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; MAX_FRAME_BYTES];
    let mut parser = src.parser();
    let in_flight = InFlight::new();
    loop {
        let first = tokio::select! {
            () = stopped(&mut stop) => break,
            r = udp.recv_from(&mut buf) => r,
        };
        let arrived = Instant::now();
        parser.set_now(src.st.clock.now_ms());
        let mut events = Vec::new();
        let mut next = first;
        // One datagram is one message (RFC 5426); take whatever else is already queued.
        loop {
            match next {
                Ok((n, _)) => src.read(&mut parser, &buf[..n], &mut events),
                Err(e) => tracing::debug!(error = %e, "syslog UDP receive failed"),
            }
            if events.len() >= BATCH_EVENTS {
                break;
            }
            next = match udp.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                r => r,
            };
        }
        in_flight
            .send(&src, events, arrived, Some(UDP_PATIENCE), &stop)
            .await;
    }
    in_flight.drain().await;
}

async fn tcp_loop(
    listener: TcpListener,
    limits: NetLimits,
    tls: Option<Arc<TlsAcceptor>>,
    src: Arc<Source>,
    stop: watch::Receiver<bool>,
) {
    let caps = ConnCaps::new(limits.max_connections, limits.max_connections_per_ip);
    let mut conns = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match caps.try_acquire(peer.ip()) {
                    Ok(permit) => {
                        let (src, tls, stop) = (src.clone(), tls.clone(), stop.clone());
                        let limits = limits.clone();
                        conns.spawn(async move {
                            let _permit = permit;
                            connection(stream, peer, tls, &limits, &src, stop).await;
                        });
                    }
                    Err(refusal) => tracing::debug!(%peer, ?refusal, "syslog connection refused"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "syslog accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsAcceptor>>,
    limits: &NetLimits,
    src: &Source,
    stop: watch::Receiver<bool>,
) {
    let Some(tls) = tls else {
        return read_stream(stream, limits, src, stop).await;
    };
    match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
        Ok(Ok(s)) => read_stream(s, limits, src, stop).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "syslog TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "syslog TLS handshake timed out"),
    }
}

/// Reads frames until the sender closes, goes idle past the limit or the server stops;
/// every complete frame read is handed to the log before the connection ends.
async fn read_stream<IO: AsyncRead + AsyncWrite + Unpin>(
    mut io: IO,
    limits: &NetLimits,
    src: &Source,
    mut stop: watch::Receiver<bool>,
) {
    let mut deframer = Deframer::new();
    let mut parser = src.parser();
    let in_flight = InFlight::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            () = stopped(&mut stop) => break,
            r = tokio::time::timeout(limits.idle_timeout, io.read(&mut buf)) => r,
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "syslog connection read failed");
                0
            }
            Err(_) => {
                tracing::debug!("closing an idle syslog connection");
                0
            }
        };
        let arrived = Instant::now();
        parser.set_now(src.st.clock.now_ms());
        deframer.push(&buf[..n]);
        let mut events = Vec::new();
        while let Some(frame) = deframer.next_frame() {
            take(src, &mut parser, frame, &mut events);
            if events.len() >= BATCH_EVENTS {
                let full = std::mem::take(&mut events);
                in_flight.send(src, full, arrived, None, &stop).await;
            }
        }
        if n == 0 {
            if let Some(frame) = deframer.finish() {
                take(src, &mut parser, frame, &mut events);
            }
        }
        in_flight.send(src, events, arrived, None, &stop).await;
        if n == 0 {
            break;
        }
    }
    in_flight.drain().await;
    // A clean close (TLS: close_notify), so the sender can tell it from a cut connection.
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

fn take(src: &Source, parser: &mut AuthLogParser, frame: Frame<'_>, out: &mut Vec<Event>) {
    match frame {
        Frame::Message(m) => src.read(parser, m, out),
        Frame::Malformed(why) => {
            tracing::debug!(why, "malformed syslog frame");
            src.st.metrics.syslog_malformed.fetch_add(1, Relaxed);
        }
    }
}
