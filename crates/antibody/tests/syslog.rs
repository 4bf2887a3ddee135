//! The syslog listener against the real binary: sshd failures sent as RFC 5424 and RFC 3164
//! over UDP, TCP with newline framing, TCP octet-counted and TLS become `auth` events and the
//! brute-force finding; malformed frames are counted and the stream goes on.

mod common;

use common::{eventually, Ca, TestServer, ADMIN_KEY};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn syslog_addr(s: &TestServer) -> SocketAddr {
    s.startup
        .iter()
        .find_map(|l| l.split("syslog receiving on ").nth(1))
        .and_then(|a| a.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no syslog line in {:?}", s.startup))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `<PRI>1 TIMESTAMP HOST sshd PID - - MSG`.
fn rfc5424(host: &str, msg: &str) -> String {
    let ts = antibody_core::clock::format_rfc3339(now_ms());
    format!("<38>1 {ts} {host} sshd 4242 - [origin ip=\"10.0.0.9\"] {msg}")
}

/// `<PRI>Mmm dd HH:MM:SS HOST sshd[PID]: MSG` (UTC, as the listener reads it).
fn rfc3164(host: &str, msg: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ts = antibody_core::clock::format_rfc3339(now_ms());
    let month: usize = ts[5..7].parse().unwrap();
    let day: u32 = ts[8..10].parse().unwrap();
    format!(
        "<38>{} {day:>2} {} {host} sshd[77]: {msg}",
        MONTHS[month - 1],
        &ts[11..19]
    )
}

fn failure(ip: &str, i: usize) -> String {
    format!(
        "Failed password for invalid user u{i} from {ip} port {} ssh2",
        40000 + i
    )
}

/// The brute-force finding on `host:<host>` (10 failures from one address in 2 minutes).
fn brute_force_on(s: &TestServer, host: &str) -> serde_json::Value {
    eventually(Duration::from_secs(20), || {
        let v = s
            .get(&format!("/v1/findings?entity=host:{host}"), ADMIN_KEY)
            .json();
        v["items"]
            .as_array()?
            .iter()
            .find(|f| f["kind"] == "brute_force")
            .cloned()
    })
}

fn metric(s: &TestServer, name: &str) -> u64 {
    let text = s.get("/metrics", ADMIN_KEY).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn sshd_failures_over_udp_and_both_tcp_framings_become_a_brute_force_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(tmp.path(), &["--syslog-listen", "127.0.0.1:0"]);
    let addr = syslog_addr(&s);
    assert!(
        s.startup.iter().any(|l| l.contains("(udp, tcp)")),
        "{:?}",
        s.startup
    );

    // UDP, RFC 5424, one message per datagram (and one malformed datagram).
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"<13>not syslog at all", addr).unwrap();
    for i in 0..12 {
        udp.send_to(
            rfc5424("udp1", &failure("198.51.100.1", i)).as_bytes(),
            addr,
        )
        .unwrap();
    }

    // TCP, newline framing, RFC 3164; junk in the middle does not end the stream.
    let mut tcp = TcpStream::connect(addr).unwrap();
    let mut text = String::new();
    for i in 0..6 {
        text += &rfc3164("tcp1", &failure("198.51.100.2", i));
        text.push('\n');
    }
    text += "<999>Dec 10 06:55:46 h sshd: bad priority\n\u{1}\u{2}garbage\n";
    tcp.write_all(text.as_bytes()).unwrap();
    tcp.write_all(b"\xff\xfe not utf-8\n").unwrap();
    let mut text = String::new();
    for i in 6..12 {
        text += &rfc3164("tcp1", &failure("198.51.100.2", i));
        text += "\r\n";
    }
    tcp.write_all(text.as_bytes()).unwrap();

    // TCP, octet counting, RFC 5424 and 3164 mixed; `message repeated` counts as many.
    let mut counted = TcpStream::connect(addr).unwrap();
    let mut frames = Vec::new();
    for i in 0..4 {
        frames.push(rfc5424("tcp2", &failure("198.51.100.3", i)));
    }
    frames.push(rfc3164(
        "tcp2",
        "message repeated 8 times: [ Failed password for root from 198.51.100.3 port 22 ssh2]",
    ));
    for f in &frames {
        let framed = format!("{} {f}", f.len());
        // Split mid-frame: the listener reassembles.
        let (a, b) = framed.as_bytes().split_at(framed.len() / 2);
        counted.write_all(a).unwrap();
        counted.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        counted.write_all(b).unwrap();
    }

    for host in ["udp1", "tcp1", "tcp2"] {
        brute_force_on(&s, host);
    }
    // The events are the auth log parser's, as `replay --format authlog` makes them.
    let entity = s.get("/v1/entities/host:tcp2", ADMIN_KEY);
    assert_eq!(entity.status, 200, "{}", entity.text());
    drop((tcp, counted));
    eventually(Duration::from_secs(10), || {
        (metric(&s, "antibody_syslog_malformed_total") >= 4).then_some(())
    });
    assert!(metric(&s, "antibody_syslog_messages_total") >= 12 + 12 + 5 + 4);
    assert_eq!(metric(&s, "antibody_syslog_dropped_total"), 0);
}

fn tls_client(ca: &Ca, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(antibody_executors::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    })
}

/// Sends octet-counted frames over TLS (RFC 5425) and closes; the TLS error if any.
fn send_tls(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    frames: &[String],
) -> Result<(), String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    for f in frames {
        tls.write_all(format!("{} {f}", f.len()).as_bytes())
            .map_err(|e| e.to_string())?;
    }
    tls.flush().map_err(|e| e.to_string())?;
    // The handshake's outcome (a refused client certificate) shows on the next read.
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn syslog_over_tls_requires_a_client_certificate_and_disables_udp() {
    let tmp = tempfile::tempdir().unwrap();
    let (servers, clients) = (Ca::new(), Ca::new());
    let (cert, key) = servers.issue(tmp.path(), "syslog", "localhost");
    let client_ca = tmp.path().join("senders.pem");
    std::fs::write(&client_ca, clients.cert.pem()).unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(
        &config,
        format!(
            "[syslog]\nlisten = \"127.0.0.1:0\"\n\
             [syslog.tls]\ncert = {cert:?}\nkey = {key:?}\nclient_ca = {:?}\n",
            client_ca.display().to_string()
        ),
    )
    .unwrap();
    let s = TestServer::start_in(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let addr = syslog_addr(&s);
    assert!(
        s.startup.iter().any(|l| l.contains("(tcp+tls)")),
        "{:?}",
        s.startup
    );
    let frames: Vec<String> = (0..12)
        .map(|i| rfc5424("tls1", &failure("198.51.100.4", i)))
        .collect();
    assert!(send_tls(addr, tls_client(&servers, None), &frames).is_err());
    let (sender, sender_key) = clients.issue(tmp.path(), "sender", "web1");
    send_tls(
        addr,
        tls_client(&servers, Some((&sender, &sender_key))),
        &frames,
    )
    .unwrap();
    brute_force_on(&s, "tls1");
    // Nothing listens for plain UDP beside TLS.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..12 {
        let _ = udp.send_to(
            rfc5424("udp9", &failure("198.51.100.5", i)).as_bytes(),
            addr,
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(metric(&s, "antibody_syslog_messages_total"), 12);
}

#[test]
fn an_unknown_tenant_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(
        &config,
        "[syslog]\nlisten = \"127.0.0.1:0\"\ntenant = \"nope\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--config", config.to_str().unwrap()])
        .env("ANTIBODY_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tenant `nope` does not exist"), "{err}");
}
