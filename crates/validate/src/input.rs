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
    #[error("{path}: larger than {what} can be ({} MiB at most)", limit >> 20)]
    TooLarge { path: String, limit: u64, what: String },
    #[error("{prevouts} spent outputs given, but the block has {inputs} non-coinbase inputs")]
    PrevoutCount { prevouts: usize, inputs: usize },
}

/// The most a block file may hold once decompressed: a block serializes to
/// at most 4,000,000 bytes (its weight limit), 8,000,000 hex digits, plus
/// room for line breaks. Nothing larger can be a block, so nothing larger is
/// read into memory (a 66 KB zstd file can expand to gigabytes).
pub const MAX_BLOCK_FILE: u64 = 10 << 20;

/// The most a spent-outputs file may hold, for a block with `inputs`
/// non-coinbase inputs: each entry's script is at most 10,000 bytes (20,000
/// hex digits) in kiln's format, and `getblock HASH 3` repeats every
/// transaction around its inputs, so allow 64 MiB plus 48 KiB per input.
pub fn max_prevouts_file(inputs: usize) -> u64 {
    (64 << 20) + 48 * 1024 * inputs as u64
}

/// Reads at most `limit` bytes of a file, undoing zstd (detected from its
/// magic number) under the same limit.
fn read_bytes_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let p = path.display().to_string();
    let io = |source| InputError::Io { path: p.clone(), source };
    let too_big = || InputError::TooLarge { path: p.clone(), limit, what: what.to_string() };
    let mut raw = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut raw)).map_err(io)?;
    if raw.len() as u64 > limit {
        return Err(too_big());
    }
    if !raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(&raw[..])
        .and_then(|d| d.take(limit + 1).read_to_end(&mut out))
        .map_err(|source| InputError::Zstd { path: p.clone(), source })?;
    if out.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(out)
}

/// A block file's bytes (raw or hex text, zstd undone), at most [`MAX_BLOCK_FILE`].
fn read_bytes(path: &Path) -> Result<Vec<u8>, InputError> {
    read_bytes_limited(path, MAX_BLOCK_FILE, "a block file")
}

