//! Block consensus rules that can be decided from the block itself,
//! the outputs it spends, its height and (optionally) median-time-past
//! context — everything except script execution, proof of work / header
//! rules, and the UTXO-set lookups that produce the spent outputs.
//!
//! Every failure is reported with **Bitcoin Core's reject reason** (the
//! string `getblocktemplate`/`submitblock` and the debug log would show,
//! e.g. `bad-txns-in-belowout`), so results can be compared with Core
//! directly. Unlike Core, which stops at the first failure, [`check_rules`]
//! keeps going and reports every violation it can find; where an earlier
//! failure makes a later rule meaningless (fees of a transaction whose inputs
//! are missing, say) the later rule is listed in
//! [`RulesReport::not_checked`] instead of being passed silently.
//!
//! An empty `not_checked` means every rule this crate implements was decided
//! for the block. Cost is dominated by SHA-256 (txids, wtxids, two merkle
//! trees); pass hashes the caller already has through [`Precomputed`].
//!
//! The crate performs no I/O and never panics on any input: every index and
//! every sum derived from the block is checked.

mod merkle;
mod params;
mod script;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{Block, OutPoint, Transaction, TxOut, Txid, Wtxid};
use serde::Serialize;

pub use params::{COIN, Deployments, MAX_MONEY, Network, block_subsidy, flags, script_flags};
pub use script::{bip34_height, bip34_prefix, input_sigop_cost, legacy_sigops, sigop_count};

/// Core's reject reasons for the rules this crate checks.
pub mod reason {
    /// No transactions, more than 1,000,000 of them, or a stripped size above 1 MB.
    pub const BAD_BLK_LENGTH: &str = "bad-blk-length";
    /// Block weight above 4,000,000.
    pub const BAD_BLK_WEIGHT: &str = "bad-blk-weight";
    /// Total sigop cost above 80,000.
    pub const BAD_BLK_SIGOPS: &str = "bad-blk-sigops";
    /// Witness data in a block that does not commit to it.
    pub const UNEXPECTED_WITNESS: &str = "unexpected-witness";
    /// Coinbase witness is not exactly one 32-byte item (the nonce).
    pub const BAD_WITNESS_NONCE_SIZE: &str = "bad-witness-nonce-size";
    /// Witness commitment does not match the transactions' witnesses.
    pub const BAD_WITNESS_MERKLE_MATCH: &str = "bad-witness-merkle-match";
    /// First transaction is not a coinbase.
    pub const BAD_CB_MISSING: &str = "bad-cb-missing";
    /// A transaction after the first is a coinbase.
    pub const BAD_CB_MULTIPLE: &str = "bad-cb-multiple";
    /// Coinbase scriptSig outside 2..=100 bytes.
    pub const BAD_CB_LENGTH: &str = "bad-cb-length";
    /// Coinbase scriptSig does not start with the BIP34 height push.
    pub const BAD_CB_HEIGHT: &str = "bad-cb-height";
    /// Coinbase pays more than subsidy + fees.
    pub const BAD_CB_AMOUNT: &str = "bad-cb-amount";
    /// Header merkle root does not match the transactions.
    pub const BAD_TXNMRKLROOT: &str = "bad-txnmrklroot";
    /// Merkle tree mutated by repeated transactions (CVE-2012-2459).
    pub const BAD_TXNS_DUPLICATE: &str = "bad-txns-duplicate";
    /// A transaction id repeats (see [`check_rules_with`](crate::rules::check_rules_with) for how this relates to Core's BIP30).
    pub const BAD_TXNS_BIP30: &str = "bad-txns-BIP30";
    /// Transaction without inputs.
    pub const BAD_TXNS_VIN_EMPTY: &str = "bad-txns-vin-empty";
    /// Transaction without outputs.
    pub const BAD_TXNS_VOUT_EMPTY: &str = "bad-txns-vout-empty";
    /// Stripped transaction size above 1 MB.
    pub const BAD_TXNS_OVERSIZE: &str = "bad-txns-oversize";
    /// Output value negative (top bit set, as Core reads amounts as int64).
    pub const BAD_TXNS_VOUT_NEGATIVE: &str = "bad-txns-vout-negative";
    /// Output value above 21,000,000 BTC.
    pub const BAD_TXNS_VOUT_TOOLARGE: &str = "bad-txns-vout-toolarge";
    /// Sum of outputs above 21,000,000 BTC.
    pub const BAD_TXNS_TXOUTTOTAL_TOOLARGE: &str = "bad-txns-txouttotal-toolarge";
    /// The same outpoint spent twice by one transaction.
    pub const BAD_TXNS_INPUTS_DUPLICATE: &str = "bad-txns-inputs-duplicate";
    /// A non-coinbase transaction spends the null outpoint.
    pub const BAD_TXNS_PREVOUT_NULL: &str = "bad-txns-prevout-null";
    /// An input's coin does not exist at that point of the block.
    pub const BAD_TXNS_INPUTS_MISSINGORSPENT: &str = "bad-txns-inputs-missingorspent";
    /// A coinbase output spent before 100 confirmations.
    pub const BAD_TXNS_PREMATURE_SPEND_OF_COINBASE: &str = "bad-txns-premature-spend-of-coinbase";
    /// An input value, or the input sum, outside 0..=21,000,000 BTC.
    pub const BAD_TXNS_INPUTVALUES_OUTOFRANGE: &str = "bad-txns-inputvalues-outofrange";
    /// Outputs worth more than inputs.
    pub const BAD_TXNS_IN_BELOWOUT: &str = "bad-txns-in-belowout";
    /// Fee outside 0..=21,000,000 BTC.
    pub const BAD_TXNS_FEE_OUTOFRANGE: &str = "bad-txns-fee-outofrange";
    /// Sum of the block's fees above 21,000,000 BTC.
    pub const BAD_TXNS_ACCUMULATED_FEE_OUTOFRANGE: &str = "bad-txns-accumulated-fee-outofrange";
    /// Absolute (nLockTime) or relative (BIP68) lock not yet satisfied.
    pub const BAD_TXNS_NONFINAL: &str = "bad-txns-nonfinal";
    /// **Not a Core reason.** The caller's [`SpentOutput`](crate::rules::SpentOutput) for an input
    /// that spends an output created earlier in the same block disagrees with
    /// that output. The block's own output is used for every check; this
    /// flags inconsistent input data, not an invalid block.
    pub const SPENT_OUTPUT_MISMATCH: &str = "kiln-spent-output-mismatch";
}

