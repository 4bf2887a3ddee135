//! Syslog auth lines → `auth` events.
//!
//! Every event has entity `host:<hostname>` (the machine that was logged into), kind `auth`
//! and, when the line names them, the attrs `src_ip` (or `src_host` when the peer is logged by
//! name), `src_port`, `user`, `service` (`ssh` for sshd, else the program or PAM service
//! name), `outcome` (`success` / `failure`), `method` (`password`, `publickey`, `none`, …),
//! `program`, `pid` and `message` (the raw message text).
//!
//! Recognised: sshd's `Failed <method> for`, `Accepted <method> for`, `Invalid user`,
//! `maximum authentication attempts exceeded`, `Too many authentication failures`; PAM's
//! `authentication failure;` (any program); klogind, login, su, gdm and ftpd logins and
//! failures; `message repeated N times: [ … ]` wrapping any of these. Everything else
//! (sessions, disconnects, kernel chatter, PAM's end-of-connection summaries) is skipped.

use crate::syslog::{self, YearTracker};
use crate::ParseError;
use antibody_core::{AttrValue, Event, TenantId, TimestampMs};
use std::net::IpAddr;

/// `message repeated N times` expands to at most this many events: enough for any rule
/// threshold, and a crafted line cannot make one line cost millions of events.
pub const MAX_REPEAT: u32 = 100;

/// One auth event and how many times the log says it happened (≥ 1, at most [`MAX_REPEAT`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRecord {
    pub event: Event,
    pub repeat: u32,
}

/// Parses an auth log line by line. Stateful only to resolve year-less timestamps (see
/// `--year` of `antibody replay`): feed it the lines of one file in order.
#[derive(Debug, Clone)]
pub struct AuthLogParser {
    tenant: TenantId,
    years: YearTracker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
}

/// What the message says, before it becomes attrs.
#[derive(Debug, Default)]
struct Facts<'a> {
    outcome: Option<Outcome>,
    user: Option<&'a str>,
    peer: Option<&'a str>,
    port: Option<u16>,
    method: Option<&'a str>,
    /// PAM names the service it authenticated for (`pam_unix(sshd:auth)`).
    pam_service: Option<&'a str>,
}

impl AuthLogParser {
    /// `year` is the year of the first line (BSD syslog timestamps carry none).
    pub fn new(tenant: TenantId, year: i32) -> Self {
        Self {
            tenant,
            years: YearTracker::new(i64::from(year)),
        }
    }

    /// For a live source (the syslog listener): timestamps without a year get the one
    /// nearest to `now`, and RFC 5424 messages without a timestamp get `now`.
    pub fn live(tenant: TenantId, now: TimestampMs) -> Self {
        Self {
            tenant,
            years: YearTracker::live(now),
        }
    }

    /// Moves a [`live`](Self::live) parser's "now" on.
    pub fn set_now(&mut self, now: TimestampMs) {
        self.years.set_now(now);
    }

    /// `Ok(None)` for a well-formed syslog line that is not an authentication event.
    pub fn parse_line(&mut self, line: &str) -> Result<Option<AuthRecord>, ParseError> {
        let line = syslog::parse(line, &mut self.years)?;
        Ok(self.record(&line))
    }

    /// One message as a syslog sender transmits it (`<PRI>` then RFC 3164 or RFC 5424),
    /// mapped exactly as [`parse_line`](Self::parse_line) maps a line of a file.
    pub fn parse_message(&mut self, msg: &str) -> Result<Option<AuthRecord>, ParseError> {
        let line = syslog::parse_network(msg, &mut self.years)?;
        Ok(self.record(&line))
    }

