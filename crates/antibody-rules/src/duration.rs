//! Rule durations: `500ms`, `10s`, `5m`, `1h`, `1d` — an integer and a unit, nothing else.

/// The longest window a rule may ask for; longer windows belong to baselines, not rules.
pub(crate) const MAX_WINDOW_MS: i64 = 7 * 24 * 3_600_000;

/// Parses a duration into milliseconds; the error says what was expected.
pub(crate) fn parse_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "bad duration `{text}` (expected e.g. 500ms, 10s, 5m, 1h, 1d)"
            ))
        }
    };
    let value: i64 = digits
        .parse()
        .map_err(|_| format!("bad duration `{text}` (expected e.g. 500ms, 10s, 5m, 1h, 1d)"))?;
    let ms = value.checked_mul(unit_ms).unwrap_or(i64::MAX);
    if ms <= 0 {
        return Err(format!("bad duration `{text}`: must be greater than zero"));
    }
    if ms > MAX_WINDOW_MS {
        return Err(format!("bad duration `{text}`: at most 7d"));
    }
    Ok(ms)
}

/// Human form for explanations: `60 s`, `2 min`, `1 h`, `500 ms`.
pub(crate) fn describe(ms: i64) -> String {
    if ms % 3_600_000 == 0 {
        format!("{} h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 60_000 {
        format!("{} min", ms / 60_000)
    } else if ms % 1_000 == 0 {
        format!("{} s", ms / 1_000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_ms("500ms"), Ok(500));
        assert_eq!(parse_ms("60s"), Ok(60_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_ms("1d"), Ok(86_400_000));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "60",
            "s",
            "1.5s",
            "-1s",
            "0s",
            "10 parsecs",
            "8d",
            "99999999999999999999h",
        ] {
            assert!(parse_ms(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn describes_for_people() {
        assert_eq!(describe(60_000), "60 s");
        assert_eq!(describe(120_000), "2 min");
        assert_eq!(describe(3_600_000), "1 h");
        assert_eq!(describe(10_000), "10 s");
        assert_eq!(describe(1_500), "1500 ms");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,16}") {
            let _ = parse_ms(&s);
        }

        #[test]
        fn round_trips_seconds(n in 1i64..100_000) {
            prop_assert_eq!(parse_ms(&format!("{n}s")), Ok(n * 1_000));
        }
    }
}
