//! A syslog TCP stream (`antibody_formats::syslog_frame`) cut into arbitrary reads, each frame
//! read as RFC 3164 / 5424 by the auth-log parser, as the listener does: nothing may panic,
//! frames never exceed the size limit, the same bytes give the same frames however they are
//! cut, and every event keeps the parser's shape.
#![no_main]

use antibody_core::TenantId;
use antibody_formats::syslog_frame::{Deframer, Frame, MAX_FRAME_BYTES};
use antibody_formats::AuthLogParser;
use libfuzzer_sys::fuzz_target;

/// Every frame of `data` (fed in pieces of `cut` bytes), then the end of the stream.
fn frames(data: &[u8], cut: usize) -> Vec<Option<Vec<u8>>> {
    let mut d = Deframer::new();
    let mut out = Vec::new();
    let mut own = |f: Frame<'_>| match f {
        Frame::Message(m) => {
            assert!(m.len() <= MAX_FRAME_BYTES);
            out.push(Some(m.to_vec()));
        }
        Frame::Malformed(_) => out.push(None),
    };
    for piece in data.chunks(cut.max(1)) {
        d.push(piece);
        while let Some(f) = d.next_frame() {
            own(f);
        }
    }
    if let Some(f) = d.finish() {
        own(f);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = frames(stream, stream.len());
    assert_eq!(whole, frames(stream, usize::from(cut % 16) + 1));
    let mut parser = AuthLogParser::live(TenantId::new("fuzz"), 1_796_000_000_000);
    for msg in whole.iter().flatten() {
        let Ok(text) = std::str::from_utf8(msg) else {
            continue;
        };
        if let Ok(Some(r)) = parser.parse_message(text) {
            assert!(r.repeat >= 1 && r.repeat <= antibody_formats::authlog::MAX_REPEAT);
            assert_eq!(r.event.kind, "auth");
            assert!(r.event.entity.starts_with("host:"));
        }
    }
});
