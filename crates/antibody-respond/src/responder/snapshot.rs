//! The snapshot file: what [`Responder::snapshot`] writes and [`Responder::restore`] reads,
//! byte for byte what the server keeps in `snapshots/responder.snap`.
//!
//! Version 2: `ABRESP` · version u16 · sections · CRC-32 (u32) of everything before it, where
//! a section is `id u16 · len u32 · bytes`; integers little-endian.
//!
//! | id | section | since |
//! |---|---|---|
//! | 1 | the state, postcard (the shape version 1 had) | 1 |
//! | 2 | the playbooks each case ran and the hypothesis it serves ([`super::fallback`]) | 2 |
//! | 3 | budget caps' spend by action id ([`crate::enforce`]) | 2 |
//! | 4 | healed entities still re-converging, with the end ([`super::reconverge`]) | 2 |
//!
//! Growth: new state goes into a new section (a field kept out of the state's postcard with
//! `#[serde(skip)]`), which an older snapshot simply lacks; a reader skips sections it does
//! not know. Changing the shape of an existing section needs a new version, and a reader
//! refuses versions newer than its own rather than guess.
//!
//! Version 1 (before this header existed): the state's postcard bytes · their CRC-32. It is
//! still read: the state section keeps its shape.

use super::{Responder, State};
use crate::config::ResponderConfig;
use crate::playbook::PlaybookSet;
use crate::RespondError;
use std::sync::Arc;

const MAGIC: &[u8; 6] = b"ABRESP";
/// The version this build writes, and the newest it reads.
pub const SNAPSHOT_VERSION: u16 = 2;

/// A section's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum Section {
    State = 1,
    Fallback = 2,
    Spend = 3,
    Reconverge = 4,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Fallback => "fallback",
            Self::Spend => "spend",
            Self::Reconverge => "reconverge",
        }
    }
}

/// Why snapshot bytes could not be restored (or, rarely, written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0} bytes are too few for a snapshot")]
    TooShort(usize),
    #[error("the checksum does not match: the file is damaged or was cut short")]
    Checksum,
    #[error("format version {0} is newer than this build reads (up to {SNAPSHOT_VERSION})")]
    NewerVersion(u16),
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("section `{0}` is missing")]
    Missing(&'static str),
    #[error("section `{0}` appears twice")]
    Duplicate(&'static str),
    #[error("section `{section}` does not decode: {reason}")]
    Decode {
        section: &'static str,
        reason: String,
    },
    #[error("encoding: {0}")]
    Encode(String),
}

/// The sections of one snapshot, borrowed from its bytes.
#[derive(Debug, Default)]
struct Sections<'a> {
    state: Option<&'a [u8]>,
    fallback: Option<&'a [u8]>,
    spend: Option<&'a [u8]>,
    reconverge: Option<&'a [u8]>,
}

impl<'a> Sections<'a> {
    fn put(&mut self, id: u16, bytes: &'a [u8]) -> Result<(), SnapshotError> {
        let (slot, section) = match id {
            x if x == Section::State as u16 => (&mut self.state, Section::State),
            x if x == Section::Fallback as u16 => (&mut self.fallback, Section::Fallback),
            x if x == Section::Spend as u16 => (&mut self.spend, Section::Spend),
            x if x == Section::Reconverge as u16 => (&mut self.reconverge, Section::Reconverge),
            // A section of a newer build: skipped.
            _ => return Ok(()),
        };
        if slot.replace(bytes).is_some() {
            return Err(SnapshotError::Duplicate(section.name()));
        }
        Ok(())
    }
}

/// Checks the trailing CRC and splits the body into sections (version 1: the whole body
/// is the state).
fn read(bytes: &[u8]) -> Result<Sections<'_>, SnapshotError> {
    let split = bytes
        .len()
        .checked_sub(4)
        .ok_or(SnapshotError::TooShort(bytes.len()))?;
    let (body, crc) = bytes.split_at(split);
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| SnapshotError::TooShort(split))?);
    if crc32fast::hash(body) != crc {
        return Err(SnapshotError::Checksum);
    }
    let Some(rest) = body.strip_prefix(MAGIC.as_slice()) else {
        return Ok(Sections {
            state: Some(body),
            ..Sections::default()
        });
    };
    let (version, mut rest) = take::<2>(rest)?;
    let version = u16::from_le_bytes(version);
    if version > SNAPSHOT_VERSION {
        return Err(SnapshotError::NewerVersion(version));
    }
    if version < 2 {
        return Err(SnapshotError::Malformed("a header with a version below 2"));
    }
    let mut sections = Sections::default();
    while !rest.is_empty() {
        let (id, after) = take::<2>(rest)?;
        let (len, after) = take::<4>(after)?;
        let len = usize::try_from(u32::from_le_bytes(len))
            .map_err(|_| SnapshotError::Malformed("a section too long for this machine"))?;
        if after.len() < len {
            return Err(SnapshotError::Malformed("a section runs past the end"));
        }
        let (section, after) = after.split_at(len);
        sections.put(u16::from_le_bytes(id), section)?;
        rest = after;
    }
    Ok(sections)
}

