//! Newline-delimited framing with a bound on line length, so a pool that
//! never sends a newline cannot make kiln buffer without limit.

/// Longest line accepted. Real notify messages are a few KiB; anything near
/// this is a broken or hostile pool.
pub const MAX_LINE: usize = 64 * 1024;

/// What the codec found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Line(String),
    /// A line longer than [`MAX_LINE`] (its bytes were discarded).
    TooLong {
        len: usize,
    },
    /// A line that is not UTF-8.
    NotUtf8,
}

/// Splits a byte stream into lines.
#[derive(Default, Debug)]
pub struct LineCodec {
    buf: Vec<u8>,
    /// Inside an over-long line: drop bytes until its newline.
    skipping: Option<usize>,
}

impl LineCodec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns every complete frame. Blank lines are skipped;
    /// a trailing `\r` is removed.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|&b| b == b'\n');
            if let Some(skipped) = self.skipping {
                match nl {
                    Some(i) => {
                        out.push(Frame::TooLong { len: skipped + i });
                        self.skipping = None;
                        bytes = &bytes[i + 1..];
                    }
                    None => {
                        self.skipping = Some(skipped + bytes.len());
                        return out;
                    }
                }
                continue;
            }
            let take = nl.unwrap_or(bytes.len());
            if self.buf.len() + take > MAX_LINE {
                self.skipping = Some(self.buf.len());
                self.buf.clear();
                continue;
            }
            self.buf.extend_from_slice(&bytes[..take]);
            match nl {
                Some(i) => {
                    bytes = &bytes[i + 1..];
                    let mut line = std::mem::take(&mut self.buf);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    out.push(match String::from_utf8(line) {
                        Ok(s) => Frame::Line(s),
                        Err(_) => Frame::NotUtf8,
                    });
                }
                None => return out,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_bounds() {
        let mut c = LineCodec::new();
        assert_eq!(c.feed(b"{\"a\":1}\r\n{\"b\""), vec![Frame::Line("{\"a\":1}".into())]);
        assert_eq!(c.feed(b":2}\n\n"), vec![Frame::Line("{\"b\":2}".into())]);
        let long = vec![b'x'; MAX_LINE + 10];
        assert_eq!(c.feed(&long), vec![]);
        assert_eq!(c.feed(b"yy\nok\n"), vec![Frame::TooLong { len: MAX_LINE + 12 }, Frame::Line("ok".into())]);
        assert_eq!(c.feed(&[0xff, 0xfe, b'\n']), vec![Frame::NotUtf8]);
    }
}
