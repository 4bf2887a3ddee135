//! Field normalisation before signature matching. Attackers encode payloads to slip past
//! naive matchers, so a value is URL-decoded (repeatedly, bounded), HTML-entity-decoded and
//! lowercased before any pattern sees it. All buffers are reused: normalising a value that
//! needs no decoding costs one lowercase copy and no allocation once the buffers are warm.

/// Decoding rounds: enough for double and triple encoding, bounded so a hostile value
/// cannot make us loop.
const MAX_ROUNDS: usize = 3;

/// Which decodings changed the value (for the explanation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub url: bool,
    pub html: bool,
}

/// Reusable buffers; one per evaluation state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Normalizer {
    a: Vec<u8>,
    b: Vec<u8>,
    out: String,
}

impl Normalizer {
    /// Decodes and lowercases `input`; the result lives until the next call.
    pub(crate) fn normalize(&mut self, input: &str) -> (&str, Decoded) {
        let mut decoded = Decoded::default();
        self.out.clear();
        if !input.bytes().any(|b| matches!(b, b'%' | b'+' | b'&')) {
            lowercase_into(input, &mut self.out);
            return (&self.out, decoded);
        }
        self.a.clear();
        self.a.extend_from_slice(input.as_bytes());
        for _ in 0..MAX_ROUNDS {
            let url = url_decode(&self.a, &mut self.b);
            if url {
                std::mem::swap(&mut self.a, &mut self.b);
            }
            let html = html_decode(&self.a, &mut self.b);
            if html {
                std::mem::swap(&mut self.a, &mut self.b);
            }
            decoded.url |= url;
            decoded.html |= html;
            if !url && !html {
                break;
            }
        }
        collapse_overlong(&mut self.a);
        for chunk in self.a.utf8_chunks() {
            lowercase_into(chunk.valid(), &mut self.out);
            if !chunk.invalid().is_empty() {
                self.out.push(char::REPLACEMENT_CHARACTER);
            }
        }
        (&self.out, decoded)
    }
}

/// Lowercases, folds look-alike characters to ASCII, turns vertical tab and form feed into
/// spaces (HTML treats them as whitespace) and drops other control characters except tab
/// and line breaks (`%00` and friends are used to split keywords and truncate paths).
fn lowercase_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            '\t' | '\n' | '\r' => out.push(c),
            '\u{b}' | '\u{c}' => out.push(' '),
            c if c.is_ascii_control() => {}
            c if c.is_ascii() => out.push(c),
            c => out.extend(fold(c).to_lowercase()),
        }
    }
}

/// Fullwidth forms and the slash look-alikes that Windows "best fit" mapping turns into
/// path separators.
fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{2215}' | '\u{2044}' | '\u{29F8}' => '/',
        '\u{2216}' | '\u{29F5}' | '\u{FE68}' => '\\',
        '\u{3000}' => ' ',
        _ => c,
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// `%XX`, IIS-style `%uXXXX` and `+` → space. Returns whether anything changed.
fn url_decode(src: &[u8], dst: &mut Vec<u8>) -> bool {
    dst.clear();
    let mut changed = false;
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'+' => {
                dst.push(b' ');
                changed = true;
                i += 1;
            }
            b'%' => {
                if let Some(step) = percent_escape(&src[i..], dst) {
                    changed = true;
                    i += step;
                } else {
                    dst.push(b'%');
                    i += 1;
                }
            }
            b => {
                dst.push(b);
                i += 1;
            }
        }
    }
    changed
}

/// Decodes one escape at the start of `s` (which begins with `%`) into `dst`, returning how
/// many input bytes it used.
fn percent_escape(s: &[u8], dst: &mut Vec<u8>) -> Option<usize> {
    if let (Some(h), Some(l)) = (
        s.get(1).and_then(|&b| hex_val(b)),
        s.get(2).and_then(|&b| hex_val(b)),
    ) {
        dst.push(h << 4 | l);
        return Some(3);
    }
    if matches!(s.get(1), Some(b'u' | b'U')) && s.len() >= 6 {
        let mut code = 0u32;
        for &b in &s[2..6] {
            code = code << 4 | u32::from(hex_val(b)?);
        }
        push_char(
            dst,
            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
        );
        return Some(6);
    }
    None
}

