//! What one parameter's values look like: how many requests carried it, the length
//! distribution, which character classes and which exact symbols its values use, a
//! bigram model over character shapes, the values themselves while they are few, and the
//! numeric type and range. Every field is a count or a set, so two profiles learned apart
//! (in two partitions, or staging and production) merge by adding them.

use serde::{Deserialize, Serialize};

/// Distinct values enumerated before a parameter counts as free-form.
pub const MAX_VALUES: usize = 16;
/// Enumerated values longer than this are not enumerated (the parameter is free-form).
const MAX_VALUE_LEN: usize = 48;
/// Bits of the bigram presence set.
const BIGRAM_BITS: usize = 1024;
/// Its 64-bit words.
const BIGRAM_WORDS: usize = BIGRAM_BITS / 64;

/// Character classes counted per value (a value counts once per class it contains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Lower = 0,
    Upper = 1,
    Digit = 2,
    Space = 3,
    NonAscii = 4,
}

const CLASSES: [Class; 5] = [
    Class::Lower,
    Class::Upper,
    Class::Digit,
    Class::Space,
    Class::NonAscii,
];

impl Class {
    fn name(self) -> &'static str {
        match self {
            Self::Lower | Self::Upper => "letters",
            Self::Digit => "digits",
            Self::Space => "spaces",
            Self::NonAscii => "non-ASCII",
        }
    }
}

/// One value, summarised in one pass over its bytes and judged or learned from the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shape {
    pub len: u32,
    pub classes: [bool; 5],
    /// ASCII symbols and control bytes present (bit = byte value).
    pub symbols: u128,
    pub symbol_count: u32,
    pub number: Option<f64>,
    /// The bigram bits of the value's consecutive character shapes (see [`for_each_pair`]),
    /// as a profile stores them: learning ORs them in, judging compares without a rescan.
    pub pairs: [u64; BIGRAM_WORDS],
}

impl Shape {
    pub fn of(v: &[u8]) -> Self {
        let mut s = Shape::default();
        s.fill(v);
        s
    }

    /// [`Shape::of`] into `self`, reusing it.
    pub fn fill(&mut self, v: &[u8]) {
        self.len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.classes = [false; 5];
        self.symbols = 0;
        self.symbol_count = 0;
        self.pairs = [0; BIGRAM_WORDS];
        let mut prev = 0u8;
        for &b in v {
            match b {
                b'a'..=b'z' => self.classes[Class::Lower as usize] = true,
                b'A'..=b'Z' => self.classes[Class::Upper as usize] = true,
                b'0'..=b'9' => self.classes[Class::Digit as usize] = true,
                b' ' => self.classes[Class::Space as usize] = true,
                0x80..=0xff => self.classes[Class::NonAscii as usize] = true,
                _ => {
                    self.symbols |= 1u128 << b;
                    self.symbol_count += 1;
                }
            }
            let sh = shape(b);
            set_bit(&mut self.pairs, bigram(prev, sh));
            prev = sh;
        }
        if !v.is_empty() {
            set_bit(&mut self.pairs, bigram(prev, 0));
        }
        self.number = number(v);
    }
}

fn set_bit(bits: &mut [u64; BIGRAM_WORDS], i: u16) {
    bits[usize::from(i) / 64] |= 1 << (i % 64);
}

/// Shapes 0–4 stand for start/end and the letter, digit and non-ASCII classes, so the raw
/// bytes 0x00–0x04 (which [`shape`] leaves as themselves) are judged by the slow path.
const SHAPE_ALIASES: u128 = 0b1_1111;

/// A byte's shape: 1 lower, 2 upper, 3 digit, 4 non-ASCII, else the byte itself.
fn shape(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => 1,
        b'A'..=b'Z' => 2,
        b'0'..=b'9' => 3,
        0x80..=0xff => 4,
        _ => b,
    }
}

/// Every pair of consecutive shapes of `v`, with 0 for its start and end (`ab` → (0, 1),
/// (1, 1), (1, 0)); repeats included. Scanned again where needed: cheaper than keeping them.
fn for_each_pair(v: &[u8], mut f: impl FnMut(u8, u8)) {
    let mut prev = 0u8;
    for &b in v {
        let s = shape(b);
        f(prev, s);
        prev = s;
    }
    if !v.is_empty() {
        f(prev, 0);
    }
}

