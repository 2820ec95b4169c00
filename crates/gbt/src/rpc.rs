//! Bitcoin Core's JSON-RPC, without I/O: where the node is, how to
//! authenticate, the request envelope, and what an answer means.
//!
//! Core speaks two dialects. A request with `"jsonrpc": "2.0"` (Core 28 and
//! later) gets HTTP 200 for every answer, errors included, and no `error`
//! member on success; a legacy 1.0 request gets HTTP 500 (or 404) with an
//! `error` member on failure. Core 28+ rejects a non-string `"jsonrpc"`.
//! [`decode`] reads both, whichever was sent.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::http::Response;

/// JSON-RPC error codes of Bitcoin Core that kiln treats specially.
pub mod code {
    /// `RPC_IN_WARMUP`: the node is starting (loading blocks, verifying).
    pub const IN_WARMUP: i64 = -28;
    /// `RPC_CLIENT_IN_INITIAL_DOWNLOAD`: no templates during initial block download.
    pub const IN_INITIAL_DOWNLOAD: i64 = -10;
    /// `RPC_CLIENT_NOT_CONNECTED`: a non-test chain with no peers.
    pub const NOT_CONNECTED: i64 = -9;
    /// `RPC_METHOD_NOT_FOUND`.
    pub const METHOD_NOT_FOUND: i64 = -32601;
}

/// Which envelope to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `"jsonrpc": "1.0"`, what every Core version understands.
    V1,
    /// `"jsonrpc": "2.0"` (Core 28+; older versions answer it as 1.0).
    #[default]
    V2,
}

/// The node's RPC address: `http://HOST:PORT[/PATH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// Request path (`/` or `/wallet/NAME`).
    pub path: String,
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = if let Some(r) = s.strip_prefix("http://") {
            r
        } else if s.starts_with("https://") {
            return Err(format!(
                "'{s}': Bitcoin Core's RPC has no TLS; use http:// to a node on this machine or a tunnel"
            ));
        } else if s.contains("://") {
            return Err(format!("'{s}': the node's RPC URL must be http://HOST:PORT"));
        } else {
            s
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) =
            hostport.rsplit_once(':').ok_or_else(|| format!("'{s}' has no port (Core's default is 8332)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("'{s}' has no host"));
        }
        let port = port.parse().map_err(|_| format!("'{port}' is not a port number"))?;
        Ok(Endpoint { host: host.to_string(), port, path: path.to_string() })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path == "/" { "" } else { &self.path };
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{path}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}{path}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How kiln proves itself to the node.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `-rpcuser`/`-rpcpassword` or an `-rpcauth` entry.
    UserPass { user: String, pass: String },
    /// The cookie file Core writes at start (`<datadir>/<chain>/.cookie`).
    /// It is read again for every call, because a restarted node writes a
    /// new one.
    Cookie(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::UserPass { user, .. } => write!(f, "UserPass {{ user: {user:?}, pass: <hidden> }}"),
            Auth::Cookie(p) => write!(f, "Cookie({})", p.display()),
        }
    }
}

impl Auth {
    /// The `Authorization` header value.
    ///
    /// # Errors
    /// The cookie file cannot be read or holds no `user:password`.
    pub fn header(&self) -> Result<String, RpcError> {
        let (user, pass) = match self {
            Auth::UserPass { user, pass } => (user.clone(), pass.clone()),
            Auth::Cookie(path) => {
                let text = std::fs::read(path)
                    .ok()
                    .filter(|t| t.len() <= 4096)
                    .ok_or_else(|| RpcError::Cookie { path: path.clone(), why: "cannot be read".into() })?;
                let text = String::from_utf8_lossy(&text);
                let (u, p) = text
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| RpcError::Cookie { path: path.clone(), why: "holds no user:password".into() })?;
                (u.to_string(), p.to_string())
            }
        };
        Ok(format!("Basic {}", base64(format!("{user}:{pass}").as_bytes())))
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    #[error("cannot reach the node: {0}")]
    Io(String),
    #[error("the node did not answer within {0} s")]
    Timeout(u64),
    #[error("the node refused the credentials (HTTP 401): check --rpc-user/--rpc-pass or --rpc-cookie")]
    Unauthorized,
    #[error("the node refused this client's address (HTTP 403): allow it with -rpcallowip, or connect over loopback")]
    Forbidden,
    #[error("cookie file {}: {why}", path.display())]
    Cookie { path: PathBuf, why: String },
    #[error("HTTP {status} from the node: {body}")]
    Http { status: u16, body: String },
    #[error("RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("unreadable answer from the node: {0}")]
    BadResponse(String),
}