/// Core's `MAX_BLOCK_WEIGHT`.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Core's `MAX_BLOCK_SIGOPS_COST`.
pub const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
/// Core's `COINBASE_MATURITY`.
pub const COINBASE_MATURITY: u32 = 100;
/// Core's `LOCKTIME_THRESHOLD`: nLockTime values below are heights, above are times.
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;

const SEQUENCE_FINAL: u32 = 0xffff_ffff;
const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_LOCKTIME_MASK: u32 = 0x0000_ffff;
const SEQUENCE_LOCKTIME_GRANULARITY: u32 = 9;
const WITNESS_COMMITMENT_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// The output an input spends, as the caller's UTXO view saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentOutput {
    /// Value and script of the spent output.
    pub txout: TxOut,
    /// Whether it was created by a coinbase (subject to 100-block maturity).
    pub is_coinbase: bool,
    /// Height of the block that created it; needed for coinbase maturity and
    /// BIP68 relative locks. `None` = unknown: those checks are reported as
    /// not checked.
    pub creation_height: Option<u32>,
    /// Timestamp of the creating block. Not used by any rule (BIP68 time
    /// locks are measured from median time past, see [`Context::mtp_of_height`]);
    /// carried for callers.
    pub creation_time: Option<u32>,
}

/// Where a spent output came from: what coinbase maturity and BIP68 need
/// beyond the output itself. Kept beside the outputs (not inside them) so the
/// signature pipeline's `&[TxOut]` slices serve the rules unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoinOrigin {
    pub is_coinbase: bool,
    /// `None` = unknown: maturity and BIP68 height locks are reported as not checked.
    pub creation_height: Option<u32>,
    pub creation_time: Option<u32>,
}

impl SpentOutput {
    pub fn origin(&self) -> CoinOrigin {
        CoinOrigin {
            is_coinbase: self.is_coinbase,
            creation_height: self.creation_height,
            creation_time: self.creation_time,
        }
    }
}

/// Median-time-past lookup: the MTP *of* the block at a height, i.e. the
/// median timestamp of that block and the ten before it (Core's
/// `GetAncestor(h)->GetMedianTimePast()`).
pub type MtpLookup<'a> = &'a (dyn Fn(u32) -> Option<u32> + Sync);

/// Where the block sits: everything outside the block the rules need.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Chain whose parameters apply.
    pub network: Network,
    /// Height of the block being checked.
    pub height: u32,
    /// MTP of the previous block (median of the 11 blocks before this one).
    /// After CSV activation Core uses it as the nLockTime cutoff (BIP113) and
    /// as "now" for BIP68 time locks. `None` = unknown.
    pub median_time_past: Option<u32>,
    /// MTP of the block at a given height, for BIP68 time locks (the lock
    /// runs from the MTP of the block *before* the one that created the coin).
    /// `None` = unknown.
    pub mtp_of_height: Option<MtpLookup<'a>>,
}

impl<'a> Context<'a> {
    /// Context with no time information.
    pub fn new(network: Network, height: u32) -> Self {
        Context { network, height, median_time_past: None, mtp_of_height: None }
    }

    /// MTP of the block at `h`, using `median_time_past` for `height - 1`.
    fn mtp_at(&self, h: u32) -> Option<u32> {
        if Some(h) == self.height.checked_sub(1)
            && let Some(t) = self.median_time_past
        {
            return Some(t);
        }
        self.mtp_of_height.and_then(|f| f(h))
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("network", &self.network)
            .field("height", &self.height)
            .field("median_time_past", &self.median_time_past)
            .field("mtp_of_height", &self.mtp_of_height.map(|_| "<fn>"))
            .finish()
    }
}

/// Hashes the caller may already have (kiln computes txids in parallel).
/// They are trusted: wrong hashes give wrong merkle/duplicate results.
#[derive(Clone, Copy, Debug, Default)]
pub struct Precomputed<'a> {
    /// Txid of every transaction, in block order.
    pub txids: Option<&'a [Txid]>,
    /// Wtxid of every transaction, in block order (only used when the block
    /// has a witness commitment; the coinbase entry is ignored). As in Core,
    /// a transaction without witness data must have its txid here —
    /// rust-bitcoin's `compute_wtxid` differs for zero-input transactions.
    pub wtxids: Option<&'a [Wtxid]>,
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Core's reject reason (see [`reason`]).
    pub rule: &'static str,
    /// Index of the offending transaction in the block, if any.
    pub tx: Option<usize>,
    /// Index of the offending input within that transaction, if any.
    pub input: Option<usize>,
    /// Human-readable specifics.
    pub detail: String,
}

