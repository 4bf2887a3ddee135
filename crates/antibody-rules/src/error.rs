//! Compilation errors. Validation is two-phase: every file and every rule is checked before
//! anything is built, and all problems come back together so an author fixes them in one go.

use std::fmt;

/// One problem in one rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// The source name (a file name for files on disk).
    pub file: String,
    /// 1-based line, when the problem can be pinned to one.
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for RuleError {}

/// Every problem found while compiling a rule set, in file order. Displays one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_error_per_line() {
        let errs = RuleErrors(vec![
            RuleError {
                file: "a.yml".into(),
                line: Some(3),
                reason: "bad regex".into(),
            },
            RuleError {
                file: "b.yml".into(),
                line: None,
                reason: "unreadable".into(),
            },
        ]);
        assert_eq!(errs.to_string(), "a.yml:3: bad regex\nb.yml: unreadable");
    }
}
