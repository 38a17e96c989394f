//! Text helpers: making untrusted strings safe to print to a terminal, and
//! cutting strings to a byte limit without splitting a character.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

/// True for a character that must not reach a terminal raw: the C0 and C1
/// control characters and DEL (`char::is_control`), which include ESC and
/// newline, and the Unicode bidirectional controls, which reorder what is
/// displayed around them.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character escaped, for human-readable output
/// (keyspace names, snapshot ids, remarks, paths and error messages): `\n`,
/// `\r`, `\t`, `\x1b` for the others below U+0100 and `\u{202e}` above. A
/// string without them is returned as it is. JSON output does not use this:
/// serde_json already escapes them, so it stays exact.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes `s` to standard output as it is, and flushes. A write error (a
/// closed pipe: `floe inspect --json A | head -1`) is returned, where
/// `println!` would panic; the CLI ends quietly with exit code 0 on a broken
/// pipe.
pub fn write_stdout(s: &str) -> crate::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| crate::Error::io("writing to standard output", e))
}

/// Writes `line` and a newline to standard output, control characters
/// escaped (human-readable output).
pub fn print_line(line: &str) -> crate::Result<()> {
    write_stdout(&format!("{}\n", escape(line)))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character
/// boundary (what the unstable `str::floor_char_boundary` gives).
pub fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 3339 UTC rendering of Unix seconds (proleptic Gregorian calendar).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Human-readable bytes.
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(escape("plain ünïcode"), Cow::Borrowed("plain ünïcode")));
        assert_eq!(escape("a\x1b[31mb\nc\r\td\x7f\u{85}"), "a\\x1b[31mb\\nc\\r\\td\\x7f\\x85");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_at_char("héllo", 2), "h");
        assert_eq!(truncate_at_char("héllo", 3), "hé");
        assert_eq!(truncate_at_char("héllo", 99), "héllo");
        assert_eq!(truncate_at_char("€", 2), "");
        let long = "€".repeat(30_000);
        let cut = truncate_at_char(&long, u16::MAX as usize);
        assert_eq!(cut.len(), 65_535 / 3 * 3);
    }
}
