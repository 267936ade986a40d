//! Human-friendly durations for configuration: `500ms`, `8s`, `2m`, `1h`.

use std::time::Duration;

use crate::escape::quoted;

const EXPECTED: &str = "expected a whole number with a unit (ms, s, m, h), e.g. 500ms, 8s, 2m";

/// Parses a whole number followed directly by a unit (`ms`, `s`, `m`, `h`), e.g. `500ms`, `8s`, `2m`, `0s`.
///
/// Anything else (a bare number, fractions, signs, spaces, an unknown unit, overflow, the empty string) is an
/// error with a message fit to show a user.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let digits_end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() || unit.is_empty() {
        return Err(invalid(s));
    }
    let seconds_per_unit = match unit {
        "ms" => {
            let millis: u64 = number.parse().map_err(|_| too_large(s))?;
            return Ok(Duration::from_millis(millis));
        }
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(invalid(s)),
    };
    let count: u64 = number.parse().map_err(|_| too_large(s))?;
    count
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| too_large(s))
}

/// Formats a duration the way [`parse_duration`] reads it, using the largest unit that is exact:
/// 1500ms -> `1500ms`, 8s -> `8s`, 120s -> `2m`, 0 -> `0s`. Sub-millisecond remainders fall back to `Debug`.
pub fn format_duration(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{d:?}");
    }
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_owned(),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn invalid(input: &str) -> String {
    if input.is_empty() {
        format!("empty value: {EXPECTED}")
    } else {
        format!("{} is not a duration: {EXPECTED}", quoted(input))
    }
}

fn too_large(input: &str) -> String {
    format!("{} is too large", quoted(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
        assert_eq!(
            parse_duration("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn rejects_malformed_input_with_a_helpful_message() {
        for bad in [
            "", "8", "1.5s", "-1s", "+1s", "8 s", " 8s", "8s ", "s", "ms", "8S", "8sec", "8us",
            "1d", "8ms5", "8m30s", "0x10s", "８s", "1_000ms", "8s\n",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(
                err.contains("expected a whole number with a unit (ms, s, m, h)"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn rejects_overflow() {
        for bad in [
            "18446744073709551616ms",
            "18446744073709551616s",
            "307445734561825861m",
            "5124095576030432h",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("too large"), "{bad}: {err}");
        }
        assert_eq!(
            parse_duration("307445734561825860m"),
            Ok(Duration::from_secs(307445734561825860 * 60))
        );
    }

    #[test]
    fn messages_quote_and_bound_the_input() {
        let err = parse_duration("\u{1b}[31m").unwrap_err();
        assert!(err.starts_with("\"\\u{1b}[31m\""), "{err}");
        let long = "x".repeat(1000);
        assert!(parse_duration(&long).unwrap_err().len() < 200);
        // Found by fuzzing: escaping can make each character ten bytes long.
        let wide = format!("h{}", "\u{1a5cf}\u{7f}".repeat(100));
        assert!(parse_duration(&wide).unwrap_err().len() < 200);
    }

    #[test]
    fn formats_with_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(8)), "8s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_nanos(1500)), "1.5µs");
    }

    #[test]
    fn format_then_parse_round_trips() {
        for d in [
            0,
            1,
            999,
            1000,
            1500,
            60_000,
            90_000,
            3_600_000,
            86_400_000,
            u64::MAX / 1000 * 1000,
        ] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
    }
}