/// The bit of a pair of shapes: 0 = start/end, 1 lower, 2 upper, 3 digit, 4 non-ASCII,
/// else the byte itself.
fn bigram(a: u8, b: u8) -> u16 {
    let x = (u32::from(a) << 8 | u32::from(b)).wrapping_mul(0x9E37_79B1);
    (x >> 22) as u16 % BIGRAM_BITS as u16
}

fn number(v: &[u8]) -> Option<f64> {
    if v.is_empty() || v.len() > 24 {
        return None;
    }
    let s = std::str::from_utf8(v).ok()?;
    let digits_only = s
        .bytes()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || c == b'.' || (i == 0 && c == b'-'));
    if !digits_only {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamProfile {
    /// Requests that carried the parameter.
    pub n: u64,
    pub len_min: u32,
    pub len_max: u32,
    len_mean: f64,
    len_m2: f64,
    /// Values containing each [`Class`].
    classes: [u64; 5],
    /// ASCII symbols and control bytes ever seen, as two words (bit = byte value).
    symbols: [u64; 2],
    bigrams: [u64; BIGRAM_WORDS],
    /// Values that were numbers, and their range.
    numeric: u64,
    num_range: Option<(f64, f64)>,
    /// The distinct values and their counts while there are at most [`MAX_VALUES`];
    /// `None` once the parameter proved free-form.
    values: Option<Vec<(String, u64)>>,
}

impl Default for ParamProfile {
    fn default() -> Self {
        Self {
            n: 0,
            len_min: u32::MAX,
            len_max: 0,
            len_mean: 0.0,
            len_m2: 0.0,
            classes: [0; 5],
            symbols: [0; 2],
            bigrams: [0; BIGRAM_WORDS],
            numeric: 0,
            num_range: None,
            values: Some(Vec::new()),
        }
    }
}

/// One reason a value does not fit, with its weight in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Deviation {
    pub what: &'static str,
    pub weight: f64,
    /// What came, for people (`3 symbols never seen here: ' ; -`).
    pub came: String,
}

/// How sure evidence from `n` observations is: a never-seen trait means more after
/// thousands of requests than after dozens.
pub fn strength(n: u64) -> f64 {
    let n = n as f64;
    n / (n + 20.0)
}

impl ParamProfile {
    pub fn learn(&mut self, v: &[u8], s: &Shape) {
        self.n += 1;
        self.len_min = self.len_min.min(s.len);
        self.len_max = self.len_max.max(s.len);
        let len = f64::from(s.len);
        let d = len - self.len_mean;
        self.len_mean += d / self.n as f64;
        self.len_m2 += d * (len - self.len_mean);
        for (i, &has) in s.classes.iter().enumerate() {
            self.classes[i] += u64::from(has);
        }
        self.symbols[0] |= s.symbols as u64;
        self.symbols[1] |= (s.symbols >> 64) as u64;
        for (mine, theirs) in self.bigrams.iter_mut().zip(&s.pairs) {
            *mine |= theirs;
        }
        if let Some(x) = s.number {
            self.numeric += 1;
            self.num_range = Some(widen(self.num_range, x, x));
        }
        self.enumerate(v, 1);
    }

    fn enumerate(&mut self, v: &[u8], count: u64) {
        let Some(values) = &mut self.values else {
            return;
        };
        if v.len() > MAX_VALUE_LEN {
            self.values = None;
            return;
        }
        let text = Text::of(v);
        match values.iter().position(|(x, _)| text.is(x)) {
            Some(i) => values[i].1 += count,
            None if values.len() < MAX_VALUES => {
                values.push((String::from_utf8_lossy(v).into_owned(), count))
            }
            None => self.values = None,
        }
    }

    pub fn symbol_mask(&self) -> u128 {
        u128::from(self.symbols[0]) | u128::from(self.symbols[1]) << 64
    }

