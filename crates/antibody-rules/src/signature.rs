//! Signature matching for one event field. Every literal of every rule that reads the field
//! sits in ONE Aho-Corasick automaton and every regex in ONE `RegexSet`, so a value is
//! scanned once per matcher however many rules there are. Literals run first (cheap); the
//! set runs only for rules still unmatched, and individual regexes run only after the set
//! reported them, to locate the excerpt.

use crate::parse::REGEX_SIZE_LIMIT;
use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};
use std::sync::Arc;

/// Which rules may still report on the current event. Rules are marked with the event's
/// epoch instead of clearing flags, so resetting between events costs nothing.
pub(crate) struct Marks<'a> {
    pub applicable: &'a [u32],
    pub hit: &'a mut [u32],
    pub epoch: u32,
}

impl Marks<'_> {
    pub(crate) fn open(&self, rule: u32) -> bool {
        let r = rule as usize;
        self.applicable[r] == self.epoch && self.hit[r] != self.epoch
    }

    fn close(&mut self, rule: u32) {
        self.hit[rule as usize] = self.epoch;
    }
}

/// One match of one rule in the normalised value.
pub(crate) struct SigMatch<'a> {
    pub rule: u32,
    /// The literal or the regex source.
    pub pattern: &'a str,
    pub literal: bool,
    pub start: usize,
    pub end: usize,
}

/// Patterns gathered from the rules that read one field, before compilation.
#[derive(Default)]
pub(crate) struct FieldBuilder {
    pub rules: Vec<u32>,
    pub literals: Vec<(u32, String)>,
    /// Rule, source as written, compiled regex.
    pub regexes: Vec<(u32, Arc<str>, Regex)>,
}

#[derive(Debug)]
pub(crate) struct FieldMatcher {
    pub field: String,
    /// Rules with at least one pattern on this field.
    pub rules: Vec<u32>,
    literals: Option<AhoCorasick>,
    literal_owner: Vec<(u32, Arc<str>)>,
    regexes: Option<RegexSet>,
    regex_owner: Vec<(u32, Arc<str>, Regex)>,
}

impl FieldBuilder {
    pub(crate) fn build(self, field: String) -> Result<FieldMatcher, String> {
        let literals = if self.literals.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(self.literals.iter().map(|(_, l)| l.as_str()))
                .map_err(|e| format!("literals for field `{field}` do not compile: {e}"))?;
            Some(ac)
        };
        let regexes = if self.regexes.is_empty() {
            None
        } else {
            let limit = REGEX_SIZE_LIMIT
                .saturating_mul(self.regexes.len())
                .min(64 << 20);
            let set = RegexSetBuilder::new(self.regexes.iter().map(|(_, _, r)| r.as_str()))
                .case_insensitive(true)
                .size_limit(limit)
                .build()
                .map_err(|e| format!("regexes for field `{field}` are too large together: {e}"))?;
            Some(set)
        };
        Ok(FieldMatcher {
            field,
            rules: self.rules,
            literals,
            literal_owner: self
                .literals
                .into_iter()
                .map(|(r, l)| (r, Arc::from(l)))
                .collect(),
            regexes,
            regex_owner: self.regexes,
        })
    }
}

impl FieldMatcher {
    /// True if some rule reading this field may still report on the current event.
    pub(crate) fn wanted(&self, marks: &Marks<'_>) -> bool {
        self.rules.iter().any(|&r| marks.open(r))
    }

    /// Reports the first match of every open rule in `text` (already normalised) and closes
    /// those rules for the rest of the event.
    pub(crate) fn scan(
        &self,
        text: &str,
        marks: &mut Marks<'_>,
        mut emit: impl FnMut(SigMatch<'_>),
    ) {
        if let Some(ac) = &self.literals {
            for m in ac.find_overlapping_iter(text) {
                let (rule, pattern) = &self.literal_owner[m.pattern().as_usize()];
                if marks.open(*rule) {
                    marks.close(*rule);
                    emit(SigMatch {
                        rule: *rule,
                        pattern,
                        literal: true,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        let Some(set) = &self.regexes else { return };
        if !self.regex_owner.iter().any(|(r, _, _)| marks.open(*r)) || !set.is_match(text) {
            return;
        }
        for i in set.matches(text).iter() {
            let (rule, source, re) = &self.regex_owner[i];
            if !marks.open(*rule) {
                continue;
            }
            if let Some(m) = re.find(text) {
                marks.close(*rule);
                emit(SigMatch {
                    rule: *rule,
                    pattern: source,
                    literal: false,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> FieldMatcher {
        let re =
            |rule: u32, s: &str| (rule, Arc::from(s), Regex::new(&format!("(?i){s}")).unwrap());
        FieldBuilder {
            rules: vec![0, 1],
            literals: vec![(0, "union select".into()), (1, "<script".into())],
            regexes: vec![re(0, r"or\s+1=1"), re(1, r"on(load|error)\s*=")],
        }
        .build("query".into())
        .unwrap()
    }

    fn run(m: &FieldMatcher, text: &str, applicable: &[u32]) -> Vec<(u32, String, bool)> {
        let mut hit = vec![0; applicable.len()];
        let mut marks = Marks {
            applicable,
            hit: &mut hit,
            epoch: 1,
        };
        let mut out = Vec::new();
        m.scan(text, &mut marks, |s| {
            out.push((s.rule, text[s.start..s.end].to_owned(), s.literal))
        });
        out
    }

    #[test]
    fn literal_first_then_regex_once_per_rule() {
        let m = matcher();
        let hits = run(&m, "1 union select 2 or 1=1 <script onload=x>", &[1, 1]);
        assert_eq!(
            hits,
            vec![
                (0, "union select".into(), true),
                (1, "<script".into(), true)
            ]
        );
        let hits = run(&m, "x' or  1=1 <img onerror =y>", &[1, 1]);
        assert_eq!(
            hits,
            vec![(0, "or  1=1".into(), false), (1, "onerror =".into(), false)]
        );
    }

    #[test]
    fn skips_rules_that_do_not_apply() {
        let m = matcher();
        assert_eq!(run(&m, "union select <script", &[1, 0]).len(), 1);
        assert!(run(&m, "union select", &[0, 0]).is_empty());
        let hit = vec![0u32; 2];
        let marks = Marks {
            applicable: &[0, 0],
            hit: &mut hit.clone(),
            epoch: 1,
        };
        assert!(!m.wanted(&marks));
        assert!(run(&m, "benign value", &[1, 1]).is_empty());
    }
}
