//! Reading blocks and spent outputs from files: raw bytes, hex text or zstd;
//! prevouts as kiln's spent-outputs array or `bitcoin-cli getblock HASH 3`.

use std::path::Path;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, ScriptBuf, TxOut};

use crate::rules::CoinOrigin;

/// The outputs a block's non-coinbase inputs spend, in block order, and where
/// each came from (coinbase or not, created at which height) when the file
/// says so.
#[derive(Clone, Debug, Default)]
pub struct Prevouts {
    pub txouts: Vec<TxOut>,
    pub origins: Vec<CoinOrigin>,
    /// Whether every entry stated its origin (coinbase flag and height);
    /// without it, coinbase maturity and BIP68 are reported as not checked.
    pub origins_known: bool,
}

/// Why a block or prevouts file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: zstd decompression failed: {source}")]
    Zstd { path: String, source: std::io::Error },
    #[error("{path}: hex text with a non-hex character or odd length")]
    Hex { path: String },
    #[error("{path}: not a valid serialized block: {reason}")]
    Block { path: String, reason: String },
    #[error("{path}: {reason}")]
    Prevouts { path: String, reason: String },
    #[error("block height: {0}")]
    Height(String),
    #[error("{prevouts} spent outputs given, but the block has {inputs} non-coinbase inputs")]
    PrevoutCount { prevouts: usize, inputs: usize },
}

/// Reads a file and undoes zstd and hex encodings (detected from content).
fn read_bytes(path: &Path) -> Result<Vec<u8>, InputError> {
    let p = path.display().to_string();
    let raw = std::fs::read(path).map_err(|source| InputError::Io { path: p.clone(), source })?;
    let raw = if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(&raw[..]).map_err(|source| InputError::Zstd { path: p.clone(), source })?
    } else {
        raw
    };
    Ok(raw)
}

/// Decodes raw bytes or hex text (already decompressed) as a block.
///
/// # Errors
/// [`InputError::Hex`] or [`InputError::Block`], naming `what`.
pub fn decode_block(bytes: &[u8], what: &str) -> Result<Block, InputError> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    let hexed;
    let bytes = match text {
        Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            hexed = hex::decode(t).map_err(|_| InputError::Hex { path: what.to_string() })?;
            &hexed[..]
        }
        _ => bytes,
    };
    bitcoin::consensus::deserialize::<Block>(bytes)
        .map_err(|e| InputError::Block { path: what.to_string(), reason: e.to_string() })
}

/// The file's bytes with zstd undone (detected from its magic number).
///
/// # Errors
/// Unreadable file or broken zstd data.
pub fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    read_bytes(path)
}

/// Reads a block: raw consensus bytes, hex text, either possibly zstd-compressed.
///
/// # Errors
/// Unreadable file, bad zstd or hex, or bytes that do not decode as a block
/// (trailing bytes included).
pub fn read_block(path: &Path) -> Result<Block, InputError> {
    decode_block(&read_bytes(path)?, &path.display().to_string())
}

/// Reads the outputs spent by the block's non-coinbase inputs, in block order.
///
/// # Errors
/// As [`read_spent`].
pub fn read_prevouts(path: &Path) -> Result<Vec<TxOut>, InputError> {
    read_spent(path).map(|p| p.txouts)
}