    fn std(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.len_m2 / (self.n - 1) as f64).sqrt()
        }
    }

    /// A closed set: few values, each seen many times.
    fn closed_set(&self) -> Option<&[(String, u64)]> {
        let values = self.values.as_deref()?;
        let enough = !values.is_empty() && self.n >= 20 * values.len() as u64;
        enough.then_some(values)
    }

    fn always_numeric(&self) -> bool {
        self.n > 0 && self.numeric == self.n
    }

    /// Every way `v` departs from what was learned. `also_known`: symbols the parameter of
    /// the same name uses on the host's other paths (a name means the same thing there).
    /// Without `explain` each deviation's `came` stays empty (the weights decide whether a
    /// request is reported; only a reported one is described).
    pub fn judge(
        &self,
        v: &[u8],
        s: &Shape,
        also_known: u128,
        explain: bool,
        out: &mut Vec<Deviation>,
    ) {
        let k = strength(self.n);
        let text = |f: &dyn Fn() -> String| if explain { f() } else { String::new() };
        let new_symbols = s.symbols & !self.symbol_mask() & !also_known;
        if new_symbols != 0 {
            let count = new_symbols.count_ones();
            // One new joining mark (`.` in a login) is weak evidence on its own; one new
            // metacharacter of the injection families, or several marks, is strong.
            let base = match count {
                1 if new_symbols & (CONTROL | META) != 0 => 0.7,
                1 => 0.45,
                2 => 0.8,
                _ => 0.9,
            };
            out.push(Deviation {
                what: "symbols",
                weight: base * k,
                came: text(&|| {
                    format!(
                        "{count} symbol{} never seen here: {}",
                        if count == 1 { "" } else { "s" },
                        list_symbols(new_symbols)
                    )
                }),
            });
        }
        let mut new_class = false;
        for c in CLASSES {
            if s.classes[c as usize] && self.classes[c as usize] == 0 {
                new_class = true;
                let weight = match c {
                    Class::Lower | Class::Upper if self.always_numeric() => 0.7,
                    Class::Space => 0.5,
                    _ => 0.45,
                };
                out.push(Deviation {
                    what: "class",
                    weight: weight * k,
                    came: text(&|| format!("{} where none were seen", c.name())),
                });
            }
        }
        self.judge_length(s, k, explain, out);
        if self.always_numeric() {
            match s.number {
                None if !v.is_empty() && !s.classes[Class::Lower as usize] => out.push(Deviation {
                    what: "type",
                    weight: 0.6 * k,
                    came: text(&|| "a value that is not a number".into()),
                }),
                Some(x) => {
                    if let Some((lo, hi)) = self.num_range {
                        let weight = range_weight((lo, hi), x);
                        if weight > 0.0 {
                            out.push(Deviation {
                                what: "range",
                                weight: weight * k,
                                came: text(&|| format!("{x} outside {lo}–{hi}")),
                            })
                        }
                    }
                }
                _ => {}
            }
        } else if let Some(values) = self.closed_set() {
            let text_v = Text::of(v);
            if !values.iter().any(|(x, _)| text_v.is(x)) {
                out.push(Deviation {
                    what: "value",
                    weight: 0.55 * k,
                    came: text(&|| format!("a value outside the {} ever seen", values.len())),
                });
            }
        }
        self.judge_bigrams(v, s, new_symbols, new_class, k, explain, out);
    }

    fn judge_length(&self, s: &Shape, k: f64, explain: bool, out: &mut Vec<Deviation>) {
        let len = f64::from(s.len);
        let (max, mean) = (f64::from(self.len_max), self.len_mean);
        // Chebyshev: a length z standard deviations out has probability ≤ 1/z² whatever the
        // distribution; the floor on σ keeps constant-length parameters from flagging a
        // one-byte change as infinitely rare.
        let sigma = self.std().max(1.0).max(0.1 * mean);
        let z = (len - mean) / sigma;
        let came = || {
            if explain {
                format!("length {}", s.len)
            } else {
                String::new()
            }
        };
        if len > max * 1.5 + 4.0 && z > 4.0 {
            out.push(Deviation {
                what: "length",
                weight: (0.5 + (z - 4.0) / 40.0).min(0.85) * k,
                came: came(),
            });
        } else if s.len < self.len_min && self.len_min > 0 && (mean - len) / sigma > 4.0 {
            out.push(Deviation {
                what: "length",
                weight: 0.3 * k,
                came: came(),
            });
        }
    }

    /// Structure among known characters: pairs that hold a new symbol or class were
    /// judged above already and are not counted twice.
    #[allow(clippy::too_many_arguments)]
    fn judge_bigrams(
        &self,
        v: &[u8],
        s: &Shape,
        new_symbols: u128,
        new_class: bool,
        k: f64,
        explain: bool,
        out: &mut Vec<Deviation>,
    ) {
        if v.len() < 2 {
            return;
        }
        // Distinct pairs, and distinct pairs of known characters never seen together.
        let (total, unseen) = if new_symbols == 0 && !new_class && s.symbols & SHAPE_ALIASES == 0 {
            // Every character is known: the value's pair bits against the learned ones.
            let total: u32 = s.pairs.iter().map(|w| w.count_ones()).sum();
            let unseen: u32 = s
                .pairs
                .iter()
                .zip(&self.bigrams)
                .map(|(w, l)| (w & !l).count_ones())
                .sum();
            (total as usize, unseen as usize)
        } else {
            self.count_unseen_pairs(v, new_symbols)
        };
        if total < 3 {
            return;
        }
        let share = unseen as f64 / total as f64;
        if unseen >= 2 && share >= 0.2 {
            out.push(Deviation {
                what: "ngrams",
                weight: (0.2 + 0.6 * share).min(0.7) * k,
                came: if explain {
                    format!("{unseen} of {total} character pairs never seen here")
                } else {
                    String::new()
                },
            });
        }
    }

    /// `(distinct pairs, distinct pairs of known characters never seen)`, by a scan.
    fn count_unseen_pairs(&self, v: &[u8], new_symbols: u128) -> (usize, usize) {
        let known = |c: u8| match c {
            0 => true,
            1 => self.classes[Class::Lower as usize] > 0,
            2 => self.classes[Class::Upper as usize] > 0,
            3 => self.classes[Class::Digit as usize] > 0,
            4 => self.classes[Class::NonAscii as usize] > 0,
            b' ' => self.classes[Class::Space as usize] > 0,
            c => c < 128 && new_symbols & (1u128 << c) == 0,
        };
        let (mut seen_here, mut total, mut unseen) = ([0u64; BIGRAM_WORDS], 0usize, 0usize);
        for_each_pair(v, |a, b| {
            let i = bigram(a, b);
            let (word, bit) = (usize::from(i) / 64, 1u64 << (i % 64));
            if seen_here[word] & bit != 0 {
                return;
            }
            seen_here[word] |= bit;
            total += 1;
            if known(a) && known(b) && self.bigrams[word] & bit == 0 {
                unseen += 1;
            }
        });
        (total, unseen)
    }

    /// What was learned, for people: `digits, length 1–3, seen 3,412 times`.
    pub fn expected(&self) -> String {
        let mut kinds: Vec<&str> = Vec::new();
        for c in CLASSES {
            if self.classes[c as usize] > 0 && !kinds.contains(&c.name()) {
                kinds.push(c.name());
            }
        }
        let symbols = self.symbol_mask();
        if symbols != 0 {
            kinds.push("symbols");
        }
        let mut text = if kinds.is_empty() {
            "empty".to_owned()
        } else {
            kinds.join(", ")
        };
        if symbols != 0 {
            text.push_str(&format!(" ({})", list_symbols(symbols)));
        }
        if self.n > 0 {
            text.push_str(&format!(", length {}–{}", self.len_min, self.len_max));
        }
        if let Some(values) = self.closed_set() {
            let shown: Vec<&str> = values.iter().take(4).map(|(v, _)| v.as_str()).collect();
            text.push_str(&format!(
                ", one of {} values ({})",
                values.len(),
                shown.join(", ")
            ));
        }
        text.push_str(&format!(", seen {} times", thousands(self.n)));
        text
    }

    /// Adds what `other` learned (counts add, sets unite).
    pub fn merge(&mut self, other: &ParamProfile) {
        if other.n == 0 {
            return;
        }
        let (n1, n2) = (self.n as f64, other.n as f64);
        let n = n1 + n2;
        let d = other.len_mean - self.len_mean;
        self.len_m2 += other.len_m2 + d * d * n1 * n2 / n;
        self.len_mean += d * n2 / n;
        self.n += other.n;
        self.len_min = self.len_min.min(other.len_min);
        self.len_max = self.len_max.max(other.len_max);
        for i in 0..self.classes.len() {
            self.classes[i] += other.classes[i];
        }
        for i in 0..2 {
            self.symbols[i] |= other.symbols[i];
        }
        for i in 0..self.bigrams.len() {
            self.bigrams[i] |= other.bigrams[i];
        }
        self.numeric += other.numeric;
        if let Some((lo, hi)) = other.num_range {
            self.num_range = Some(widen(self.num_range, lo, hi));
        }
        match &other.values {
            None => self.values = None,
            Some(vs) => {
                for (v, c) in vs {
                    self.enumerate(v.as_bytes(), *c);
                }
            }
        }
    }

    /// Bytes held on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.values.as_ref().map_or(0, |vs| {
            vs.capacity() * std::mem::size_of::<(String, u64)>()
                + vs.iter().map(|(v, _)| v.capacity()).sum::<usize>()
        })
    }
}