    fn record(&self, line: &syslog::SyslogLine<'_>) -> Option<AuthRecord> {
        let (repeat, inner) = unwrap_repeated(line.message);
        let facts = classify(inner)?;
        let outcome = facts.outcome?;
        let service = service_name(facts.pam_service.unwrap_or(line.program));
        let mut attrs: Vec<(String, AttrValue)> = Vec::with_capacity(10);
        let mut put = |k: &str, v: AttrValue| attrs.push((k.to_owned(), v));
        match facts.peer {
            Some(p) if p.parse::<IpAddr>().is_ok() => put("src_ip", AttrValue::Str(p.to_owned())),
            Some(p) if !p.is_empty() => put("src_host", AttrValue::Str(p.to_owned())),
            _ => {}
        }
        if let Some(port) = facts.port {
            put("src_port", AttrValue::Num(f64::from(port)));
        }
        if let Some(user) = facts.user.filter(|u| !u.is_empty()) {
            put("user", AttrValue::Str(user.to_owned()));
        }
        put("service", AttrValue::Str(service.to_owned()));
        let outcome = match outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        };
        put("outcome", AttrValue::Str(outcome.into()));
        if let Some(m) = facts.method {
            put("method", AttrValue::Str(m.to_owned()));
        }
        put("program", AttrValue::Str(line.program.to_owned()));
        if let Some(pid) = line.pid {
            put("pid", AttrValue::Num(f64::from(pid)));
        }
        put("message", AttrValue::Str(line.message.to_owned()));
        let event = Event {
            tenant: self.tenant.clone(),
            ts: line.ts,
            entity: format!("host:{}", line.host),
            kind: "auth".into(),
            metrics: Vec::new(),
            attrs,
            id: None,
        };
        Some(AuthRecord { event, repeat })
    }
}

/// True when `line` reads as a syslog line; used to sniff a file's format.
pub fn looks_like(line: &str) -> bool {
    syslog::parse(line, &mut YearTracker::new(2000)).is_ok()
}

fn service_name(program: &str) -> &str {
    match program {
        "sshd" => "ssh",
        other => other,
    }
}

/// `message repeated 5 times: [ Failed password for root …]` → (5, the inner message).
fn unwrap_repeated(message: &str) -> (u32, &str) {
    let inner = message.strip_prefix("message repeated ").and_then(|rest| {
        let (n, rest) = rest.split_once(" times: [")?;
        let n: u32 = n.parse().ok()?;
        let inner = rest.strip_suffix(']').unwrap_or(rest).trim();
        Some((n.clamp(1, MAX_REPEAT), inner))
    });
    inner.unwrap_or((1, message))
}

fn classify(m: &str) -> Option<Facts<'_>> {
    use Outcome::{Failure, Success};
    if let Some(rest) = m.strip_prefix("Failed ") {
        return method_for_user(rest, Failure);
    }
    if let Some(rest) = m.strip_prefix("Accepted ") {
        return method_for_user(rest, Success);
    }
    if let Some(rest) = m.strip_prefix("Invalid user ") {
        return user_from_peer(rest, Failure);
    }
    if let Some(rest) = m.strip_prefix("error: maximum authentication attempts exceeded for ") {
        return user_from_peer(rest.strip_prefix("invalid user ").unwrap_or(rest), Failure);
    }
    if m.contains("Too many authentication failures") {
        return too_many_failures(m);
    }
    if let Some((head, kv)) = m.split_once("authentication failure;") {
        // `PAM 2 more authentication failures;` summarises attempts already logged one by one.
        return (!head.starts_with("PAM ")).then(|| pam_failure(head, kv));
    }
    other_programs(m)
}

/// `<method> for [invalid user ]<user> from <peer> port <port> ssh2[: key]`.
fn method_for_user(rest: &str, outcome: Outcome) -> Option<Facts<'_>> {
    let (method, rest) = rest.split_once(" for ")?;
    let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
    let mut facts = user_from_peer(rest, outcome)?;
    facts.method = Some(method);
    Some(facts)
}

/// `<user> from <peer>[ port <port>…]`; the last ` from ` wins because user names are the
/// attacker's choice and may contain it.
fn user_from_peer(rest: &str, outcome: Outcome) -> Option<Facts<'_>> {
    let (user, peer) = rest.rsplit_once(" from ")?;
    let mut words = peer.split_whitespace();
    let peer = words.next()?;
    let port = match (words.next(), words.next()) {
        (Some("port"), Some(p)) => p.trim_end_matches(':').parse().ok(),
        _ => None,
    };
    Some(Facts {
        outcome: Some(outcome),
        user: Some(user),
        peer: Some(peer),
        port,
        ..Facts::default()
    })
}

