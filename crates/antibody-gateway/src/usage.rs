//! Usage and tool calls from upstream responses, buffered or streamed alike.
//!
//! * Buffered JSON: [`from_body`] reads `usage` (chat / completions / embeddings:
//!   `prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`,
//!   `completion_tokens_details.reasoning_tokens`; responses: `input_tokens`,
//!   `output_tokens`, `input_tokens_details.cached_tokens`,
//!   `output_tokens_details.reasoning_tokens`) and counts tool calls.
//! * Server-sent events: [`SseScanner`] takes the stream chunk by chunk as it arrives, finds
//!   event boundaries across chunks, reads the usage chunk (chat / completions with
//!   `stream_options.include_usage`; responses' `response.completed`) and counts tool calls
//!   (a chat delta's tool call with an `id`; a responses `function_call` item added). When
//!   asked, it drops the usage-only chunk the gateway injected, and nothing else, so what
//!   the client reads is byte for byte what the upstream sent minus that one event.
//!
//! Only events that may carry usage or a tool call are parsed as JSON (a substring test
//! first), so a long stream of text deltas costs one scan per chunk.

use memchr::memmem;
use serde_json::Value;

/// Token counts and tool calls of one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Input tokens served from the provider's cache (part of `input`).
    pub cached: u64,
    /// Output tokens spent reasoning (part of `output`).
    pub reasoning: u64,
}

/// What a response said about the call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `None` when the upstream reported none (an error, a cut stream).
    pub usage: Option<Usage>,
    pub tool_calls: u64,
    /// The model the upstream says answered.
    pub model: Option<String>,
    /// The start of the answer's text (at most [`TEXT_BYTES`]), when asked for.
    pub text: String,
}

/// The most completion text kept for scanning.
pub const TEXT_BYTES: usize = 8 * 1024;

fn keep_text(out: &mut String, piece: &str) {
    let room = TEXT_BYTES.saturating_sub(out.len());
    if room == 0 {
        return;
    }
    let mut end = piece.len().min(room);
    while !piece.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&piece[..end]);
}

impl Observed {
    fn absorb(&mut self, v: &Value) {
        if let Some(u) = usage_of(v.get("usage")) {
            self.usage = Some(u);
        }
        if self.model.is_none() {
            if let Some(m) = v.get("model").and_then(Value::as_str) {
                self.model = Some(m.to_owned());
            }
        }
    }
}

/// Reads a `usage` object in either naming.
pub fn usage_of(v: Option<&Value>) -> Option<Usage> {
    let u = v?.as_object()?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let nested = |outer: &str, k: &str| {
        u.get(outer)
            .and_then(|d| d.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let input = n("prompt_tokens").or_else(|| n("input_tokens"));
    let output = n("completion_tokens").or_else(|| n("output_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cached: nested("prompt_tokens_details", "cached_tokens")
            .max(nested("input_tokens_details", "cached_tokens")),
        reasoning: nested("completion_tokens_details", "reasoning_tokens")
            .max(nested("output_tokens_details", "reasoning_tokens")),
    })
}

/// A whole (buffered) JSON response. Not JSON: nothing observed.
pub fn from_body(body: &[u8]) -> Observed {
    let mut out = Observed::default();
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return out;
    };
    out.absorb(&v);
    let chat_calls: usize = v
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.pointer("/message/tool_calls").and_then(Value::as_array))
                .map(Vec::len)
                .sum()
        })
        .unwrap_or(0);
    let response_calls = v
        .get("output")
        .and_then(Value::as_array)
        .map_or(0, |items| {
            items.iter().filter(|i| is_function_call(i)).count()
        });
    out.tool_calls = (chat_calls + response_calls) as u64;
    for c in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = c.pointer("/message/content").or_else(|| c.get("text"));
        if let Some(t) = text.and_then(Value::as_str) {
            keep_text(&mut out.text, t);
        }
    }
    for item in v
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for part in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                keep_text(&mut out.text, t);
            }
        }
    }
    out
}

fn is_function_call(item: &Value) -> bool {
    item.get("type").and_then(Value::as_str) == Some("function_call")
}