impl RpcError {
    /// Worth trying again after a pause: the node is down, restarting, still
    /// loading, or in initial block download.
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Io(_) | RpcError::Timeout(_) | RpcError::Cookie { .. } => true,
            RpcError::Rpc { code: c, .. } => {
                [code::IN_WARMUP, code::IN_INITIAL_DOWNLOAD, code::NOT_CONNECTED].contains(c)
            }
            RpcError::Http { status, .. } => *status == 503,
            _ => false,
        }
    }

    /// The node is there but not ready (warm-up, initial download, no peers).
    pub fn is_not_ready(&self) -> bool {
        matches!(self, RpcError::Rpc { code: c, .. }
            if [code::IN_WARMUP, code::IN_INITIAL_DOWNLOAD, code::NOT_CONNECTED].contains(c))
    }
}

/// The JSON body of one call.
pub fn request_body(dialect: Dialect, id: u64, method: &str, params: &Value) -> Vec<u8> {
    let version = match dialect {
        Dialect::V1 => "1.0",
        Dialect::V2 => "2.0",
    };
    serde_json::to_vec(&json!({"jsonrpc": version, "id": id, "method": method, "params": params}))
        .expect("a JSON value always serializes")
}

/// The result of a call, from the node's HTTP response.
///
/// # Errors
/// HTTP-level refusals, an RPC error object, or an answer that is not JSON-RPC.
pub fn decode(resp: &Response) -> Result<Value, RpcError> {
    match resp.status {
        401 => return Err(RpcError::Unauthorized),
        403 => return Err(RpcError::Forbidden),
        _ => {}
    }
    let parsed: Result<Value, _> = serde_json::from_slice(&resp.body);
    let v = match parsed {
        Ok(v) if v.is_object() => v,
        _ => {
            if resp.status != 200 {
                let body = String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).trim().to_string();
                return Err(RpcError::Http { status: resp.status, body });
            }
            return Err(RpcError::BadResponse("not a JSON object".into()));
        }
    };
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = err.get("message").and_then(Value::as_str).unwrap_or("").to_string();
        return Err(RpcError::Rpc { code, message });
    }
    if resp.status != 200 {
        return Err(RpcError::Http { status: resp.status, body: "no error object".into() });
    }
    v.get("result").cloned().ok_or_else(|| RpcError::BadResponse("no result member".into()))
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
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

    fn resp(status: u16, body: &str) -> Response {
        Response { status, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn both_dialects_decode() {
        // 2.0: HTTP 200 for errors too; 1.0: HTTP 500 with the error object.
        assert_eq!(decode(&resp(200, r#"{"jsonrpc":"2.0","result":5,"id":1}"#)), Ok(json!(5)));
        assert_eq!(decode(&resp(200, r#"{"result":null,"error":null,"id":1}"#)), Ok(Value::Null));
        let e = RpcError::Rpc { code: -8, message: "bad".into() };
        assert_eq!(
            decode(&resp(200, r#"{"jsonrpc":"2.0","error":{"code":-8,"message":"bad"},"id":1}"#)),
            Err(e.clone())
        );
        assert_eq!(decode(&resp(500, r#"{"result":null,"error":{"code":-8,"message":"bad"},"id":1}"#)), Err(e));
        assert_eq!(decode(&resp(401, "")), Err(RpcError::Unauthorized));
        assert_eq!(decode(&resp(403, "")), Err(RpcError::Forbidden));
        assert!(matches!(decode(&resp(500, "oops")), Err(RpcError::Http { status: 500, .. })));
        assert!(matches!(decode(&resp(200, "[1]")), Err(RpcError::BadResponse(_))));
        let body: Value = serde_json::from_slice(&request_body(Dialect::V2, 7, "getblockcount", &json!([]))).unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(body["jsonrpc"].is_string());
    }

    #[test]
    fn endpoints_and_auth() {
        let e: Endpoint = "http://127.0.0.1:18443".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("127.0.0.1", 18443, "/"));
        assert_eq!(e.to_string(), "http://127.0.0.1:18443");
        let e: Endpoint = "[::1]:8332/wallet/w".parse().unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str(), e.host_header()), ("::1", "/wallet/w", "[::1]:8332".into()));
        assert!("https://node:8332".parse::<Endpoint>().unwrap_err().contains("no TLS"));
        assert!("http://node".parse::<Endpoint>().is_err());
        let a = Auth::UserPass { user: "u".into(), pass: "secret".into() };
        assert_eq!(a.header().unwrap(), "Basic dTpzZWNyZXQ=");
        assert!(!format!("{a:?}").contains("secret"));
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
