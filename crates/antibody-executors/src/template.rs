//! Argv templates: a program and its arguments with `{target}`, `{entity}`, `{tenant}`,
//! `{action}` and `{param.NAME}` placeholders, substituted per argument — never through a
//! shell, so a value can never become a second command. A `{` not followed by a placeholder
//! name and `}` is literal, so nft sets such as `{ {target} }` need no escaping.

use antibody_respond::{ParamValue, Params};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the argv template is empty")]
    Empty,
    #[error("unknown placeholder `{{{0}}}` (known: target, entity, tenant, action, param.NAME)")]
    UnknownPlaceholder(String),
    #[error("placeholders are not allowed in the program name")]
    PlaceholderInProgram,
    #[error("program `{0}` is neither an absolute path nor on the allow-list")]
    ProgramNotAllowed(String),
    #[error("the action has no parameter `{0}`")]
    MissingParam(String),
    #[error("argument {index} would start with `-` from a substituted value (`{value}`)")]
    OptionInjection { index: usize, value: String },
    #[error("argument {0} would contain a NUL byte")]
    Nul(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Target,
    Entity,
    Tenant,
    Action,
    Param(String),
}

/// A parsed argv template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgvTemplate {
    program: String,
    args: Vec<Vec<Piece>>,
}

/// The values placeholders stand for.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    pub target: &'a str,
    pub entity: &'a str,
    pub tenant: &'a str,
    pub action: &'a str,
    pub params: &'a Params,
}

