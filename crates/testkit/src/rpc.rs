//! A small blocking JSON-RPC client for Bitcoin Core, for tests only.
//!
//! One HTTP/1.1 request per TCP connection (`Connection: close`), basic auth,
//! a `Content-Length` body, and a response that is read under a size cap and
//! an overall deadline. Both JSON-RPC dialects Core speaks are supported:
//! 1.0 (errors come back as HTTP 404/500 with an `error` member) and 2.0
//! (errors come back as HTTP 200 with an `error` member).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Which JSON-RPC dialect to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonRpcVersion {
    /// `"jsonrpc": "1.0"` (what Core treats as legacy).
    V1,
    /// `"jsonrpc": "2.0"`.
    V2,
}

/// Why a call failed.
#[derive(Debug)]
pub enum RpcError {
    /// Connecting, writing or reading failed (includes timeouts).
    Io(io::Error),
    /// The server answered with an HTTP error and no JSON-RPC error object
    /// (e.g. 401 for bad credentials, 403 for a forbidden address).
    Http { status: u16, body: String },
    /// Core returned a JSON-RPC error object.
    Rpc { code: i64, message: String },
    /// The answer could not be understood (not HTTP, not JSON, no result...).
    BadResponse(String),
    /// The response was larger than the client's limit.
    TooLarge { limit: usize },
}

impl RpcError {
    /// The JSON-RPC error code, when Core sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for errors that mean "the server is not (yet) reachable or ready":
    /// connection refused/reset, or Core's -28 "in warmup".
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Io(_) => true,
            RpcError::Rpc { code, .. } => *code == -28,
            _ => false,
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Io(e) => write!(f, "rpc i/o error: {e}"),
            RpcError::Http { status, body } => write!(f, "rpc http status {status}: {body}"),
            RpcError::Rpc { code, message } => write!(f, "rpc error {code}: {message}"),
            RpcError::BadResponse(s) => write!(f, "bad rpc response: {s}"),
            RpcError::TooLarge { limit } => write!(f, "rpc response larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for RpcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RpcError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RpcError {
    fn from(e: io::Error) -> Self {
        RpcError::Io(e)
    }
}

/// A JSON-RPC endpoint plus credentials.
#[derive(Clone, Debug)]
pub struct RpcClient {
    addr: SocketAddr,
    auth_header: String,
    /// Connect, per-read/write and overall deadline for one call.
    pub timeout: Duration,
    /// Largest accepted response (headers + body), in bytes.
    pub max_response: usize,
    pub version: JsonRpcVersion,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

const MAX_HEADER_BYTES: usize = 64 * 1024;

impl RpcClient {
    /// `user`/`password` are sent with HTTP basic auth (for a cookie, split
    /// the file's `__cookie__:HEX` at the first `:`).
    pub fn new(addr: SocketAddr, user: &str, password: &str) -> RpcClient {
        RpcClient {
            addr,
            auth_header: format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            timeout: Duration::from_secs(30),
            max_response: 64 << 20,
            version: JsonRpcVersion::V2,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Calls `method`. `params` is normally a JSON array (positional) or an
    /// object (named); `Value::Null` sends `[]`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.call_with_timeout(method, params, self.timeout)
    }

    /// [`RpcClient::call`] with a one-off timeout.
    pub fn call_with_timeout(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, RpcError> {
        let params = if params.is_null() { json!([]) } else { params };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let version = match self.version {
            JsonRpcVersion::V1 => "1.0",
            JsonRpcVersion::V2 => "2.0",
        };
        let body = serde_json::to_vec(&json!({
            "jsonrpc": version, "id": id, "method": method, "params": params,
        }))
        .expect("a json value always serializes");
        let (status, resp) = self.post(&body, timeout)?;
        let parsed: Value = match serde_json::from_slice(&resp) {
            Ok(v) => v,
            Err(e) => {
                let text = String::from_utf8_lossy(&resp[..resp.len().min(2000)]).into_owned();
                if status != 200 {
                    return Err(RpcError::Http { status, body: text });
                }
                return Err(RpcError::BadResponse(format!("body is not json ({e}): {text}")));
            }
        };
        if let Some(err) = parsed.get("error").filter(|e| !e.is_null()) {
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = match err.get("message").and_then(Value::as_str) {
                Some(m) => m.to_owned(),
                None => err.to_string(),
            };
            return Err(RpcError::Rpc { code, message });
        }
        if status != 200 {
            return Err(RpcError::Http { status, body: parsed.to_string() });
        }
        if parsed.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(RpcError::BadResponse(format!("id mismatch (sent {id}): {parsed}")));
        }
        match parsed {
            Value::Object(mut m) => m.remove("result").ok_or_else(|| RpcError::BadResponse("no result member".into())),
            other => Err(RpcError::BadResponse(format!("not an object: {other}"))),
        }
    }

    /// Sends one POST and returns (status, body).
    fn post(&self, body: &[u8], timeout: Duration) -> Result<(u16, Vec<u8>), RpcError> {
        let deadline = Instant::now() + timeout;
        let mut stream = TcpStream::connect_timeout(&self.addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_read_timeout(Some(timeout))?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            self.auth_header,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        stream.write_all(&req)?;
        stream.flush()?;

        let mut reader = Reader { stream, buf: Vec::new(), pos: 0, deadline, limit: self.max_response };
        let header_end = reader.fill_until_header_end()?;
        let head = String::from_utf8_lossy(&reader.buf[..header_end]).into_owned();
        reader.pos = header_end + 4;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let proto = parts.next().unwrap_or_default();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|_| proto.starts_with("HTTP/1."))
            .ok_or_else(|| RpcError::BadResponse(format!("bad status line {status_line:?}")))?;
        let mut content_length = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize =
                    value.parse().map_err(|_| RpcError::BadResponse(format!("bad content-length {value:?}")))?;
                content_length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        let body = if chunked {
            reader.read_chunked()?
        } else if let Some(n) = content_length {
            if n > self.max_response {
                return Err(RpcError::TooLarge { limit: self.max_response });
            }
            reader.read_exact_body(n)?
        } else {
            reader.read_to_eof()?
        };
        Ok((status, body))
    }
}

/// Buffered reading with a byte cap and an overall deadline.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
    limit: usize,
}

impl Reader {
    /// Reads more bytes; Ok(false) at EOF.
    fn more(&mut self) -> Result<bool, RpcError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(RpcError::Io(io::Error::new(io::ErrorKind::TimedOut, "rpc response deadline passed")));
        }
        self.stream.set_read_timeout(Some(self.deadline - now))?;
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if self.buf.len() + n > self.limit {
            return Err(RpcError::TooLarge { limit: self.limit });
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn eof(what: &str) -> RpcError {
        RpcError::BadResponse(format!("connection closed in {what}"))
    }

    /// Returns the index of the "\r\n\r\n" that ends the headers.
    fn fill_until_header_end(&mut self) -> Result<usize, RpcError> {
        let mut searched = 0;
        loop {
            if let Some(i) = find(&self.buf[searched..], b"\r\n\r\n") {
                return Ok(searched + i);
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(RpcError::BadResponse("http headers too long".into()));
            }
            if !self.more()? {
                return Err(Self::eof("http headers"));
            }
        }
    }

    fn ensure(&mut self, n: usize, what: &str) -> Result<(), RpcError> {
        while self.buf.len() - self.pos < n {
            if !self.more()? {
                return Err(Self::eof(what));
            }
        }
        Ok(())
    }

    fn read_exact_body(&mut self, n: usize) -> Result<Vec<u8>, RpcError> {
        self.ensure(n, "body")?;
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    fn read_line(&mut self) -> Result<String, RpcError> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            if !self.more()? {
                return Err(Self::eof("chunk header"));
            }
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, RpcError> {
        let mut out = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| RpcError::BadResponse(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                return Ok(out); // trailers, if any, are ignored (connection closes)
            }
            if out.len() + size > self.limit {
                return Err(RpcError::TooLarge { limit: self.limit });
            }
            out.extend(self.read_exact_body(size)?);
            self.read_line()?; // CRLF after the chunk data
        }
    }

    fn read_to_eof(&mut self) -> Result<Vec<u8>, RpcError> {
        while self.more()? {}
        Ok(self.buf[self.pos..].to_vec())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Standard base64 with padding (for the Authorization header).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain:?}");
        }
    }