/// A value as the (lossy) text enumerations store, checked once per value.
struct Text<'a>(std::borrow::Cow<'a, str>);

impl<'a> Text<'a> {
    fn of(v: &'a [u8]) -> Self {
        Self(String::from_utf8_lossy(v))
    }
    fn is(&self, x: &str) -> bool {
        *self.0 == *x
    }
}

fn widen(range: Option<(f64, f64)>, lo: f64, hi: f64) -> (f64, f64) {
    match range {
        Some((a, b)) => (a.min(lo), b.max(hi)),
        None => (lo, hi),
    }
}

/// How far outside the learned range `x` is: a sign never seen, or beyond either end by
/// ten times the range's width, is strong; beyond by its width, weak; else nothing.
fn range_weight((lo, hi): (f64, f64), x: f64) -> f64 {
    let span = (hi - lo).abs().max(1.0);
    let beyond = (x - hi).max(lo - x);
    if (x < 0.0 && lo >= 0.0) || beyond > 10.0 * span {
        0.65
    } else if beyond > span {
        0.35
    } else {
        0.0
    }
}

/// Metacharacters of SQL, script, shell and template injection: quotes, brackets,
/// separators, substitution and escape marks.
const META: u128 = {
    let mut m = 0u128;
    let chars = b"'\"<>;()|&$`{}[]\\%*=";
    let mut i = 0;
    while i < chars.len() {
        m |= 1u128 << chars[i];
        i += 1;
    }
    m
};

