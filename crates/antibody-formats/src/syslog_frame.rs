//! Syslog messages out of a byte stream (TCP, TLS), framed as RFC 6587 allows and senders
//! mix: octet counting (`LEN SP MSG`, the only framing of RFC 5425 over TLS) or a message
//! ending at a line feed (non-transparent framing, rsyslog's and syslog-ng's plain TCP
//! default). Each frame chooses for itself: one starting `DIGITS SP` is octet-counted,
//! anything else runs to the next `\n`.
//!
//! Nothing a sender writes breaks the stream: a frame over [`MAX_FRAME_BYTES`] is skipped
//! (by its count, or to its line feed) and reported as [`Frame::Malformed`], and reading
//! resumes at the next frame.

/// The largest message accepted. RFC 5425 asks receivers to take at least 2 KiB and
/// recommends 8 KiB; 64 KiB holds any real log line and keeps every attr within the ingest
/// limit on string length.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Octet counts have at most this many digits (`MAX_FRAME_BYTES` has 5; more is not a count).
const MAX_COUNT_DIGITS: usize = 9;

/// One frame of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A message's bytes (a trailing `\r` of a line-framed message removed).
    Message(&'a [u8]),
    /// Bytes that were dropped, and why.
    Malformed(&'static str),
}

/// What the stream is in the middle of.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Skip {
    #[default]
    No,
    /// An oversized line: dropping up to its line feed.
    Line,
    /// An oversized octet-counted frame: this many bytes are still to drop.
    Bytes(usize),
}

/// Splits a byte stream into frames; bytes go in with [`push`](Self::push) as they are
/// read, and [`next_frame`](Self::next_frame) yields every frame they complete.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf` (what lies before it is consumed).
    pos: usize,
    skip: Skip,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held for a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            let rest = &self.buf[self.pos..];
            match self.skip {
                Skip::Bytes(n) => {
                    let take = n.min(rest.len());
                    self.pos += take;
                    if take < n {
                        self.skip = Skip::Bytes(n - take);
                        return None;
                    }
                    self.skip = Skip::No;
                    continue;
                }
                Skip::Line => match memchr(rest) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.skip = Skip::No;
                        continue;
                    }
                    None => {
                        self.pos = self.buf.len();
                        return None;
                    }
                },
                Skip::No => {}
            }
            if rest.is_empty() {
                return None;
            }
            if let Some((digits, count)) = octet_count(rest) {
                let start = self.pos + digits + 1;
                if count > MAX_FRAME_BYTES {
                    self.pos = start;
                    self.skip = Skip::Bytes(count);
                    return Some(Frame::Malformed("octet-counted frame over the size limit"));
                }
                if self.buf.len() - start < count {
                    return None;
                }
                self.pos = start + count;
                return Some(Frame::Message(&self.buf[start..start + count]));
            }
            if rest.len() < MAX_COUNT_DIGITS + 1 && rest.iter().all(u8::is_ascii_digit) {
                // Maybe the start of an octet count: wait for the space.
                return None;
            }
            match memchr(rest) {
                Some(0) => {
                    // Blank lines between frames carry nothing.
                    self.pos += 1;
                    continue;
                }
                Some(i) if i > MAX_FRAME_BYTES => {
                    self.pos += i + 1;
                    return Some(Frame::Malformed("line over the size limit"));
                }
                Some(i) => {
                    let start = self.pos;
                    self.pos += i + 1;
                    let line = &self.buf[start..start + i];
                    return Some(Frame::Message(line.strip_suffix(b"\r").unwrap_or(line)));
                }
                None if rest.len() > MAX_FRAME_BYTES => {
                    self.pos = self.buf.len();
                    self.skip = Skip::Line;
                    return Some(Frame::Malformed("line over the size limit"));
                }
                None => return None,
            }
        }
    }

    /// At the end of the stream: a last line without its line feed is a message; a partial
    /// octet-counted frame is malformed.
    pub fn finish(&mut self) -> Option<Frame<'_>> {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        match self.skip {
            Skip::No if rest.iter().all(u8::is_ascii_whitespace) => None,
            Skip::No if octet_count(rest).is_some() => {
                Some(Frame::Malformed("stream ended inside a frame"))
            }
            Skip::No => Some(Frame::Message(rest.strip_suffix(b"\r").unwrap_or(rest))),
            _ => None,
        }
    }
}

