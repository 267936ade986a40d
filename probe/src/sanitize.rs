//! Making server-supplied text safe to print on an operator's terminal or in Docker's health log.
//!
//! A health endpoint is not trusted: its strings may carry terminal escape sequences, bidi overrides or
//! megabytes of text. Everything that reaches our output goes through here.

/// The longest line `probe` prints in its one-line forms, in bytes.
pub const MAX_LINE_BYTES: usize = 256;

/// Characters that could reorder or hide text on a terminal although they are not "control" characters.
fn is_invisible_formatting(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Whether `c` must never be printed as is.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_invisible_formatting(c)
}

/// Replaces every unsafe character with `?` and cuts the result to at most `max_chars` characters,
/// marking a cut with `...`.
pub fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let total = text.chars().count();
    let keep = if total > max_chars {
        max_chars.saturating_sub(3)
    } else {
        total
    };
    for c in text.chars().take(keep) {
        out.push(if is_unsafe_char(c) { '?' } else { c });
    }
    if total > max_chars {
        out.push_str("...");
    }
    out
}

/// Cuts `line` to at most `max_bytes` bytes on a character boundary, marking a cut with `...`.
pub fn truncate_bytes(line: &str, max_bytes: usize) -> String {
    if line.len() <= max_bytes {
        return line.to_owned();
    }
    let mut end = max_bytes.saturating_sub(3);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

/// Makes a JSON text safe to print while keeping it valid JSON with the same meaning: unsafe characters can
/// only sit inside strings (raw control characters are not valid JSON outside whitespace), where a `\uXXXX`
/// escape stands for exactly the same character.
pub fn escape_json_text(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if matches!(c, '\n' | '\r' | '\t') || !is_unsafe_char(c) {
            out.push(c);
        } else {
            // Every unsafe character is in the Basic Multilingual Plane, so one escape suffices.
            out.push_str(&format!("\\u{:04x}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_escape_characters_are_replaced() {
        assert_eq!(clean("a\x1b[31mred\x07\u{9b}", 50), "a?[31mred??");
        assert_eq!(clean("left\u{202E}right", 50), "left?right");
        assert_eq!(clean("line\nbreak\r", 50), "line?break?");
    }

    #[test]
    fn long_text_is_cut_with_a_marker() {
        assert_eq!(clean("abcdefghij", 10), "abcdefghij");
        assert_eq!(clean("abcdefghijk", 10), "abcdefg...");
        assert_eq!(clean("ééééé", 4), "é...");
    }

    #[test]
    fn byte_truncation_respects_character_boundaries() {
        let line = "é".repeat(200);
        let cut = truncate_bytes(&line, MAX_LINE_BYTES);
        assert!(cut.len() <= MAX_LINE_BYTES);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_bytes("short", MAX_LINE_BYTES), "short");
    }

    #[test]
    fn json_escaping_keeps_the_document_valid_and_equal() {
        let raw = "{\"output\": \"x\u{9b}31m\u{202e}y\"}\n";
        let escaped = escape_json_text(raw);
        assert!(!escaped.chars().any(|c| is_unsafe_char(c) && c != '\n'));
        let before: serde_json::Value = serde_json::from_str(raw).unwrap();
        let after: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(before, after);
    }
}
