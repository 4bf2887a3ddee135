//! Server-sent events split as they arrive: complete events leave at once, byte for byte
//! unless the proxy rewrites one (a `tools/list` answer without revoked tools); a partial
//! event waits for its end.

use memchr::memmem;

/// Holds the bytes of the event still arriving.
#[derive(Default)]
pub struct Framer {
    held: Vec<u8>,
}

/// The end of the first event in `b` (past its blank line): `\n\n` or `\r\n\r\n`.
fn event_end(b: &[u8]) -> Option<usize> {
    let lf = memmem::find(b, b"\n\n").map(|i| i + 2);
    let crlf = memmem::find(b, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

impl Framer {
    /// Calls `each` with every event `data` completes; the rest is held.
    pub fn push(&mut self, data: &[u8], mut each: impl FnMut(&[u8])) {
        let joined;
        let mut rest: &[u8] = if self.held.is_empty() {
            data
        } else {
            self.held.extend_from_slice(data);
            joined = std::mem::take(&mut self.held);
            &joined
        };
        while let Some(end) = event_end(rest) {
            each(&rest[..end]);
            rest = &rest[end..];
        }
        self.held = rest.to_vec();
    }

    /// What is held when the stream ends: a last event without its blank line.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// The event's data: its `data:` lines joined with `\n` (one leading space dropped).
pub fn data_of(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut out: Option<String> = None;
    for line in text.lines() {
        let Some(v) = line.strip_prefix("data:") else {
            continue;
        };
        let v = v.strip_prefix(' ').unwrap_or(v);
        match &mut out {
            Some(o) => {
                o.push('\n');
                o.push_str(v);
            }
            None => out = Some(v.to_owned()),
        }
    }
    out
}

/// The event with its data replaced by `data` (one line: compact JSON), its other fields
/// (`event:`, `id:`, `retry:`) kept.
pub fn with_data(event: &[u8], data: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(event);
    let mut out = String::with_capacity(event.len());
    let mut placed = false;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if line.starts_with("data:") {
            if !placed {
                out.push_str("data: ");
                out.push_str(data);
                out.push('\n');
                placed = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn events_leave_whole_however_the_bytes_are_cut() {
        let stream = b"event: message\nid: 1\ndata: {\"a\":1}\n\ndata: {\"b\":\r\ndata: 2}\r\n\r\n: ping\n\n";
        for cut in 0..stream.len() {
            let mut f = Framer::default();
            let mut events: Vec<Vec<u8>> = Vec::new();
            f.push(&stream[..cut], |e| events.push(e.to_vec()));
            f.push(&stream[cut..], |e| events.push(e.to_vec()));
            assert!(f.finish().is_empty());
            assert_eq!(events.concat(), stream.to_vec(), "cut at {cut}");
            assert_eq!(events.len(), 3);
            assert_eq!(data_of(&events[0]).as_deref(), Some("{\"a\":1}"));
            assert_eq!(data_of(&events[1]).as_deref(), Some("{\"b\":\n2}"));
            assert_eq!(data_of(&events[2]), None);
        }
    }

    #[test]
    fn a_rewritten_event_keeps_its_fields() {
        let e = b"event: message\nid: 9\ndata: {\"old\":\ndata: 1}\n\n";
        assert_eq!(
            with_data(e, "{\"new\":2}"),
            b"event: message\nid: 9\ndata: {\"new\":2}\n\n".to_vec()
        );
    }

    proptest! {
        #[test]
        fn nothing_is_lost_or_reordered(chunks in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'd'), Just(b':')], 0..20), 0..10)) {
            let mut f = Framer::default();
            let mut out = Vec::new();
            for c in &chunks {
                f.push(c, |e| out.extend_from_slice(e));
            }
            out.extend(f.finish());
            prop_assert_eq!(out, chunks.concat());
        }
    }
}
