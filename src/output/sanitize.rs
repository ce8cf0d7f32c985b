//! Escaping untrusted text (process names, peer bytes) before it reaches a
//! terminal, so a name like `\x1b]0;pwned\x07` cannot drive the terminal.

use std::borrow::Cow;

/// Replaces control characters (C0, DEL, C1) with visible escapes:
/// `\n`, `\t`, `\r`, `\e` for ESC, and `\xNN` / `\u{NN}` for the rest.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Bytes from a peer, shown as text: valid UTF-8 passes (escaped), invalid
/// bytes become `\xNN`.
pub fn sanitize_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&sanitize(chunk.valid()));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        assert!(matches!(sanitize("python3"), Cow::Borrowed("python3")));
        assert_eq!(sanitize("Web Content"), "Web Content");
        assert_eq!(sanitize("naïve"), "naïve");
    }

    #[test]
    fn escape_sequences_are_defused() {
        assert_eq!(sanitize("\x1b[31mred\x1b[0m"), "\\e[31mred\\e[0m");
        assert_eq!(sanitize("a\x07b\x7f"), "a\\x07b\\x7f");
        assert_eq!(sanitize("x\u{9b}y"), "x\\u{9b}y");
        assert_eq!(sanitize("l1\nl2"), "l1\\nl2");
    }

    #[test]
    fn invalid_utf8_becomes_hex() {
        assert_eq!(sanitize_bytes(b"hi\xff\x1b"), "hi\\xff\\e");
    }
}