/// `Disconnecting: Too many authentication failures for <user> [preauth]` (older sshd) or
/// `Disconnecting (authenticating|invalid) user <user> <peer> port <port>: Too many …`.
fn too_many_failures(m: &str) -> Option<Facts<'_>> {
    let mut facts = Facts {
        outcome: Some(Outcome::Failure),
        ..Facts::default()
    };
    if let Some((_, rest)) = m.split_once("Too many authentication failures for ") {
        facts.user = rest.split_whitespace().next();
        return Some(facts);
    }
    let (head, _) = m.split_once(": Too many authentication failures")?;
    let rest = head
        .strip_prefix("Disconnecting authenticating user ")
        .or_else(|| head.strip_prefix("Disconnecting invalid user "));
    if let Some(rest) = rest {
        let mut words = rest.split_whitespace();
        facts.user = words.next();
        facts.peer = words.next();
        facts.port = words.nth(1).and_then(|p| p.parse().ok());
    }
    Some(facts)
}

/// `pam_unix(sshd:auth): authentication failure; logname= uid=0 … rhost=1.2.3.4  user=root`.
fn pam_failure<'a>(head: &'a str, kv: &'a str) -> Facts<'a> {
    let mut facts = Facts {
        outcome: Some(Outcome::Failure),
        ..Facts::default()
    };
    facts.pam_service = head
        .split_once('(')
        .and_then(|(_, s)| s.split_once(':'))
        .map(|(svc, _)| svc);
    for (k, v) in kv.split_whitespace().filter_map(|w| w.split_once('=')) {
        match k {
            "rhost" => facts.peer = Some(v),
            "user" => facts.user = Some(v),
            _ => {}
        }
    }
    facts
}

