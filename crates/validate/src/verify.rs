//! The batch verifier: checks are verified across threads in batches, like
//! Bitcoin Core's check queue, and every failure is tied to its input.
//!
//! Schnorr signatures are split into one large batch per thread and checked
//! with BIP340 batch verification ([`super::batch`]), which measures about
//! twice as fast per signature as one-by-one libsecp256k1 on block 866342
//! (BENCHMARKS.md); everything else goes in small batches of [`BATCH`]
//! checks, which rayon's work stealing spreads around the big ones.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use bitcoin::{Block, TxOut};
use rayon::prelude::*;
use serde::Serialize;

use super::batch::{self, SchnorrItem};
use super::block::{BlockChecks, TxHashes, check_block_with};
use super::extract::{InputCheck, KeyCache, SigCheck, extract_block, split_prevouts};
use super::input::InputError;
use super::oracle;
use crate::rules::{self, CoinOrigin, MtpLookup, Network, NotChecked, Precomputed, RulesReport};
use crate::secp;

/// Checks handed to one rayon task at a time.
pub const BATCH: usize = 32;

/// An input that failed, with everything needed to find it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BadInput {
    pub tx_index: usize,
    pub input_index: usize,
    pub txid: String,
    pub script_type: String,
    pub reason: String,
}

/// What validation knows beyond the block and its spent outputs.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// Verification threads (0 = the global pool, one per core).
    pub threads: usize,
    /// BIP340 batch verification (`false`: one by one; same verdicts).
    pub schnorr_batch: bool,
    /// Whose consensus parameters apply (activation heights, subsidy, pow limit).
    pub network: Network,
    /// The block's height in its chain. When given, a coinbase stating
    /// another is `bad-cb-height`; when not, the coinbase's own BIP34 height
    /// is used and that rule is reported as not checked.
    pub height: Option<u32>,
    /// Median time past of the previous block (BIP113 finality, BIP68).
    pub median_time_past: Option<u32>,
    /// Median time past of the block at a height (BIP68 time locks).
    pub mtp_of_height: Option<MtpLookup<'a>>,
    /// Verify every input even when the block already fails its proof of
    /// work, merkle root or weight: a full diagnosis, at the cost of the
    /// script work the early exit saves. Off by default.
    pub all_scripts: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            threads: 0,
            schnorr_batch: true,
            network: Network::Mainnet,
            height: None,
            median_time_past: None,
            mtp_of_height: None,
            all_scripts: false,
        }
    }
}

/// The outcome of validating one block.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub block: BlockChecks,
    /// The block's consensus rules (amounts, fees, subsidy, maturity, sigops,
    /// weight, finality…), each failure named by Core's reject reason.
    pub rules: RulesReport,
    /// Why no input was verified, when the block failed a cheap check first.
    pub scripts_skipped: Option<String>,
    pub transactions: usize,
    /// Non-coinbase inputs.
    pub inputs: usize,
    /// Inputs per script type (every input is in exactly one).
    pub inputs_by_type: BTreeMap<String, usize>,
    /// Signature verifications performed (multisig may need several per input).
    pub signatures: usize,
    pub bad_inputs: Vec<BadInput>,
    pub extract_ms: f64,
    pub verify_ms: f64,
}

impl Report {
    /// No rule checked was broken. Rules that could not be checked for lack
    /// of context are in [`Report::not_checked`]; they do not make a block
    /// invalid, and a caller must say so rather than report a plain VALID.
    pub fn is_valid(&self) -> bool {
        self.block.is_valid() && self.bad_inputs.is_empty() && self.rules.violations.is_empty()
    }

    /// Rules left unchecked for lack of context (time, heights, origins).
    pub fn not_checked(&self) -> &[NotChecked] {
        &self.rules.not_checked
    }
}

