//! `antibody bench --scenario syslog`: end-to-end throughput of the syslog listener. sshd
//! lines (RFC 3164 and RFC 5424, newline-framed, over `--concurrency` TCP connections) are
//! built before the clock starts, written as fast as the listener reads them, and the clock
//! stops when the server's `antibody_events_processed_total` has grown by as many events:
//! lines received, framed, parsed, mapped, logged (fsynced) and run through the engine.

use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long the server may take to process what was sent before the run is called failed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

pub struct SyslogBench<'a> {
    /// The API (`host:port`), for `/metrics`.
    pub api: &'a str,
    /// The syslog listener's TCP address.
    pub syslog: &'a str,
    pub lines: u64,
    pub connections: u16,
    pub hosts: u32,
    pub json: bool,
}

impl SyslogBench<'_> {
    pub fn run(&self) -> Result<()> {
        let streams = self.build();
        let bytes: usize = streams.iter().map(Vec::len).sum();
        let before = counters(self.api).context("reading the server's /metrics")?;
        let started = Instant::now();
        let writers: Vec<_> = streams
            .into_iter()
            .map(|buf| {
                let addr = self.syslog.to_owned();
                std::thread::spawn(move || -> Result<()> {
                    let mut s = TcpStream::connect(&addr)
                        .with_context(|| format!("connecting to the syslog listener {addr}"))?;
                    s.set_nodelay(true)?;
                    s.write_all(&buf)?;
                    s.shutdown(std::net::Shutdown::Write)?;
                    // The listener closes once it has handed everything to the log.
                    let _ = s.read_to_end(&mut Vec::new());
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        let sent = started.elapsed();
        let want = before.processed + self.lines;
        let after = loop {
            let now = counters(self.api).context("reading the server's /metrics")?;
            if now.processed >= want {
                break now;
            }
            if now.dropped > before.dropped || now.malformed > before.malformed {
                bail!(
                    "the listener dropped {} and could not read {} lines",
                    now.dropped - before.dropped,
                    now.malformed - before.malformed
                );
            }
            if started.elapsed() > DRAIN_TIMEOUT {
                bail!(
                    "{} of {} events processed after {DRAIN_TIMEOUT:?}",
                    now.processed - before.processed,
                    self.lines
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        let rate = self.lines as f64 / took.as_secs_f64();
        if self.json {
            println!(
                "{}",
                json!({
                    "scenario": "syslog",
                    "lines": self.lines,
                    "bytes": bytes,
                    "connections": self.connections,
                    "sent_secs": sent.as_secs_f64(),
                    "processed_secs": took.as_secs_f64(),
                    "lines_per_sec": rate,
                    "messages_counted": after.messages - before.messages,
                })
            );
        } else {
            println!(
                "syslog: {} lines ({:.1} MB) over {} TCP connections: written in {:.2} s, processed by the engine in {:.2} s: {:.0} lines/s",
                self.lines,
                bytes as f64 / 1e6,
                self.connections,
                sent.as_secs_f64(),
                took.as_secs_f64(),
                rate
            );
        }
        Ok(())
    }

    /// One newline-framed stream per connection: sshd logins (9 in 10 accepted, 1 failed),
    /// RFC 3164 and RFC 5424 in turn, over `hosts` hosts and as many source addresses.
    fn build(&self) -> Vec<Vec<u8>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let stamp = antibody_core::clock::format_rfc3339(now);
        let bsd = bsd_stamp(&stamp);
        let n = usize::from(self.connections.max(1));
        let mut streams = vec![Vec::new(); n];
        for i in 0..self.lines {
            let h = (i % u64::from(self.hosts.max(1))) as u32;
            let ip = format!("10.{}.{}.{}", (h >> 16) & 255, (h >> 8) & 255, h & 255);
            let msg = if i % 10 == 9 {
                format!(
                    "Failed password for invalid user u{h} from {ip} port {} ssh2",
                    1024 + i % 60000
                )
            } else {
                format!(
                    "Accepted publickey for deploy from {ip} port {} ssh2: ED25519 SHA256:x",
                    1024 + i % 60000
                )
            };
            let line = if i % 2 == 0 {
                format!("<38>{bsd} host{h} sshd[{}]: {msg}\n", 1000 + h)
            } else {
                format!("<38>1 {stamp} host{h} sshd {} - - {msg}\n", 1000 + h)
            };
            streams[(i % n as u64) as usize].extend_from_slice(line.as_bytes());
        }
        streams
    }
}

/// `Mmm dd HH:MM:SS` of an RFC 3339 UTC timestamp.
fn bsd_stamp(rfc3339: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = rfc3339[5..7].parse().unwrap_or(1);
    let day: u32 = rfc3339[8..10].parse().unwrap_or(1);
    format!(
        "{} {day:>2} {}",
        MONTHS[month.clamp(1, 12) - 1],
        &rfc3339[11..19]
    )
}

#[derive(Default)]
struct Counters {
    processed: u64,
    messages: u64,
    malformed: u64,
    dropped: u64,
}

fn counters(api: &str) -> Result<Counters> {
    let mut s = TcpStream::connect(api)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let mut c = Counters::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<u64>() else {
            continue;
        };
        match name {
            "antibody_events_processed_total" => c.processed = v,
            "antibody_syslog_messages_total" => c.messages = v,
            "antibody_syslog_malformed_total" => c.malformed = v,
            "antibody_syslog_dropped_total" => c.dropped = v,
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_are_read_by_the_listeners_parser() {
        let b = SyslogBench {
            api: "",
            syslog: "",
            lines: 20,
            connections: 3,
            hosts: 4,
            json: false,
        };
        let streams = b.build();
        assert_eq!(streams.len(), 3);
        let mut parser =
            antibody_formats::AuthLogParser::live(antibody_core::TenantId::new("t"), 0);
        parser.set_now(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        );
        let mut events = 0;
        for s in &streams {
            for line in s.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let r = parser
                    .parse_message(std::str::from_utf8(line).unwrap())
                    .unwrap()
                    .expect("an auth event");
                events += r.repeat;
            }
        }
        assert_eq!(events, 20);
        assert_eq!(bsd_stamp("2026-03-05T07:08:09.000Z"), "Mar  5 07:08:09");
    }
}
