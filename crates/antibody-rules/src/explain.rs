//! Words for explanations: how fields, finding kinds and decodings read in a sentence.

use crate::normalize::Decoded;
use std::borrow::Cow;

/// `query` → "query parameter", unknown attributes → "attribute `x`".
pub(crate) fn field(name: &str) -> Cow<'static, str> {
    Cow::Borrowed(match name {
        "query" => "query parameter",
        "body" => "request body",
        "path" => "request path",
        "user_agent" => "user agent",
        "prompt" => "prompt",
        "completion" => "completion",
        _ => return Cow::Owned(format!("attribute `{name}`")),
    })
}

/// `sqli` → "SQL injection"; unknown kinds read as themselves.
pub(crate) fn kind(kind: &str) -> Cow<'_, str> {
    Cow::Borrowed(match kind {
        "sqli" => "SQL injection",
        "xss" => "cross-site scripting",
        "html_injection" => "HTML injection",
        "path_traversal" => "path traversal",
        "cmd_injection" => "command injection",
        "prompt_injection" => "prompt injection",
        other => return Cow::Owned(other.replace('_', " ")),
    })
}

pub(crate) fn decoded(d: Decoded) -> &'static str {
    match (d.url, d.html) {
        (true, true) => " after URL- and HTML-entity-decoding",
        (true, false) => " after URL-decoding",
        (false, true) => " after HTML-entity-decoding",
        (false, false) => "",
    }
}

/// At most `max` bytes of `s`, cut on a character boundary, with `…` when cut.
pub(crate) fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// Up to 120 bytes of `text` around `start..end`, centred on the match.
pub(crate) fn excerpt(text: &str, start: usize, end: usize) -> String {
    const MAX: usize = 120;
    let len = end - start;
    let (mut lo, mut hi) = if len >= MAX {
        (start, start + MAX)
    } else {
        let room = MAX - len;
        let right = (room - room / 2).min(text.len() - end);
        let left = (room - right).min(start);
        (start - left, (end + room - left).min(text.len()))
    };
    while !text.is_char_boundary(lo) {
        lo += 1;
    }
    while !text.is_char_boundary(hi) {
        hi -= 1;
    }
    text[lo..hi].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn words() {
        assert_eq!(field("query"), "query parameter");
        assert_eq!(field("referer"), "attribute `referer`");
        assert_eq!(kind("sqli"), "SQL injection");
        assert_eq!(kind("crypto_mining"), "crypto mining");
        assert_eq!(
            decoded(Decoded {
                url: true,
                html: false
            }),
            " after URL-decoding"
        );
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn excerpt_centres_on_the_match() {
        let text = format!("{}MATCH{}", "a".repeat(200), "b".repeat(200));
        let e = excerpt(&text, 200, 205);
        assert_eq!(e.len(), 120);
        assert!(e.contains("MATCH"));
        assert_eq!(excerpt("short MATCH here", 6, 11), "short MATCH here");
        let long = "x".repeat(300);
        assert_eq!(excerpt(&long, 10, 290).len(), 120);
    }

    proptest! {
        #[test]
        fn excerpt_is_bounded_and_never_panics(s in "\\PC{0,200}", a in 0usize..400, b in 0usize..400) {
            let (mut start, mut end) = (a.min(b).min(s.len()), a.max(b).min(s.len()));
            while !s.is_char_boundary(start) { start -= 1; }
            while !s.is_char_boundary(end) { end -= 1; }
            let e = excerpt(&s, start.min(end), end);
            prop_assert!(e.len() <= 120);
        }
    }
}
