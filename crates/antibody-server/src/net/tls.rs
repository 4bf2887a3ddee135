//! TLS on a listener: the certificate and key by path, reloaded when the files change (or on
//! demand: SIGHUP in the binary) without dropping connections, and optional client
//! certificates. Any listener of the binary (API, gateway, …) uses one [`TlsAcceptor`].

use antibody_executors::tls::{load_certs, load_key, provider, root_store, TlsError};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};

/// `[tls]`: where a listener's certificate lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates: when set, every client must present a certificate they signed.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// Size and modification time of each file: what a change is judged by.
    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.paths()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                Some((m.modified().ok()?, m.len()))
            })
            .collect()
    }
}

/// The rustls configuration the files describe (HTTP/1.1 only).
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(root_store(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Config(format!("client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::Config(format!(
            "{} and {} do not make a usable certificate: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Accepts TLS with the configuration currently loaded; [`TlsAcceptor::reload`] swaps it
/// for new handshakes while established connections keep theirs.
pub struct TlsAcceptor {
    files: TlsFiles,
    current: ArcSwap<rustls::ServerConfig>,
    stamp: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("files", &self.files)
            .finish()
    }
}

impl TlsAcceptor {
    /// Loads the files; any problem is an error naming the file.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let stamp = files.stamp();
        let cfg = server_config(&files)?;
        Ok(Arc::new(Self {
            files,
            current: ArcSwap::from_pointee(cfg),
            stamp: Mutex::new(stamp),
        }))
    }

    /// Reads the files again and uses them for new connections. On error the loaded
    /// configuration stays in force (a half-written certificate never takes a listener down).
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = self.files.stamp();
        let result = server_config(&self.files);
        // Judged by the files seen, good or bad: a broken file is reported once, and
        // fixing it is the next change.
        *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
        let cfg = result?;
        self.current.store(Arc::new(cfg));
        tracing::info!(cert = %self.files.cert.display(), "TLS certificate loaded");
        Ok(())
    }

    /// Reloads when a file's size or modification time changed since the last load.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let changed =
            *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) != self.files.stamp();
        changed.then(|| self.reload())
    }

    /// Checks the files every `every` and reloads on change, logging failures; ends with the
    /// runtime.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                if let Some(Err(e)) = me.reload_if_changed() {
                    tracing::error!(error = %e, "TLS files changed but cannot be used; the previous certificate stays in force");
                }
            }
        })
    }

    /// The TLS handshake on `io`.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
            .accept(io)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki(dir: &Path, name: &str) -> TlsFiles {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: None,
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        files
    }

    #[test]
    fn a_broken_reload_keeps_the_loaded_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = pki(dir.path(), "localhost");
        let acceptor = TlsAcceptor::load(files.clone()).unwrap();
        let before = acceptor.current.load_full();
        assert!(acceptor.reload_if_changed().is_none(), "nothing changed");
        std::fs::write(&files.cert, "half a file").unwrap();
        let e = acceptor
            .reload_if_changed()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert.pem"), "{e}");
        assert!(Arc::ptr_eq(&before, &acceptor.current.load_full()));
        assert!(acceptor.reload_if_changed().is_none(), "reported once");
        pki(dir.path(), "localhost");
        assert!(acceptor.reload_if_changed().unwrap().is_ok());
        assert!(!Arc::ptr_eq(&before, &acceptor.current.load_full()));
    }

    #[test]
    fn a_key_of_another_certificate_or_a_bad_client_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = pki(dir.path(), "localhost");
        let other = tempfile::tempdir().unwrap();
        let theirs = pki(other.path(), "localhost");
        let mixed = TlsFiles {
            key: theirs.key.clone(),
            ..files.clone()
        };
        assert!(TlsAcceptor::load(mixed).is_err());
        let mtls = TlsFiles {
            client_ca: Some(dir.path().join("ca.pem")),
            ..files.clone()
        };
        assert!(TlsAcceptor::load(mtls).is_ok());
        let bad = TlsFiles {
            client_ca: Some(files.key.clone()),
            ..files
        };
        assert!(TlsAcceptor::load(bad).is_err());
    }
}
