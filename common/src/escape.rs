//! User input shown in messages: escaped and bounded, so that a message stays one short,
//! printable line whatever the input.

/// User input for a message: escaped (control and non-ASCII characters as `\u{..}`), cut after about 48 bytes
/// of output with `...`, so a message stays one short line whatever the input.
pub fn bounded_escaped(input: &str) -> String {
    const MAX_BYTES: usize = 48;
    let mut shown = String::new();
    for c in input.chars() {
        let escaped: String = if c.is_ascii_graphic() || c == ' ' {
            c.to_string()
        } else {
            c.escape_default().collect()
        };
        if shown.len() + escaped.len() > MAX_BYTES {
            shown.push_str("...");
            break;
        }
        shown.push_str(&escaped);
    }
    shown
}

/// Quotes user input for a message: [`bounded_escaped`] between double quotes.
pub fn quoted(input: &str) -> String {
    format!("\"{}\"", bounded_escaped(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_escaped_is_short_and_printable() {
        assert_eq!(bounded_escaped("plain text"), "plain text");
        assert_eq!(bounded_escaped("a\nb\u{1b}"), "a\\nb\\u{1b}");
        assert_eq!(bounded_escaped("é"), "\\u{e9}");
        let long = bounded_escaped(&"\u{1a5cf}".repeat(100));
        assert!(long.len() <= 51 && long.ends_with("..."), "{long}");
        assert_eq!(bounded_escaped(&"x".repeat(48)), "x".repeat(48));
        assert_eq!(
            bounded_escaped(&"x".repeat(49)),
            format!("{}...", "x".repeat(48))
        );
    }

    #[test]
    fn quoted_wraps_the_escaped_input() {
        assert_eq!(quoted("a\tb"), "\"a\\tb\"");
    }
}
