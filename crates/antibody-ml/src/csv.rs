//! A small RFC 4180 CSV reader that reuses its buffers, so reading a row allocates nothing
//! once the buffers have grown to the widest row.
//!
//! Written here rather than taken from the `csv` crate: the training files are plain
//! comma-separated numbers, this is ~150 lines, and owning it keeps line numbers exact in
//! every error (a quoted field may span lines; errors name the line the record starts on).

use crate::error::{MlError, Result};
use std::io::BufRead;

pub struct CsvReader<R> {
    inner: R,
    line: String,
    /// Unescaped contents of all fields of the current record, back to back.
    buf: String,
    /// End offset in `buf` of each field.
    ends: Vec<usize>,
    line_no: u64,
}

/// One record, borrowed from the reader.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    buf: &'a str,
    /// Offset in `buf` where the first field starts.
    start: usize,
    ends: &'a [usize],
    /// 1-based line number where the record starts.
    pub line: u64,
}

impl<'a> Record<'a> {
    /// A record whose fields are `buf[start..ends[0]]`, `buf[ends[0]..ends[1]]`, ….
    pub(crate) fn from_parts(buf: &'a str, start: usize, ends: &'a [usize], line: u64) -> Self {
        Record {
            buf,
            start,
            ends,
            line,
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { self.start } else { self.ends[i - 1] };
        self.buf.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<R: BufRead> CsvReader<R> {
    pub fn new(inner: R) -> Self {
        CsvReader {
            inner,
            line: String::new(),
            buf: String::new(),
            ends: Vec::new(),
            line_no: 0,
        }
    }

    /// Reads one physical line into `self.line`; false at end of input.
    fn read_line(&mut self) -> Result<bool> {
        self.line.clear();
        let n = self
            .inner
            .read_line(&mut self.line)
            .map_err(|e| MlError::Csv {
                line: self.line_no + 1,
                message: format!("cannot read: {e}"),
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.line_no == 1 && self.line.starts_with('\u{feff}') {
            self.line.drain(..'\u{feff}'.len_utf8());
        }
        Ok(true)
    }

    /// The next non-blank record, or `None` at end of input.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            if !self.line.trim_end_matches(['\r', '\n']).is_empty() {
                break;
            }
        }
        let start_line = self.line_no;
        self.buf.clear();
        self.ends.clear();
        self.parse_record(start_line)?;
        Ok(Some(Record {
            buf: &self.buf,
            start: 0,
            ends: &self.ends,
            line: start_line,
        }))
    }

    fn parse_record(&mut self, start_line: u64) -> Result<()> {
        let mut in_quotes = false;
        let mut at_field_start = true;
        loop {
            let mut chars = self.line.chars().peekable();
            while let Some(c) = chars.next() {
                if in_quotes {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            self.buf.push('"');
                        } else {
                            in_quotes = false;
                        }
                    } else {
                        self.buf.push(c);
                    }
                    continue;
                }
                match c {
                    '"' if at_field_start => {
                        in_quotes = true;
                        at_field_start = false;
                    }
                    ',' => {
                        self.ends.push(self.buf.len());
                        at_field_start = true;
                    }
                    '\r' | '\n' => {}
                    _ => {
                        self.buf.push(c);
                        at_field_start = false;
                    }
                }
            }
            if !in_quotes {
                self.ends.push(self.buf.len());
                return Ok(());
            }
            // The quoted field goes on: its newline is part of the value.
            if !self.read_line()? {
                return Err(MlError::Csv {
                    line: start_line,
                    message: "unterminated quoted field".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn records(text: &str) -> Result<Vec<(u64, Vec<String>)>> {
        let mut r = CsvReader::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push((rec.line, rec.iter().map(str::to_owned).collect()));
        }
        Ok(out)
    }

    fn quote(field: &str) -> String {
        if field.contains([',', '"', '\n', '\r']) || field.starts_with(' ') {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_owned()
        }
    }

    #[test]
    fn plain_quoted_blank_lines_bom_and_crlf() {
        let text = "\u{feff}a,b,c\r\n\n1,\"x,\"\"y\"\"\",3\n\"multi\nline\",,z\n";
        let recs = records(text).unwrap();
        assert_eq!(recs[0], (1, vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(recs[1], (3, vec!["1".into(), "x,\"y\"".into(), "3".into()]));
        assert_eq!(
            recs[2],
            (4, vec!["multi\nline".into(), String::new(), "z".into()])
        );
    }

    #[test]
    fn unterminated_quote_names_the_starting_line() {
        let err = records("a\n\"open,\nstill open\n").unwrap_err();
        assert!(matches!(err, MlError::Csv { line: 2, .. }), "{err}");
    }

    proptest! {
        #[test]
        fn round_trips_any_fields(rows in prop::collection::vec(
            prop::collection::vec("[a-z0-9 ,\"\n.-]{0,8}", 1..5), 1..6)) {
            // A record of one empty field is a blank line, which the reader skips.
            let rows: Vec<Vec<String>> = rows.into_iter()
                .filter(|r| !(r.len() == 1 && r[0].is_empty())).collect();
            let text: String = rows.iter()
                .map(|r| r.iter().map(|f| quote(f)).collect::<Vec<_>>().join(",") + "\n")
                .collect();
            let got: Vec<Vec<String>> = records(&text).unwrap().into_iter().map(|r| r.1).collect();
            prop_assert_eq!(got, rows);
        }

        #[test]
        fn never_panics_on_arbitrary_input(text in "\\PC{0,200}") {
            let _ = records(&text);
        }
    }
}