/// Reads the outputs spent by the block's non-coinbase inputs, in block
/// order, with their origins.
///
/// Two formats: a JSON array of `{"txout": {"value": sats, "script_pubkey":
/// hex}, "is_coinbase": bool, "creation_height": n, …}`, or the object
/// `bitcoin-cli getblock HASH 3` prints (each non-coinbase `vin` has a
/// `prevout` with `value` in BTC, `scriptPubKey.hex`, `generated` and
/// `height`).
///
/// # Errors
/// Unreadable file or JSON that fits neither format, with the offending entry.
pub fn read_spent(path: &Path) -> Result<Prevouts, InputError> {
    let p = path.display().to_string();
    let bytes = read_bytes(path)?;
    let bad = |reason: String| InputError::Prevouts { path: p.clone(), reason };
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let txout = |value_sat: Option<u64>, spk_hex: Option<&str>, what: &str| -> Result<TxOut, InputError> {
        let value = value_sat.ok_or_else(|| bad(format!("{what}: missing or invalid value")))?;
        let spk = spk_hex.ok_or_else(|| bad(format!("{what}: missing script_pubkey")))?;
        let spk = hex::decode(spk).map_err(|_| bad(format!("{what}: script_pubkey is not hex")))?;
        Ok(TxOut { value: Amount::from_sat(value), script_pubkey: ScriptBuf::from_bytes(spk) })
    };
    let height = |v: Option<&serde_json::Value>| v.and_then(|h| h.as_u64()).and_then(|h| u32::try_from(h).ok());
    let mut out = Prevouts { origins_known: true, ..Prevouts::default() };
    let push = |o: &mut Prevouts, t: TxOut, cb: Option<bool>, h: Option<u32>, time: Option<u32>| {
        o.origins_known &= cb.is_some() && h.is_some();
        o.txouts.push(t);
        o.origins.push(CoinOrigin { is_coinbase: cb.unwrap_or(false), creation_height: h, creation_time: time });
    };
    match &json {
        serde_json::Value::Array(entries) => {
            for (i, e) in entries.iter().enumerate() {
                let t = e.get("txout").unwrap_or(e);
                let o = txout(
                    t.get("value").and_then(|v| v.as_u64()),
                    t.get("script_pubkey").and_then(|v| v.as_str()),
                    &format!("entry {i}"),
                )?;
                let cb = e.get("is_coinbase").and_then(|v| v.as_bool());
                push(&mut out, o, cb, height(e.get("creation_height")), height(e.get("creation_time")));
            }
        }
        serde_json::Value::Object(obj) if obj.contains_key("tx") => {
            let txs = obj["tx"].as_array().ok_or_else(|| bad("`tx` is not an array".into()))?;
            for (ti, tx) in txs.iter().enumerate() {
                let vins = tx
                    .get("vin")
                    .and_then(|v| v.as_array())
                    .ok_or_else(|| bad(format!("tx {ti}: no vin array (use getblock verbosity 3)")))?;
                for (ii, vin) in vins.iter().enumerate() {
                    if vin.get("coinbase").is_some() {
                        continue;
                    }
                    let what = format!("tx {ti} input {ii}");
                    let prev = vin
                        .get("prevout")
                        .ok_or_else(|| bad(format!("{what}: no prevout (use getblock verbosity 3)")))?;
                    // BTC with 8 decimals: round to the nearest satoshi.
                    let sats = prev
                        .get("value")
                        .and_then(|v| v.as_f64())
                        .filter(|v| *v >= 0.0)
                        .map(|v| (v * 1e8).round() as u64);
                    let spk = prev.get("scriptPubKey").and_then(|s| s.get("hex")).and_then(|h| h.as_str());
                    let o = txout(sats, spk, &what)?;
                    let cb = prev.get("generated").and_then(|v| v.as_bool());
                    push(&mut out, o, cb, height(prev.get("height")), None);
                }
            }
        }
        _ => return Err(bad("expected a JSON array of spent outputs or a `getblock HASH 3` object".into())),
    }
    Ok(out)
}

/// Block times from a file of consecutive 80-byte headers (raw, optionally
/// zstd), for the rules that need chain context: the median time past of the
/// block's parent (BIP113) and of earlier blocks (BIP68 time locks).
#[derive(Clone, Debug)]
pub struct HeaderTimes {
    times: Vec<u32>,
    /// Index (in `times`) of the validated block's parent, and its height.
    parent: usize,
    parent_height: u32,
}

impl HeaderTimes {
    /// Reads the headers and finds the block's parent among them.
    ///
    /// # Errors
    /// Unreadable file, a length that is not a multiple of 80, headers that
    /// do not link, or no header that is the block's parent.
    pub fn read(path: &Path, block: &Block, height: u32) -> Result<Self, InputError> {
        let p = path.display().to_string();
        let bad = |reason: String| InputError::Prevouts { path: p.clone(), reason };
        let bytes = read_bytes(path)?;
        if bytes.is_empty() || bytes.len() % 80 != 0 {
            return Err(bad(format!("{} bytes is not a whole number of 80-byte headers", bytes.len())));
        }
        let mut times = Vec::with_capacity(bytes.len() / 80);
        let mut parent = None;
        let mut prev_hash: Option<[u8; 32]> = None;
        let want = block.header.prev_blockhash.to_byte_array();
        for (i, h) in bytes.chunks_exact(80).enumerate() {
            if let Some(prev) = prev_hash
                && h[4..36] != prev
            {
                return Err(bad(format!("header {i} does not follow header {}", i - 1)));
            }
            let hash = kiln_hash::sha256d(h);
            if hash == want {
                parent = Some(i);
            }
            prev_hash = Some(hash);
            times.push(u32::from_le_bytes([h[68], h[69], h[70], h[71]]));
        }
        let parent = parent.ok_or_else(|| bad("no header in the file is the block's parent".into()))?;
        let parent_height = height.checked_sub(1).ok_or_else(|| bad("the genesis block has no parent".into()))?;
        Ok(HeaderTimes { times, parent, parent_height })
    }

    /// Median time past of the block at `height`: the median of its time and
    /// the ten before it (fewer near genesis). `None` when the file does not
    /// reach that far back.
    pub fn mtp_at(&self, height: u32) -> Option<u32> {
        let back = self.parent_height.checked_sub(height)? as usize;
        let idx = self.parent.checked_sub(back)?;
        let first = idx.checked_sub(10).or((height < 10).then_some(0))?;
        let mut window: Vec<u32> = self.times[first..=idx].to_vec();
        window.sort_unstable();
        Some(window[window.len() / 2])
    }
}
