//! Secrets by reference. Configuration and playbooks only ever hold `env:VAR` or
//! `file:PATH`; the server resolves a reference to bytes through a [`SecretSource`] when an
//! executor needs them. Neither type prints a secret's value in `Debug`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("`{0}` is not a secret reference (expected `env:VAR` or `file:PATH`)")]
    BadReference(String),
    #[error("cannot resolve secret {reference}: {why}")]
    Unresolved { reference: String, why: String },
}

/// Where a secret lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl SecretRef {
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let bad = || SecretError::BadReference(text.to_owned());
        if let Some(var) = text.strip_prefix("env:") {
            let mut chars = var.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Ok(Self::Env(var.to_owned()));
            }
            return Err(bad());
        }
        match text.strip_prefix("file:") {
            Some(path) if !path.is_empty() && !path.contains('\0') => {
                Ok(Self::File(path.to_owned()))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(v) => write!(f, "env:{v}"),
            Self::File(p) => write!(f, "file:{p}"),
        }
    }
}

/// A secret's bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Resolves references to bytes (the server reads the environment or the file).
pub trait SecretSource: Send + Sync {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError>;
}

/// Resolves `env:VAR` from the process environment and `file:PATH` from the file (trailing
/// whitespace trimmed): what the server and the gateway use.
pub struct EnvOrFile;

impl SecretSource for EnvOrFile {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let unresolved = |why: String| SecretError::Unresolved {
            reference: r.to_string(),
            why,
        };
        match r {
            SecretRef::Env(var) => std::env::var(var)
                .map(Secret::new)
                .map_err(|e| unresolved(e.to_string())),
            SecretRef::File(path) => std::fs::read(path)
                .map(|mut b| {
                    while b.last().is_some_and(|c| c.is_ascii_whitespace()) {
                        b.pop();
                    }
                    Secret::new(b)
                })
                .map_err(|e| unresolved(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            SecretRef::parse("env:HOOK_1"),
            Ok(SecretRef::Env("HOOK_1".into()))
        );
        assert_eq!(
            SecretRef::parse("file:/run/secrets/hook"),
            Ok(SecretRef::File("/run/secrets/hook".into()))
        );
        for bad in ["hunter2", "env:", "env:1X", "env:A-B", "file:", "ENV:X", ""] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), b"hunter2");
    }

    proptest! {
        #[test]
        fn display_round_trips(text in ".{0,32}") {
            if let Ok(r) = SecretRef::parse(&text) {
                prop_assert_eq!(r.to_string(), text);
            }
        }
    }
}