/// A rule that could not be decided, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotChecked {
    /// Core's reject reason of the rule that was skipped.
    pub rule: &'static str,
    /// What was missing.
    pub reason: &'static str,
    /// How many transactions/inputs were affected.
    pub count: usize,
    /// First affected transaction, if the rule is per transaction.
    pub first_tx: Option<usize>,
}

/// Outcome of [`check_rules`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RulesReport {
    /// Every violation found (empty = no rule this crate checks is broken).
    pub violations: Vec<Violation>,
    /// Rules that could not be decided (empty = all were decided).
    pub not_checked: Vec<NotChecked>,
    /// Sum of fees of the transactions whose fee could be computed.
    pub fees: u64,
    /// Total sigop cost (Core's `GetTransactionSigOpCost` summed).
    pub sigop_cost: u64,
    /// Block weight (stripped size × 3 + total size).
    pub weight: u64,
    /// Script flags scripts of this block must be verified with.
    pub script_flags: u32,
}

impl RulesReport {
    /// No violation found.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether any violation carries `rule`.
    pub fn has(&self, rule: &str) -> bool {
        self.violations.iter().any(|v| v.rule == rule)
    }

    fn violate(&mut self, rule: &'static str, tx: Option<usize>, input: Option<usize>, detail: String) {
        self.violations.push(Violation { rule, tx, input, detail });
    }

    /// Records the block's sigop cost and Core's `bad-blk-sigops` when it
    /// is over the limit; `what` names the count and `note` follows it.
    fn sigop_limit(&mut self, cost: u64, what: &str, note: String) {
        self.sigop_cost = cost;
        if cost > MAX_BLOCK_SIGOPS_COST {
            self.violate(reason::BAD_BLK_SIGOPS, None, None, format!("{what} {cost} > {MAX_BLOCK_SIGOPS_COST}{note}"));
        }
    }

    fn skip(&mut self, rule: &'static str, reason: &'static str, tx: Option<usize>) {
        if let Some(n) = self.not_checked.iter_mut().find(|n| n.rule == rule && n.reason == reason) {
            n.count += 1;
        } else {
            self.not_checked.push(NotChecked { rule, reason, count: 1, first_tx: tx });
        }
    }
}

/// Why [`check_rules`] refused to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// `spent` must hold exactly one entry per input of every non-coinbase transaction.
    SpentCountMismatch {
        /// Inputs of non-coinbase transactions in the block.
        expected: usize,
        /// Entries supplied.
        got: usize,
    },
    /// A precomputed hash list does not have one entry per transaction.
    PrecomputedLength {
        /// Which list.
        what: &'static str,
        /// Transactions in the block.
        expected: usize,
        /// Entries supplied.
        got: usize,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::SpentCountMismatch { expected, got } => {
                write!(f, "block has {expected} non-coinbase inputs but {got} spent outputs were given")
            }
            InputError::PrecomputedLength { what, expected, got } => {
                write!(f, "block has {expected} transactions but {got} precomputed {what} were given")
            }
        }
    }
}

impl std::error::Error for InputError {}

/// [`check_rules_with`] without precomputed hashes.
pub fn check_rules(block: &Block, spent: &[SpentOutput], ctx: &Context<'_>) -> Result<RulesReport, InputError> {
    check_spent_with(block, spent, ctx, Precomputed::default())
}

/// [`check_rules_with`] for spent outputs given as [`SpentOutput`]s.
///
/// # Errors
/// As [`check_rules_with`].
pub fn check_spent_with(
    block: &Block,
    spent: &[SpentOutput],
    ctx: &Context<'_>,
    pre: Precomputed<'_>,
) -> Result<RulesReport, InputError> {
    let txouts: Vec<TxOut> = spent.iter().map(|s| s.txout.clone()).collect();
    let origins: Vec<CoinOrigin> = spent.iter().map(SpentOutput::origin).collect();
    check_rules_with(block, &txouts, &origins, ctx, pre)
}

