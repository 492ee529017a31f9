//! How names and paths from a source are shown to people. File names are hostile: every
//! name shown anywhere (stderr, reports, summaries) goes through [`escape`], so that a
//! newline or an escape sequence in a name cannot forge a report line or drive a terminal.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;

/// A name or path as text that is safe to print: valid UTF-8 stays as it is, except
/// control and bidirectional-override characters (`\n`, `\t`, `\u{1b}`, `\u{202e}`);
/// bytes that are not UTF-8 are shown as `\xNN`. Never lossy in a way that makes two
/// different names look alike, short of a name that spells out such escapes itself.
pub fn escape(name: &OsStr) -> Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt as _;
    if let Some(text) = name.to_str()
        && !text.chars().any(needs_escape)
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for a path.
pub fn escape_path(path: &Path) -> Cow<'_, str> {
    escape(path.as_os_str())
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` with the value of every `sig=` (Azure SAS) and `X-Amz-Signature=` parameter
/// replaced: a signature is a credential.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for marker in ["sig=", "X-Amz-Signature=", "x-amz-signature="] {
        out = redact_after(&out, marker);
    }
    out
}

fn redact_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        out.push_str("REDACTED");
        rest = &rest[at + marker.len()..];
        let end = rest
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace() || c == ')')
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_never_reach_a_message() {
        assert_eq!(
            redact("GET http://h/c/o?sv=1&sig=abc%2Bdef&se=x failed"),
            "GET http://h/c/o?sv=1&sig=REDACTED&se=x failed"
        );
        assert_eq!(redact("...sig=zzz"), "...sig=REDACTED");
        assert_eq!(
            redact("u?X-Amz-Signature=00ff&a=b"),
            "u?X-Amz-Signature=REDACTED&a=b"
        );
        assert_eq!(redact("no secret here"), "no secret here");
    }

    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt as _;

    #[test]
    fn escape_shows_controls_and_bad_bytes() {
        assert_eq!(escape(OsStr::new("plain é.txt")), "plain é.txt");
        assert_eq!(escape(OsStr::new("a\nb\tc\r")), "a\\nb\\tc\\r");
        assert_eq!(escape(OsStr::new("\u{1b}[31mred")), "\\u{1b}[31mred");
        assert_eq!(
            escape(OsStr::new("evil\u{202e}fdp.exe")),
            "evil\\u{202e}fdp.exe"
        );
        let latin1 = OsString::from_vec(b"caf\xe9 \x7f".to_vec());
        assert_eq!(escape(&latin1), "caf\\xE9 \\u{7f}");
    }
}