/// Runs one check; `Ok(n)` with the number of signature verifications made.
///
/// # Errors
/// Why the input is invalid.
/// `tx_bytes` gives the serialized transaction; it is only called for
/// interpreter checks, so callers can serialize lazily.
pub fn run_check<'a>(
    check: &SigCheck,
    tx_bytes: impl FnOnce() -> &'a [u8],
    spent: &[TxOut],
    index: usize,
) -> Result<usize, String> {
    let ctx = secp();
    match check {
        SigCheck::Ecdsa { sig, pk, msg } => {
            ctx.verify_ecdsa(msg, sig, pk).map(|_| 1).map_err(|_| "ECDSA signature does not verify".into())
        }
        SigCheck::Schnorr { sig, pk, msg } => {
            ctx.verify_schnorr(sig, msg, pk).map(|_| 1).map_err(|_| SCHNORR_BAD.into())
        }
        SigCheck::Multisig { sigs, keys } => {
            // Consensus order: from the last signature and the last key down;
            // a key is used at most once and skipped keys are never revisited.
            let mut verifications = 0;
            let mut k = keys.len();
            for (si, (sig, msg)) in sigs.iter().enumerate().rev() {
                loop {
                    if k < si + 1 {
                        return Err(format!("multisig: signature {si} matches no remaining key"));
                    }
                    k -= 1;
                    if let Some(pk) = &keys[k] {
                        verifications += 1;
                        if ctx.verify_ecdsa(msg, sig, pk).is_ok() {
                            break;
                        }
                    }
                }
            }
            Ok(verifications)
        }
        SigCheck::Interpreter { flags } => oracle::verify_input(tx_bytes(), spent, index, *flags).map(|_| 0),
        SigCheck::Fail(why) => Err(why.clone()),
        SigCheck::NoSignature => Ok(0),
    }
}

/// Validates a mainnet block against the outputs it spends, on `threads`
/// threads (0 = all cores), with BIP340 batch verification, naming every bad
/// input even in a block that fails a cheap check ([`Options::all_scripts`]).
/// The spent outputs' origins are unknown, so coinbase maturity and BIP68 are
/// reported as not checked.
///
/// # Errors
/// [`InputError::PrevoutCount`] when the prevouts do not line up with the
/// block's non-coinbase inputs; invalidity is reported in the [`Report`].
pub fn validate(block: &Block, prevouts: &[TxOut], threads: usize) -> Result<Report, InputError> {
    validate_with(block, prevouts, threads, true)
}

/// [`validate`], choosing whether Schnorr signatures are batch-verified
/// (`false`: one by one, as libsecp256k1 ships; the verdicts are identical).
///
/// # Errors
/// As [`validate`].
pub fn validate_with(
    block: &Block,
    prevouts: &[TxOut],
    threads: usize,
    schnorr_batch: bool,
) -> Result<Report, InputError> {
    validate_block(block, prevouts, None, &Options { threads, schnorr_batch, all_scripts: true, ..Options::default() })
}

/// Validates a block: block checks, consensus rules and every input's
/// scripts. `origins` (one per prevout) says which spent outputs are
/// coinbase outputs and at which height each was created.
///
/// # Errors
/// [`InputError::PrevoutCount`] when the prevouts do not line up with the
/// block's non-coinbase inputs, [`InputError::Height`] when the block's
/// height is unknown (no BIP34 height and none given).
pub fn validate_block(
    block: &Block,
    prevouts: &[TxOut],
    origins: Option<&[CoinOrigin]>,
    opts: &Options<'_>,
) -> Result<Report, InputError> {
    let inputs: usize = block.txdata.iter().skip(1).map(|tx| tx.input.len()).sum();
    if inputs != prevouts.len() || origins.is_some_and(|o| o.len() != prevouts.len()) {
        return Err(InputError::PrevoutCount { prevouts: prevouts.len(), inputs });
    }
    let threads = opts.threads;
    // The global pool already has one thread per core: use it unless asked
    // for another size (starting threads costs time on every block).
    if threads == 0 || threads == rayon::current_num_threads() {
        return validate_in_pool(block, prevouts, origins, inputs, opts);
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| InputError::Prevouts {
        path: "-".into(),
        reason: format!("cannot start {threads} threads: {e}"),
    })?;
    pool.install(|| validate_in_pool(block, prevouts, origins, inputs, opts))
}

