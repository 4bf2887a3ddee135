//! Time is injected: the engine never reads the wall clock, so tests and replays drive it.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

/// A source of "now". Production uses [`SystemClock`]; tests use [`FakeClock`].
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> TimestampMs;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> TimestampMs {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    pub fn new(start: TimestampMs) -> Self {
        Self(AtomicI64::new(start))
    }
    pub fn set(&self, t: TimestampMs) {
        self.0.store(t, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> TimestampMs {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether periodic work last done at `last` is due again at `now`, every `every` ms. A wall
/// clock that stepped back past `last` makes it due at once: waiting for the clock to catch
/// up would stop the work for as long as the step (an NTP correction, a bad RTC at boot), and
/// a `last` kept in a snapshot would carry the stall across restarts.
pub fn is_due(now: TimestampMs, last: TimestampMs, every: i64) -> bool {
    now < last || now.saturating_sub(last) >= every
}

/// Drops the timestamps (oldest first) of a sliding window ending at `now` that are `window`
/// ms old or older, and returns how many remain. Timestamps after `now` (the clock stepped
/// back) count as made now, so they leave one window from now rather than a window plus
/// the step, which would hold a rate limit shut for that long.
pub fn expire_window(
    q: &mut std::collections::VecDeque<TimestampMs>,
    now: TimestampMs,
    window: i64,
) -> usize {
    for t in q.iter_mut().rev() {
        if *t <= now {
            break;
        }
        *t = now;
    }
    while q.front().is_some_and(|&t| now.saturating_sub(t) >= window) {
        q.pop_front();
    }
    q.len()
}

/// Formats a timestamp as RFC 3339 UTC with millisecond precision (`2026-11-21T10:00:00.000Z`).
pub fn format_rfc3339(ts: TimestampMs) -> String {
    let secs = ts.div_euclid(1000);
    let ms = ts.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses RFC 3339 (`2026-11-21T10:00:00Z`, optional fraction, `Z` or `±hh:mm`).
/// Hand-written because it is on the ingest hot path and the grammar is tiny.
pub fn parse_rfc3339(s: &str) -> Option<TimestampMs> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            ms *= 10;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + se - offset_s) * 1000 + ms)
}

// Howard Hinnant's civil-date algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(t, 1_795_255_200_000);
        assert_eq!(format_rfc3339(t), "2026-11-21T10:00:00.000Z");
        assert_eq!(parse_rfc3339("2026-11-21T11:00:00.5+01:00"), Some(t + 500));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
    }

    #[test]
    fn rfc3339_rejects_garbage() {
        for s in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00:00.Z",
            "x026-11-21T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn periodic_work_is_due_after_a_step_back() {
        assert!(!is_due(1_000, 500, 1_000));
        assert!(is_due(1_500, 500, 1_000));
        // The clock stepped back a day: due at once, not a day later.
        assert!(is_due(500 - 86_400_000, 500, 1_000));
    }

    #[test]
    fn a_window_forgets_a_step_back_after_one_window() {
        let mut q: std::collections::VecDeque<_> = [100, 200, 300].into();
        assert_eq!(expire_window(&mut q, 1_150, 1_000), 2);
        // Back by an hour: the entries count as now and leave one window later.
        let back = 300 - 3_600_000;
        assert_eq!(expire_window(&mut q, back, 1_000), 2);
        assert_eq!(q, [back, back]);
        assert_eq!(expire_window(&mut q, back + 999, 1_000), 2);
        assert_eq!(expire_window(&mut q, back + 1_000, 1_000), 0);
    }

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::new(5);
        assert_eq!(c.now_ms(), 5);
        c.advance(10);
        assert_eq!(c.now_ms(), 15);
    }
}

/// Serde adapter: timestamps travel as RFC 3339 strings and are read back from either
/// RFC 3339 or epoch milliseconds.
/// The JSON Schema of a timestamp written by [`rfc3339`]: `#[schemars(with = "Rfc3339")]`.
pub struct Rfc3339;

impl schemars::JsonSchema for Rfc3339 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rfc3339".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

pub mod rfc3339 {
    use super::{format_rfc3339, parse_rfc3339, TimestampMs};
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &TimestampMs, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimestampMs, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(ms) => Ok(ms),
            Raw::Text(t) => {
                parse_rfc3339(&t).ok_or_else(|| de::Error::custom("invalid RFC 3339 timestamp"))
            }
        }
    }
}
