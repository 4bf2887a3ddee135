//! The syslog line header: timestamp, hostname and program tag, in the BSD form most
//! `auth.log` / `secure` files use (`Dec 10 06:55:46 LabSZ sshd[24200]: …`) and the RFC 3339
//! form of current rsyslog defaults (`2026-01-05T10:00:00.123456+00:00 web1 sshd[7]: …`);
//! and a message as it arrives over the network ([`parse_network`]): a `<PRI>` and then
//! either the same BSD form (RFC 3164) or RFC 5424's `1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.

use crate::ParseError;
use antibody_core::clock::parse_rfc3339;
use antibody_core::TimestampMs;

/// One syslog line split into its header fields and the free-text message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyslogLine<'a> {
    pub ts: TimestampMs,
    pub host: &'a str,
    /// The tag without pid and PAM module: `sshd` for both `sshd[1]` and `sshd(pam_unix)[1]`.
    pub program: &'a str,
    pub pid: Option<u32>,
    pub message: &'a str,
}

/// BSD timestamps carry no year. The tracker starts at a year fixed by the caller (so the
/// same file always yields the same timestamps) and moves to the next year when the month
/// jumps back by half a year or more, as a log crossing New Year does (Dec → Jan). Smaller
/// backward jumps are out-of-order lines and keep the year.
///
/// A live source ([`YearTracker::live`]) has "now" instead: a BSD timestamp gets the year
/// that puts it nearest to now (a December line read in January is last year's), and an
/// RFC 5424 message without a timestamp gets now.
#[derive(Debug, Clone)]
pub(crate) struct YearTracker {
    year: i64,
    last_month: Option<u8>,
    now: Option<(TimestampMs, u8)>,
}

impl YearTracker {
    pub fn new(year: i64) -> Self {
        Self {
            year,
            last_month: None,
            now: None,
        }
    }

    /// For lines arriving as they are written, `now` being their arrival.
    pub fn live(now: TimestampMs) -> Self {
        let mut t = Self::new(0);
        t.set_now(now);
        t
    }