/// A unit of parallel work.
enum Unit<'a, 'b> {
    /// Schnorr checks (their indices, and their signatures in the same
    /// order), verified with one batch equation.
    SchnorrBatch(&'a [usize], &'a [SchnorrItem<'b>]),
    /// Indices of checks verified each on its own.
    OneByOne(&'a [usize]),
}

/// Verifies every check; the outcome of check `i` is at index `i`.
fn verify_checks(block: &Block, per_tx: &[&[TxOut]], checks: &[InputCheck], schnorr_batch: bool) -> Vec<Outcome> {
    let mut schnorr_at: Vec<usize> = Vec::new();
    let mut schnorr: Vec<SchnorrItem> = Vec::new();
    let mut rest: Vec<usize> = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        match SchnorrItem::of(&c.check).filter(|_| schnorr_batch) {
            Some(item) => {
                schnorr_at.push(i);
                schnorr.push(item);
            }
            None => rest.push(i),
        }
    }
    // One batch per thread: bigger batches are cheaper per signature, and the
    // small units of `rest` keep the threads level around them.
    let per_batch = schnorr.len().div_ceil(rayon::current_num_threads()).max(batch::MIN_BATCH);
    let units =
        schnorr_at.chunks(per_batch).zip(schnorr.chunks(per_batch)).map(|(at, items)| Unit::SchnorrBatch(at, items));
    let units: Vec<Unit> = units.chain(rest.chunks(BATCH).map(Unit::OneByOne)).collect();

    let tx_bytes: Vec<OnceLock<Vec<u8>>> = (0..block.txdata.len()).map(|_| OnceLock::new()).collect();
    let one = |i: usize| {
        let c = &checks[i];
        let bytes =
            || tx_bytes[c.tx_index].get_or_init(|| bitcoin::consensus::serialize(&block.txdata[c.tx_index])).as_slice();
        run_check(&c.check, bytes, per_tx[c.tx_index], c.input_index)
    };
    let done: Vec<Vec<(usize, Outcome)>> = units
        .par_iter()
        .map(|unit| match unit {
            Unit::OneByOne(idx) => idx.iter().map(|&i| (i, one(i))).collect(),
            Unit::SchnorrBatch(at, items) => {
                let bad = batch::verify_all(items);
                at.iter()
                    .enumerate()
                    .map(|(k, &i)| (i, if bad.binary_search(&k).is_ok() { Err(SCHNORR_BAD.into()) } else { Ok(1) }))
                    .collect()
            }
        })
        .collect();
    let mut outcomes: Vec<Outcome> = vec![Ok(0); checks.len()];
    for (i, r) in done.into_iter().flatten() {
        outcomes[i] = r;
    }
    outcomes
}

/// A check's result: signature verifications made, or why it failed.
type Outcome = Result<usize, String>;

const SCHNORR_BAD: &str = "Schnorr signature does not verify";

fn validate_in_pool(
    block: &Block,
    prevouts: &[TxOut],
    origins: Option<&[CoinOrigin]>,
    inputs: usize,
    opts: &Options<'_>,
) -> Result<Report, InputError> {
    let per_tx = split_prevouts(block, prevouts);
    let t0 = Instant::now();
    // The height decides the script flags, so it comes first (BIP34 is a
    // parse of the coinbase, no hashing).
    let bip34 = crate::block::coinbase_height(block);
    // A height from the caller (the chain) is the truth: a coinbase that
    // states another one is `bad-cb-height`, reported by the rules. Without
    // one, the coinbase's own claim is all there is, and the report says so.
    let height = match (opts.height, bip34) {
        (Some(h), _) | (None, Some(h)) => h,
        (None, None) => {
            return Err(InputError::Height("the block states no BIP34 height; give it (--height)".into()));
        }
    };
    let flags = rules::script_flags(opts.network, height);
    // Hashes, then block checks and rules beside key parsing and extraction.
    let hashes = TxHashes::of(block);
    let unknown_origins;
    let origins_unknown = origins.is_none();
    let origins = match origins {
        Some(o) => o,
        None => {
            unknown_origins = vec![CoinOrigin::default(); prevouts.len()];
            &unknown_origins[..]
        }
    };
    let ctx = rules::Context {
        network: opts.network,
        height,
        median_time_past: opts.median_time_past,
        mtp_of_height: opts.mtp_of_height,
    };
    // The cheap checks come first, as in Core's CheckBlock: a block that
    // fails its proof of work, its merkle root or its size is invalid
    // whatever its scripts say, and a crafted one must not buy minutes of
    // script work with a header anyone can write.
    let checks_hdr = check_block_with(block, opts.network, &hashes);
    let oversized = block.weight().to_wu() > rules::MAX_BLOCK_WEIGHT;
    let cheap_fail = !checks_hdr.pow_ok || !checks_hdr.merkle_ok || oversized;
    let scripts_skipped = (cheap_fail && !opts.all_scripts).then(|| {
        let why = if !checks_hdr.pow_ok {
            "high-hash"
        } else if !checks_hdr.merkle_ok {
            "bad-txnmrklroot"
        } else {
            "bad-blk-weight"
        };
        format!("scripts not verified: the block already fails {why}")
    });
    let (rules_report, checks) = rayon::join(
        || {
            let pre = Precomputed { txids: Some(&hashes.txids), wtxids: Some(&hashes.wtxids) };
            rules::check_rules_with(block, prevouts, origins, &ctx, pre)
        },
        || {
            if scripts_skipped.is_some() {
                return Vec::new();
            }
            let keys = KeyCache::for_block(block, &per_tx);
            extract_block(block, &per_tx, flags, &keys)
        },
    );
    let mut rules_report =
        rules_report.map_err(|e| InputError::Prevouts { path: "-".into(), reason: e.to_string() })?;
    if opts.height.is_none() {
        rules_report.not_checked.push(NotChecked {
            rule: rules::reason::BAD_CB_HEIGHT,
            reason: "the height was taken from the coinbase itself; whether it is the block's place in the chain \
                     needs the height from elsewhere (--height or the node)",
            count: 1,
            first_tx: Some(0),
        });
    }
    if origins_unknown && !prevouts.is_empty() {
        // Without origins every coin looks like a non-coinbase one to the
        // rules: say plainly that maturity was not checked at all.
        rules_report.not_checked.retain(|n| n.rule != rules::reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE);
        rules_report.not_checked.push(NotChecked {
            rule: rules::reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
            reason: "the spent outputs do not say which are coinbase outputs, nor their heights",
            count: prevouts.len(),
            first_tx: None,
        });
    }
    let extract_ms = t0.elapsed().as_secs_f64() * 1e3;

    let t1 = Instant::now();
    let outcomes = verify_checks(block, &per_tx, &checks, opts.schnorr_batch);
    let verify_ms = t1.elapsed().as_secs_f64() * 1e3;

    let mut counts: std::collections::HashMap<super::extract::ScriptType, usize> = std::collections::HashMap::new();
    let mut bad = Vec::new();
    let mut signatures = 0;
    for (c, r) in checks.iter().zip(outcomes) {
        *counts.entry(c.script_type).or_insert(0) += 1;
        match r {
            Ok(n) => signatures += n,
            Err(reason) => bad.push(BadInput {
                tx_index: c.tx_index,
                input_index: c.input_index,
                txid: block.txdata[c.tx_index].compute_txid().to_string(),
                script_type: c.script_type.name(),
                reason,
            }),
        }
    }
    let by_type: BTreeMap<String, usize> = counts.into_iter().map(|(t, n)| (t.name(), n)).collect();
    Ok(Report {
        block: checks_hdr,
        rules: rules_report,
        scripts_skipped,
        transactions: block.txdata.len(),
        inputs,
        inputs_by_type: by_type,
        signatures,
        bad_inputs: bad,
        extract_ms,
        verify_ms,
    })
}

/// BIP340 verification of a message of any length (BIP340 allows it; Bitcoin
/// itself signs 32-byte sighashes). `false` for malformed keys or signatures.
pub fn verify_schnorr_any_len(sig: &[u8], xonly: &[u8], msg: &[u8]) -> bool {
    let (Ok(sig), Ok(pk)) = (
        bitcoin::secp256k1::schnorr::Signature::from_slice(sig),
        bitcoin::secp256k1::XOnlyPublicKey::from_slice(xonly),
    ) else {
        return false;
    };
    batch::verify_one(&SchnorrItem { sig: &sig, pk: &pk, msg })
}

/// ECDSA under Bitcoin's policy rules (strict DER, low S), as the Wycheproof
/// "bitcoin" vectors expect; `msg32` is the already-hashed message.
pub fn verify_ecdsa_policy(der: &[u8], pubkey: &[u8], msg32: [u8; 32]) -> bool {
    use bitcoin::secp256k1::{Message, PublicKey, ecdsa::Signature};
    let (Ok(sig), Ok(pk)) = (Signature::from_der(der), PublicKey::from_slice(pubkey)) else { return false };
    let mut low = sig;
    low.normalize_s();
    low == sig && secp().verify_ecdsa(&Message::from_digest(msg32), &sig, &pk).is_ok()
}