/// `DIGITS SP` at the start: the number of digits and the count.
fn octet_count(b: &[u8]) -> Option<(usize, usize)> {
    let digits = b
        .iter()
        .take(MAX_COUNT_DIGITS + 1)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || digits > MAX_COUNT_DIGITS || b.get(digits) != Some(&b' ') || b[0] == b'0' {
        return None;
    }
    let count = b[..digits]
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    Some((digits, count))
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every frame, fed in pieces of `chunk` bytes, then the end of the stream.
    fn frames(input: &[u8], chunk: usize) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut d = Deframer::new();
        let mut out = Vec::new();
        let own = |f: Frame<'_>| match f {
            Frame::Message(m) => Ok(m.to_vec()),
            Frame::Malformed(why) => Err(why),
        };
        for piece in input.chunks(chunk.max(1)) {
            d.push(piece);
            while let Some(f) = d.next_frame() {
                out.push(own(f));
            }
        }
        if let Some(f) = d.finish() {
            out.push(own(f));
        }
        out
    }

    fn ok(m: &str) -> Result<Vec<u8>, &'static str> {
        Ok(m.as_bytes().to_vec())
    }

    #[test]
    fn both_framings_mix_in_one_stream() {
        let input = b"<13>a b\r\n9 <13>x\ny z\n\n<14>last";
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(
                frames(input, chunk),
                [ok("<13>a b"), ok("<13>x\ny z"), ok("<14>last")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_line_starting_with_digits_is_not_a_count() {
        let input = b"2026-01-01T00:00:00Z h sshd: x\n12345\n";
        assert_eq!(
            frames(input, 4),
            [ok("2026-01-01T00:00:00Z h sshd: x"), ok("12345")]
        );
    }

    #[test]
    fn oversized_frames_are_skipped_and_the_stream_goes_on() {
        let big = MAX_FRAME_BYTES + 10;
        let mut input = format!("{big} ").into_bytes();
        input.extend(std::iter::repeat_n(b'\n', big));
        input.extend_from_slice(b"3 <1>");
        input.extend(std::iter::repeat_n(b'a', MAX_FRAME_BYTES + 5));
        input.extend_from_slice(b"\n<2>after\n");
        for chunk in [1000, 65_536, 1 << 20] {
            assert_eq!(
                frames(&input, chunk),
                [
                    Err("octet-counted frame over the size limit"),
                    ok("<1>"),
                    Err("line over the size limit"),
                    ok("<2>after"),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_stream_cut_inside_a_counted_frame_is_malformed() {
        assert_eq!(frames(b"10 <1>ab", 3), [Err("stream ended inside a frame")]);
        assert_eq!(frames(b"", 3), []);
    }

    proptest! {
        /// Any stream of counted and line frames comes back whole, however it is cut.
        #[test]
        fn frames_survive_any_chunking(
            msgs in proptest::collection::vec(("<[0-9]{1,3}>[ -~]{0,40}", any::<bool>()), 0..20),
            chunk in 1usize..64,
        ) {
            let mut input = Vec::new();
            for (m, counted) in &msgs {
                if *counted {
                    input.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                } else {
                    input.extend_from_slice(format!("{m}\n").as_bytes());
                }
            }
            let want: Vec<_> = msgs.iter().map(|(m, _)| ok(m)).collect();
            prop_assert_eq!(frames(&input, chunk), want);
        }

        /// Arbitrary bytes never panic, and every byte is accounted for: the frames never
        /// hold more than was sent.
        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(any::<u8>(), 0..512),
            chunk in 1usize..64,
        ) {
            let total: usize = frames(&input, chunk)
                .iter()
                .map(|f| f.as_ref().map_or(0, Vec::len))
                .sum();
            prop_assert!(total <= input.len());
        }
    }
}