/// Checks every rule this crate implements against `block`.
///
/// `spent` holds the output spent by each input of each transaction that is
/// not coinbase-shaped (`Transaction::is_coinbase`), in block order
/// (transaction order, then input order). When an input spends an output
/// created earlier in the same block, the block's own output is authoritative
/// and a disagreeing entry is reported as
/// [`reason::SPENT_OUTPUT_MISMATCH`].
///
/// Rules, in Core's order (Core stops at the first; this reports all):
///
/// * `CheckBlock`: merkle root (`bad-txnmrklroot`) and CVE-2012-2459 mutation
///   (`bad-txns-duplicate`); size (`bad-blk-length`); coinbase placement
///   (`bad-cb-missing`, `bad-cb-multiple`); `CheckTransaction` on each
///   transaction; legacy sigops (`bad-blk-sigops`).
/// * `ContextualCheckBlock`: finality (`bad-txns-nonfinal`), BIP34
///   (`bad-cb-height`), witness commitment (`bad-witness-nonce-size`,
///   `bad-witness-merkle-match`, `unexpected-witness`), weight (`bad-blk-weight`).
/// * `ConnectBlock`: `CheckTxInputs` (`bad-txns-inputs-missingorspent`,
///   `bad-txns-premature-spend-of-coinbase`, `bad-txns-inputvalues-outofrange`,
///   `bad-txns-in-belowout`, `bad-txns-fee-outofrange`), accumulated fees,
///   BIP68 sequence locks (`bad-txns-nonfinal`), full sigop cost
///   (`bad-blk-sigops`), coinbase value (`bad-cb-amount`).
///
/// `bad-txns-BIP30` here means *a txid occurs twice in this block*. Core's
/// BIP30 rule is different: in `ConnectBlock` it rejects a block containing a
/// transaction whose outputs already exist unspent in the UTXO set (same txid
/// as an earlier, not fully spent transaction). That needs the UTXO set, so
/// it is listed as not checked at the heights where Core enforces it (below
/// BIP34 activation except two historic mainnet blocks, from height 1,983,702
/// on mainnet/testnet3, and always on testnet4/signet/regtest, whose
/// `BIP34Hash` is unset). A repeat *within* one block never reaches Core's
/// BIP30 check: identical transactions spend identical outpoints, so Core
/// rejects the second copy as `bad-txns-inputs-missingorspent` (or the merkle
/// tree as mutated); this crate reports that too.
///
/// Out of scope: script execution (`block-script-verify-flag-failed`), the
/// header (proof of work, timestamps, version), and anything needing the
/// UTXO set beyond `spent`.
pub fn check_rules_with(
    block: &Block,
    spent: &[TxOut],
    origins: &[CoinOrigin],
    ctx: &Context<'_>,
    pre: Precomputed<'_>,
) -> Result<RulesReport, InputError> {
    check_impl(block, Some((spent, origins)), ctx, pre)
}

/// The rules that need no spent outputs: Core's `CheckBlock` and
/// `ContextualCheckBlock` (merkle root and CVE-2012-2459 mutation, size,
/// coinbase placement, `CheckTransaction`, legacy sigops, finality against
/// `ctx`'s height and median time past, BIP34 height, witness commitment,
/// weight). What a node without a UTXO set can check before it stores or
/// relays a block; `ConnectBlock`'s rules are left out, not reported as
/// skipped.
///
/// # Errors
/// [`InputError::PrecomputedLength`] when `pre` does not fit the block.
pub fn check_block_rules(block: &Block, ctx: &Context<'_>, pre: Precomputed<'_>) -> Result<RulesReport, InputError> {
    check_impl(block, None, ctx, pre)
}

/// Whether a violation may come from a peer altering a valid block in
/// transit (the transactions no longer match the header's commitments),
/// rather than from the block itself being invalid: Core punishes the peer
/// for these but does not mark the block invalid.
pub fn is_mutation(rule: &str) -> bool {
    matches!(
        rule,
        reason::BAD_TXNMRKLROOT
            | reason::BAD_TXNS_DUPLICATE
            | reason::BAD_WITNESS_MERKLE_MATCH
            | reason::BAD_WITNESS_NONCE_SIZE
            | reason::UNEXPECTED_WITNESS
    )
}

