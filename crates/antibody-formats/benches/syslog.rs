//! The syslog listener's per-line work: a TCP stream cut into frames (RFC 6587, newline and
//! octet-counted) and each message read as RFC 3164 / 5424 and mapped to an `auth` event,
//! as `antibody_server::syslog` does. 1,000 sshd lines per iteration.

use antibody_core::TenantId;
use antibody_formats::syslog_frame::{Deframer, Frame};
use antibody_formats::AuthLogParser;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The server runs on mimalloc; measure with the allocator it will have.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW: i64 = 1_796_700_000_000; // 2026-12-08
const LINES: u64 = 1000;

/// sshd lines, RFC 3164 and 5424 in turn, 9 in 10 accepted logins; counted framing when
/// `counted`, else newline framing.
fn stream(counted: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..LINES {
        let h = i % 100;
        let msg = if i % 10 == 9 {
            format!(
                "Failed password for invalid user u{h} from 10.0.0.{h} port {} ssh2",
                1024 + i
            )
        } else {
            format!(
                "Accepted publickey for deploy from 10.0.0.{h} port {} ssh2: ED25519 SHA256:x",
                1024 + i
            )
        };
        let line = if i % 2 == 0 {
            format!(
                "<38>Dec  8 10:00:{:02} host{h} sshd[{}]: {msg}",
                i % 60,
                1000 + h
            )
        } else {
            format!(
                "<38>1 2026-12-08T10:00:00.{:03}Z host{h} sshd {} - - {msg}",
                i % 1000,
                1000 + h
            )
        };
        if counted {
            out.extend_from_slice(format!("{} {line}", line.len()).as_bytes());
        } else {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// Frames, parses and maps `bytes` read 64 KiB at a time, as the listener does.
fn run(bytes: &[u8], parser: &mut AuthLogParser) -> usize {
    let mut d = Deframer::new();
    let mut events = 0;
    for chunk in bytes.chunks(64 * 1024) {
        d.push(chunk);
        while let Some(f) = d.next_frame() {
            if let Frame::Message(m) = f {
                let text = std::str::from_utf8(m).unwrap();
                if let Ok(Some(r)) = parser.parse_message(text) {
                    events += r.repeat as usize;
                }
            }
        }
    }
    events
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("syslog");
    g.throughput(Throughput::Elements(LINES));
    for (name, counted) in [
        ("newline_1000_lines", false),
        ("octet_counted_1000_lines", true),
    ] {
        let bytes = stream(counted);
        let mut parser = AuthLogParser::live(TenantId::new("bench"), NOW);
        assert_eq!(run(&bytes, &mut parser), LINES as usize);
        g.bench_function(name, |b| b.iter(|| run(&bytes, &mut parser)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