/// The named entities attackers use to hide markup and URL schemes.
const NAMED: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("tab", '\t'),
    ("newline", '\n'),
    ("colon", ':'),
    ("semi", ';'),
    ("sol", '/'),
    ("bsol", '\\'),
    ("lpar", '('),
    ("rpar", ')'),
    ("period", '.'),
    ("comma", ','),
    ("equals", '='),
    ("excl", '!'),
    ("quest", '?'),
    ("num", '#'),
    ("grave", '`'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
    ("vert", '|'),
    ("dollar", '$'),
    ("percnt", '%'),
    ("plus", '+'),
    ("ast", '*'),
];

/// Named basics, `&#NN;` and `&#xHH;` (the `;` is optional for numeric references, as
/// browsers accept it). Returns whether anything changed.
fn html_decode(src: &[u8], dst: &mut Vec<u8>) -> bool {
    dst.clear();
    let mut changed = false;
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'&' {
            if let Some(step) = entity(&src[i..], dst) {
                changed = true;
                i += step;
                continue;
            }
        }
        dst.push(src[i]);
        i += 1;
    }
    changed
}

/// Decodes one entity at the start of `s` (which begins with `&`), returning its length.
fn entity(s: &[u8], dst: &mut Vec<u8>) -> Option<usize> {
    if s.get(1) == Some(&b'#') {
        return numeric_entity(s, dst);
    }
    let name_len = s[1..]
        .iter()
        .take(8)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if s.get(1 + name_len) != Some(&b';') {
        return None;
    }
    let name = &s[1..1 + name_len];
    let (_, c) = NAMED
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))?;
    push_char(dst, *c);
    Some(name_len + 2)
}

fn numeric_entity(s: &[u8], dst: &mut Vec<u8>) -> Option<usize> {
    let hex = matches!(s.get(2), Some(b'x' | b'X'));
    let start = if hex { 3 } else { 2 };
    let digits = s[start..]
        .iter()
        .take(8)
        .take_while(|b| {
            if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }
        })
        .count();
    if digits == 0 {
        return None;
    }
    let text = std::str::from_utf8(&s[start..start + digits]).ok()?;
    let code = u32::from_str_radix(text, if hex { 16 } else { 10 }).ok()?;
    let c = char::from_u32(code).filter(|&c| c != '\0')?;
    push_char(dst, c);
    let mut used = start + digits;
    if s.get(used) == Some(&b';') {
        used += 1;
    }
    Some(used)
}

/// Rewrites overlong UTF-8 forms of ASCII (`%c0%ae` and `%e0%80%ae` are `.`, `%f0%80%80%af`
/// is `/`) to the ASCII byte, in place: lenient decoders accept them, so traversal payloads
/// use them. A stray `0xC0`/`0xC1` lead (never valid UTF-8) is decoded the way such lenient
/// decoders do, or dropped.
fn collapse_overlong(buf: &mut Vec<u8>) {
    if !buf.iter().any(|&b| b >= 0xC0) {
        return;
    }
    let (mut r, mut w) = (0, 0);
    while r < buf.len() {
        let (byte, used): (Option<u8>, usize) = match buf[r] {
            b @ (0xC0 | 0xC1) => {
                overlong_ascii(&buf[r..]).unwrap_or_else(|| stray_lead(b, buf.get(r + 1).copied()))
            }
            b @ 0xE0..=0xFD => overlong_ascii(&buf[r..]).unwrap_or((Some(b), 1)),
            b => (Some(b), 1),
        };
        if let Some(b) = byte {
            buf[w] = b;
            w += 1;
        }
        r += used;
    }
    buf.truncate(w);
}

/// Decodes a 2- to 6-byte sequence at the start of `s` if it encodes an ASCII value.
fn overlong_ascii(s: &[u8]) -> Option<(Option<u8>, usize)> {
    let n = s[0].leading_ones() as usize;
    if !(2..=6).contains(&n) || s.len() < n {
        return None;
    }
    let mut v = u32::from(s[0] & (0x7F >> n));
    for &c in &s[1..n] {
        if c & 0xC0 != 0x80 {
            return None;
        }
        v = v << 6 | u32::from(c & 0x3F);
    }
    (v < 0x80).then_some((Some(v as u8), n))
}

