//! How the operators' commands print what producers and processors wrote:
//! a message body or an error reason that is JSON is printed as that JSON,
//! readable and copyable (no backslash-escaped quotes); anything else as
//! text with only its control characters escaped, so that one entry stays
//! on one line.

/// A message body or reason: JSON on one line, exactly as written but
/// without the whitespace between its tokens; otherwise the text.
pub fn readable(s: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() {
        compact_json(s)
    } else {
        text(s)
    }
}

/// [`readable`], cut to `max` characters (for a table cell).
pub fn readable_cut(s: &str, max: usize) -> String {
    let full = readable(s);
    if full.chars().count() <= max {
        return full;
    }
    let mut out: String = full.chars().take(max).collect();
    out.push('…');
    out
}

/// Text with its control characters (newlines, tabs, escape sequences)
/// escaped, everything else, quotes and non-ASCII letters included, as is.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Valid JSON without the whitespace outside its strings. Key order,
/// numbers and escapes stay as the producer wrote them (re-serialising
/// would sort keys and rewrite numbers).
fn compact_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_printed_as_json_in_the_producers_order() {
        let body = r#"{"v":1,"type":"request","key":{"pk":"order#1"},"set":"summary"}"#;
        assert_eq!(readable(body), body);
        let pretty = "{\n  \"z\": [1, 2.50],\n  \"a\": \"x y\\\"q\\\\\"\n}\n";
        assert_eq!(readable(pretty), r#"{"z":[1,2.50],"a":"x y\"q\\"}"#);
        assert_eq!(readable("  42 "), "42");
        assert!(!readable(r#"{"a":"b"}"#).contains('\\'));
    }

    #[test]
    fn text_keeps_quotes_and_letters_and_escapes_control_characters() {
        assert_eq!(
            readable("HTTP 500: {\"error\":\"boom\"}\nnext line é"),
            "HTTP 500: {\"error\":\"boom\"}\\nnext line é"
        );
        assert_eq!(readable("not json"), "not json");
        assert_eq!(readable("\u{1b}[31m"), "\\u{1b}[31m");
        assert_eq!(readable(""), "");
    }

    #[test]
    fn a_cut_is_marked() {
        assert_eq!(readable_cut("abcdef", 3), "abc…");
        assert_eq!(readable_cut("abc", 3), "abc");
    }
}