    /// Moves a live tracker's "now" on.
    pub fn set_now(&mut self, now: TimestampMs) {
        let text = antibody_core::clock::format_rfc3339(now);
        let year = text.get(..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
        let month = text.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
        self.year = year;
        self.now = Some((now, month));
    }

    fn year_for(&mut self, month: u8) -> i64 {
        if let Some((_, now_month)) = self.now {
            return match i16::from(month) - i16::from(now_month) {
                d if d > 6 => self.year - 1,
                d if d < -6 => self.year + 1,
                _ => self.year,
            };
        }
        if let Some(last) = self.last_month {
            if month + 6 <= last {
                self.year += 1;
            }
        }
        self.last_month = Some(month);
        self.year
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Splits `line` into header and message; times are UTC.
pub(crate) fn parse<'a>(
    line: &'a str,
    years: &mut YearTracker,
) -> Result<SyslogLine<'a>, ParseError> {
    let line = line.trim_end();
    let (ts, rest) = match line.as_bytes().first() {
        Some(b'0'..=b'9') => iso_timestamp(line)?,
        _ => bsd_timestamp(line, years)?,
    };
    let rest = rest.trim_start_matches(' ');
    let (host, rest) = rest
        .split_once(' ')
        .ok_or(ParseError::Syslog("missing hostname"))?;
    let (program, pid, message) = tag(rest.trim_start_matches(' '))?;
    Ok(SyslogLine {
        ts,
        host,
        program,
        pid,
        message,
    })
}

/// A message received over the network: `<PRI>` (optional: some relays drop it), then
/// RFC 5424 when the version `1 ` follows, else the BSD / RFC 3339 line form of [`parse`].
pub(crate) fn parse_network<'a>(
    msg: &'a str,
    years: &mut YearTracker,
) -> Result<SyslogLine<'a>, ParseError> {
    let msg = msg.trim_end_matches(['\r', '\n', '\0']);
    let rest = match msg.strip_prefix('<') {
        Some(r) => {
            let end = r
                .bytes()
                .take(4)
                .position(|b| b == b'>')
                .ok_or(ParseError::Syslog("bad PRI"))?;
            let pri: u8 = r[..end]
                .parse()
                .map_err(|_| ParseError::Syslog("bad PRI"))?;
            if pri > 191 {
                return Err(ParseError::Syslog("bad PRI"));
            }
            &r[end + 1..]
        }
        None => msg,
    };
    match rest.strip_prefix("1 ") {
        Some(r) => rfc5424(r, years),
        None => parse(rest, years),
    }
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]` (after `<PRI>1 `);
/// `-` is the nil value of each header field.
fn rfc5424<'a>(rest: &'a str, years: &mut YearTracker) -> Result<SyslogLine<'a>, ParseError> {
    let mut fields = rest.splitn(6, ' ');
    let mut next = |what| fields.next().ok_or(ParseError::Syslog(what));
    let stamp = next("missing timestamp")?;
    let host = next("missing hostname")?;
    let app = next("missing app name")?;
    let procid = next("missing procid")?;
    let _msgid = next("missing msgid")?;
    let rest = fields
        .next()
        .ok_or(ParseError::Syslog("missing structured data"))?;
    let ts = match stamp {
        "-" => years
            .now
            .map(|(now, _)| now)
            .ok_or(ParseError::Syslog("no timestamp"))?,
        s => parse_rfc3339(s).ok_or_else(|| ParseError::Timestamp(s.to_owned()))?,
    };
    let message = skip_structured_data(rest)?;
    // A UTF-8 message starts with a byte-order mark.
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    Ok(SyslogLine {
        ts,
        host,
        program: if app == "-" { "" } else { app },
        pid: procid.parse().ok(),
        message,
    })
}

/// The message after `-` or `[id k="v" …]…` (values may hold `\"`, `\]` and spaces).
fn skip_structured_data(s: &str) -> Result<&str, ParseError> {
    let bad = ParseError::Syslog("bad structured data");
    let b = s.as_bytes();
    let mut i = match b.first() {
        Some(b'-') => 1,
        Some(b'[') => {
            let mut i = 0;
            while b.get(i) == Some(&b'[') {
                let (mut quoted, mut escaped) = (false, false);
                i += 1;
                loop {
                    let c = *b.get(i).ok_or(bad.clone())?;
                    i += 1;
                    match c {
                        _ if escaped => escaped = false,
                        b'\\' if quoted => escaped = true,
                        b'"' => quoted = !quoted,
                        b']' if !quoted => break,
                        _ => {}
                    }
                }
            }
            i
        }
        _ => return Err(bad),
    };
    match b.get(i) {
        None => Ok(""),
        Some(b' ') => {
            i += 1;
            Ok(&s[i..])
        }
        Some(_) => Err(bad),
    }
}

fn iso_timestamp(line: &str) -> Result<(TimestampMs, &str), ParseError> {
    let (stamp, rest) = line
        .split_once(' ')
        .ok_or(ParseError::Syslog("missing hostname"))?;
    let ts = parse_rfc3339(stamp).ok_or_else(|| ParseError::Timestamp(stamp.to_owned()))?;
    Ok((ts, rest))
}

