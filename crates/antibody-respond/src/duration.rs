//! Durations in playbooks: `90s`, `15m`, `4h`, `7d`, `500ms`, or a bare number of seconds.

/// Parses a duration into milliseconds; `None` for anything malformed, zero or absurd (> 1 year).
pub fn parse_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    let ms = n.checked_mul(factor)?;
    (ms > 0 && ms <= 366 * 86_400_000).then_some(ms)
}

/// Formats milliseconds the way a person writes them (`4h`, `90s`, `1500ms`).
pub fn format_ms(ms: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_ms("90s"), Some(90_000));
        assert_eq!(parse_ms("15m"), Some(900_000));
        assert_eq!(parse_ms("4h"), Some(14_400_000));
        assert_eq!(parse_ms("7d"), Some(604_800_000));
        assert_eq!(parse_ms("500ms"), Some(500));
        assert_eq!(parse_ms("30"), Some(30_000));
        for bad in [
            "",
            "h",
            "0s",
            "-5m",
            "5y",
            "1.5h",
            "400d",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for ms in [500, 90_000, 3_600_000, 14_400_000, 86_400_000, 1_500] {
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
        }
        assert_eq!(format_ms(14_400_000), "4h");
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_ms(&s);
        }
    }
}