/// Incremental reader of a `text/event-stream` body.
#[derive(Debug, Default)]
pub struct SseScanner {
    /// Bytes of the event not yet complete.
    pending: Vec<u8>,
    /// Drop the usage-only chunk (the client did not ask for it).
    strip: bool,
    /// Keep the answer's text (for scanning): every content delta is read.
    collect_text: bool,
    pub observed: Observed,
    /// Data events seen (the first one is the first token).
    pub events: u64,
}

/// Events longer than this are passed on without being read (a hostile or broken upstream
/// cannot make the gateway hold an unbounded event).
const MAX_EVENT: usize = 4 << 20;

impl SseScanner {
    pub fn new(strip: bool) -> Self {
        Self {
            strip,
            ..Self::default()
        }
    }

    /// Also keeps the start of the answer's text in `observed.text`.
    pub fn with_text(mut self) -> Self {
        self.collect_text = true;
        self
    }

    /// Takes the next chunk; appends to `out` what the client should receive now. Without
    /// stripping that is the whole chunk at once; with it, whole events only (a partial
    /// event waits for its end, then goes out unless it is the injected usage chunk).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if !self.strip {
            out.extend_from_slice(chunk);
        }
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = event_end(&self.pending[start..]) {
            let event_end = start + end;
            let keep = self.read_event(start, event_end);
            if self.strip && keep {
                out.extend_from_slice(&self.pending[start..event_end]);
            }
            start = event_end;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_EVENT {
            if self.strip {
                out.append(&mut self.pending);
            }
            self.pending.clear();
        }
    }

    /// The stream ended: what is left goes out as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            let len = self.pending.len();
            let keep = self.read_event(0, len);
            if self.strip && keep {
                out.extend_from_slice(&self.pending);
            }
            self.pending.clear();
        }
    }

    /// Observes one event; whether the client gets it.
    fn read_event(&mut self, start: usize, end: usize) -> bool {
        let event = &self.pending[start..end];
        let mut data: Vec<u8> = Vec::new();
        for line in event.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(rest) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
            }
        }
        if data.is_empty() || data == b"[DONE]" {
            return true;
        }
        self.events += 1;
        let has = |k: &str| memmem::find(&data, k.as_bytes()).is_some();
        // Every chat chunk names the model: read it from the first one only.
        let interesting = has("usage")
            || has("tool_calls")
            || has("function_call")
            || (self.observed.model.is_none() && has("model"))
            || (self.collect_text && self.observed.text.len() < TEXT_BYTES && has("content"))
            || (self.collect_text && has("output_text.delta"));
        if !interesting {
            return true;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&data) else {
            return true;
        };
        self.observe(&v);
        let usage_only = v.get("usage").is_some_and(|u| !u.is_null())
            && v.get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
        !(self.strip && usage_only)
    }

    fn observe(&mut self, v: &Value) {
        // Responses API: the final event carries the whole response.
        if let Some(resp) = v
            .get("response")
            .filter(|_| v.get("type").and_then(Value::as_str) == Some("response.completed"))
        {
            self.observed.absorb(resp);
            return;
        }
        if v.get("type").and_then(Value::as_str) == Some("response.output_item.added")
            && v.get("item").is_some_and(is_function_call)
        {
            self.observed.tool_calls += 1;
            return;
        }
        if self.collect_text
            && v.get("type").and_then(Value::as_str) == Some("response.output_text.delta")
        {
            if let Some(t) = v.get("delta").and_then(Value::as_str) {
                keep_text(&mut self.observed.text, t);
            }
            return;
        }
        self.observed.absorb(v);
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for c in choices {
                if self.collect_text {
                    let text = c.pointer("/delta/content").or_else(|| c.get("text"));
                    if let Some(t) = text.and_then(Value::as_str) {
                        keep_text(&mut self.observed.text, t);
                    }
                }
                if let Some(calls) = c.pointer("/delta/tool_calls").and_then(Value::as_array) {
                    // A tool call's first delta carries its id; later ones only arguments.
                    let new = calls
                        .iter()
                        .filter(|t| t.get("id").is_some_and(|id| !id.is_null()));
                    self.observed.tool_calls += new.count() as u64;
                }
            }
        }
    }
}