/// `Mmm dd HH:MM:SS` with the day space-padded (`Jul  7`).
fn bsd_timestamp<'a>(
    line: &'a str,
    years: &mut YearTracker,
) -> Result<(TimestampMs, &'a str), ParseError> {
    let month_name = line.get(..3).ok_or(ParseError::Syslog("too short"))?;
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month_name))
        .ok_or(ParseError::Syslog("no month name at the start"))?;
    let rest = line[3..]
        .strip_prefix(' ')
        .ok_or(ParseError::Syslog("bad date"))?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (day, rest) = rest.split_once(' ').ok_or(ParseError::Syslog("bad date"))?;
    let (time, rest) = rest.split_once(' ').ok_or(ParseError::Syslog("bad time"))?;
    let day: u8 = day.parse().map_err(|_| ParseError::Syslog("bad day"))?;
    let month = (month + 1) as u8;
    let year = years.year_for(month);
    let stamp = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    // `parse_rfc3339` checks the clock fields and day range; a day past the month's end
    // (Feb 29 given the wrong year) rolls into the next month rather than losing the line.
    let ts = parse_rfc3339(&stamp).ok_or(ParseError::Timestamp(stamp))?;
    Ok((ts, rest))
}

/// `prog[pid]: msg`, `prog(module)[pid]: msg`, `prog: msg`, or a bare `prog msg` (as in
/// `syslogd 1.4.1: restart.`); a leading `-- ` (some syslogds write it for messages without
/// a tag of their own) is dropped.
fn tag(rest: &str) -> Result<(&str, Option<u32>, &str), ParseError> {
    let rest = rest.strip_prefix("-- ").unwrap_or(rest);
    let end = rest.find([':', ' ']).unwrap_or(rest.len());
    let (tag, message) = (
        &rest[..end],
        rest[end..].strip_prefix(':').unwrap_or(&rest[end..]),
    );
    if tag.is_empty() {
        return Err(ParseError::Syslog("missing program tag"));
    }
    let (name, pid) = match tag.split_once('[') {
        Some((name, pid)) => {
            let pid = pid.strip_suffix(']').and_then(|p| p.parse().ok());
            (name, Some(pid.ok_or(ParseError::Syslog("bad pid"))?))
        }
        None => (tag, None),
    };
    let program = name.split_once('(').map_or(name, |(p, _)| p);
    Ok((program, pid, message.strip_prefix(' ').unwrap_or(message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> TimestampMs {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn bsd_header() {
        let mut y = YearTracker::new(2026);
        let l = parse(
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            &mut y,
        )
        .unwrap();
        assert_eq!(l.ts, ts("2026-12-10T06:55:46Z"));
        assert_eq!((l.host, l.program, l.pid), ("LabSZ", "sshd", Some(24200)));
        assert_eq!(l.message, "Invalid user webmaster from 173.234.31.186");
    }

    #[test]
    fn padded_day_module_and_dashes() {
        let mut y = YearTracker::new(2005);
        let l = parse(
            "Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2",
            &mut y,
        )
        .unwrap();
        assert_eq!(l.ts, ts("2005-07-07T08:06:15Z"));
        assert_eq!(
            (l.host, l.program, l.pid, l.message),
            ("combo", "root", Some(2421), "ROOT LOGIN ON tty2")
        );
        let l = parse(
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown ",
            &mut y,
        )
        .unwrap();
        assert_eq!((l.program, l.message), ("sshd", "check pass; user unknown"));
        let l = parse("Jun 14 15:16:01 combo kernel: Linux version 2.6", &mut y).unwrap();
        assert_eq!((l.program, l.pid), ("kernel", None));
        let l = parse("Jun 19 04:09:11 combo syslogd 1.4.1: restart.", &mut y).unwrap();
        assert_eq!((l.program, l.message), ("syslogd", "1.4.1: restart."));
    }

    #[test]
    fn iso_header() {
        let mut y = YearTracker::new(1999);
        let l = parse(
            "2026-01-05T10:00:00.123456+01:00 web1 sshd[7]: Accepted publickey",
            &mut y,
        )
        .unwrap();
        assert_eq!(l.ts, ts("2026-01-05T09:00:00.123Z"));
        assert_eq!((l.host, l.program, l.pid), ("web1", "sshd", Some(7)));
    }

    #[test]
    fn year_rolls_over_at_new_year_only() {
        let mut y = YearTracker::new(2025);
        assert_eq!(y.year_for(12), 2025);
        assert_eq!(y.year_for(11), 2025, "out-of-order line keeps the year");
        assert_eq!(y.year_for(12), 2025);
        assert_eq!(y.year_for(1), 2026);
        assert_eq!(y.year_for(2), 2026);
    }

    #[test]
    fn rejects_non_syslog() {
        let mut y = YearTracker::new(2026);
        for l in [
            "",
            "hello world",
            "Dec 10 06:55:46",
            "Dec 10 06:55:46 host",
            "Dec xx 06:55:46 h p: m",
            "Dec 10 25:00:00 h p: m",
            "Dec 10 06:55:46 h p[x]: m",
            "2026-13-01T00:00:00Z h p: m",
        ] {
            assert!(parse(l, &mut y).is_err(), "{l:?}");
        }
    }

    #[test]
    fn network_messages_rfc3164_and_rfc5424() {
        let now = ts("2026-01-03T12:00:00Z");
        let mut y = YearTracker::live(now);
        let l = parse_network(
            "<38>Dec 31 23:59:58 gw sshd[9]: Failed password for root from 10.0.0.1 port 2 ssh2\n",
            &mut y,
        )
        .unwrap();
        assert_eq!(
            l.ts,
            ts("2025-12-31T23:59:58Z"),
            "nearest to now: last year"
        );
        assert_eq!((l.host, l.program, l.pid), ("gw", "sshd", Some(9)));
        let l = parse_network(
            "<86>1 2026-01-03T11:59:00.5Z web1 sshd 4242 - [meta x=\"a \\\"]b\"][o k=\"v\"] \u{feff}Invalid user bob from 10.0.0.2",
            &mut y,
        )
        .unwrap();
        assert_eq!(l.ts, ts("2026-01-03T11:59:00.500Z"));
        assert_eq!((l.host, l.program, l.pid), ("web1", "sshd", Some(4242)));
        assert_eq!(l.message, "Invalid user bob from 10.0.0.2");
        let l = parse_network("<13>1 - h - - - -", &mut y).unwrap();
        assert_eq!((l.ts, l.program, l.pid, l.message), (now, "", None, ""));
        for bad in [
            "<>1 - h - - - - x",
            "<999>Dec 31 23:59:58 gw sshd: x",
            "<13>1 2026-01-03T11:59:00Z h a p m [unterminated",
            "<13>1 2026-01-03T11:59:00Z h a p m -x",
            "<13>1 nope h a p m - x",
            "<13>1 - h a",
        ] {
            assert!(parse_network(bad, &mut y).is_err(), "{bad:?}");
        }
        assert!(
            parse_network("<13>1 - h - - - -", &mut YearTracker::new(2026)).is_err(),
            "no 'now' offline"
        );
    }

    #[test]
    fn live_years_follow_now() {
        let mut y = YearTracker::live(ts("2026-07-01T00:00:00Z"));
        assert_eq!(y.year_for(1), 2026);
        assert_eq!(y.year_for(12), 2026);
        y.set_now(ts("2026-01-01T00:00:00Z"));
        assert_eq!(y.year_for(12), 2025);
        y.set_now(ts("2026-12-31T00:00:00Z"));
        assert_eq!(y.year_for(1), 2027);
    }

    proptest! {
        #[test]
        fn network_never_panics(msg in "(<[0-9]{1,4}>)?(1 )?\\PC{0,80}") {
            let _ = parse_network(&msg, &mut YearTracker::live(0));
        }

        #[test]
        fn never_panics(line in "\\PC{0,80}", year in 0i64..20000) {
            let _ = parse(&line, &mut YearTracker::new(year));
        }

        #[test]
        fn never_panics_near_valid(prefix in "[A-Za-z]{3} [ 0-9]{1,3} [0-9:]{0,9} ", tail in "\\PC{0,40}") {
            let _ = parse(&format!("{prefix}{tail}"), &mut YearTracker::new(2026));
        }
    }
}