fn check_impl(
    block: &Block,
    spent: Option<(&[TxOut], &[CoinOrigin])>,
    ctx: &Context<'_>,
    pre: Precomputed<'_>,
) -> Result<RulesReport, InputError> {
    let txs = &block.txdata;
    let n = txs.len();
    let expected: usize = txs.iter().skip(1).map(|t| t.input.len()).sum();
    let connect = spent.is_some();
    let (spent, origins) = spent.unwrap_or((&[], &[]));
    if connect && (expected != spent.len() || expected != origins.len()) {
        return Err(InputError::SpentCountMismatch { expected, got: spent.len().min(origins.len()) });
    }
    for (what, len) in [("txids", pre.txids.map(|t| t.len())), ("wtxids", pre.wtxids.map(|t| t.len()))] {
        if let Some(got) = len
            && got != n
        {
            return Err(InputError::PrecomputedLength { what, expected: n, got });
        }
    }

    let dep = ctx.network.deployments();
    let flags = script_flags(ctx.network, ctx.height);
    let mut r = RulesReport { script_flags: flags, ..RulesReport::default() };

    // ---- CheckBlock -------------------------------------------------------
    let computed_txids;
    let txids: &[Txid] = match pre.txids {
        Some(t) => t,
        None => {
            computed_txids = txs.iter().map(Transaction::compute_txid).collect::<Vec<_>>();
            &computed_txids
        }
    };
    let (root, mutated) = merkle::root(txids.iter().map(|t| t.to_byte_array()).collect());
    if root != block.header.merkle_root.to_byte_array() {
        r.violate(reason::BAD_TXNMRKLROOT, None, None, "hashMerkleRoot mismatch".into());
    }
    if mutated {
        r.violate(
            reason::BAD_TXNS_DUPLICATE,
            None,
            None,
            "merkle tree hashes two identical nodes together (CVE-2012-2459)".into(),
        );
    }

    // Sizes, per transaction and for the block (Core: stripped size × 4 and
    // transaction count × 4 against MAX_BLOCK_WEIGHT, then weight).
    let mut base_size = 80 + varint_len(n as u64);
    let mut total_size = base_size;
    for tx in txs {
        let (b, t) = tx_sizes(tx);
        base_size += b;
        total_size += t;
    }
    let weight = base_size.saturating_mul(3).saturating_add(total_size);
    r.weight = weight;
    if n == 0 || (n as u64).saturating_mul(4) > MAX_BLOCK_WEIGHT || base_size.saturating_mul(4) > MAX_BLOCK_WEIGHT {
        r.violate(
            reason::BAD_BLK_LENGTH,
            None,
            None,
            format!("{n} transactions, stripped size {base_size} bytes (limit {})", MAX_BLOCK_WEIGHT / 4),
        );
    }
    if n == 0 {
        return Ok(r);
    }

    let has_coinbase = txs[0].is_coinbase();
    if !has_coinbase {
        r.violate(reason::BAD_CB_MISSING, Some(0), None, "first tx is not coinbase".into());
    }
    for (i, tx) in txs.iter().enumerate().skip(1) {
        if tx.is_coinbase() {
            r.violate(reason::BAD_CB_MULTIPLE, Some(i), None, "more than one coinbase".into());
        }
    }

    // Core never runs the input/value rules on a transaction that failed
    // CheckTransaction; remember which did.
    let mut tx_ok = Vec::with_capacity(n);
    let mut legacy_total = 0u64;
    for (i, tx) in txs.iter().enumerate() {
        tx_ok.push(check_transaction(tx, i, &mut r));
        legacy_total += legacy_sigops(tx);
    }
    // CheckBlock's own sigop test is the legacy count × 4; the full cost
    // computed below includes it, so one report covers both.

    // A txid seen twice in one block (see the doc comment on BIP30).
    let mut txid_index: HashMap<Txid, usize> = HashMap::with_capacity(n);
    for (i, txid) in txids.iter().enumerate() {
        if let Some(first) = txid_index.insert(*txid, i) {
            r.violate(reason::BAD_TXNS_BIP30, Some(i), None, format!("txid {txid} already at index {first}"));
            // Keep the first occurrence: spends resolve against it.
            txid_index.insert(*txid, first);
        }
    }

    // ---- ContextualCheckBlock --------------------------------------------
    let csv_active = ctx.height >= dep.csv;
    for (i, tx) in txs.iter().enumerate() {
        check_final(tx, i, ctx, csv_active, block.header.time, &mut r);
    }

    if has_coinbase && ctx.height >= dep.bip34 {
        let (prefix, len) = bip34_prefix(ctx.height);
        let sig = txs[0].input.first().map(|i| i.script_sig.as_bytes()).unwrap_or(&[]);
        if !sig.starts_with(&prefix[..len]) {
            r.violate(
                reason::BAD_CB_HEIGHT,
                Some(0),
                None,
                format!("block height mismatch in coinbase (height {})", ctx.height),
            );
        }
    }

    check_witness(block, ctx.height >= dep.segwit, txids, pre.wtxids, &mut r);

    if weight > MAX_BLOCK_WEIGHT {
        r.violate(reason::BAD_BLK_WEIGHT, None, None, format!("weight {weight} > {MAX_BLOCK_WEIGHT}"));
    }

    if !connect {
        // CheckBlock's own sigop limit (legacy count × 4); with spent
        // outputs the full cost below covers it.
        let legacy_cost = legacy_total.saturating_mul(script::WITNESS_SCALE_FACTOR);
        r.sigop_limit(legacy_cost, "legacy sigop cost", String::new());
        return Ok(r);
    }

    // ---- ConnectBlock -----------------------------------------------------
    let mut spent_by: HashMap<OutPoint, usize> = HashMap::with_capacity(spent.len());
    let mut cursor = 0usize;
    let mut fees: u64 = 0;
    let mut fees_known = true;
    let mut fee_overflow_reported = false;
    let mut sigop_cost = legacy_total.saturating_mul(script::WITNESS_SCALE_FACTOR);

    for (i, tx) in txs.iter().enumerate() {
        // Positional, as the spent-outputs files are: every transaction but
        // the first has entries (a coinbase-shaped one elsewhere is already
        // `bad-cb-multiple`, and its null prevout is reported below).
        if i == 0 {
            continue;
        }
        let end = cursor + tx.input.len();
        let (Some(entries), Some(entry_origins)) = (spent.get(cursor..end), origins.get(cursor..end)) else { break };
        cursor = end;

        let mut inputs_ok = tx_ok.get(i).copied().unwrap_or(false);
        let mut value_in: u64 = 0;
        let mut range_ok = true;
        let mut dup_reported = false;
        // BIP68 running maxima, Core's -1 start meaning "no constraint".
        let mut min_height: i64 = -1;
        let mut min_time: i64 = -1;
        let bip68 = csv_active && (tx.version.0 as u32) >= 2;

        for (j, ((input, entry_txout), origin)) in tx.input.iter().zip(entries).zip(entry_origins).enumerate() {
            let op = input.previous_output;

            match spent_by.insert(op, i) {
                Some(prev) if prev == i => {
                    if !dup_reported {
                        r.violate(reason::BAD_TXNS_INPUTS_DUPLICATE, Some(i), Some(j), format!("{op} spent twice"));
                        dup_reported = true;
                    }
                    inputs_ok = false;
                }
                Some(prev) => {
                    r.violate(
                        reason::BAD_TXNS_INPUTS_MISSINGORSPENT,
                        Some(i),
                        Some(j),
                        format!("{op} already spent by tx {prev} of this block"),
                    );
                    inputs_ok = false;
                }
                None => {}
            }

            // Resolve the coin: an output of an earlier transaction of this
            // block is what Core's view holds; otherwise the caller's entry.
            let (coin, coin_is_cb, coin_height): (&TxOut, bool, Option<u32>) = match txid_index.get(&op.txid) {
                Some(&k) if k >= i => {
                    r.violate(
                        reason::BAD_TXNS_INPUTS_MISSINGORSPENT,
                        Some(i),
                        Some(j),
                        format!("{op} is created by tx {k}, which is not earlier in the block"),
                    );
                    inputs_ok = false;
                    (entry_txout, origin.is_coinbase, origin.creation_height)
                }
                Some(&k) => match usize::try_from(op.vout).ok().and_then(|v| txs[k].output.get(v)) {
                    Some(out) => {
                        if out != entry_txout {
                            r.violate(
                                reason::SPENT_OUTPUT_MISMATCH,
                                Some(i),
                                Some(j),
                                format!(
                                    "spent entry ({} sat) differs from in-block output {op} ({} sat or script)",
                                    entry_txout.value.to_sat(),
                                    out.value.to_sat()
                                ),
                            );
                        }
                        (out, k == 0 && has_coinbase, Some(ctx.height))
                    }
                    None => {
                        r.violate(
                            reason::BAD_TXNS_INPUTS_MISSINGORSPENT,
                            Some(i),
                            Some(j),
                            format!("{op}: tx {k} has only {} outputs", txs[k].output.len()),
                        );
                        inputs_ok = false;
                        (entry_txout, origin.is_coinbase, origin.creation_height)
                    }
                },
                None => (entry_txout, origin.is_coinbase, origin.creation_height),
            };

            sigop_cost =
                sigop_cost.saturating_add(input_sigop_cost(input.script_sig.as_bytes(), &input.witness, coin, flags));

            if coin_is_cb {
                match coin_height {
                    Some(h) => {
                        let depth = i64::from(ctx.height) - i64::from(h);
                        if depth < i64::from(COINBASE_MATURITY) {
                            r.violate(
                                reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
                                Some(i),
                                Some(j),
                                format!("tried to spend coinbase at depth {depth}"),
                            );
                        }
                    }
                    None => r.skip(
                        reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
                        "creation_height of a spent coinbase output is unknown",
                        Some(i),
                    ),
                }
            }

            let v = coin.value.to_sat();
            value_in = value_in.saturating_add(v);
            if range_ok && (v > MAX_MONEY || value_in > MAX_MONEY) {
                r.violate(
                    reason::BAD_TXNS_INPUTVALUES_OUTOFRANGE,
                    Some(i),
                    Some(j),
                    format!("input value {v} sat / running total {value_in} sat exceeds MAX_MONEY"),
                );
                range_ok = false;
            }

            let seq = input.sequence.0;
            if bip68 && seq & SEQUENCE_LOCKTIME_DISABLE_FLAG == 0 {
                match coin_height {
                    None => r.skip(
                        reason::BAD_TXNS_NONFINAL,
                        "BIP68 relative lock on an input whose creation_height is unknown",
                        Some(i),
                    ),
                    Some(ch) => {
                        let units = i64::from(seq & SEQUENCE_LOCKTIME_MASK);
                        if seq & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
                            // Time lock, measured from the MTP of the block
                            // before the coin's block.
                            match ctx.mtp_at(ch.saturating_sub(1)) {
                                Some(t) => {
                                    let lock = i64::from(t) + (units << SEQUENCE_LOCKTIME_GRANULARITY) - 1;
                                    min_time = min_time.max(lock);
                                }
                                None => r.skip(
                                    reason::BAD_TXNS_NONFINAL,
                                    "BIP68 time lock needs the MTP of the block before the spent coin's block",
                                    Some(i),
                                ),
                            }
                        } else {
                            min_height = min_height.max(i64::from(ch) + units - 1);
                        }
                    }
                }
            }
        }

        // EvaluateSequenceLocks: the block must be past both maxima.
        if min_height >= i64::from(ctx.height) {
            r.violate(
                reason::BAD_TXNS_NONFINAL,
                Some(i),
                None,
                format!("BIP68 height lock: needs height > {min_height}, block is {}", ctx.height),
            );
        }
        if min_time >= 0 {
            match ctx.median_time_past {
                Some(mtp) if min_time >= i64::from(mtp) => r.violate(
                    reason::BAD_TXNS_NONFINAL,
                    Some(i),
                    None,
                    format!("BIP68 time lock: needs MTP > {min_time}, previous block MTP is {mtp}"),
                ),
                Some(_) => {}
                None => r.skip(reason::BAD_TXNS_NONFINAL, "BIP68 time lock needs the previous block's MTP", Some(i)),
            }
        }

        // CheckTxInputs value rules; only meaningful when every coin exists
        // and the outputs passed CheckTransaction's range checks.
        let value_out = outputs_total(tx);
        match (inputs_ok && range_ok, value_out) {
            (true, Some(out)) => {
                if value_in < out {
                    r.violate(
                        reason::BAD_TXNS_IN_BELOWOUT,
                        Some(i),
                        None,
                        format!("value in ({value_in} sat) < value out ({out} sat)"),
                    );
                    fees_known = false;
                } else {
                    let fee = value_in - out;
                    if fee > MAX_MONEY {
                        // Unreachable after the input-range check; kept
                        // because Core keeps it.
                        r.violate(reason::BAD_TXNS_FEE_OUTOFRANGE, Some(i), None, format!("fee {fee} sat"));
                        fees_known = false;
                    } else {
                        fees = fees.saturating_add(fee);
                        if fees > MAX_MONEY && !fee_overflow_reported {
                            r.violate(
                                reason::BAD_TXNS_ACCUMULATED_FEE_OUTOFRANGE,
                                Some(i),
                                None,
                                format!("block fees reach {fees} sat"),
                            );
                            fee_overflow_reported = true;
                        }
                    }
                }
            }
            _ => fees_known = false,
        }
    }

    r.fees = fees;
    r.sigop_limit(sigop_cost, "sigop cost", format!(" (legacy part {})", legacy_total * 4));

    #[allow(clippy::collapsible_match)] // the guard must not include `paid > limit`
    if has_coinbase {
        let limit = fees.saturating_add(block_subsidy(ctx.network, ctx.height));
        match outputs_total(&txs[0]) {
            Some(paid) if fees_known && !fee_overflow_reported => {
                if paid > limit {
                    r.violate(
                        reason::BAD_CB_AMOUNT,
                        Some(0),
                        None,
                        format!("coinbase pays too much (actual={paid} vs limit={limit})"),
                    );
                }
            }
            Some(_) => r.skip(
                reason::BAD_CB_AMOUNT,
                "block fees unknown: a transaction failed its input or value checks",
                None,
            ),
            // Coinbase outputs out of range: already reported by CheckTransaction.
            None => {}
        }
    }

    if bip30_enforced(ctx.network, ctx.height) {
        r.skip(
            reason::BAD_TXNS_BIP30,
            "Core checks at this height that no output of the block already exists unspent in the UTXO set",
            None,
        );
    }

    Ok(r)
}