/// The end of the first event in `buf` (after its blank line), if it is complete.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let nl = from + i;
        let rest = &buf[nl + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        from = nl + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":{\"reasoning_tokens\":2}}}\n\n",
        "data: [DONE]\n\n"
    );

    fn run(chunks: &[&[u8]], strip: bool) -> (Vec<u8>, SseScanner) {
        let mut s = SseScanner::new(strip);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        (out, s)
    }

    fn want() -> Usage {
        Usage {
            input: 12,
            output: 7,
            cached: 4,
            reasoning: 2,
        }
    }

    #[test]
    fn streamed_usage_tool_calls_and_model_are_read() {
        let (out, s) = run(&[STREAM.as_bytes()], false);
        assert_eq!(out, STREAM.as_bytes(), "passed through untouched");
        assert_eq!(s.observed.usage, Some(want()));
        assert_eq!(s.observed.tool_calls, 1);
        assert_eq!(s.observed.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(s.events, 5);
    }

    #[test]
    fn stripping_drops_exactly_the_usage_chunk() {
        let (out, s) = run(&[STREAM.as_bytes()], true);
        let usage_line = STREAM.lines().nth(8).unwrap();
        let expected = STREAM.replace(&format!("{usage_line}\n\n"), "");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert_eq!(s.observed.usage, Some(want()));
    }

    #[test]
    fn responses_stream_and_buffered_bodies() {
        let stream = concat!(
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\",\"name\":\"f\"}}\n\n",
            "event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"o4\",\"usage\":{\"input_tokens\":12,\"output_tokens\":7,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens_details\":{\"reasoning_tokens\":2}}}}\r\n\r\n",
        );
        let (_, s) = run(&[stream.as_bytes()], true);
        assert_eq!(s.observed.usage, Some(want()));
        assert_eq!(s.observed.tool_calls, 1);
        let body = br#"{"model":"m","choices":[{"message":{"tool_calls":[{"id":"a"},{"id":"b"}]}}],"usage":{"prompt_tokens":12,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let o = from_body(body);
        assert_eq!((o.usage, o.tool_calls), (Some(want()), 2));
        assert_eq!(from_body(b"not json"), Observed::default());
        let emb = from_body(br#"{"usage":{"prompt_tokens":5,"total_tokens":5}}"#);
        assert_eq!(emb.usage.map(|u| (u.input, u.output)), Some((5, 0)));
    }

    #[test]
    fn the_answers_text_is_kept_when_asked_and_bounded() {
        let mut s = SseScanner::new(false).with_text();
        s.push(STREAM.as_bytes(), &mut Vec::new());
        assert_eq!(s.observed.text, "Hel");
        let (_, plain) = run(&[STREAM.as_bytes()], false);
        assert!(plain.observed.text.is_empty(), "not kept unless asked");
        let long = "é".repeat(TEXT_BYTES);
        let body = serde_json::json!({"choices": [{"message": {"content": long}}]});
        let o = from_body(body.to_string().as_bytes());
        assert!(o.text.len() <= TEXT_BYTES && o.text.len() > TEXT_BYTES - 2);
        let r = from_body(
            br#"{"output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}]}"#,
        );
        assert_eq!(r.text, "hi");
    }

    #[test]
    fn a_partial_event_waits_when_stripping_and_flows_when_not() {
        let mut s = SseScanner::new(true);
        let mut out = Vec::new();
        s.push(b"data: {\"a\":1}\n", &mut out);
        assert!(out.is_empty());
        s.push(b"\ndata: x", &mut out);
        assert_eq!(out, b"data: {\"a\":1}\n\n");
        s.finish(&mut out);
        assert_eq!(out, b"data: {\"a\":1}\n\ndata: x");
    }

    proptest! {
        /// However the stream is cut into chunks, the output and the usage are the same.
        #[test]
        fn chunking_never_changes_the_result(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..12), strip: bool) {
            let bytes = STREAM.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts {
                chunks.push(&bytes[last..c]);
                last = c;
            }
            chunks.push(&bytes[last..]);
            let (whole, a) = run(&[bytes], strip);
            let (pieces, b) = run(&chunks, strip);
            prop_assert_eq!(whole, pieces);
            prop_assert_eq!(a.observed, b.observed);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_pass_through(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let (out, _) = run(&[&data], false);
            prop_assert_eq!(out, data);
        }
    }
}