fn take<const N: usize>(bytes: &[u8]) -> Result<([u8; N], &[u8]), SnapshotError> {
    if bytes.len() < N {
        return Err(SnapshotError::Malformed(
            "a section header runs past the end",
        ));
    }
    let (head, rest) = bytes.split_at(N);
    let head = head
        .try_into()
        .map_err(|_| SnapshotError::Malformed("a section header runs past the end"))?;
    Ok((head, rest))
}

/// The header, each section and the CRC.
fn write(sections: &[(Section, &[u8])]) -> Result<Vec<u8>, SnapshotError> {
    let size = sections.iter().map(|(_, b)| b.len() + 6).sum::<usize>() + 12;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    for (id, bytes) in sections {
        let len = u32::try_from(bytes.len())
            .map_err(|_| SnapshotError::Encode(format!("section `{}` over 4 GiB", id.name())))?;
        out.extend_from_slice(&(*id as u16).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(
    section: Section,
    bytes: &[u8],
) -> Result<T, SnapshotError> {
    postcard::from_bytes(bytes).map_err(|e| SnapshotError::Decode {
        section: section.name(),
        reason: e.to_string(),
    })
}

impl Responder {
    /// The whole state as a snapshot file (see the module docs for the format).
    pub fn snapshot(&self) -> Result<Vec<u8>, RespondError> {
        let encode = |e: postcard::Error| SnapshotError::Encode(e.to_string());
        let state = postcard::to_stdvec(&self.st).map_err(encode)?;
        let fallback = postcard::to_stdvec(&self.fallback_section()).map_err(encode)?;
        let spend = postcard::to_stdvec(&self.spend).map_err(encode)?;
        let reconverge = postcard::to_stdvec(&self.reconverge_section()).map_err(encode)?;
        Ok(write(&[
            (Section::State, &state),
            (Section::Fallback, &fallback),
            (Section::Spend, &spend),
            (Section::Reconverge, &reconverge),
        ])?)
    }

    /// Rebuilds a responder from [`Responder::snapshot`] bytes of this or an earlier
    /// version; damaged bytes are an error, never a panic.
    pub fn restore(
        cfg: Arc<ResponderConfig>,
        playbooks: Arc<PlaybookSet>,
        bytes: &[u8],
    ) -> Result<Self, RespondError> {
        let sections = read(bytes)?;
        let state = sections
            .state
            .ok_or(SnapshotError::Missing(Section::State.name()))?;
        let st: State = decode(Section::State, state)?;
        let mut r = Self {
            cfg,
            playbooks,
            layers: super::tenant::Layers::default(),
            st,
            spend: std::collections::BTreeMap::new(),
        };
        if let Some(bytes) = sections.fallback {
            r.restore_fallbacks(decode(Section::Fallback, bytes)?);
        }
        if let Some(bytes) = sections.spend {
            r.spend = decode(Section::Spend, bytes)?;
        }
        if let Some(bytes) = sections.reconverge {
            r.restore_reconverge(decode(Section::Reconverge, bytes)?);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::Asset;
    use antibody_core::TenantId;

    fn responder() -> Responder {
        let pbs = PlaybookSet::default_pack().unwrap();
        Responder::new(Arc::new(ResponderConfig::default()), Arc::new(pbs))
    }

    fn restore(bytes: &[u8]) -> Result<Responder, RespondError> {
        let r = responder();
        Responder::restore(r.cfg, r.playbooks, bytes)
    }

    fn with_asset() -> Responder {
        let mut r = responder();
        let mut asset = Asset::new("agent:a");
        asset.group = Some("g".into());
        r.upsert_asset(&TenantId::new("t"), asset).unwrap();
        r
    }

    #[test]
    fn reconvergence_round_trips_in_its_own_section() {
        let mut r = with_asset();
        r.reconverge(&TenantId::new("t"), "agent:a", 700_000);
        let back = restore(&r.snapshot().unwrap()).unwrap();
        assert_eq!(back.st.reconverge, r.st.reconverge);
        assert_eq!(back.st, r.st);
        // The state section keeps its shape: without section 3 nothing re-converges.
        let body = postcard::to_stdvec(&r.st).unwrap();
        let v1 = [body.as_slice(), &crc32fast::hash(&body).to_le_bytes()].concat();
        let old = restore(&v1).unwrap();
        assert_eq!(old.reconverging().count(), 0);
        assert_eq!(old.st.assets, r.st.assets);
    }

    fn snap_err(bytes: &[u8]) -> SnapshotError {
        match restore(bytes) {
            Err(RespondError::Snapshot(e)) => e,
            Err(other) => panic!("not a snapshot error: {other}"),
            Ok(_) => panic!("restored from bad bytes"),
        }
    }

    /// `bytes` without their CRC, with `extra` appended and a fresh CRC.
    fn resealed(bytes: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut body = bytes[..bytes.len() - 4].to_vec();
        body.extend_from_slice(extra);
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn round_trips_with_a_header_and_a_version() {
        let r = with_asset();
        let bytes = r.snapshot().unwrap();
        assert_eq!(&bytes[..6], MAGIC);
        assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), SNAPSHOT_VERSION);
        assert_eq!(restore(&bytes).unwrap().st, r.st);
    }

    #[test]
    fn version_1_bytes_still_restore() {
        let r = with_asset();
        let body = postcard::to_stdvec(&r.st).unwrap();
        let v1 = [body.as_slice(), &crc32fast::hash(&body).to_le_bytes()].concat();
        assert_eq!(restore(&v1).unwrap().st, r.st);
    }

    #[test]
    fn unknown_sections_are_skipped() {
        let r = with_asset();
        let mut extra = 999u16.to_le_bytes().to_vec();
        extra.extend_from_slice(&3u32.to_le_bytes());
        extra.extend_from_slice(b"new");
        let grown = resealed(&r.snapshot().unwrap(), &extra);
        assert_eq!(restore(&grown).unwrap().st, r.st);
    }

    #[test]
    fn damage_is_named() {
        let bytes = with_asset().snapshot().unwrap();
        assert_eq!(snap_err(&bytes[..3]), SnapshotError::TooShort(3));
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert_eq!(snap_err(&flipped), SnapshotError::Checksum);
        let mut newer = bytes.clone();
        newer[6..8].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
        let newer = resealed(&newer, &[]);
        assert_eq!(
            snap_err(&newer),
            SnapshotError::NewerVersion(SNAPSHOT_VERSION + 1)
        );
        let header = write(&[]).unwrap();
        assert_eq!(snap_err(&header), SnapshotError::Missing("state"));
        let state = &bytes[14..bytes.len() - 4];
        let twice = write(&[(Section::State, state), (Section::State, state)]).unwrap();
        assert_eq!(snap_err(&twice), SnapshotError::Duplicate("state"));
        let garbage = write(&[(Section::State, &[0xff; 9])]).unwrap();
        assert!(matches!(
            snap_err(&garbage),
            SnapshotError::Decode {
                section: "state",
                ..
            }
        ));
        let mut cut = bytes[..bytes.len() - 4].to_vec();
        cut.truncate(cut.len() - 1);
        assert_eq!(
            snap_err(&resealed(&[cut, vec![0; 4]].concat(), &[])),
            SnapshotError::Malformed("a section runs past the end")
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = with_asset().snapshot().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                matches!(restore(&bytes[..cut]), Err(RespondError::Snapshot(_))),
                "cut at {cut}"
            );
        }
    }

    proptest::proptest! {
        /// Random bytes never panic and never restore.
        #[test]
        fn random_bytes_are_an_error(bytes in proptest::collection::vec(0u8..=255, 0..256)) {
            proptest::prop_assert!(restore(&bytes).is_err());
        }

        /// Random sections behind a valid header and CRC never panic.
        #[test]
        fn random_sections_never_panic(body in proptest::collection::vec(0u8..=255, 0..128)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&body);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            let _ = restore(&bytes);
        }

        /// A valid snapshot with up to 4 bytes in a row overwritten is an error (CRC-32
        /// catches every burst of up to 32 bits).
        #[test]
        fn overwritten_bytes_are_an_error(at in 0usize..64, junk in proptest::collection::vec(0u8..=255, 1..5)) {
            let mut bytes = with_asset().snapshot().unwrap();
            let at = at % bytes.len();
            let end = (at + junk.len()).min(bytes.len());
            let before = bytes.clone();
            bytes[at..end].copy_from_slice(&junk[..end - at]);
            proptest::prop_assume!(bytes != before);
            proptest::prop_assert!(restore(&bytes).is_err());
        }
    }
}