/// Non-sshd programs with their own wording.
fn other_programs(m: &str) -> Option<Facts<'_>> {
    use Outcome::{Failure, Success};
    let facts = |outcome| Facts {
        outcome: Some(outcome),
        ..Facts::default()
    };
    if let Some(rest) = m.strip_prefix("Authentication failed from ") {
        // klogind: `Authentication failed from 163.27.187.39 (163.27.187.39): …`
        return Some(Facts {
            peer: rest.split([' ', ':']).next(),
            ..facts(Failure)
        });
    }
    if m == "Kerberos authentication failed" || m == "Couldn't authenticate user" {
        return Some(facts(Failure));
    }
    if let Some((_, rest)) = m.split_once("FTP LOGIN FROM ") {
        // ftpd: `ANONYMOUS FTP LOGIN FROM 84.102.20.2,  (anonymous)` / `FTP LOGIN FROM h [ip], bob`
        let (peer, user) = rest.split_once(',').unwrap_or((rest, ""));
        let user = user.trim().trim_start_matches('(').trim_end_matches(')');
        let peer = peer.split_whitespace().next();
        return Some(Facts {
            peer,
            user: Some(user),
            ..facts(Success)
        });
    }
    if m.starts_with("ROOT LOGIN ON ") {
        return Some(Facts {
            user: Some("root"),
            ..facts(Success)
        });
    }
    if let Some(rest) = m.strip_prefix("FAILED LOGIN ") {
        // login: `FAILED LOGIN 1 FROM host FOR bob, Authentication failure`
        let user = rest
            .split_once(" FOR ")
            .map(|(_, u)| u.split([',', ' ']).next().unwrap_or(u));
        let peer = rest
            .split_once(" FROM ")
            .and_then(|(_, p)| p.split_whitespace().next());
        return Some(Facts {
            user,
            peer,
            ..facts(Failure)
        });
    }
    if let Some(rest) = m.strip_prefix("FAILED SU (to ") {
        // su: `FAILED SU (to root) alice on pts/0` — the account asked for is the target.
        return Some(Facts {
            user: rest.split_once(')').map(|(u, _)| u),
            ..facts(Failure)
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::clock::parse_rfc3339;
    use proptest::prelude::*;

    fn parse(line: &str) -> Option<AuthRecord> {
        AuthLogParser::new(TenantId::new("t"), 2026)
            .parse_line(line)
            .unwrap()
    }

    fn attr(r: &AuthRecord, k: &str) -> Option<String> {
        r.event.attr(k).map(|v| v.to_text().into_owned())
    }

    fn attrs(r: &AuthRecord, keys: &[&str]) -> Vec<Option<String>> {
        keys.iter().map(|k| attr(r, k)).collect()
    }

    const KEYS: [&str; 5] = ["src_ip", "user", "service", "outcome", "method"];

    fn some(v: [&str; 5]) -> Vec<Option<String>> {
        v.iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect()
    }

    // Sample lines below are from loghub (logpai/loghub, OpenSSH_2k.log and Linux_2k.log).

    #[test]
    fn failed_password_for_invalid_user() {
        let r = parse("Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2").unwrap();
        assert_eq!(r.event.kind, "auth");
        assert_eq!(r.event.entity, "host:LabSZ");
        assert_eq!(r.event.ts, parse_rfc3339("2026-12-10T06:55:48Z").unwrap());
        assert_eq!(
            attrs(&r, &KEYS),
            some(["173.234.31.186", "webmaster", "ssh", "failure", "password"])
        );
        let want: Vec<Option<String>> = ["38926", "sshd", "24200"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        assert_eq!(attrs(&r, &["src_port", "program", "pid"]), want);
        assert_eq!(r.repeat, 1);
        assert!(attr(&r, "message")
            .unwrap()
            .starts_with("Failed password for invalid user webmaster"));
    }

    #[test]
    fn sshd_variants() {
        let cases = [
            ("Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
             ["119.137.62.142", "fztu", "ssh", "success", "password"]),
            ("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
             ["173.234.31.186", "webmaster", "ssh", "failure", ""]),
            ("Dec 10 11:03:40 LabSZ sshd[25448]: Failed none for invalid user 0 from 183.62.140.253 port 57890 ssh2",
             ["183.62.140.253", "0", "ssh", "failure", "none"]),
            ("Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186 ",
             ["173.234.31.186", "", "ssh", "failure", ""]),
            ("Dec 10 07:07:38 LabSZ sshd[24206]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=52.80.34.196  user=root",
             ["52.80.34.196", "root", "ssh", "failure", ""]),
            ("Jan  2 03:00:00 web1 sshd[9]: Accepted publickey for deploy from 2001:db8::7 port 50000 ssh2: ED25519 SHA256:abc",
             ["2001:db8::7", "deploy", "ssh", "success", "publickey"]),
            ("Jan  2 03:00:00 web1 sshd[9]: error: maximum authentication attempts exceeded for invalid user admin from 10.0.0.9 port 22 ssh2 [preauth]",
             ["10.0.0.9", "admin", "ssh", "failure", ""]),
            ("Jan  2 03:00:00 web1 sshd[9]: Disconnecting authenticating user root 10.0.0.9 port 4022: Too many authentication failures [preauth]",
             ["10.0.0.9", "root", "ssh", "failure", ""]),
            ("Dec 10 07:27:55 LabSZ sshd[24239]: Disconnecting: Too many authentication failures for root [preauth]",
             ["", "root", "ssh", "failure", ""]),
            ("Jan  2 03:00:00 web1 sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/0 ruser=bob rhost=  user=bob",
             ["", "bob", "sudo", "failure", ""]),
        ];
        for (line, want) in cases {
            let r = parse(line).unwrap_or_else(|| panic!("skipped: {line}"));
            assert_eq!(attrs(&r, &KEYS), some(want), "{line}");
        }
    }

    #[test]
    fn linux_syslog_variants() {
        let cases = [
            ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 ",
             ["218.188.2.4", "", "ssh", "failure", ""]),
            ("Jun 30 20:53:04 combo klogind[19272]: Authentication failed from 163.27.187.39 (163.27.187.39): Permission denied in replay cache code ",
             ["163.27.187.39", "", "klogind", "failure", ""]),
            ("Jun 30 20:53:04 combo klogind[19272]: Kerberos authentication failed ",
             ["", "", "klogind", "failure", ""]),
            ("Jul 24 02:38:23 combo ftpd[16781]: ANONYMOUS FTP LOGIN FROM 84.102.20.2,  (anonymous)",
             ["84.102.20.2", "anonymous", "ftpd", "success", ""]),
            ("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2",
             ["", "root", "root", "success", ""]),
            ("Jul 11 11:33:17 combo gdm-binary[2803]: Couldn't authenticate user",
             ["", "", "gdm-binary", "failure", ""]),
            ("Jan  2 03:00:00 web1 login[77]: FAILED LOGIN 1 FROM 10.1.1.1 FOR bob, Authentication failure",
             ["10.1.1.1", "bob", "login", "failure", ""]),
            ("Jan  2 03:00:00 web1 su[77]: FAILED SU (to root) alice on pts/0",
             ["", "root", "su", "failure", ""]),
        ];
        for (line, want) in cases {
            let r = parse(line).unwrap_or_else(|| panic!("skipped: {line}"));
            assert_eq!(attrs(&r, &KEYS), some(want), "{line}");
        }
    }

    #[test]
    fn peer_logged_by_name_is_src_host() {
        let r = parse("Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root").unwrap();
        assert_eq!(attr(&r, "src_ip"), None);
        assert_eq!(
            attr(&r, "src_host").as_deref(),
            Some("220-135-151-1.hinet-ip.hinet.net")
        );
    }

    #[test]
    fn repeated_messages_carry_their_count() {
        let r = parse("Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]").unwrap();
        assert_eq!(r.repeat, 5);
        assert_eq!(
            attrs(&r, &KEYS),
            some(["5.36.59.76", "root", "ssh", "failure", "password"])
        );
        let r = parse("Dec 10 07:13:56 LabSZ sshd[1]: message repeated 4000000000 times: [ Failed none for x from 1.2.3.4 port 1 ssh2]").unwrap();
        assert_eq!(r.repeat, MAX_REPEAT);
    }

    #[test]
    fn non_auth_lines_are_skipped() {
        for line in [
            "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
            "Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster [preauth]",
            "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
            "Dec 10 06:55:48 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]",
            "Dec 10 07:02:47 LabSZ sshd[24203]: Received disconnect from 52.80.34.196: 11: Bye Bye [preauth]",
            "Dec 10 07:08:28 LabSZ sshd[24208]: PAM 4 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.230.3  user=root",
            "Dec 10 07:28:03 LabSZ sshd[24245]: PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.230.3",
            "Dec 10 09:32:20 LabSZ sshd[24680]: pam_unix(sshd:session): session opened for user fztu by (uid=0)",
            "Jun 14 15:16:01 combo kernel: Linux version 2.6.5-1.358",
            "Jun 18 02:23:10 combo ftpd[31277]: User unknown timed out after 900 seconds at Sat Jun 18 02:23:10 2005 ",
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        let mut p = AuthLogParser::new(TenantId::new("t"), 2026);
        assert!(p.parse_line("not syslog at all").is_err());
        assert!(p.parse_line("{\"ts\": 1}").is_err());
    }

    #[test]
    fn user_names_containing_from_keep_the_real_peer() {
        let r = parse("Jan  2 03:00:00 h sshd[1]: Failed password for invalid user a from b from 10.0.0.1 port 22 ssh2").unwrap();
        assert_eq!(attr(&r, "user").as_deref(), Some("a from b"));
        assert_eq!(attr(&r, "src_ip").as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn sniffing() {
        assert!(looks_like(
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user x from 1.2.3.4"
        ));
        assert!(!looks_like("{\"entity\":\"host:a\",\"kind\":\"auth\"}"));
    }

    proptest! {
        #[test]
        fn never_panics(msg in "\\PC{0,120}") {
            let mut p = AuthLogParser::new(TenantId::new("t"), 2026);
            let _ = p.parse_line(&msg);
            let _ = p.parse_line(&format!("Dec 10 06:55:46 LabSZ sshd[1]: {msg}"));
        }

        #[test]
        fn never_panics_on_auth_shaped_messages(
            head in "(Failed |Accepted |Invalid user |message repeated |FTP LOGIN FROM |FAILED LOGIN |FAILED SU \\(to |Disconnecting |Authentication failed from |pam_unix\\()",
            tail in "[a-z0-9 .:=;()\\[\\]-]{0,60}",
        ) {
            let mut p = AuthLogParser::new(TenantId::new("t"), 2026);
            let _ = p.parse_line(&format!("Dec 10 06:55:46 LabSZ sshd[1]: {head}{tail}"));
        }
    }
}
