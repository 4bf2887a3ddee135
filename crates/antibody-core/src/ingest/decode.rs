//! `Content-Encoding` handling: identity passes through, gzip is inflated with a hard cap so a
//! small compressed body cannot expand past `max_body_bytes` (zip bombs stop at the cap).

use super::{IngestError, Limits};
use flate2::read::MultiGzDecoder;
use std::borrow::Cow;
use std::io::Read;

/// Returns the body as sent, decompressed when `content_encoding` is gzip.
pub fn decode_body<'a>(
    raw: &'a [u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Cow<'a, [u8]>, IngestError> {
    let encoding = content_encoding.map_or("", str::trim);
    let too_large = IngestError::TooLarge {
        limit: limits.max_body_bytes,
    };
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        if raw.len() > limits.max_body_bytes {
            return Err(too_large);
        }
        return Ok(Cow::Borrowed(raw));
    }
    if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
        // An empty body is empty whatever its label; the parser reports it as such.
        if raw.is_empty() {
            return Ok(Cow::Borrowed(raw));
        }
        return gunzip(raw, limits.max_body_bytes).map(Cow::Owned);
    }
    Err(IngestError::UnsupportedEncoding(
        encoding.chars().take(64).collect(),
    ))
}

/// Inflates at most `limit + 1` bytes: one byte over is enough to know the body is too large,
/// and nothing past it is ever produced.
fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    // The gzip trailer's size field is sender-controlled, so size the buffer from what we hold.
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(raw)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(IngestError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn identity_is_borrowed() {
        let limits = Limits::default();
        for enc in [None, Some("identity"), Some(" Identity "), Some("")] {
            let out = decode_body(b"{}", enc, &limits).unwrap();
            assert!(matches!(out, Cow::Borrowed(b"{}")), "{enc:?}");
        }
    }

    #[test]
    fn identity_over_the_limit_is_too_large() {
        let limits = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let err = decode_body(b"12345", None, &limits).unwrap_err();
        assert_eq!(err, IngestError::TooLarge { limit: 4 });
        assert_eq!(err.code(), "payload_too_large");
    }

    #[test]
    fn gzip_round_trips() {
        let body = br#"{"entity":"host:a","kind":"net"}"#;
        for enc in ["gzip", "GZIP", "x-gzip"] {
            let raw = gzip(body);
            let out = decode_body(&raw, Some(enc), &Limits::default()).unwrap();
            assert_eq!(&*out, body);
        }
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let mut raw = gzip(b"{\"a\":1}\n");
        raw.extend(gzip(b"{\"b\":2}\n"));
        let out = decode_body(&raw, Some("gzip"), &Limits::default()).unwrap();
        assert_eq!(&*out, b"{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn gzip_exactly_at_the_limit_is_accepted() {
        let limits = Limits {
            max_body_bytes: 1000,
            ..Limits::default()
        };
        let raw = gzip(&[b' '; 1000]);
        let out = decode_body(&raw, Some("gzip"), &limits).unwrap();
        assert_eq!(out.len(), 1000);
        let err = decode_body(&gzip(&[b' '; 1001]), Some("gzip"), &limits).unwrap_err();
        assert_eq!(err, IngestError::TooLarge { limit: 1000 });
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        // 100 gzip members of 1 MiB of zeros each: ~100 KB that inflates to 100 MiB.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let member = enc.finish().unwrap();
        let bomb = member.repeat(100);
        assert!(bomb.len() < 200_000);
        let limits = Limits::default();
        let err = decode_body(&bomb, Some("gzip"), &limits).unwrap_err();
        assert_eq!(
            err,
            IngestError::TooLarge {
                limit: limits.max_body_bytes
            }
        );
    }

    #[test]
    fn corrupt_gzip_is_bad_gzip() {
        let mut raw = gzip(b"{\"entity\":\"a\",\"kind\":\"b\"}");
        raw.truncate(raw.len() - 6);
        let err = decode_body(&raw, Some("gzip"), &Limits::default()).unwrap_err();
        assert!(matches!(err, IngestError::BadGzip(_)), "{err:?}");
        let err = decode_body(b"not gzip at all", Some("gzip"), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "invalid_gzip");
    }

    #[test]
    fn empty_gzip_body_is_empty() {
        let out = decode_body(b"", Some("gzip"), &Limits::default()).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn unknown_encoding_is_unsupported() {
        for enc in ["br", "deflate", "gzip, br"] {
            let err = decode_body(b"x", Some(enc), &Limits::default()).unwrap_err();
            assert_eq!(err, IngestError::UnsupportedEncoding(enc.into()));
            assert_eq!(err.code(), "unsupported_encoding");
        }
    }
}
