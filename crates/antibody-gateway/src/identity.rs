//! Who is calling: the agent an LLM request is charged to and judged as. In order: the
//! `X-Agent-Id` header, else a fingerprint of the API key (a hash, never the key), else the
//! source address with the user agent. The result is an entity name (`agent:…`), so an
//! agent appears among the entities with its first call.

use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// How the agent was named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Header,
    Key,
    Address,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `agent:<id>`.
    pub entity: String,
    pub source: Source,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("X-Agent-Id must be 1–128 printable ASCII characters without spaces")]
pub struct BadAgentId;

/// The caller's identity. `key` is the bearer key the client sent (its fingerprint only is
/// kept).
pub fn identify(
    agent_header: Option<&[u8]>,
    key: Option<&str>,
    peer: IpAddr,
    user_agent: Option<&[u8]>,
) -> Result<Identity, BadAgentId> {
    if let Some(raw) = agent_header {
        let id = std::str::from_utf8(raw).map_err(|_| BadAgentId)?.trim();
        let id = id.strip_prefix("agent:").unwrap_or(id);
        let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(BadAgentId);
        }
        return Ok(Identity {
            entity: format!("agent:{id}"),
            source: Source::Header,
        });
    }
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        return Ok(Identity {
            entity: format!("agent:key-{}", fingerprint(key.as_bytes())),
            source: Source::Key,
        });
    }
    let mut h = Sha256::new();
    h.update(peer.to_string().as_bytes());
    h.update([0]);
    h.update(user_agent.unwrap_or_default());
    Ok(Identity {
        entity: format!("agent:anon-{}", hex::encode(&h.finalize()[..8])),
        source: Source::Address,
    })
}

/// The first 16 hex digits of the SHA-256 of `bytes`.
pub fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn header_then_key_then_address() {
        let h = identify(Some(b" research-7 "), Some("k"), IP, None).unwrap();
        assert_eq!(
            (h.entity.as_str(), h.source),
            ("agent:research-7", Source::Header)
        );
        let same = identify(Some(b"agent:research-7"), None, IP, None).unwrap();
        assert_eq!(same.entity, h.entity);
        let k = identify(None, Some("ab_secret"), IP, Some(b"curl")).unwrap();
        assert_eq!(k.source, Source::Key);
        assert!(!k.entity.contains("secret"));
        assert_eq!(
            k,
            identify(None, Some("ab_secret"), IP, Some(b"other")).unwrap()
        );
        let a = identify(None, None, IP, Some(b"curl")).unwrap();
        let b = identify(None, None, IP, Some(b"wget")).unwrap();
        assert_eq!(a.source, Source::Address);
        assert_ne!(a.entity, b.entity);
        for bad in [&b""[..], b"a b", b"\xff", &[b'x'; 129]] {
            assert_eq!(identify(Some(bad), None, IP, None), Err(BadAgentId));
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_names_an_agent(h in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)), k in proptest::option::of(".{0,40}")) {
            if let Ok(id) = identify(h.as_deref(), k.as_deref(), IP, None) {
                prop_assert!(id.entity.starts_with("agent:"));
                if let Some(k) = k.filter(|k| k.len() > 8) {
                    prop_assert!(h.is_some() || !id.entity.contains(&k));
                }
            }
        }
    }
}