/// Whether Core's `ConnectBlock` runs its BIP30 UTXO-overwrite check at this
/// height. After BIP34 every coinbase is unique, so Core skips the check on
/// chains whose BIP34 block hash it knows (mainnet, testnet3) — until height
/// 1,983,702, where heights encoded before BIP34 could first repeat.
/// Testnet4, signet and regtest leave `BIP34Hash` unset, so Core always checks.
/// (The two mainnet blocks exempted by hash, 91842 and 91880, are reported
/// as not checked here too.)
fn bip30_enforced(network: Network, height: u32) -> bool {
    const BIP34_IMPLIES_BIP30_LIMIT: u32 = 1_983_702;
    match network {
        Network::Mainnet | Network::Testnet3 => {
            height < network.deployments().bip34 || height >= BIP34_IMPLIES_BIP30_LIMIT
        }
        Network::Testnet4 | Network::Signet | Network::Regtest => true,
    }
}

/// Core's `CheckTransaction`, minus the duplicate-input test, which
/// [`check_rules_with`] does while tracking spends across the block.
/// Returns whether the transaction passed.
fn check_transaction(tx: &Transaction, i: usize, r: &mut RulesReport) -> bool {
    let before = r.violations.len();
    if tx.input.is_empty() {
        r.violate(reason::BAD_TXNS_VIN_EMPTY, Some(i), None, String::new());
    }
    if tx.output.is_empty() {
        r.violate(reason::BAD_TXNS_VOUT_EMPTY, Some(i), None, String::new());
    }
    // The stripped size: the witness is not yet known to be unmalleated here.
    let (base, _) = tx_sizes(tx);
    if base.saturating_mul(4) > MAX_BLOCK_WEIGHT {
        r.violate(reason::BAD_TXNS_OVERSIZE, Some(i), None, format!("stripped size {base} bytes"));
    }

    // Core reads amounts as int64; a value with the top bit set is negative.
    let mut total: u64 = 0;
    for out in &tx.output {
        let v = out.value.to_sat();
        if v > i64::MAX as u64 {
            r.violate(reason::BAD_TXNS_VOUT_NEGATIVE, Some(i), None, format!("output value {}", v as i64));
            break;
        }
        if v > MAX_MONEY {
            r.violate(reason::BAD_TXNS_VOUT_TOOLARGE, Some(i), None, format!("output value {v} sat"));
            break;
        }
        total += v; // both terms <= MAX_MONEY: no overflow
        if total > MAX_MONEY {
            r.violate(reason::BAD_TXNS_TXOUTTOTAL_TOOLARGE, Some(i), None, format!("outputs total {total} sat"));
            break;
        }
    }

    if tx.is_coinbase() {
        let len = tx.input.first().map_or(0, |i| i.script_sig.len());
        if !(2..=100).contains(&len) {
            r.violate(reason::BAD_CB_LENGTH, Some(i), None, format!("coinbase scriptSig is {len} bytes"));
        }
    } else if let Some(j) = tx.input.iter().position(|inp| inp.previous_output.is_null()) {
        r.violate(reason::BAD_TXNS_PREVOUT_NULL, Some(i), Some(j), String::new());
    }
    r.violations.len() == before
}

