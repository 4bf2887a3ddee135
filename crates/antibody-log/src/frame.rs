//! Record framing: encoding one record into bytes and reading records back from a stream.
//!
//! A record is `[len: u32 LE][crc32: u32 LE][append_ts_ms: i64 LE][payload: len bytes]`, the
//! CRC-32 (IEEE) covering the timestamp bytes followed by the payload.

use std::io::{self, Read};

use crate::error::CorruptReason;

/// Bytes in a record header: length, checksum and timestamp.
pub const HEADER_LEN: usize = 16;

/// The largest payload a record may carry (16 MiB); larger payloads are rejected by `append`
/// and a header announcing more is treated as corruption.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;

/// On-disk size of a record carrying `payload_len` bytes.
pub(crate) fn record_len(payload_len: usize) -> u64 {
    (HEADER_LEN + payload_len) as u64
}

fn checksum(ts_ms: i64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&ts_ms.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one framed record to `buf`; the caller has checked the payload length.
pub(crate) fn encode_into(buf: &mut Vec<u8>, ts_ms: i64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD_LEN);
    // Lossless: MAX_PAYLOAD_LEN fits in a u32.
    let len = payload.len() as u32;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&checksum(ts_ms, payload).to_le_bytes());
    buf.extend_from_slice(&ts_ms.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Why reading the next record failed.
#[derive(Debug)]
pub(crate) enum FrameError {
    Io(io::Error),
    Corrupt(CorruptReason),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<CorruptReason> for FrameError {
    fn from(r: CorruptReason) -> Self {
        Self::Corrupt(r)
    }
}

struct Header {
    len: u32,
    crc: u32,
    ts_ms: i64,
}

/// Reads framed records from `inner`, which holds `limit` bytes.
///
/// Knowing the limit lets a torn tail be told apart from an I/O error and keeps a garbage
/// length from causing a large allocation. After an error the reader must not be used again;
/// [`FrameReader::position`] then still points at the start of the bad record.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    inner: R,
    pos: u64,
    limit: u64,
}

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            pos: 0,
            limit,
        }
    }

    /// Byte position of the next record.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Reads and verifies the next record into `payload`; returns its timestamp, or `None` at
    /// a clean end.
    pub(crate) fn read_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<i64>, FrameError> {
        let Some(header) = self.header()? else {
            return Ok(None);
        };
        payload.clear();
        payload.resize(header.len as usize, 0);
        self.inner.read_exact(payload)?;
        if checksum(header.ts_ms, payload) != header.crc {
            return Err(CorruptReason::ChecksumMismatch.into());
        }
        self.pos += record_len(payload.len());
        Ok(Some(header.ts_ms))
    }

    /// Steps over the next record without verifying its checksum; returns its timestamp, or
    /// `None` at a clean end.
    pub(crate) fn skip(&mut self) -> Result<Option<i64>, FrameError> {
        let Some(header) = self.header()? else {
            return Ok(None);
        };
        let len = u64::from(header.len);
        let copied = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())?;
        if copied != len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        self.pos += record_len(header.len as usize);
        Ok(Some(header.ts_ms))
    }

    fn header(&mut self) -> Result<Option<Header>, FrameError> {
        let remaining = self.limit.saturating_sub(self.pos);
        if remaining == 0 {
            return Ok(None);
        }
        if remaining < HEADER_LEN as u64 {
            return Err(CorruptReason::TornHeader.into());
        }
        let mut bytes = [0u8; HEADER_LEN];
        self.inner.read_exact(&mut bytes)?;
        let [l0, l1, l2, l3, c0, c1, c2, c3, t @ ..] = bytes;
        let header = Header {
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            ts_ms: i64::from_le_bytes(t),
        };
        if header.len as usize > MAX_PAYLOAD_LEN {
            return Err(CorruptReason::BadLength { len: header.len }.into());
        }
        if remaining - (HEADER_LEN as u64) < u64::from(header.len) {
            return Err(CorruptReason::TornPayload { len: header.len }.into());
        }
        Ok(Some(header))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;

    fn encode_all(records: &[(i64, Vec<u8>)]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (ts, payload) in records {
            encode_into(&mut buf, *ts, payload);
        }
        buf
    }

    /// Reads records until the end or the first error; returns them and the error, if any.
    fn decode_all(bytes: &[u8]) -> (Vec<(i64, Vec<u8>)>, Option<FrameError>) {
        let mut reader = FrameReader::new(Cursor::new(bytes), bytes.len() as u64);
        let mut out = Vec::new();
        loop {
            let mut payload = Vec::new();
            match reader.read_into(&mut payload) {
                Ok(Some(ts)) => out.push((ts, payload)),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn layout_matches_the_documented_format() {
        let buf = encode_all(&[(-2, b"abc".to_vec())]);
        assert_eq!(buf.len(), HEADER_LEN + 3);
        assert_eq!(&buf[0..4], &3u32.to_le_bytes());
        assert_eq!(&buf[4..8], &checksum(-2, b"abc").to_le_bytes());
        assert_eq!(&buf[8..16], &(-2i64).to_le_bytes());
        assert_eq!(&buf[16..], b"abc");
    }

    #[test]
    fn zeroed_header_is_not_a_valid_empty_record() {
        // Filesystems may leave zero-filled blocks after a crash; they must not parse.
        let (records, err) = decode_all(&[0u8; HEADER_LEN]);
        assert!(records.is_empty());
        assert!(matches!(
            err,
            Some(FrameError::Corrupt(CorruptReason::ChecksumMismatch))
        ));
    }

    #[test]
    fn oversized_length_is_corrupt_not_allocated() {
        let mut buf = encode_all(&[(1, vec![7; 4])]);
        buf[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (_, err) = decode_all(&buf);
        assert!(matches!(
            err,
            Some(FrameError::Corrupt(CorruptReason::BadLength {
                len: u32::MAX
            }))
        ));
    }

    #[test]
    fn torn_header_and_torn_payload_are_told_apart() {
        let buf = encode_all(&[(1, vec![7; 10])]);
        let (_, err) = decode_all(&buf[..HEADER_LEN - 1]);
        assert!(matches!(
            err,
            Some(FrameError::Corrupt(CorruptReason::TornHeader))
        ));
        let (_, err) = decode_all(&buf[..HEADER_LEN + 9]);
        assert!(matches!(
            err,
            Some(FrameError::Corrupt(CorruptReason::TornPayload { len: 10 }))
        ));
    }

    #[test]
    fn skip_steps_over_records_and_keeps_position() {
        let buf = encode_all(&[(5, vec![1; 3]), (6, vec![2; 300])]);
        let mut reader = FrameReader::new(Cursor::new(&buf), buf.len() as u64);
        assert_eq!(reader.skip().unwrap(), Some(5));
        assert_eq!(reader.position(), record_len(3));
        let mut payload = Vec::new();
        assert_eq!(reader.read_into(&mut payload).unwrap(), Some(6));
        assert_eq!(payload, vec![2; 300]);
        assert_eq!(reader.skip().unwrap(), None);
    }

    proptest! {
        #[test]
        fn records_round_trip(
            records in proptest::collection::vec(
                (any::<i64>(), proptest::collection::vec(any::<u8>(), 0..300)),
                0..20,
            )
        ) {
            let (decoded, err) = decode_all(&encode_all(&records));
            prop_assert!(err.is_none());
            prop_assert_eq!(decoded, records);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_all(&bytes);
        }

        #[test]
        fn garbage_after_records_keeps_them(
            records in proptest::collection::vec(
                (any::<i64>(), proptest::collection::vec(any::<u8>(), 0..64)),
                0..10,
            ),
            garbage in proptest::collection::vec(any::<u8>(), 1..100),
        ) {
            let mut bytes = encode_all(&records);
            bytes.extend_from_slice(&garbage);
            let (decoded, _) = decode_all(&bytes);
            prop_assert!(decoded.len() >= records.len());
            prop_assert_eq!(&decoded[..records.len()], &records[..]);
        }
    }
}