/// Control bytes (0x00–0x1f, 0x7f).
const CONTROL: u128 = ((1u128 << 32) - 1) | (1u128 << 0x7f);

fn list_symbols(mask: u128) -> String {
    let mut out = Vec::new();
    for b in 0u8..128 {
        if mask & (1u128 << b) != 0 {
            if b < 0x20 || b == 0x7f {
                out.push(format!("0x{b:02x}"));
            } else {
                out.push(format!("`{}`", b as char));
            }
        }
    }
    out.join(" ")
}

/// `3412` → `3,412`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(values: &[&str], times: usize) -> ParamProfile {
        let mut p = ParamProfile::default();
        for _ in 0..times {
            for v in values {
                p.learn(v.as_bytes(), &Shape::of(v.as_bytes()));
            }
        }
        p
    }

    fn judged(p: &ParamProfile, v: &str) -> Vec<Deviation> {
        let mut out = Vec::new();
        p.judge(v.as_bytes(), &Shape::of(v.as_bytes()), 0, true, &mut out);
        out
    }

    #[test]
    fn values_like_the_learned_ones_pass() {
        let ids = learned(&["1", "2", "3", "12", "7"], 100);
        assert!(judged(&ids, "5").is_empty(), "{:?}", judged(&ids, "5"));
        let many: Vec<String> = (0..40)
            .map(|i| format!("Calle Mayor {i}, {}B", i % 5))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let addresses = learned(&many, 10);
        let got = judged(&addresses, "Calle del Puerto 7, 3B");
        assert!(got.is_empty(), "{got:?}");
        // A closed set of names judges a name outside it, and only that.
        let names = learned(&["Vino Rioja", "Queso Manchego", "Jamón Ibérico"], 100);
        let got: Vec<&str> = judged(&names, "Queso Rioja")
            .iter()
            .map(|d| d.what)
            .collect();
        assert_eq!(got, ["value"]);
    }

    #[test]
    fn injections_into_a_digit_parameter_are_explained() {
        let ids = learned(&["1", "2", "3", "12", "7"], 100);
        let d = judged(&ids, "1' OR '1'='1' --");
        let whats: Vec<&str> = d.iter().map(|d| d.what).collect();
        assert!(
            whats.contains(&"symbols") && whats.contains(&"class"),
            "{whats:?}"
        );
        assert!(
            whats.contains(&"type") && whats.contains(&"length"),
            "{whats:?}"
        );
        let symbols = d.iter().find(|d| d.what == "symbols").unwrap();
        assert!(
            symbols.came.contains("`'`") && symbols.came.contains("`=`"),
            "{}",
            symbols.came
        );
        assert!(symbols.weight > 0.85);
        let expected = ids.expected();
        assert!(expected.starts_with("digits, length 1–2"), "{expected}");
        assert!(expected.ends_with("seen 500 times"), "{expected}");
    }

    #[test]
    fn closed_sets_catch_tampered_values_and_open_ones_do_not() {
        let modes = learned(&["entrar", "registro"], 100);
        assert_eq!(judged(&modes, "salir")[0].what, "value");
        assert!(modes
            .expected()
            .contains("one of 2 values (entrar, registro)"));
        let free: Vec<String> = (0..40).map(|i| format!("user{i}x")).collect();
        let free: Vec<&str> = free.iter().map(String::as_str).collect();
        let logins = learned(&free, 5);
        assert!(judged(&logins, "user99x").is_empty());
    }

    #[test]
    fn merging_equals_learning_together() {
        let a = learned(&["1", "22", "a b"], 10);
        let b = learned(&["333", "x;y"], 7);
        let mut merged = a.clone();
        merged.merge(&b);
        let mut together = learned(&["1", "22", "a b"], 10);
        for _ in 0..7 {
            for v in ["333", "x;y"] {
                together.learn(v.as_bytes(), &Shape::of(v.as_bytes()));
            }
        }
        assert_eq!(merged.n, together.n);
        assert!((merged.len_mean - together.len_mean).abs() < 1e-9);
        assert!((merged.len_m2 - together.len_m2).abs() < 1e-6);
        assert_eq!(merged.symbols, together.symbols);
        assert_eq!(merged.bigrams, together.bigrams);
        assert_eq!(merged.values.as_ref().map(Vec::len), Some(5));
    }

    #[test]
    fn new_parameters_judge_weakly() {
        assert!(strength(1) < 0.05 && strength(1000) > 0.95);
        assert_eq!(thousands(3412), "3,412");
        assert_eq!(thousands(12), "12");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    /// The one-pass summary holds the pairs a scan finds, and where every character is
    /// known, counting unseen pairs from it agrees with the scan.
    fn pairs_agree(p: &ParamProfile, v: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
        let s = Shape::of(v);
        let mut scanned = [0u64; BIGRAM_WORDS];
        for_each_pair(v, |a, b| set_bit(&mut scanned, bigram(a, b)));
        proptest::prop_assert_eq!(s.pairs, scanned);
        let new_class = CLASSES
            .iter()
            .any(|&c| s.classes[c as usize] && p.classes[c as usize] == 0);
        let new_symbols = s.symbols & !p.symbol_mask();
        if new_symbols == 0 && !new_class && s.symbols & SHAPE_ALIASES == 0 {
            let total: u32 = s.pairs.iter().map(|w| w.count_ones()).sum();
            let unseen: u32 = s
                .pairs
                .iter()
                .zip(&p.bigrams)
                .map(|(w, l)| (w & !l).count_ones())
                .sum();
            proptest::prop_assert_eq!(
                p.count_unseen_pairs(v, new_symbols),
                (total as usize, unseen as usize)
            );
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn one_pass_pairs_agree_with_a_scan(
            known in "[abc12xy -]{0,24}",
            any in proptest::collection::vec(0u8..=255, 0..64)
        ) {
            let p = learned(&["abc", "12", "x-y", "ab 21"], 30);
            pairs_agree(&p, known.as_bytes())?;
            pairs_agree(&p, &any)?;
        }

        #[test]
        fn judging_any_bytes_gives_weights_in_range(v in proptest::collection::vec(0u8..=255, 0..200)) {
            let p = learned(&["abc", "12", "x-y"], 30);
            let mut out = Vec::new();
            p.judge(&v, &Shape::of(&v), 0, true, &mut out);
            for d in out {
                proptest::prop_assert!((0.0..=1.0).contains(&d.weight));
            }
        }
    }
}
