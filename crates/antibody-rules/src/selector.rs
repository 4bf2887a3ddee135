//! Event selection. `events.kinds` is resolved by the rule set's kind index; this module owns
//! the `events.where` equality conditions on attributes.

use antibody_core::{AttrValue, Event};

#[derive(Debug)]
pub(crate) struct Selector {
    conditions: Vec<(String, Vec<String>)>,
}

impl Selector {
    pub(crate) fn new(conditions: Vec<(String, Vec<String>)>) -> Self {
        Self { conditions }
    }

    /// True when every condition holds: the attribute is present and equals (ASCII
    /// case-insensitively, as text) one of the accepted values. `scratch` holds the text of
    /// non-string attributes so matching does not allocate.
    pub(crate) fn matches(&self, ev: &Event, scratch: &mut String) -> bool {
        self.conditions.iter().all(|(attr, accepted)| {
            ev.attr(attr).is_some_and(|v| {
                let text = attr_text(v, scratch);
                accepted.iter().any(|a| a.eq_ignore_ascii_case(text))
            })
        })
    }

    /// `outcome=failure, service=ssh|web`, for explanations.
    pub(crate) fn describe(&self) -> String {
        self.conditions
            .iter()
            .map(|(attr, accepted)| format!("{attr}={}", accepted.join("|")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The attribute as text, borrowing strings and rendering other values into `scratch`.
pub(crate) fn attr_text<'a>(v: &'a AttrValue, scratch: &'a mut String) -> &'a str {
    match v {
        AttrValue::Str(s) => s,
        other => {
            scratch.clear();
            other.write_text(scratch);
            scratch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::TenantId;

    fn event(attrs: Vec<(&str, AttrValue)>) -> Event {
        Event {
            tenant: TenantId::new("t"),
            ts: 0,
            entity: "host:a".into(),
            kind: "auth".into(),
            metrics: vec![],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            id: None,
        }
    }

    #[test]
    fn all_conditions_must_hold() {
        let sel = Selector::new(vec![
            ("outcome".into(), vec!["failure".into()]),
            ("status".into(), vec!["401".into(), "403".into()]),
        ]);
        let mut s = String::new();
        let ok = event(vec![
            ("outcome", AttrValue::Str("FAILURE".into())),
            ("status", AttrValue::Num(403.0)),
        ]);
        assert!(sel.matches(&ok, &mut s));
        let wrong = event(vec![
            ("outcome", AttrValue::Str("success".into())),
            ("status", AttrValue::Num(403.0)),
        ]);
        assert!(!sel.matches(&wrong, &mut s));
        let missing = event(vec![("outcome", AttrValue::Str("failure".into()))]);
        assert!(!sel.matches(&missing, &mut s));
        assert_eq!(sel.describe(), "outcome=failure, status=401|403");
    }

    #[test]
    fn no_conditions_selects_everything() {
        assert!(Selector::new(vec![]).matches(&event(vec![]), &mut String::new()));
    }
}
