//! HTTP/1.1 as a JSON-RPC client needs it, without I/O: a request encoder and
//! an incremental response reader (bytes in, a whole response out).
//!
//! One request per connection (`Connection: close`): Bitcoin Core's RPC
//! server handles each connection on a worker, and a long poll would hold a
//! kept-alive connection anyway, so kiln opens one connection per call and
//! never has to match answers to requests. Every size the server states is
//! bounded before anything is allocated for it.

use std::fmt;

/// Longest response head (status line and headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("HTTP response larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("connection closed before the response was complete")]
    Truncated,
}

/// A complete response.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response").field("status", &self.status).field("body_len", &self.body.len()).finish()
    }
}

/// A POST of `body` (JSON) to `path` on `host`, with an `Authorization`
/// header value (never logged by this crate).
pub fn encode_post(host: &str, path: &str, authorization: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// How the body's end is known.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one response from the bytes of a connection, as they arrive.
#[derive(Debug)]
pub struct ResponseReader {
    buf: Vec<u8>,
    limit: usize,
    head: Option<(u16, Framing, usize)>,
}

impl ResponseReader {
    /// A reader that refuses responses (head and body) over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ResponseReader { buf: Vec::new(), limit, head: None }
    }

    /// Bytes buffered so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes more bytes; `Some` once the response is complete.
    ///
    /// # Errors
    /// A malformed or oversized response.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Response>, HttpError> {
        if self.buf.len() + bytes.len() > self.limit {
            return Err(HttpError::TooLarge { limit: self.limit });
        }
        self.buf.extend_from_slice(bytes);
        if self.head.is_none() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.ok_or_else(|| HttpError::Malformed("no status code".into()))?;
                    let mut framing = Framing::UntilClose;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .ok_or_else(|| HttpError::Malformed("bad Content-Length".into()))?;
                            if len.saturating_add(n) > self.limit {
                                return Err(HttpError::TooLarge { limit: self.limit });
                            }
                            framing = Framing::Length(n);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && String::from_utf8_lossy(h.value).to_ascii_lowercase().contains("chunked")
                        {
                            framing = Framing::Chunked;
                        }
                    }
                    self.head = Some((status, framing, len));
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(HttpError::TooLarge { limit: MAX_HEAD });
                    }
                    return Ok(None);
                }
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            }
        }
        self.try_complete(false)
    }

    /// The connection was closed by the server: a body framed by the close
    /// is complete now; anything else unfinished is truncated.
    ///
    /// # Errors
    /// [`HttpError::Truncated`] when the response was not complete.
    pub fn finish(&mut self) -> Result<Response, HttpError> {
        self.try_complete(true)?.ok_or(HttpError::Truncated)
    }

    fn try_complete(&mut self, closed: bool) -> Result<Option<Response>, HttpError> {
        let Some((status, framing, head_len)) = self.head else { return Ok(None) };
        let body = &self.buf[head_len..];
        match framing {
            Framing::Length(n) if body.len() >= n => Ok(Some(Response { status, body: body[..n].to_vec() })),
            Framing::Length(_) => Ok(None),
            Framing::UntilClose if closed => Ok(Some(Response { status, body: body.to_vec() })),
            Framing::UntilClose => Ok(None),
            Framing::Chunked => Ok(dechunk(body)?.map(|body| Response { status, body })),
        }
    }
}

/// The body of a chunked transfer, once the last chunk has arrived.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| HttpError::Malformed("chunk size".into()))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size '{size_text}'")))?;
        let rest = &data[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if rest.len() < size.saturating_add(2) {
            return Ok(None);
        }
        out.extend_from_slice(&rest[..size]);
        data = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_in_pieces() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let mut r = ResponseReader::new(1 << 20);
        for b in &raw[..raw.len() - 6] {
            assert_eq!(r.feed(&[*b]).unwrap(), None);
        }
        let resp = r.feed(&raw[raw.len() - 6..]).unwrap().unwrap();
        assert_eq!((resp.status, &resp.body[..]), (200, &b"hello"[..]));
    }

    #[test]
    fn chunked_and_until_close() {
        let mut r = ResponseReader::new(1 << 20);
        let raw = b"HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n";
        assert_eq!(r.feed(raw).unwrap().unwrap().body, b"abcde");
        let mut r = ResponseReader::new(1 << 20);
        assert_eq!(r.feed(b"HTTP/1.0 200 OK\r\n\r\n{}").unwrap(), None);
        assert_eq!(r.finish().unwrap().body, b"{}");
    }

    #[test]
    fn bounded_and_malformed() {
        let mut r = ResponseReader::new(100);
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"),
            Err(HttpError::TooLarge { limit: 100 })
        );
        let mut r = ResponseReader::new(1 << 20);
        assert!(matches!(r.feed(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(HttpError::Malformed(_))));
        let mut r = ResponseReader::new(1 << 20);
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap();
        assert_eq!(r.finish(), Err(HttpError::Truncated));
        let mut r = ResponseReader::new(1 << 20);
        assert!(r.feed(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }
}
