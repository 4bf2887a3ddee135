//! TLS material every TLS user in the binary shares: the crypto provider, PEM loading and
//! the trusted roots of outbound HTTPS (the system's plus an optional CA bundle).

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("{} is not valid PEM: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
}

/// The one crypto provider, named explicitly rather than left to the process default:
/// a second provider enabled by any dependency would make that default ambiguous. `ring`
/// lacks the post-quantum key exchange (hence rustls' deprecation note); aws-lc-rs has it
/// but costs a multi-minute C build on every clean CI run.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file, in order (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        e => TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        },
    })
}

/// The certificates of `path` as a root store (client CAs, CA bundles).
pub fn root_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// The roots outbound HTTPS trusts: the system's store plus `ca_bundle` (a private CA).
/// System certificates that do not parse are skipped, as every TLS client does; a bundle
/// the operator named must parse whole.
pub fn outbound_roots(ca_bundle: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_bundle {
        roots.roots.extend(root_store(path)?.roots);
    }
    Ok(roots)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A throwaway CA and a server certificate it signs, made per test.

    pub struct TestPki {
        pub ca_pem: String,
        pub cert_pem: String,
        pub key_pem: String,
    }

    /// A CA and a leaf for `names` (DNS names or IP addresses) signed by it.
    pub fn pki(names: &[&str]) -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_pem_and_names_the_file_when_it_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let pki = testing::pki(&["localhost"]);
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &pki.cert_pem).unwrap();
        std::fs::write(&key, &pki.key_pem).unwrap();
        assert_eq!(load_certs(&cert).unwrap().len(), 1);
        assert!(load_key(&key).is_ok());
        // Swapped files: each error names the file and what is missing.
        let e = load_certs(&key).unwrap_err().to_string();
        assert!(
            e.contains("key.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = load_key(&cert).unwrap_err().to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no PEM private key"),
            "{e}"
        );
        let e = load_certs(&dir.path().join("missing.pem")).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
    }

    #[test]
    fn a_ca_bundle_adds_to_the_system_roots() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, testing::pki(&["x"]).ca_pem).unwrap();
        let system = outbound_roots(None).unwrap().len();
        assert_eq!(outbound_roots(Some(&ca)).unwrap().len(), system + 1);
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        assert!(outbound_roots(Some(&junk)).is_err());
    }
}
