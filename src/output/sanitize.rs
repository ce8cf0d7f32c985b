//! Escaping untrusted text (process names, peer bytes) before it reaches a
//! terminal, so a name like `\x1b]0;pwned\x07` cannot drive the terminal,
//! bidirectional overrides cannot reorder what a person reads, and
//! invisible characters cannot hide a name or make two look alike.

use std::borrow::Cow;

/// Characters that reorder text (bidirectional embeddings, overrides and
/// isolates, U+202A–202E and U+2066–2069, and the marks U+200E, U+200F,
/// U+061C): shown escaped like control characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Characters that take no room and show nothing: Unicode's default
/// ignorable code points (zero-width space and joiners, the soft hyphen,
/// word joiner and invisible operators, variation selectors, Hangul
/// fillers, the byte-order mark, tag characters...). A name made of them
/// would look empty, or like another name.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{206f}'
        | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fff0}'..='\u{fff8}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

pub(super) fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || is_invisible(c)
}

/// Replaces control characters (C0, DEL, C1), bidirectional controls and
/// invisible characters with visible escapes: `\n`, `\t`, `\r`, `\e` for ESC, and `\xNN` /
/// `\u{NN}` for the rest.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

fn escape(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && (c == '\n' || c == '\t');
    if !text.chars().any(|c| needs_escape(c) && !kept(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if kept(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Bytes from a peer, shown as text: valid UTF-8 passes (escaped), invalid
/// bytes become `\xNN`.
pub fn sanitize_bytes(bytes: &[u8]) -> String {
    escape_bytes(bytes, false)
}

/// As [`sanitize_bytes`], keeping line breaks and tabs.
pub fn sanitize_bytes_lines(bytes: &[u8]) -> String {
    escape_bytes(bytes, true)
}

fn escape_bytes(bytes: &[u8], keep_lines: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid(), keep_lines));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// How many bytes at the end of `bytes` begin a UTF-8 character that the
/// next piece of a stream may complete: hold them back rather than show
/// half a character as `\xNN`.
pub fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let need = match bytes[bytes.len() - back] {
            0x80..=0xbf => continue, // inside a character
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
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
    fn bidirectional_overrides_are_defused() {
        assert_eq!(sanitize("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        for c in ['\u{202a}', '\u{202d}', '\u{2066}', '\u{2069}', '\u{200f}'] {
            let escaped = sanitize(&format!("a{c}b")).into_owned();
            assert_eq!(escaped, format!("a\\u{{{:x}}}b", c as u32));
        }
        // Letters of right-to-left scripts are text, not controls.
        assert_eq!(sanitize("שלום"), "שלום");
    }

    #[test]
    fn invisible_characters_are_shown() {
        assert_eq!(sanitize("\u{200b}\u{200b}"), "\\u{200b}\\u{200b}");
        for c in [
            '\u{200c}',
            '\u{200d}',
            '\u{2060}',
            '\u{2064}',
            '\u{feff}', // joiners, BOM
            '\u{ad}',
            '\u{180e}',
            '\u{3164}',
            '\u{ffa0}',
            '\u{115f}', // soft hyphen, fillers
            '\u{fe0f}',
            '\u{e0020}',
            '\u{e0001}', // a variation selector, tags
        ] {
            let escaped = sanitize(&format!("a{c}b")).into_owned();
            assert_eq!(escaped, format!("a\\u{{{:x}}}b", c as u32));
        }
        // Letters that merely look unusual are text.
        assert_eq!(sanitize("ｗｅｂ"), "ｗｅｂ");
    }

    #[test]
    fn pages_keep_their_lines() {
        assert_eq!(sanitize_bytes_lines(b"l1\r\nl2\xff"), "l1\\r\nl2\\xff");
    }

    #[test]
    fn incomplete_characters_at_the_end_are_held() {
        let e_acute = "é".as_bytes();
        assert_eq!(incomplete_utf8_tail(&[b'a', e_acute[0]]), 1);
        assert_eq!(incomplete_utf8_tail("aé".as_bytes()), 0);
        assert_eq!(incomplete_utf8_tail(b"a\xff"), 0);
        assert_eq!(incomplete_utf8_tail(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_utf8_tail(&"é€".as_bytes()[..4]), 2);
    }

    #[test]
    fn invalid_utf8_becomes_hex() {
        assert_eq!(sanitize_bytes(b"hi\xff\x1b"), "hi\\xff\\e");
    }
}