/// Decodes raw bytes or hex text (already decompressed) as a block. Hex may
/// carry a `0x` prefix and be wrapped over lines.
///
/// # Errors
/// [`InputError::Hex`] or [`InputError::Block`], naming `what`.
pub fn decode_block(bytes: &[u8], what: &str) -> Result<Block, InputError> {
    let hexed;
    let bytes = match hex_text(bytes) {
        Some(digits) => {
            if digits.len() % 2 == 1 {
                return Err(InputError::Hex { path: what.to_string() });
            }
            hexed = hex::decode(&digits).map_err(|_| InputError::Hex { path: what.to_string() })?;
            &hexed[..]
        }
        None => bytes,
    };
    let bad = |reason: String| InputError::Block { path: what.to_string(), reason };
    match bitcoin::consensus::deserialize_partial::<Block>(bytes) {
        Ok((block, used)) if used == bytes.len() => Ok(block),
        Ok((_, used)) => Err(bad(format!("{} bytes follow the end of the block (at byte {used})", bytes.len() - used))),
        Err(bitcoin::consensus::encode::Error::Io(e)) if e.kind() == bitcoin::io::ErrorKind::UnexpectedEof => {
            Err(bad(format!("truncated: {} bytes end before the block does", bytes.len())))
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// The hex digits of `bytes` when it is hex text: an optional `0x` prefix,
/// digits, and any ASCII whitespace (wrapped lines) between them.
fn hex_text(bytes: &[u8]) -> Option<Vec<u8>> {
    let t = std::str::from_utf8(bytes).ok()?.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: Vec<u8> = t.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_hexdigit)).then_some(digits)
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

/// [`read_spent_for`] without knowing the block: files up to 256 MiB.
///
/// # Errors
/// As [`read_spent_for`].
pub fn read_spent(path: &Path) -> Result<Prevouts, InputError> {
    read_spent_limited(path, None, 256 << 20)
}

/// Reads the outputs spent by a block's `inputs` non-coinbase inputs, in
/// block order, with their origins.
///
/// Two formats: a JSON array of `{"txout": {"value": sats, "script_pubkey":
/// hex}, "is_coinbase": bool, "creation_height": n, …}`, or the object
/// `bitcoin-cli getblock HASH 3` prints (each non-coinbase `vin` has a
/// `prevout` with `value` in BTC, `scriptPubKey.hex`, `generated` and
/// `height`). The file may be at most [`max_prevouts_file`]`(inputs)` bytes;
/// it is decoded into typed entries (no JSON tree), and an array with more
/// entries than the block has inputs is refused as soon as the extra one
/// arrives.
///
/// # Errors
/// Unreadable or oversized file, or JSON that fits neither format, with the
/// offending entry; a count that does not match `inputs`.
pub fn read_spent_for(path: &Path, inputs: usize) -> Result<Prevouts, InputError> {
    let p = read_spent_limited(path, Some(inputs), max_prevouts_file(inputs))?;
    if p.txouts.len() != inputs {
        return Err(InputError::PrevoutCount { prevouts: p.txouts.len(), inputs });
    }
    Ok(p)
}

mod json {
    //! The two spent-outputs formats as typed serde structures: only the
    //! fields kiln uses are kept; everything else is skipped unallocated.
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    pub struct Out {
        pub value: Option<u64>,
        pub script_pubkey: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Entry {
        pub txout: Option<Out>,
        #[serde(flatten)]
        pub flat: Out,
        pub is_coinbase: Option<bool>,
        pub creation_height: Option<u64>,
        pub creation_time: Option<u64>,
    }

    #[derive(Deserialize)]
    pub struct GetBlock {
        pub tx: Vec<Tx>,
    }

    #[derive(Deserialize)]
    pub struct Tx {
        pub vin: Option<Vec<Vin>>,
    }

    #[derive(Deserialize)]
    pub struct Vin {
        pub coinbase: Option<serde::de::IgnoredAny>,
        pub prevout: Option<Prevout>,
    }

    #[derive(Deserialize)]
    pub struct Prevout {
        pub value: Option<f64>,
        #[serde(rename = "scriptPubKey")]
        pub script_pubkey: Option<Spk>,
        pub generated: Option<bool>,
        pub height: Option<u64>,
    }

    #[derive(Deserialize)]
    pub struct Spk {
        pub hex: Option<String>,
    }
}

/// Collects entries into [`Prevouts`], checking each as it arrives.
struct Collect<'a> {
    out: Prevouts,
    max: Option<usize>,
    bad: &'a dyn Fn(String) -> InputError,
}

impl Collect<'_> {
    fn push(
        &mut self,
        what: &dyn Fn() -> String,
        value: Option<u64>,
        spk: Option<&str>,
        cb: Option<bool>,
        h: Option<u64>,
        t: Option<u64>,
    ) -> Result<(), InputError> {
        if self.max.is_some_and(|m| self.out.txouts.len() >= m) {
            return Err((self.bad)(format!(
                "{}: more spent outputs than the block has inputs ({})",
                what(),
                self.max.unwrap_or(0)
            )));
        }
        let value = value.ok_or_else(|| (self.bad)(format!("{}: missing or invalid value", what())))?;
        let spk = spk.ok_or_else(|| (self.bad)(format!("{}: missing script_pubkey", what())))?;
        let spk = hex::decode(spk).map_err(|_| (self.bad)(format!("{}: script_pubkey is not hex", what())))?;
        let h = h.and_then(|h| u32::try_from(h).ok());
        self.out.origins_known &= cb.is_some() && h.is_some();
        self.out.txouts.push(TxOut { value: Amount::from_sat(value), script_pubkey: ScriptBuf::from_bytes(spk) });
        self.out.origins.push(CoinOrigin {
            is_coinbase: cb.unwrap_or(false),
            creation_height: h,
            creation_time: t.and_then(|t| u32::try_from(t).ok()),
        });
        Ok(())
    }
}

/// Streams a top-level JSON array of entries into a [`Collect`].
struct ArraySeed<'c, 'a>(&'c mut Collect<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for ArraySeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ArraySeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of spent outputs")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while let Some(e) = seq.next_element::<json::Entry>()? {
            let o = e.txout.unwrap_or(e.flat);
            let what = || format!("entry {i}");
            self.0
                .push(&what, o.value, o.script_pubkey.as_deref(), e.is_coinbase, e.creation_height, e.creation_time)
                // The reason alone: the caller names the file once.
                .map_err(|e| match e {
                    InputError::Prevouts { reason, .. } => serde::de::Error::custom(reason),
                    e => serde::de::Error::custom(e),
                })?;
            i += 1;
        }
        Ok(())
    }
}

