//! Regex preparation. Values are lowercased before matching and attack syntax is ASCII, so
//! word boundaries (`\\b`, `\\B`, `\\b{start}`, ...) are compiled as ASCII ones: a Unicode
//! word boundary makes the lazy DFA give up on any non-ASCII input and fall back to engines
//! that are slower and allocate on every search.

use regex::{Regex, RegexBuilder};
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};

/// Compiles `src` case-insensitively with ASCII word boundaries. Errors are the regex
/// crate's own, for the source as written.
pub(crate) fn compile(src: &str, size_limit: usize) -> Result<Regex, regex::Error> {
    let build = |p: &str| {
        RegexBuilder::new(p)
            .case_insensitive(true)
            .size_limit(size_limit)
            .build()
    };
    match rewrite(src) {
        Some(ascii) => build(&ascii).or_else(|_| build(src)),
        None => build(src),
    }
}

/// The pattern with ASCII word boundaries, when it has Unicode ones. The rewrite is textual
/// (compiling a printed syntax tree is several times slower), then checked against the
/// parsed tree so a pattern the scanner misreads is left as written.
fn rewrite(src: &str) -> Option<String> {
    let parser = || {
        regex_syntax::ParserBuilder::new()
            .case_insensitive(true)
            .build()
    };
    let hir = parser().parse(src).ok()?;
    if !hir.properties().look_set().contains_word_unicode() {
        return None;
    }
    let text = rewrite_text(src);
    let rewritten = parser().parse(&text).ok()?;
    (rewritten == ascii_words(&hir)).then_some(text)
}

/// Wraps every `\b`, `\B` and `\b{...}` outside character classes in `(?-u:...)`.
fn rewrite_text(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 32);
    let mut chars = src.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                if depth == 0 && (next == 'b' || next == 'B') {
                    out.push_str("(?-u:\\");
                    out.push(next);
                    if next == 'b' && chars.peek() == Some(&'{') {
                        for c in chars.by_ref() {
                            out.push(c);
                            if c == '}' {
                                break;
                            }
                        }
                    }
                    out.push(')');
                } else {
                    out.push(c);
                    out.push(next);
                }
            }
            '[' => {
                depth += 1;
                out.push(c);
                // `[]` and `[^]` start with a literal `]`.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn ascii_words(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Look(look) => Hir::look(ascii_look(*look)),
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            sub: Box::new(ascii_words(&rep.sub)),
            ..rep.clone()
        }),
        HirKind::Capture(cap) => Hir::capture(Capture {
            sub: Box::new(ascii_words(&cap.sub)),
            ..cap.clone()
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(ascii_words).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(ascii_words).collect()),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) => hir.clone(),
    }
}

fn ascii_look(look: Look) -> Look {
    match look {
        Look::WordUnicode => Look::WordAscii,
        Look::WordUnicodeNegate => Look::WordAsciiNegate,
        Look::WordStartUnicode => Look::WordStartAscii,
        Look::WordEndUnicode => Look::WordEndAscii,
        Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
        Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn word_boundaries_become_ascii() {
        let re = compile(r"\bunion\s+(?P<kw>select)\b{end}", 1 << 20).unwrap();
        assert_eq!(re.as_str(), r"(?-u:\b)union\s+(?P<kw>select)(?-u:\b{end})");
        assert!(re.is_match("x UNION Select"));
        // `é` is not an ASCII word character, so this is a boundary now.
        assert!(re.is_match("éunion select"));
        assert_eq!(
            re.captures("union select")
                .unwrap()
                .name("kw")
                .unwrap()
                .as_str(),
            "select"
        );
    }

    #[test]
    fn classes_and_escapes_are_left_alone() {
        assert_eq!(rewrite_text(r"[\b\]]\\b[]b]\b"), r"[\b\]]\\b[]b](?-u:\b)");
        assert_eq!(rewrite_text(r"[^]\B]\B{x"), r"[^]\B](?-u:\B){x");
    }

    #[test]
    fn patterns_without_boundaries_are_kept_as_written() {
        assert_eq!(compile(r"or\s+1=1", 1 << 20).unwrap().as_str(), r"or\s+1=1");
        assert!(compile("(unclosed", 1 << 20).is_err());
    }

    /// Every default-pack regex with a word boundary gets the ASCII form (a silent fallback
    /// to the Unicode form would only show up as slower matching).
    #[test]
    fn default_pack_boundaries_are_all_rewritten() {
        let mut checked = 0;
        for src in crate::default_pack_sources() {
            let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&src.text).unwrap();
            for rule in doc.as_sequence().unwrap() {
                let regexes = rule.get("signature").and_then(|s| s.get("regexes"));
                for re in regexes.and_then(|r| r.as_sequence()).into_iter().flatten() {
                    let re = re.as_str().unwrap();
                    if re.contains(r"\b") {
                        assert!(rewrite(re).is_some(), "{}: {re}", src.name);
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 20);
    }

    proptest! {
        #[test]
        fn rewriting_preserves_matches_on_ascii(word in "[a-z]{1,6}", hay in "[a-z0-9 ./'=-]{0,30}") {
            let src = format!(r"\b{word}\b|\B{word}");
            let unicode = RegexBuilder::new(&src).case_insensitive(true).build().unwrap();
            prop_assert_eq!(compile(&src, 1 << 20).unwrap().find(&hay).map(|m| m.range()), unicode.find(&hay).map(|m| m.range()));
        }
    }
}
