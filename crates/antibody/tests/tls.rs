//! HTTPS on the API listener and on the gateway's against the real binary: served with the
//! certificate given by flags (or `[gateway.tls]`), reloaded on SIGHUP and on change without
//! a restart, and client certificates required when a client CA is configured. Certificates
//! are made per test (rcgen). The syslog listener's TLS: tests/syslog.rs.

mod common;

use common::{Ca, TestServer, ADMIN_KEY};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A rustls client trusting `ca`, optionally presenting a client certificate.
fn client(ca: &Ca, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
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

/// GET `path` over HTTPS; the status, or the TLS/IO error.
fn https_get(s: &TestServer, cfg: Arc<rustls::ClientConfig>, path: &str) -> Result<u16, String> {
    https_get_at(s.addr, cfg, path)
}

fn https_get_at(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<u16, String> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // A peer that closes without close_notify after a whole response is fine here.
    let _ = tls.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP response: {text:?}"))
}

fn start(dir: &Path, cert: &Path, key: &Path, extra: &[&str]) -> TestServer {
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    TestServer::start_in(&dir.join("data"), &args)
}

#[test]
fn https_is_served_and_the_certificate_reloads_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (Ca::new(), Ca::new());
    let (cert, key) = first.issue(tmp.path(), "server", "localhost");
    let s = start(tmp.path(), &cert, &key, &[]);
    assert_eq!(https_get(&s, client(&first, None), "/v1/findings"), Ok(200));
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(s.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    // A new certificate from another CA: SIGHUP puts it in force at once.
    let (new_cert, new_key) = second.issue(tmp.path(), "next", "localhost");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let pid = s.pid().expect("running").to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    common::eventually(Duration::from_secs(10), || {
        https_get(&s, client(&second, None), "/healthz")
            .ok()
            .filter(|st| *st == 200)
    });
    assert!(https_get(&s, client(&first, None), "/healthz").is_err());
    // Changed files are picked up without a signal too.
    let (third_cert, third_key) = first.issue(tmp.path(), "third", "localhost");
    std::fs::copy(&third_key, &key).unwrap();
    std::fs::copy(&third_cert, &cert).unwrap();
    common::eventually(Duration::from_secs(15), || {
        https_get(&s, client(&first, None), "/healthz")
            .ok()
            .filter(|st| *st == 200)
    });
    // The process served all along: still the same one.
    assert_eq!(s.pid().expect("running").to_string(), pid);
}

#[test]
fn a_client_ca_requires_client_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let (servers, clients) = (Ca::new(), Ca::new());
    let (cert, key) = servers.issue(tmp.path(), "server", "localhost");
    let client_ca = clients.write(&tmp.path().join("clients.pem"));
    let s = start(
        tmp.path(),
        &cert,
        &key,
        &["--tls-client-ca", client_ca.to_str().unwrap()],
    );
    assert!(https_get(&s, client(&servers, None), "/healthz").is_err());
    let (ccert, ckey) = clients.issue(tmp.path(), "agent", "agent-1");
    assert_eq!(
        https_get(&s, client(&servers, Some((&ccert, &ckey))), "/healthz"),
        Ok(200)
    );
    // A certificate from a CA the server does not trust is refused.
    let (other, okey) = servers.issue(tmp.path(), "stranger", "agent-2");
    assert!(https_get(&s, client(&servers, Some((&other, &okey))), "/healthz").is_err());
}

#[test]
fn unusable_tls_files_stop_the_start_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert, _key) = ca.issue(tmp.path(), "server", "localhost");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key"])
        .arg(&cert)
        .env("ANTIBODY_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.crt") && err.contains("private key"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--tls-cert", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

/// The gateway's own `[gateway.tls]`: HTTPS with client certificates on its port while the
/// API stays plain, and its certificate reloads on SIGHUP like the API's.
#[test]
fn the_gateway_serves_https_with_client_certificates_and_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    let (servers, clients, next) = (Ca::new(), Ca::new(), Ca::new());
    let (cert, key) = servers.issue(tmp.path(), "gateway", "localhost");
    let client_ca = clients.write(&tmp.path().join("agents.pem"));
    let config = tmp.path().join("antibody.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n\
             [gateway.tls]\ncert = {cert:?}\nkey = {key:?}\nclient_ca = {client_ca:?}\n\
             [[gateway.providers]]\nname = \"none\"\nurl = \"http://127.0.0.1:9\"\n"
        ),
    )
    .unwrap();
    let s = TestServer::start_in(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let gateway: std::net::SocketAddr = s
        .startup
        .iter()
        .find_map(|l| l.split("gateway serving on ").nth(1))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gateway line in {:?}", s.startup));
    let (agent, agent_key) = clients.issue(tmp.path(), "agent", "agent-1");
    let with_cert = || client(&servers, Some((&agent, &agent_key)));
    // Any HTTP answer shows the gateway was reached through TLS.
    let answer = https_get_at(gateway, with_cert(), "/v1/models");
    assert!(answer.is_ok(), "{answer:?}");
    assert!(https_get_at(gateway, client(&servers, None), "/v1/models").is_err());
    // The API's listener is not the gateway's: still plain HTTP.
    assert_eq!(s.get("/healthz", ADMIN_KEY).status, 200);
    // A new certificate: SIGHUP puts it in force on the gateway's port.
    let (new_cert, new_key) = next.issue(tmp.path(), "next", "localhost");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let pid = s.pid().expect("running").to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    common::eventually(Duration::from_secs(10), || {
        https_get_at(
            gateway,
            client(&next, Some((&agent, &agent_key))),
            "/v1/models",
        )
        .ok()
    });
    assert!(https_get_at(gateway, with_cert(), "/v1/models").is_err());
}
