//! Text that came from the network, made safe to log.
//!
//! A pool (or anyone on the path of a plain-TCP connection) chooses the bytes
//! of `client.show_message`, reject reasons, job ids and reconnect hosts.
//! Written to a terminal or a log file as they are, control characters can
//! move the cursor, clear the screen, retitle the terminal or forge whole log
//! lines (`\n2024-01-01 INFO share accepted`), and bidirectional overrides can
//! make text read differently from what it is. Everything from the network
//! goes through [`sanitize`] before it reaches a log line or the API.

/// At most this many characters of network text are shown; the rest is cut
/// and marked with `…`, so one message cannot flood the log.
pub const MAX_SHOWN: usize = 200;

/// `s` with every control character escaped (`\n`, `\x1b`, `\u{9b}`), the
/// invisible direction and separator characters escaped as `\u{…}`, and cut
/// to [`MAX_SHOWN`] characters. Plain printable text is unchanged.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SHOWN + 8));
    for (shown, c) in s.chars().enumerate() {
        if shown == MAX_SHOWN {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push('\\'),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || is_invisible_format(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Direction marks, embeddings, overrides and isolates, and the Unicode line
/// and paragraph separators: characters that change how the text around
/// them is shown.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}
