//! Text helpers every module uses: the one `truncate`, the escaped excerpt of untrusted bytes
//! (payloads, topics, keys) for logs and error messages, and the one bilingual text (Chinese
//! first, English beside it), and where a key is written in a TOML text (for errors that name
//! the line).
//!
//! Owns: how much of an untrusted text is shown and how it is escaped. Pure functions, no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters of a payload (or a key, a value, a topic) shown in an error message or a log line.
/// Enough to recognise a payload; a full payload is kept in the dead-letter, not in the log.
pub const EXCERPT_CHARS: usize = 80;

/// Characters of one free-text log field (an error's explanation, which may quote excerpts).
pub const LOG_FIELD_CHARS: usize = 300;

/// The marker appended to a cut text.
pub const ELLIPSIS: char = '…';

/// `s` cut to at most `max_chars` characters (never inside a character), with `…` appended
/// when something was cut.
pub fn truncate(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((end, _)) => {
            let mut out = String::with_capacity(end + ELLIPSIS.len_utf8());
            out.push_str(&s[..end]);
            out.push(ELLIPSIS);
            Cow::Owned(out)
        }
    }
}

/// `s` cut to at most `max_bytes` bytes on a character boundary, without a marker (for limits
/// that a receiver counts in bytes, such as a robot's message size).
pub fn truncate_bytes(mut s: String, max_bytes: usize) -> String {
    if s.len() > max_bytes {
        let mut end = max_bytes;
        while end > 0 && !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// An excerpt of untrusted bytes that is safe to print: at most [`EXCERPT_CHARS`] characters,
/// control characters escaped as `char::escape_debug` does (`\n`, `\t`, `\u{1b}`, …), bytes that
/// are not UTF-8 as `\xNN`. Quotes and backslashes stay as they are (the result is for reading,
/// not for parsing back).
pub fn excerpt(bytes: &[u8]) -> String {
    escape(bytes, EXCERPT_CHARS)
}

/// Like [`excerpt`] with the length given: at most `max_chars` characters of the input are shown
/// (an escape counts as one), then `…`.
pub fn escape(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max_chars * 2) + 4);
    let mut shown = 0usize;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == max_chars {
                out.push(ELLIPSIS);
                return out;
            }
            if c.is_control() {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
            shown += 1;
        }
        for b in chunk.invalid() {
            if shown == max_chars {
                out.push(ELLIPSIS);
                return out;
            }
            let _ = write!(out, "\\x{b:02x}");
            shown += 1;
        }
    }
    out
}

/// A log field made safe: control characters escaped, at most [`LOG_FIELD_CHARS`] characters.
pub fn log_field(s: &str) -> String {
    escape(s.as_bytes(), LOG_FIELD_CHARS)
}

/// The one operator-facing bilingual text: `中文 / English`.
pub fn bilingual(zh: &str, en: &str) -> String {
    format!("{zh} / {en}")
}

/// The bilingual pair as JSON, `{"zh":…,"en":…}` (the API's labels and errors).
pub fn bilingual_json(zh: &str, en: &str) -> serde_json::Value {
    serde_json::json!({ "zh": zh, "en": en })
}

/// `n` with a comma every three digits (`9,874`), for counts in operator-facing lines.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 1-based (line, column) of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary_compat(at)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, i: usize) -> usize {
        let mut i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// The 1-based line where the key path `path` (`mqtt.subscriptions[0].format`, as
/// `serde_path_to_error` writes it) is written in TOML `text`; when the text has only a
/// leading part of the path (a key that is missing), the line of that part. `None` when the
/// text has none of it or does not parse.
pub fn toml_line(text: &str, path: &str) -> Option<usize> {
    use toml_edit::{Item, TableLike, Value};
    enum Cur<'a> {
        Table(&'a dyn TableLike),
        Item(&'a Item),
        Value(&'a Value),
    }
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut cur = Cur::Table(doc.as_table());
    let mut found: Option<usize> = None;
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            segments.push((Some(key), None));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse::<usize>() {
                segments.push((None, Some(i)));
            }
        }
    }
    for seg in segments {
        let next = match (seg, &cur) {
            ((Some(k), _), Cur::Table(t)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span().or_else(|| item_span(item)), Cur::Item(item))),
            ((Some(k), _), Cur::Item(item)) => item
                .as_table_like()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| (key.span().or_else(|| item_span(item)), Cur::Item(item))),
            ((Some(k), _), Cur::Value(v)) => v
                .as_inline_table()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| (key.span().or_else(|| item_span(item)), Cur::Item(item))),
            ((None, Some(i)), Cur::Item(Item::ArrayOfTables(a))) => a
                .get(i)
                .map(|t| (t.span(), Cur::Table(t as &dyn TableLike))),
            ((None, Some(i)), Cur::Item(Item::Value(Value::Array(a)))) => {
                a.get(i).map(|v| (v.span(), Cur::Value(v)))
            }
            ((None, Some(i)), Cur::Value(Value::Array(a))) => {
                a.get(i).map(|v| (v.span(), Cur::Value(v)))
            }
            _ => None,
        };
        let Some((span, c)) = next else { break };
        if let Some(s) = span {
            found = Some(s.start);
        }
        cur = c;
    }
    found.map(|at| line_col(text, at).0)
}

fn item_span(item: &toml_edit::Item) -> Option<std::ops::Range<usize>> {
    match item {
        toml_edit::Item::Value(v) => v.span(),
        toml_edit::Item::Table(t) => t.span(),
        toml_edit::Item::ArrayOfTables(a) => a.span(),
        toml_edit::Item::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("优良轻度", 2), "优良…");
        assert!(matches!(truncate("优", 5), Cow::Borrowed(_)));
    }

    #[test]
    fn truncate_bytes_keeps_char_boundaries() {
        assert_eq!(truncate_bytes("优良".into(), 4), "优");
        assert_eq!(truncate_bytes("ab".into(), 4), "ab");
        assert_eq!(truncate_bytes("优".into(), 2), "");
    }

    #[test]
    fn excerpt_escapes_controls_and_invalid_bytes() {
        let e = excerpt(b"\x1b[31mred\x00\n\t\xff\xfeok \"q\"");
        assert_eq!(e, "\\u{1b}[31mred\\0\\n\\t\\xff\\xfeok \"q\"");
        assert!(!e.chars().any(char::is_control), "{e:?}");
        let long = "x".repeat(200);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with(ELLIPSIS));
        assert_eq!(escape(b"\xff\xff\xff", 2), "\\xff\\xff…");
        assert_eq!(excerpt("站点 A".as_bytes()), "站点 A");
    }

    #[test]
    fn bilingual_puts_chinese_first() {
        assert_eq!(bilingual("优", "Excellent"), "优 / Excellent");
        assert_eq!(bilingual_json("优", "Excellent")["zh"], "优");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(9874), "9,874");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