/// Sum of outputs when every value and the total are within MAX_MONEY.
fn outputs_total(tx: &Transaction) -> Option<u64> {
    let mut total: u64 = 0;
    for out in &tx.output {
        let v = out.value.to_sat();
        if v > MAX_MONEY {
            return None;
        }
        total += v;
        if total > MAX_MONEY {
            return None;
        }
    }
    Some(total)
}

/// Core's `IsFinalTx` with the cutoff `ContextualCheckBlock` uses: the
/// previous block's MTP once CSV (BIP113) is active, the header time before.
fn check_final(tx: &Transaction, i: usize, ctx: &Context<'_>, csv_active: bool, header_time: u32, r: &mut RulesReport) {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 || tx.input.iter().all(|inp| inp.sequence.0 == SEQUENCE_FINAL) {
        return;
    }
    if lock < LOCKTIME_THRESHOLD {
        if lock >= ctx.height {
            r.violate(
                reason::BAD_TXNS_NONFINAL,
                Some(i),
                None,
                format!("nLockTime height {lock} not below block height {}", ctx.height),
            );
        }
        return;
    }
    let cutoff = if csv_active { ctx.median_time_past } else { Some(header_time) };
    match cutoff {
        Some(c) if lock >= c => {
            r.violate(reason::BAD_TXNS_NONFINAL, Some(i), None, format!("nLockTime time {lock} not below cutoff {c}"))
        }
        Some(_) => {}
        // A valid header's time exceeds the previous MTP, so a lock at or
        // past the header time is non-final whatever the MTP is.
        None if lock >= header_time => r.violate(
            reason::BAD_TXNS_NONFINAL,
            Some(i),
            None,
            format!("nLockTime time {lock} not below header time {header_time}, hence not below MTP"),
        ),
        None => r.skip(
            reason::BAD_TXNS_NONFINAL,
            "time-based nLockTime below the header time needs the previous block's MTP (BIP113)",
            Some(i),
        ),
    }
}