    /// A one-shot fake server: reads one request and answers with
    /// `reply(id of the request)`.
    fn serve_once(reply: impl FnOnce(u64) -> Vec<u8> + Send + 'static) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            let id = loop {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                req.extend_from_slice(&buf[..n]);
                let Some(h) = find(&req, b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&req[..h]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap();
                if req.len() >= h + 4 + len {
                    let v: Value = serde_json::from_slice(&req[h + 4..h + 4 + len]).unwrap();
                    break v["id"].as_u64().unwrap();
                }
            };
            let _ = s.write_all(&reply(id));
        });
        addr
    }

    #[test]
    fn parses_chunked_bodies() {
        let c = RpcClient::new(
            serve_once(|id| {
                let body = format!(r#"{{"result":[5,"five"],"error":null,"id":{id}}}"#);
                let (a, b) = body.split_at(7);
                format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
                    a.len(),
                    b.len()
                )
                .into_bytes()
            }),
            "u",
            "p",
        );
        assert_eq!(c.call("x", Value::Null).unwrap(), json!([5, "five"]));
    }

    #[test]
    fn maps_errors() {
        // JSON-RPC 1.0 style: HTTP 500 with an error object.
        let c = RpcClient::new(
            serve_once(|id| {
                let body = format!(r#"{{"result":null,"error":{{"code":-8,"message":"nope"}},"id":{id}}}"#);
                format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                    .into_bytes()
            }),
            "u",
            "p",
        );
        match c.call("x", Value::Null) {
            Err(RpcError::Rpc { code: -8, message }) => assert_eq!(message, "nope"),
            other => panic!("{other:?}"),
        }
        // 401 with an empty body.
        let c = RpcClient::new(
            serve_once(|_| b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec()),
            "u",
            "p",
        );
        assert!(matches!(c.call("x", Value::Null), Err(RpcError::Http { status: 401, .. })));
        // Oversized (declared) and oversized (streamed until EOF).
        let mut c = RpcClient::new(
            serve_once(|_| {
                format!("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{}", "x".repeat(100)).into_bytes()
            }),
            "u",
            "p",
        );
        c.max_response = 1000;
        assert!(matches!(c.call("x", Value::Null), Err(RpcError::TooLarge { limit: 1000 })));
        let mut c = RpcClient::new(
            serve_once(|_| format!("HTTP/1.1 200 OK\r\n\r\n{}", "x".repeat(5000)).into_bytes()),
            "u",
            "p",
        );
        c.max_response = 1000;
        assert!(matches!(c.call("x", Value::Null), Err(RpcError::TooLarge { limit: 1000 })));
    }

    #[test]
    fn silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            drop(s);
        });
        let mut c = RpcClient::new(addr, "u", "p");
        c.timeout = Duration::from_millis(300);
        let t = Instant::now();
        let err = c.call("x", Value::Null).unwrap_err();
        assert!(matches!(err, RpcError::Io(_)), "{err}");
        assert!(t.elapsed() < Duration::from_secs(1));
        hold.join().unwrap();
    }
}