impl ArgvTemplate {
    /// Parses `argv`; the program must be an absolute path or a name on `allow`.
    pub fn parse(argv: &[String], allow: &[String]) -> Result<Self, TemplateError> {
        let (program, rest) = argv.split_first().ok_or(TemplateError::Empty)?;
        if parse_arg(program)?
            .iter()
            .any(|p| !matches!(p, Piece::Lit(_)))
        {
            return Err(TemplateError::PlaceholderInProgram);
        }
        if program.is_empty()
            || !(Path::new(program).is_absolute() || allow.iter().any(|a| a == program))
        {
            return Err(TemplateError::ProgramNotAllowed(program.clone()));
        }
        Ok(Self {
            program: program.clone(),
            args: rest
                .iter()
                .map(|a| parse_arg(a))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// Substitutes every placeholder; the result starts with the program.
    pub fn render(&self, vars: &Vars<'_>) -> Result<Vec<String>, TemplateError> {
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(self.program.clone());
        for (i, pieces) in self.args.iter().enumerate() {
            let index = i + 1;
            let mut arg = String::new();
            for piece in pieces {
                arg.push_str(&value(piece, vars)?);
            }
            let literal_dash = matches!(pieces.first(), Some(Piece::Lit(l)) if l.starts_with('-'));
            if arg.starts_with('-') && !literal_dash {
                return Err(TemplateError::OptionInjection { index, value: arg });
            }
            if arg.contains('\0') {
                return Err(TemplateError::Nul(index));
            }
            argv.push(arg);
        }
        Ok(argv)
    }
}

fn value(piece: &Piece, vars: &Vars<'_>) -> Result<String, TemplateError> {
    Ok(match piece {
        Piece::Lit(s) => s.clone(),
        Piece::Target => vars.target.to_owned(),
        Piece::Entity => vars.entity.to_owned(),
        Piece::Tenant => vars.tenant.to_owned(),
        Piece::Action => vars.action.to_owned(),
        Piece::Param(name) => match vars.params.get(name) {
            Some(ParamValue::Str(s)) => s.clone(),
            Some(ParamValue::Int(i)) => i.to_string(),
            Some(ParamValue::Float(f)) => f.to_string(),
            Some(ParamValue::Bool(b)) => b.to_string(),
            Some(ParamValue::List(items)) => items.join(","),
            None => return Err(TemplateError::MissingParam(name.clone())),
        },
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Splits one argument into literals and placeholders.
fn parse_arg(arg: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !is_name_char(c))
            .unwrap_or(after.len());
        let closed = name_len > 0 && after[name_len..].starts_with('}');
        if !closed {
            lit.push_str(&rest[..=open]);
            rest = after;
            continue;
        }
        lit.push_str(&rest[..open]);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(placeholder(&after[..name_len])?);
        rest = &after[name_len + 1..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

fn placeholder(name: &str) -> Result<Piece, TemplateError> {
    Ok(match name {
        "target" => Piece::Target,
        "entity" => Piece::Entity,
        "tenant" => Piece::Tenant,
        "action" => Piece::Action,
        _ => match name.strip_prefix("param.") {
            Some(p) if !p.is_empty() => Piece::Param(p.to_owned()),
            _ => return Err(TemplateError::UnknownPlaceholder(name.to_owned())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn render(
        t: &ArgvTemplate,
        target: &str,
        params: &Params,
    ) -> Result<Vec<String>, TemplateError> {
        t.render(&Vars {
            target,
            entity: "agent:x",
            tenant: "acme",
            action: "a-1",
            params,
        })
    }

    #[test]
    fn nft_set_syntax_keeps_literal_braces() {
        let t = ArgvTemplate::parse(
            &argv(&[
                "nft",
                "add",
                "element",
                "inet",
                "filter",
                "blocklist",
                "{ {target} }",
            ]),
            &argv(&["nft"]),
        )
        .unwrap();
        let out = render(&t, "10.0.0.1", &Params::new()).unwrap();
        assert_eq!(out.last().unwrap(), "{ 10.0.0.1 }");
        assert_eq!(out[0], "nft");
    }

    #[test]
    fn substitutes_every_placeholder_per_argument() {
        let mut params = Params::new();
        params.insert("rate".into(), ParamValue::Int(10));
        params.insert("tools".into(), ParamValue::List(argv(&["a", "b"])));
        let t = ArgvTemplate::parse(
            &argv(&[
                "/bin/echo",
                "{tenant}/{entity}",
                "{action}",
                "r={param.rate}",
                "{param.tools}",
                "{target}; rm -rf /",
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(
            render(&t, "x", &params).unwrap(),
            argv(&[
                "/bin/echo",
                "acme/agent:x",
                "a-1",
                "r=10",
                "a,b",
                "x; rm -rf /"
            ])
        );
        assert_eq!(
            render(
                &ArgvTemplate::parse(&argv(&["/bin/echo", "{param.nope}"]), &[]).unwrap(),
                "x",
                &params
            ),
            Err(TemplateError::MissingParam("nope".into()))
        );
    }

    #[test]
    fn refuses_bad_programs_and_placeholders() {
        let cases: [(&[&str], TemplateError); 5] = [
            (&[], TemplateError::Empty),
            (
                &["rm", "-rf"],
                TemplateError::ProgramNotAllowed("rm".into()),
            ),
            (&["./x"], TemplateError::ProgramNotAllowed("./x".into())),
            (&["{target}"], TemplateError::PlaceholderInProgram),
            (
                &["/bin/echo", "{targte}"],
                TemplateError::UnknownPlaceholder("targte".into()),
            ),
        ];
        for (items, want) in cases {
            assert_eq!(
                ArgvTemplate::parse(&argv(items), &argv(&["nft"])),
                Err(want)
            );
        }
    }

    #[test]
    fn values_cannot_become_options() {
        let t =
            ArgvTemplate::parse(&argv(&["/bin/echo", "{target}", "--to={target}"]), &[]).unwrap();
        assert!(render(&t, "ok", &Params::new()).is_ok());
        assert_eq!(
            render(&t, "-rf", &Params::new()),
            Err(TemplateError::OptionInjection {
                index: 1,
                value: "-rf".into()
            })
        );
        assert_eq!(
            render(&t, "a\0b", &Params::new()),
            Err(TemplateError::Nul(1))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(items in proptest::collection::vec(".{0,24}", 0..5)) {
            let _ = ArgvTemplate::parse(&items, &[]);
        }

        #[test]
        fn arguments_without_placeholders_render_verbatim(
            args in proptest::collection::vec("[^{}\\-\0][^{}\0]{0,16}", 0..5)
        ) {
            let mut items = vec!["/bin/true".to_owned()];
            items.extend(args.iter().cloned());
            let t = ArgvTemplate::parse(&items, &[]).unwrap();
            prop_assert_eq!(render(&t, "x", &Params::new()).unwrap(), items);
        }

        #[test]
        fn substituted_values_arrive_intact(value in "[^\\-\0][^\0]{0,32}") {
            let t = ArgvTemplate::parse(&argv(&["/bin/true", "{target}"]), &[]).unwrap();
            prop_assert_eq!(&render(&t, &value, &Params::new()).unwrap()[1], &value);
        }
    }
}