fn read_spent_limited(path: &Path, inputs: Option<usize>, limit: u64) -> Result<Prevouts, InputError> {
    let bytes = read_bytes_limited(path, limit, "the spent outputs of this block")?;
    parse_spent(&bytes, inputs, &path.display().to_string())
}

/// Parses spent outputs already in memory (zstd already undone), in either
/// of [`read_spent_for`]'s formats; errors name `what`. With `inputs`, an
/// array longer than that is refused as soon as the extra entry arrives and
/// a count other than `inputs` is an error, as in [`read_spent_for`];
/// without it, any number of entries is accepted, as in [`read_spent`].
/// The file-based readers are this after a bounded read.
///
/// # Errors
/// JSON that fits neither format, with the offending entry; a count that
/// does not match `inputs`.
pub fn read_spent_bytes(bytes: &[u8], inputs: Option<usize>, what: &str) -> Result<Prevouts, InputError> {
    let p = parse_spent(bytes, inputs, what)?;
    match inputs {
        Some(inputs) if p.txouts.len() != inputs => Err(InputError::PrevoutCount { prevouts: p.txouts.len(), inputs }),
        _ => Ok(p),
    }
}

fn parse_spent(bytes: &[u8], inputs: Option<usize>, what: &str) -> Result<Prevouts, InputError> {
    use serde::de::DeserializeSeed;
    let bad = |reason: String| InputError::Prevouts { path: what.to_string(), reason };
    let mut c = Collect { out: Prevouts { origins_known: true, ..Prevouts::default() }, max: inputs, bad: &bad };
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            ArraySeed(&mut c).deserialize(&mut de).and_then(|()| de.end()).map_err(|e| bad(e.to_string()))?;
        }
        Some(b'{') => {
            let gb: json::GetBlock = serde_json::from_slice(bytes).map_err(|e| {
                bad(format!("not a spent-outputs array nor a `getblock HASH 3` object (with `tx`): {e}"))
            })?;
            for (ti, tx) in gb.tx.iter().enumerate() {
                let vins =
                    tx.vin.as_ref().ok_or_else(|| bad(format!("tx {ti}: no vin array (use getblock verbosity 3)")))?;
                for (ii, vin) in vins.iter().enumerate() {
                    if vin.coinbase.is_some() {
                        continue;
                    }
                    let what = || format!("tx {ti} input {ii}");
                    let prev = vin
                        .prevout
                        .as_ref()
                        .ok_or_else(|| bad(format!("{}: no prevout (use getblock verbosity 3)", what())))?;
                    // BTC with 8 decimals: round to the nearest satoshi.
                    let sats = prev.value.filter(|v| *v >= 0.0 && *v <= 21e6).map(|v| (v * 1e8).round() as u64);
                    let spk = prev.script_pubkey.as_ref().and_then(|s| s.hex.as_deref());
                    c.push(&what, sats, spk, prev.generated, prev.height, None)?;
                }
            }
        }
        _ => return Err(bad("not JSON: expected an array of spent outputs or a `getblock HASH 3` object".into())),
    }
    Ok(c.out)
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
