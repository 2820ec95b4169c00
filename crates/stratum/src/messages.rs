//! Stratum V1 messages: JSON-RPC lines in, typed values out, and the
//! requests kiln sends. Field byte orders are owned by the types here.

use serde_json::{Value, json};

/// Stratum's previous-block hash: 32 bytes in internal order, transmitted
/// with every 4-byte word byte-swapped. This type owns that swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrevHash(pub [u8; 32]);

impl PrevHash {
    /// Parses the 64 hex digits of `mining.notify`'s prevhash.
    pub fn from_stratum_hex(s: &str) -> Option<Self> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        for w in b.chunks_exact_mut(4) {
            w.reverse();
        }
        Some(PrevHash(b))
    }

    /// The Stratum form again (for logs and tests).
    pub fn to_stratum_hex(&self) -> String {
        let mut b = self.0;
        for w in b.chunks_exact_mut(4) {
            w.reverse();
        }
        hex::encode(b)
    }
}

/// The parameters of `mining.notify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    pub job_id: String,
    pub prevhash: PrevHash,
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    /// Sibling hashes, internal byte order, leaf to root.
    pub merkle_branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean_jobs: bool,
}

/// A 32-bit header field as Stratum sends it: exactly 8 hex digits.
/// `from_str_radix` alone would also take `"1"`, `"+2000000"` or thousands
/// of leading zeros, none of which any pool sends; such a notify is broken
/// (or hostile), and mining it would only produce shares no pool accepts.
fn hex_u32(v: &Value) -> Option<u32> {
    let s = v.as_str()?;
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl Notify {
    /// Parses notify params; `Err` names the field that is wrong.
    pub fn parse(params: &Value) -> Result<Self, String> {
        let p = params.as_array().ok_or("params is not an array")?;
        if p.len() < 9 {
            return Err(format!("{} params, expected 9", p.len()));
        }
        let s = |i: usize, name: &str| p[i].as_str().ok_or_else(|| format!("{name} is not a string"));
        let bytes = |i: usize, name: &str| hex::decode(s(i, name)?).map_err(|_| format!("{name} is not hex"));
        let branch = p[4]
            .as_array()
            .ok_or("merkle_branch is not an array")?
            .iter()
            .map(|h| {
                let mut b = [0u8; 32];
                hex::decode_to_slice(h.as_str().unwrap_or(""), &mut b)
                    .map_err(|_| "merkle_branch entry is not 32 bytes of hex".to_string())?;
                Ok(b)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Notify {
            job_id: s(0, "job_id")?.to_string(),
            prevhash: PrevHash::from_stratum_hex(s(1, "prevhash")?).ok_or("prevhash is not 32 bytes of hex")?,
            coinb1: bytes(2, "coinb1")?,
            coinb2: bytes(3, "coinb2")?,
            merkle_branch: branch,
            version: hex_u32(&p[5]).ok_or("version is not 8 hex digits")?,
            nbits: hex_u32(&p[6]).ok_or("nbits is not 8 hex digits")?,
            ntime: hex_u32(&p[7]).ok_or("ntime is not 8 hex digits")?,
            clean_jobs: p[8].as_bool().ok_or("clean_jobs is not a boolean")?,
        })
    }
}

/// A line from the pool, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// An answer to one of our requests.
    Response { id: u64, result: Value, error: Value },
    /// A notification or a request from the pool (`id` set for requests
    /// that want an answer, such as `mining.ping`).
    Call { id: Value, method: String, params: Value },
}

impl Incoming {
    /// Parses one line; `Err` says why it is not Stratum.
    pub fn parse(line: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("malformed JSON: {e}"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        if let Some(method) = obj.get("method").and_then(Value::as_str) {
            return Ok(Incoming::Call {
                id: obj.get("id").cloned().unwrap_or(Value::Null),
                method: method.to_string(),
                params: obj.get("params").cloned().unwrap_or(Value::Null),
            });
        }
        let id = obj.get("id").and_then(Value::as_u64).ok_or("a response without a numeric id")?;
        Ok(Incoming::Response {
            id,
            result: obj.get("result").cloned().unwrap_or(Value::Null),
            error: obj.get("error").cloned().unwrap_or(Value::Null),
        })
    }
}

/// A JSON-RPC request line, newline included.
pub fn request(id: u64, method: &str, params: Value) -> Vec<u8> {
    let mut s = json!({"id": id, "method": method, "params": params}).to_string();
    s.push('\n');
    s.into_bytes()
}

/// A JSON-RPC response line to a pool's request.
pub fn response(id: &Value, result: Value) -> Vec<u8> {
    let mut s = json!({"id": id, "result": result, "error": null}).to_string();
    s.push('\n');
    s.into_bytes()
}

/// Stratum error codes pools use in `mining.submit` replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// 20: other/unknown.
    Other,
    /// 21: job not found (stale).
    Stale,
    /// 22: duplicate share.
    Duplicate,
    /// 23: low difficulty share.
    LowDifficulty,
    /// 24: unauthorized worker.
    Unauthorized,
    /// 25: not subscribed.
    NotSubscribed,
    /// Any other code, or an error without one.
    Unknown,
}

impl RejectReason {
    /// The name kiln counts the reason under (as it appears in the API).
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Other => "other",
            RejectReason::Stale => "stale",
            RejectReason::Duplicate => "duplicate",
            RejectReason::LowDifficulty => "low_difficulty",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::NotSubscribed => "not_subscribed",
            RejectReason::Unknown => "unknown",
        }
    }

    /// From the error value (`[code, message, data]` or an object with `code`).
    pub fn from_error(err: &Value) -> (Self, String) {
        let (code, msg) = match err {
            Value::Array(a) => {
                (a.first().and_then(Value::as_i64), a.get(1).and_then(Value::as_str).unwrap_or("").to_string())
            }
            Value::Object(o) => (
                o.get("code").and_then(Value::as_i64),
                o.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
            ),
            Value::String(s) => (None, s.clone()),
            _ => (None, String::new()),
        };
        let reason = match code {
            Some(20) => RejectReason::Other,
            Some(21) => RejectReason::Stale,
            Some(22) => RejectReason::Duplicate,
            Some(23) => RejectReason::LowDifficulty,
            Some(24) => RejectReason::Unauthorized,
            Some(25) => RejectReason::NotSubscribed,
            _ => RejectReason::Unknown,
        };
        (reason, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify_with(version: Value, nbits: Value, ntime: Value) -> Value {
        json!(["j1", "00".repeat(32), "01", "02", [], version, nbits, ntime, true])
    }

    #[test]
    fn notify_accepts_exactly_eight_hex_digits() {
        let ok = Notify::parse(&notify_with(json!("20000000"), json!("1d00ffff"), json!("4d1b2237"))).unwrap();
        assert_eq!((ok.version, ok.nbits, ok.ntime), (0x2000_0000, 0x1d00_ffff, 0x4d1b_2237));
        let long_zeros = "0".repeat(5000);
        for bad in ["1", "+2000000", "2000000", "200000000", " 2000000", "2000000g", long_zeros.as_str()] {
            for field in 0..3 {
                let mut v = [json!("20000000"), json!("1d00ffff"), json!("4d1b2237")];
                v[field] = json!(bad);
                let [a, b, c] = v;
                let err = Notify::parse(&notify_with(a, b, c)).expect_err(bad);
                assert!(err.contains("8 hex digits"), "{bad:?} in field {field}: {err}");
            }
        }
    }
}
