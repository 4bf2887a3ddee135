//! The gateway's response and request readers on arbitrary bytes: the SSE scanner, cut into
//! chunks at fuzzer-chosen places, never panics, passes every byte through when not
//! stripping, gives the same output and usage however the stream is cut, and when stripping
//! never adds a byte; the buffered reader and the request inspector never panic.
#![no_main]

use antibody_gateway::request::{inspect, Route};
use antibody_gateway::usage::{from_body, SseScanner};
use libfuzzer_sys::fuzz_target;

fn run(chunks: &[&[u8]], strip: bool) -> (Vec<u8>, SseScanner) {
    let mut s = SseScanner::new(strip);
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    (out, s)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, the rest is the stream.
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1);
    let pieces: Vec<&[u8]> = body.chunks(size).collect();
    for strip in [false, true] {
        let (whole, a) = run(&[body], strip);
        let (cut, b) = run(&pieces, strip);
        assert_eq!(whole, cut);
        assert_eq!(a.observed, b.observed);
        if strip {
            assert!(whole.len() <= body.len());
        } else {
            assert_eq!(whole, body);
        }
    }
    let _ = from_body(body);
    for route in [Route::ChatCompletions, Route::Responses, Route::Completions, Route::Embeddings] {
        let _ = inspect(route, body);
    }
});
