//! `antibody bench --scenario blocklist`: how long from an attack reaching antibody to the
//! attacker's address being served to firewalls. Each incident is one request of 12 failed
//! SSH logins from a fresh address; the clock stops when `GET /v1/blocklist` lists it.
//! Blocking HTTP on plain threads: the load is light (hundreds of incidents per second) and
//! each measurement is a request followed by polls.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 8;
const GIVE_UP: Duration = Duration::from_secs(5);

pub fn run(addr: &str, key: &str, incidents: u64, rate: u64, json: bool) -> Result<()> {
    let rate = if rate == 0 { 167 } else { rate };
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let salt = started.elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (next, latencies) = (next.clone(), latencies.clone());
            let (addr, key) = (addr.to_owned(), key.to_owned());
            std::thread::spawn(move || -> Result<()> {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i as u64 >= incidents {
                        return Ok(());
                    }
                    let due = started + every * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let ip = address(i as u64 ^ salt);
                    let ms = one(&addr, &key, &ip)?;
                    latencies
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .push(ms);
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    let mut lat = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    lat.sort_by(f64::total_cmp);
    let p = |q| crate::bench::percentile(&lat, q);
    let elapsed = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({"scenario": "blocklist", "incidents": lat.len(), "rate_per_s": lat.len() as f64 / elapsed,
                "latency_ms": {"p50": p(50.0), "p90": p(90.0), "p99": p(99.0), "max": lat.last()}})
        );
    } else {
        println!(
            "{} incidents in {elapsed:.1} s ({:.0}/min)",
            lat.len(),
            lat.len() as f64 / elapsed * 60.0
        );
        println!(
            "attack sent → address in /v1/blocklist, ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            p(50.0),
            p(90.0),
            p(99.0),
            lat.last().copied().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// A documentation-range-free, deterministic address for incident `i` (10.x.y.z).
fn address(i: u64) -> String {
    format!(
        "10.{}.{}.{}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        (i & 0xff).max(1)
    )
}

fn one(addr: &str, key: &str, ip: &str) -> Result<f64> {
    let body: String = (0..12)
        .map(|_| {
            format!("{{\"entity\":\"host:bench-{ip}\",\"kind\":\"auth\",\"attrs\":{{\"src_ip\":\"{ip}\",\"service\":\"ssh\",\"outcome\":\"failure\"}}}}\n")
        })
        .collect();
    let t0 = Instant::now();
    let (status, text) = http(addr, "POST", "/v1/events", key, body.as_bytes())?;
    if status != 202 {
        bail!("POST /v1/events answered {status}: {text}");
    }
    loop {
        let (status, list) = http(addr, "GET", "/v1/blocklist", key, b"")?;
        if status != 200 {
            bail!("GET /v1/blocklist answered {status}: {list}");
        }
        if list.lines().any(|l| l == ip) {
            return Ok(t0.elapsed().as_secs_f64() * 1000.0);
        }
        if t0.elapsed() > GIVE_UP {
            bail!("{ip} was not blocked within {GIVE_UP:?}: is the default brute-force playbook active?");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn http(addr: &str, method: &str, path: &str, key: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}