/// Witness commitment rules of `ContextualCheckBlock` (Core's
/// `CheckWitnessMalleation`). Once segwit is active, a coinbase output
/// `OP_RETURN 0x24 aa21a9ed <32 bytes>` (the last one, if several) commits to
/// the witness merkle root (coinbase wtxid taken as zero) hashed with the
/// coinbase's single 32-byte witness item. Without such a commitment no
/// transaction may carry witness data, or the data would be free, unbound
/// block space.
fn check_witness(block: &Block, segwit_active: bool, txids: &[Txid], wtxids: Option<&[Wtxid]>, r: &mut RulesReport) {
    let txs = &block.txdata;
    let Some(cb) = txs.first() else { return };
    let commit = cb
        .output
        .iter()
        .rev()
        .map(|o| o.script_pubkey.as_bytes())
        .find(|s| s.len() >= 38 && s[..6] == WITNESS_COMMITMENT_HEADER);

    if let (true, Some(commit)) = (segwit_active, commit) {
        let nonce = cb.input.first().map(|i| &i.witness).filter(|w| w.len() == 1).and_then(|w| w.nth(0));
        let Some(nonce) = nonce.filter(|n| n.len() == 32) else {
            r.violate(
                reason::BAD_WITNESS_NONCE_SIZE,
                Some(0),
                Some(0),
                "coinbase witness must be exactly one 32-byte item".into(),
            );
            return;
        };
        let leaves: Vec<[u8; 32]> = txs
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                if i == 0 {
                    [0u8; 32]
                } else if let Some(w) = wtxids.and_then(|w| w.get(i)) {
                    w.to_byte_array()
                } else if has_witness(tx) {
                    tx.compute_wtxid().to_byte_array()
                } else {
                    // Without witness data the wtxid is the txid (Core's
                    // ComputeWitnessHash); rust-bitcoin would hash a
                    // zero-input tx in segwit form instead.
                    txids.get(i).map_or_else(|| tx.compute_txid().to_byte_array(), |t| t.to_byte_array())
                }
            })
            .collect();
        // Mutation is not checked here: the txid tree already rules it out.
        let (wroot, _) = merkle::root(leaves);
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&wroot);
        buf[32..].copy_from_slice(nonce);
        let expected = sha256d::Hash::hash(&buf).to_byte_array();
        if commit[6..38] != expected {
            r.violate(reason::BAD_WITNESS_MERKLE_MATCH, Some(0), None, "witness merkle commitment mismatch".into());
        }
        return;
    }

    if let Some(i) = txs.iter().position(has_witness) {
        r.violate(
            reason::UNEXPECTED_WITNESS,
            Some(i),
            None,
            if segwit_active {
                "witness data but no witness commitment"
            } else {
                "witness data before segwit activation"
            }
            .into(),
        );
    }
}

/// Core's `CTransaction::HasWitness`: any input with a non-empty witness stack.
fn has_witness(tx: &Transaction) -> bool {
    tx.input.iter().any(|i| !i.witness.is_empty())
}

/// Stripped and total serialized size of a transaction, as Core serializes
/// it (segwit marker and flag only when some input has witness data).
fn tx_sizes(tx: &Transaction) -> (u64, u64) {
    let base = tx.base_size() as u64;
    if has_witness(tx) {
        let wit: u64 = tx.input.iter().map(|i| i.witness.size() as u64).sum();
        (base, base + 2 + wit)
    } else {
        (base, base)
    }
}

fn varint_len(n: u64) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}