fn stray_lead(lead: u8, next: Option<u8>) -> (Option<u8>, usize) {
    match next {
        Some(b @ 0x20..=0x7E) => (Some(b), 2),
        Some(b) if b < 0x80 => (Some((lead & 1) << 6 | (b & 0x3F)), 2),
        _ => (None, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(s: &str) -> (String, Decoded) {
        let mut n = Normalizer::default();
        let (text, d) = n.normalize(s);
        (text.to_owned(), d)
    }

    #[test]
    fn lowercases_plain_values_without_decoding() {
        assert_eq!(
            norm("UNION Select"),
            ("union select".into(), Decoded::default())
        );
    }

    #[test]
    fn url_decodes_repeatedly_with_plus_as_space() {
        let (text, d) = norm("1%2527+OR+1%253D1");
        assert_eq!(text, "1' or 1=1");
        assert!(d.url && !d.html);
    }

    #[test]
    fn url_decoding_is_bounded() {
        // Four levels of encoding of `<`: three rounds leave one level.
        assert_eq!(norm("%2525253C").0, "%3c");
    }

    #[test]
    fn decodes_html_entities() {
        let (text, d) = norm("&lt;SCRIPT&gt;&#97;&#x6C;ert&#40;1&rpar;");
        assert_eq!(text, "<script>alert(1)");
        assert!(d.html && !d.url);
        assert_eq!(norm("javascript&colon;x").0, "javascript:x");
        assert_eq!(norm("&#106&#97").0, "ja");
        assert_eq!(
            norm("fish &chips; &unknown; &#;").0,
            "fish &chips; &unknown; &#;"
        );
    }

    #[test]
    fn decodes_mixed_layers() {
        assert_eq!(norm("%26lt%3Bscript%26gt%3B").0, "<script>");
        assert_eq!(norm("&#37;2e&#37;2e&#37;2f").0, "../");
    }

    #[test]
    fn collapses_overlong_and_iis_encodings() {
        assert_eq!(norm("%c0%ae%c0%ae%c0%afetc").0, "../etc");
        assert_eq!(norm("%e0%80%ae%e0%80%ae/").0, "../");
        assert_eq!(
            norm("%f0%80%80%ae%f8%80%80%80%ae%fc%80%80%80%80%af").0,
            "../"
        );
        assert_eq!(norm("%c0.%c0.%c1%1cwin").0, "..\\win");
        assert_eq!(norm("%u002e%u002e%u2215%uff0e%uFF0E%u2216").0, "../..\\");
        assert_eq!(norm("%ff%fe").0, "\u{fffd}\u{fffd}");
        assert_eq!(norm("caf%C3%A9").0, "café");
    }

    #[test]
    fn drops_control_characters_but_keeps_line_breaks() {
        assert_eq!(norm("un%00ion%01sel\u{7}ect").0, "unionselect");
        assert_eq!(norm("<x%0Conload=1%0B").0, "<x onload=1 ");
        assert_eq!(norm("a%0d%0a%09b").0, "a\r\n\tb");
        assert_eq!(norm("ＳＥＬＥＣＴ").0, "select");
    }

    #[test]
    fn leaves_broken_escapes_alone() {
        assert_eq!(norm("100%").0, "100%");
        assert_eq!(norm("%zz%4").0, "%zz%4");
        assert_eq!(norm("%uD800").0, "\u{fffd}");
    }

    proptest! {
        #[test]
        fn never_panics_and_is_valid_text(s in "\\PC{0,64}|[%&#;xX0-9a-fA-Fu+]{0,64}") {
            let mut n = Normalizer::default();
            let (text, _) = n.normalize(&s);
            prop_assert!(std::str::from_utf8(text.as_bytes()).is_ok());
        }

        #[test]
        fn plain_ascii_is_only_lowercased(s in "[a-zA-Z0-9 ./_-]{0,64}") {
            prop_assert_eq!(norm(&s).0, s.to_ascii_lowercase());
        }
    }
}
