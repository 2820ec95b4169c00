//! Reading blocks and spent outputs from files: raw bytes, hex text or zstd;
//! prevouts as kiln's spent-outputs array or `bitcoin-cli getblock HASH 3`.

use std::path::Path;

use bitcoin::{Amount, Block, ScriptBuf, TxOut};

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
/// Two formats: a JSON array of `{"txout": {"value": sats, "script_pubkey":
/// hex}, …}`, or the object `bitcoin-cli getblock HASH 3` prints (each
/// non-coinbase `vin` has a `prevout` with `value` in BTC and
/// `scriptPubKey.hex`).
///
/// # Errors
/// Unreadable file or JSON that fits neither format, with the offending entry.
pub fn read_prevouts(path: &Path) -> Result<Vec<TxOut>, InputError> {
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
    match &json {
        serde_json::Value::Array(entries) => entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let t = e.get("txout").unwrap_or(e);
                txout(
                    t.get("value").and_then(|v| v.as_u64()),
                    t.get("script_pubkey").and_then(|v| v.as_str()),
                    &format!("entry {i}"),
                )
            })
            .collect(),
        serde_json::Value::Object(obj) if obj.contains_key("tx") => {
            let txs = obj["tx"].as_array().ok_or_else(|| bad("`tx` is not an array".into()))?;
            let mut out = Vec::new();
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
                    out.push(txout(sats, spk, &what)?);
                }
            }
            Ok(out)
        }
        _ => Err(bad("expected a JSON array of spent outputs or a `getblock HASH 3` object".into())),
    }
}
