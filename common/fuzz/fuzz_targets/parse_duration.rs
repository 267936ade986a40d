//! `parse_duration` against an independent model of the grammar (digits, then ms|s|m|h, fitting in u64 units),
//! plus: accepted values survive a `format_duration` round trip, rejections carry a bounded, helpful message.
#![no_main]

use std::time::Duration;

use common::duration::{format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

/// What the grammar says `input` means, computed the long way with u128 arithmetic.
fn model(input: &str) -> Option<Duration> {
    let (number, millis_per_unit) = if let Some(n) = input.strip_suffix("ms") {
        (n, 1u128)
    } else if let Some(n) = input.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = input.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = input.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        return None;
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = number.trim_start_matches('0');
    // More than 20 significant digits exceed u64::MAX in every unit (and would overflow u128 below).
    if significant.len() > 20 {
        return None;
    }
    let count: u128 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    let unit_limit = if millis_per_unit == 1 { u64::MAX as u128 } else { u64::MAX as u128 * 1_000 };
    let millis = count * millis_per_unit;
    let fits = millis <= unit_limit;
    fits.then(|| Duration::from_secs((millis / 1000) as u64) + Duration::from_millis((millis % 1000) as u64))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_duration(input);
    assert_eq!(parsed.as_ref().ok(), model(input).as_ref(), "input {input:?}: {parsed:?}");
    match parsed {
        Ok(duration) => {
            let shown = format_duration(duration);
            assert_eq!(parse_duration(&shown), Ok(duration), "{input:?} formatted as {shown:?}");
        }
        Err(message) => {
            // The input is quoted escaped and cut to about 48 bytes, so the message stays one short line.
            assert!(message.len() <= 200, "message too long for {input:?}: {message}");
            assert!(
                message.contains("expected a whole number with a unit") || message.contains("too large"),
                "unhelpful message for {input:?}: {message}"
            );
        }
    }
});
