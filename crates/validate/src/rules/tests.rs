//! Tests on real mainnet blocks and on mutations of them, one or more per rule.
//!
//! Data: `block_<h>.raw.zst` and `block_<h>.spent_utxos.json.zst` in the
//! repository's `tests/data/mainnet`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bitcoin::absolute::LockTime;
use bitcoin::consensus::deserialize;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::transaction::Version;
use bitcoin::{Amount, Block, OutPoint, ScriptBuf, Sequence, TxOut, Witness};
use serde::Deserialize;

use super::*;

fn data_dir() -> PathBuf {
    kiln_testkit::data::path("mainnet")
}

#[derive(Deserialize)]
struct JsonTxOut {
    value: u64,
    script_pubkey: String,
}

#[derive(Deserialize)]
struct JsonSpent {
    txout: JsonTxOut,
    is_coinbase: bool,
    creation_height: Option<u32>,
    creation_time: Option<u32>,
}

fn read_zst(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("test data {} missing: {e}", path.display()));
    zstd::decode_all(&raw[..]).expect("zstd")
}

fn load(height: u32) -> (Block, Vec<SpentOutput>) {
    let block: Block = deserialize(&read_zst(&format!("block_{height}.raw.zst"))).expect("block");
    let json: Vec<JsonSpent> =
        serde_json::from_slice(&read_zst(&format!("block_{height}.spent_utxos.json.zst"))).expect("json");
    let spent = json
        .into_iter()
        .map(|s| SpentOutput {
            txout: TxOut {
                value: Amount::from_sat(s.txout.value),
                script_pubkey: ScriptBuf::from_bytes(hex::decode(s.txout.script_pubkey).expect("hex")),
            },
            is_coinbase: s.is_coinbase,
            creation_height: s.creation_height,
            creation_time: s.creation_time,
        })
        .collect();
    (block, spent)
}

const H: u32 = 866_342;

fn ctx(height: u32) -> Context<'static> {
    Context::new(Network::Mainnet, height)
}

fn rules(r: &RulesReport) -> BTreeSet<&'static str> {
    r.violations.iter().map(|v| v.rule).collect()
}

fn set(v: &[&'static str]) -> BTreeSet<&'static str> {
    v.iter().copied().collect()
}

fn check(block: &Block, spent: &[SpentOutput], height: u32) -> RulesReport {
    check_rules(block, spent, &ctx(height)).expect("input shape")
}

/// Recomputes the witness commitment (Core's way: wtxid = txid without
/// witness data) and the header merkle root after a mutation, so a test sees
/// only the violation it introduced.
fn reseal(block: &mut Block) {
    let pos = block.txdata[0]
        .output
        .iter()
        .rposition(|o| o.script_pubkey.len() >= 38 && o.script_pubkey.as_bytes()[..6] == WITNESS_COMMITMENT_HEADER);
    if let Some(pos) = pos {
        let leaves = block
            .txdata
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                if i == 0 {
                    [0; 32]
                } else if has_witness(tx) {
                    tx.compute_wtxid().to_byte_array()
                } else {
                    tx.compute_txid().to_byte_array()
                }
            })
            .collect();
        let (root, _) = merkle::root(leaves);
        let nonce = block.txdata[0].input[0].witness.nth(0).expect("nonce").to_vec();
        let mut buf = root.to_vec();
        buf.extend_from_slice(&nonce);
        let c = sha256d::Hash::hash(&buf).to_byte_array();
        let mut spk = block.txdata[0].output[pos].script_pubkey.to_bytes();
        spk[6..38].copy_from_slice(&c);
        block.txdata[0].output[pos].script_pubkey = ScriptBuf::from_bytes(spk);
    }
    block.header.merkle_root = block.compute_merkle_root().expect("non-empty");
}

/// Index in `spent` of the first input of transaction `i`.
fn spent_offset(block: &Block, i: usize) -> usize {
    block.txdata[..i].iter().filter(|t| !t.is_coinbase()).map(|t| t.input.len()).sum()
}

/// First non-coinbase tx (from `from`) all of whose inputs come from outside
/// the block and that satisfies `pred`.
fn external_tx(block: &Block, from: usize, pred: impl Fn(&bitcoin::Transaction) -> bool) -> usize {
    let txids: BTreeSet<_> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    (from.max(1)..block.txdata.len())
        .find(|&i| {
            let tx = &block.txdata[i];
            tx.input.iter().all(|inp| !txids.contains(&inp.previous_output.txid)) && pred(tx)
        })
        .expect("suitable tx")
}

// ---- real blocks -----------------------------------------------------------

#[test]
fn block_866342_passes() {
    let (block, spent) = load(H);
    let r = check(&block, &spent, H);
    assert_eq!(r.violations, vec![], "{:#?}", r.violations);
    eprintln!("866342: not_checked {:?}", r.not_checked);
    // Anything skipped may only be for lack of time context (no MTP given).
    assert!(r.not_checked.iter().all(|n| n.rule == reason::BAD_TXNS_NONFINAL));
    let cb_value: u64 = block.txdata[0].output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(cb_value, 317_526_183);
    assert_eq!(block_subsidy(Network::Mainnet, H), 312_500_000);
    assert_eq!(r.fees + 312_500_000, cb_value);
    assert_eq!(r.weight, block.weight().to_wu());
    assert!(r.sigop_cost > 0 && r.sigop_cost <= MAX_BLOCK_SIGOPS_COST);
    assert_eq!(r.script_flags, 0x2_0000 | 0x800 | 0x400 | 0x200 | 0x10 | 0x4 | 0x1);

    // With an MTP just below the header time every time lock is decidable
    // and the block still passes.
    let c = Context { median_time_past: Some(block.header.time - 1), ..ctx(H) };
    let r2 = check_rules(&block, &spent, &c).unwrap();
    assert!(r2.violations.is_empty());
}

#[test]
fn block_367891_passes() {
    let (block, spent) = load(367_891);
    let r = check(&block, &spent, 367_891);
    assert_eq!(r.violations, vec![], "{:#?}", r.violations);
    // Pre-CSV: lock times are judged against the header time, so nothing
    // needs MTP.
    assert_eq!(r.not_checked, vec![]);
    let cb_value: u64 = block.txdata[0].output.iter().map(|o| o.value.to_sat()).sum();
    assert!(cb_value <= r.fees + 25 * COIN);
    assert_eq!(r.script_flags, flags::P2SH | flags::WITNESS | flags::TAPROOT | flags::DERSIG);
}

#[test]
fn precomputed_txids_give_same_report() {
    let (block, spent) = load(H);
    let txids: Vec<_> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    let wtxids: Vec<_> = block.txdata.iter().map(|t| t.compute_wtxid()).collect();
    let pre = Precomputed { txids: Some(&txids), wtxids: Some(&wtxids) };
    let a = check_spent_with(&block, &spent, &ctx(H), pre).unwrap();
    let b = check(&block, &spent, H);
    assert_eq!(a, b);
    let short = Precomputed { txids: Some(&txids[1..]), wtxids: None };
    assert!(matches!(
        check_spent_with(&block, &spent, &ctx(H), short),
        Err(InputError::PrecomputedLength { what: "txids", .. })
    ));
}

#[test]
fn spent_count_mismatch_is_an_error() {
    let (block, mut spent) = load(H);
    spent.pop();
    assert!(matches!(check_rules(&block, &spent, &ctx(H)), Err(InputError::SpentCountMismatch { .. })));
}

// ---- CheckBlock -------------------------------------------------------------

#[test]
fn bad_txnmrklroot() {
    let (mut block, spent) = load(H);
    block.header.merkle_root = bitcoin::TxMerkleNode::all_zeros();
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNMRKLROOT]));
}

#[test]
fn cve_2012_2459_duplicate_tail_keeps_root_and_is_rejected() {
    let (mut block, mut spent) = load(H);
    let n = block.txdata.len();
    // Repeating the last 2^k transactions, where n = m·2^k with m odd and
    // > 1, reproduces the padding Core adds at level k: same root.
    let k = n.trailing_zeros();
    let run = 1usize << k;
    assert!((n >> k) > 1, "n = {n} is a power of two");
    eprintln!("866342 has {n} txs; repeating the last {run}");
    let tail: Vec<_> = block.txdata[n - run..].to_vec();
    let tail_spent: Vec<_> = spent[spent_offset(&block, n - run)..].to_vec();
    block.txdata.extend(tail);
    spent.extend(tail_spent);
    assert!(block.check_merkle_root(), "merkle root must be unchanged");
    let r = check(&block, &spent, H);
    assert!(r.has(reason::BAD_TXNS_DUPLICATE), "{:?}", rules(&r));
    assert!(!r.has(reason::BAD_TXNMRKLROOT));
    // The copies are also repeated txids and double spends.
    assert!(r.has(reason::BAD_TXNS_BIP30));
    assert!(r.has(reason::BAD_TXNS_INPUTS_MISSINGORSPENT));
}

#[test]
fn bad_txns_duplicate_exactly_256_when_shape_allows() {
    // The brief's form: append the last 256 txs. Only root-preserving when
    // the tx count is an odd multiple (> 1) of 256; otherwise the merkle root
    // changes and the block is bad-txnmrklroot instead.
    let (mut block, mut spent) = load(H);
    let n = block.txdata.len();
    let tail: Vec<_> = block.txdata[n - 256..].to_vec();
    let tail_spent: Vec<_> = spent[spent_offset(&block, n - 256)..].to_vec();
    block.txdata.extend(tail);
    spent.extend(tail_spent);
    let r = check(&block, &spent, H);
    if n % 512 == 256 && n > 256 {
        assert!(r.has(reason::BAD_TXNS_DUPLICATE));
        assert!(!r.has(reason::BAD_TXNMRKLROOT));
    } else {
        assert!(r.has(reason::BAD_TXNMRKLROOT), "{:?}", rules(&r));
    }
}

#[test]
fn bad_blk_length_no_transactions() {
    let (mut block, _) = load(H);
    block.txdata.clear();
    let r = check(&block, &[], H);
    assert_eq!(rules(&r), set(&[reason::BAD_TXNMRKLROOT, reason::BAD_BLK_LENGTH]));
}

#[test]
fn bad_blk_length_stripped_size() {
    let (mut block, spent) = load(H);
    // Under the per-tx limit but pushes the stripped block over 1 MB.
    let i = external_tx(&block, 1, |_| true);
    block.txdata[i]
        .output
        .push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0x6a; 990_000]) });
    reseal(&mut block);
    let r = check(&block, &spent, H);
    // A stripped size over 1 MB necessarily means weight over 4 MWU.
    assert_eq!(rules(&r), set(&[reason::BAD_BLK_LENGTH, reason::BAD_BLK_WEIGHT]));
}

#[test]
fn bad_cb_missing() {
    let (mut block, mut spent) = load(H);
    block.txdata.remove(0);
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    // Positional: the first transaction has no entries, whatever it is.
    spent.drain(..block.txdata[0].input.len());
    let r = check(&block, &spent, H);
    assert!(r.has(reason::BAD_CB_MISSING), "{:?}", rules(&r));
}

#[test]
fn bad_cb_multiple() {
    let (mut block, mut spent) = load(H);
    let cb = block.txdata[0].clone();
    block.txdata.insert(1, cb);
    reseal(&mut block);
    // Positional: the second coinbase's one input has an entry too.
    spent.insert(0, spent[0].clone());
    let r = check(&block, &spent, H);
    assert!(r.has(reason::BAD_CB_MULTIPLE), "{:?}", rules(&r));
}

#[test]
fn bad_cb_length() {
    let (mut block, spent) = load(H);
    let mut sig = block.txdata[0].input[0].script_sig.to_bytes();
    sig.resize(101, 0);
    block.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(sig);
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_CB_LENGTH]));
}

#[test]
fn bad_txns_vin_empty() {
    let (mut block, mut spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    let off = spent_offset(&block, i);
    let k = block.txdata[i].input.len();
    spent.drain(off..off + k);
    block.txdata[i].input.clear();
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_VIN_EMPTY]));
}

#[test]
fn bad_txns_vout_empty() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    block.txdata[i].output.clear();
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_VOUT_EMPTY]));
}

#[test]
fn bad_txns_oversize() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    block.txdata[i]
        .output
        .push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0x6a; 1_000_001]) });
    reseal(&mut block);
    let r = check(&block, &spent, H);
    assert!(r.has(reason::BAD_TXNS_OVERSIZE), "{:?}", rules(&r));
}

#[test]
fn bad_txns_vout_toolarge() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    block.txdata[i].output[0].value = Amount::from_sat(MAX_MONEY + 1);
    reseal(&mut block);
    let r = check(&block, &spent, H);
    assert_eq!(rules(&r), set(&[reason::BAD_TXNS_VOUT_TOOLARGE]));
    // Fees of that tx are unknown, so the coinbase limit is undecidable.
    assert!(r.not_checked.iter().any(|n| n.rule == reason::BAD_CB_AMOUNT));
}

#[test]
fn bad_txns_vout_negative() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    block.txdata[i].output[0].value = Amount::from_sat(u64::MAX);
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_VOUT_NEGATIVE]));
}

#[test]
fn bad_txns_txouttotal_toolarge() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    let spk = block.txdata[i].output[0].script_pubkey.clone();
    block.txdata[i].output = vec![
        TxOut { value: Amount::from_sat(15_000_000 * COIN), script_pubkey: spk.clone() },
        TxOut { value: Amount::from_sat(15_000_000 * COIN), script_pubkey: spk },
    ];
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_TXOUTTOTAL_TOOLARGE]));
}

#[test]
fn bad_txns_inputs_duplicate() {
    let (mut block, mut spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    let off = spent_offset(&block, i);
    let inp = block.txdata[i].input[0].clone();
    block.txdata[i].input.insert(1, inp);
    let e = spent[off].clone();
    spent.insert(off + 1, e);
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_INPUTS_DUPLICATE]));
}

#[test]
fn bad_txns_prevout_null() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |t| t.input.len() >= 2);
    block.txdata[i].input[1].previous_output = OutPoint::null();
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_PREVOUT_NULL]));
}

#[test]
fn bad_txns_bip30_repeated_txid_in_block() {
    let (mut block, mut spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    let tx = block.txdata[i].clone();
    let off = spent_offset(&block, i);
    let entries: Vec<_> = spent[off..off + tx.input.len()].to_vec();
    block.txdata.push(tx);
    spent.extend(entries);
    reseal(&mut block);
    let r = check(&block, &spent, H);
    // As in Core, the copy is also a double spend.
    assert_eq!(rules(&r), set(&[reason::BAD_TXNS_BIP30, reason::BAD_TXNS_INPUTS_MISSINGORSPENT]));
}

#[test]
fn bip30_utxo_check_listed_as_not_checked_where_core_runs_it() {
    let (block, spent) = load(367_891);
    // Same block judged as if at a height where Core runs the UTXO check.
    let c = Context::new(Network::Regtest, 367_891);
    let r = check_rules(&block, &spent, &c).unwrap();
    assert!(r.not_checked.iter().any(|n| n.rule == reason::BAD_TXNS_BIP30));
    assert!(!bip30_enforced(Network::Mainnet, H));
    assert!(bip30_enforced(Network::Mainnet, 227_930));
    assert!(bip30_enforced(Network::Mainnet, 1_983_702));
}

#[test]
fn bad_blk_sigops() {
    let (mut block, mut spent) = load(H);
    // The block is nearly full: drop trailing transactions (nothing later
    // can spend them) to make room for the extra output.
    while block.weight().to_wu() > MAX_BLOCK_WEIGHT - 10_000 {
        let tx = block.txdata.pop().unwrap();
        spent.truncate(spent.len() - tx.input.len());
    }
    let i = external_tx(&block, 1, |_| true);
    // 1,001 bare CHECKMULTISIGs count 20 each: 20,020 legacy sigops × 4.
    block.txdata[i].output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0xae; 1_001]) });
    // The dropped fees leave the coinbase overpaying; take them out of it.
    let r0 = check(&block, &spent, H);
    let paid: u64 = block.txdata[0].output.iter().map(|o| o.value.to_sat()).sum();
    let excess = paid - (r0.fees + block_subsidy(Network::Mainnet, H));
    block.txdata[0].output[0].value = Amount::from_sat(block.txdata[0].output[0].value.to_sat() - excess);
    reseal(&mut block);
    let r = check(&block, &spent, H);
    assert_eq!(rules(&r), set(&[reason::BAD_BLK_SIGOPS]));
    assert!(r.sigop_cost > MAX_BLOCK_SIGOPS_COST);
}

// ---- ContextualCheckBlock ----------------------------------------------------

#[test]
fn bad_cb_height() {
    let (block, spent) = load(H);
    let r = check(&block, &spent, H + 1);
    assert_eq!(rules(&r), set(&[reason::BAD_CB_HEIGHT]));
    // Before BIP34 the prefix is not required.
    let (b2, s2) = load(367_891);
    assert!(check(&b2, &s2, 367_891).is_valid());
}

#[test]
fn bad_blk_weight() {
    let (mut block, spent) = load(H);
    let i = (1..block.txdata.len()).find(|&i| has_witness(&block.txdata[i])).unwrap();
    let mut w = block.txdata[i].input[0].witness.to_vec();
    w.insert(0, vec![0u8; 3_500_000]);
    block.txdata[i].input[0].witness = Witness::from_slice(&w);
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_BLK_WEIGHT]));
}

#[test]
fn unexpected_witness_without_commitment() {
    let (mut block, spent) = load(H);
    block.txdata[0]
        .output
        .retain(|o| !(o.script_pubkey.len() >= 38 && o.script_pubkey.as_bytes()[..6] == WITNESS_COMMITMENT_HEADER));
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::UNEXPECTED_WITNESS]));
}

#[test]
fn unexpected_witness_before_segwit() {
    let (mut block, spent) = load(367_891);
    block.txdata[1].input[0].witness = Witness::from_slice(&[vec![1u8; 10]]);
    // Witness data does not change txids: merkle root stays valid.
    assert_eq!(rules(&check(&block, &spent, 367_891)), set(&[reason::UNEXPECTED_WITNESS]));
}

#[test]
fn bad_witness_nonce_size() {
    let (mut block, spent) = load(H);
    block.txdata[0].input[0].witness = Witness::from_slice(&[vec![0u8; 31]]);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_WITNESS_NONCE_SIZE]));
}

#[test]
fn bad_witness_merkle_match() {
    let (mut block, spent) = load(H);
    let i = (1..block.txdata.len()).find(|&i| has_witness(&block.txdata[i])).unwrap();
    let mut w = block.txdata[i].input[0].witness.to_vec();
    w[0].push(0);
    block.txdata[i].input[0].witness = Witness::from_slice(&w);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_WITNESS_MERKLE_MATCH]));
}

/// Makes tx `i`'s absolute lock active (some input non-final) at `lock`.
fn set_lock(block: &mut Block, i: usize, lock: u32) {
    let tx = &mut block.txdata[i];
    tx.lock_time = LockTime::from_consensus(lock);
    if tx.input.iter().all(|inp| inp.sequence == Sequence::MAX) {
        tx.input[0].sequence = Sequence::ENABLE_LOCKTIME_NO_RBF; // 0xfffffffe: BIP68 disabled
    }
}

#[test]
fn nonfinal_locktime_height() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    set_lock(&mut block, i, H); // must be strictly below the height
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_NONFINAL]));
    set_lock(&mut block, i, H - 1);
    reseal(&mut block);
    assert!(check(&block, &spent, H).is_valid());
}

#[test]
fn nonfinal_locktime_time_uses_mtp_after_csv() {
    let (mut block, spent) = load(H);
    let t = block.header.time;
    let i = external_tx(&block, 1, |_| true);

    // At/after the header time: non-final whatever the MTP.
    set_lock(&mut block, i, t);
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_NONFINAL]));

    // Below the header time: depends on the MTP.
    set_lock(&mut block, i, t - 100);
    reseal(&mut block);
    let r = check(&block, &spent, H);
    assert!(r.is_valid());
    assert!(r.not_checked.iter().any(|n| n.rule == reason::BAD_TXNS_NONFINAL && n.first_tx.is_some()));
    let with_mtp = |mtp| {
        let c = Context { median_time_past: Some(mtp), ..ctx(H) };
        check_rules(&block, &spent, &c).unwrap()
    };
    assert_eq!(rules(&with_mtp(t - 100)), set(&[reason::BAD_TXNS_NONFINAL]));
    assert!(with_mtp(t - 99).is_valid());
}

#[test]
fn nonfinal_locktime_time_uses_header_time_before_csv() {
    let (mut block, spent) = load(367_891);
    let t = block.header.time;
    let i = external_tx(&block, 1, |_| true);
    set_lock(&mut block, i, t);
    reseal(&mut block);
    let r = check(&block, &spent, 367_891);
    assert_eq!(rules(&r), set(&[reason::BAD_TXNS_NONFINAL]));
    set_lock(&mut block, i, t - 1);
    reseal(&mut block);
    let r = check(&block, &spent, 367_891);
    assert!(r.is_valid() && r.not_checked.is_empty());
}

// ---- ConnectBlock -------------------------------------------------------------

#[test]
fn bad_txns_in_belowout() {
    let (block, mut spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    spent[spent_offset(&block, i)].txout.value = Amount::ZERO;
    let r = check(&block, &spent, H);
    assert_eq!(rules(&r), set(&[reason::BAD_TXNS_IN_BELOWOUT]));
    assert!(r.not_checked.iter().any(|n| n.rule == reason::BAD_CB_AMOUNT));
}

#[test]
fn bad_txns_premature_spend_of_coinbase() {
    let (block, mut spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    let e = &mut spent[spent_offset(&block, i)];
    e.is_coinbase = true;
    e.creation_height = Some(H - 10);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE]));
    // Depth exactly 100 is mature.
    let e = &mut spent[spent_offset(&block, i)];
    e.creation_height = Some(H - 100);
    assert!(check(&block, &spent, H).is_valid());
    // Unknown creation height: not checked, not passed.
    spent[spent_offset(&block, i)].creation_height = None;
    let r = check(&block, &spent, H);
    assert!(r.not_checked.iter().any(|n| n.rule == reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE));
}

#[test]
fn premature_spend_of_this_blocks_coinbase() {
    // Spending this block's own coinbase. The coinbase txid commits to the
    // witness root, which commits to the spender: no valid witness
    // commitment can exist, so that rule fails too. The caller's entry claims
    // an ordinary coin; the in-block output must win.
    let (mut block, mut spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    let cb_txid = block.txdata[0].compute_txid();
    block.txdata[i].input[0].previous_output = OutPoint { txid: cb_txid, vout: 0 };
    let off = spent_offset(&block, i);
    spent[off] = SpentOutput {
        txout: block.txdata[0].output[0].clone(),
        is_coinbase: false,
        creation_height: None,
        creation_time: None,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    let r = check(&block, &spent, H);
    assert_eq!(
        rules(&r),
        set(&[reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE, reason::BAD_WITNESS_MERKLE_MATCH]),
        "{:?}",
        r.violations
    );
}

#[test]
fn bad_txns_inputvalues_outofrange() {
    let (block, mut spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    spent[spent_offset(&block, i)].txout.value = Amount::from_sat(MAX_MONEY + 1);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_INPUTVALUES_OUTOFRANGE]));
}

#[test]
fn bad_txns_accumulated_fee_outofrange() {
    let (block, mut spent) = load(H);
    let a = external_tx(&block, 1, |_| true);
    let b = external_tx(&block, a + 1, |_| true);
    spent[spent_offset(&block, a)].txout.value = Amount::from_sat(20_000_000 * COIN);
    spent[spent_offset(&block, b)].txout.value = Amount::from_sat(20_000_000 * COIN);
    let r = check(&block, &spent, H);
    assert_eq!(rules(&r), set(&[reason::BAD_TXNS_ACCUMULATED_FEE_OUTOFRANGE]));
}

#[test]
fn bad_txns_fee_outofrange_is_unreachable_after_range_checks() {
    // Core keeps this check, but inputs <= MAX_MONEY and inputs >= outputs
    // imply 0 <= fee <= MAX_MONEY. The largest legal fee passes.
    let (block, mut spent) = load(H);
    let i = external_tx(&block, 1, |t| t.input.len() == 1);
    spent[spent_offset(&block, i)].txout.value = Amount::from_sat(MAX_MONEY);
    let r = check(&block, &spent, H);
    assert!(!r.has(reason::BAD_TXNS_FEE_OUTOFRANGE));
    assert!(!r.has(reason::BAD_TXNS_IN_BELOWOUT));
}

#[test]
fn bad_cb_amount() {
    let (mut block, spent) = load(H);
    let v = block.txdata[0].output[0].value.to_sat();
    block.txdata[0].output[0].value = Amount::from_sat(v + 1);
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_CB_AMOUNT]));
}

#[test]
fn missingorspent_output_created_later_in_block() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 1, |_| true);
    let later = block.txdata[i + 5].compute_txid();
    let vout = block.txdata[i + 5].output.len() as u32 - 1;
    block.txdata[i].input[0].previous_output = OutPoint { txid: later, vout };
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_INPUTS_MISSINGORSPENT]));
}

#[test]
fn missingorspent_double_spend_within_block() {
    let (mut block, mut spent) = load(H);
    let a = external_tx(&block, 1, |_| true);
    let b = external_tx(&block, a + 1, |_| true);
    block.txdata[b].input[0].previous_output = block.txdata[a].input[0].previous_output;
    let (oa, ob) = (spent_offset(&block, a), spent_offset(&block, b));
    spent[ob] = spent[oa].clone();
    reseal(&mut block);
    let r = check(&block, &spent, H);
    assert_eq!(rules(&r), set(&[reason::BAD_TXNS_INPUTS_MISSINGORSPENT]));
    assert_eq!(r.violations[0].tx, Some(b));
}

#[test]
fn missingorspent_vout_out_of_range_in_block() {
    let (mut block, spent) = load(H);
    let i = external_tx(&block, 2, |_| true);
    let earlier = block.txdata[1].compute_txid();
    block.txdata[i].input[0].previous_output = OutPoint { txid: earlier, vout: 10_000 };
    reseal(&mut block);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_INPUTS_MISSINGORSPENT]));
}

#[test]
fn in_block_spend_must_match_spent_entry() {
    let (block, mut spent) = load(H);
    let txids: HashMap<_, _> = block.txdata.iter().enumerate().map(|(i, t)| (t.compute_txid(), i)).collect();
    let (i, j) = block
        .txdata
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, t)| t.input.iter().position(|inp| txids.contains_key(&inp.previous_output.txid)).map(|j| (i, j)))
        .expect("866342 has an in-block spend");
    let k = spent_offset(&block, i) + j;
    let v = spent[k].txout.value.to_sat();
    spent[k].txout.value = Amount::from_sat(v + 1);
    // The block's own output is used for the values: only the mismatch shows.
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::SPENT_OUTPUT_MISMATCH]));
}

#[test]
fn bip68_height_lock() {
    let (mut block, mut spent) = load(H);
    let i = external_tx(&block, 1, |t| t.version.0 >= 2);
    block.txdata[i].input[0].sequence = Sequence(10);
    reseal(&mut block);
    let off = spent_offset(&block, i);
    // Coin 5 blocks deep, 10-block lock: needs height > h - 5 + 9.
    spent[off].creation_height = Some(H - 5);
    assert_eq!(rules(&check(&block, &spent, H)), set(&[reason::BAD_TXNS_NONFINAL]));
    // 10 blocks deep: lock satisfied exactly at this height.
    spent[off].creation_height = Some(H - 10);
    assert!(check(&block, &spent, H).is_valid());
    // Version 1 transactions ignore sequence locks.
    spent[off].creation_height = Some(H - 5);
    block.txdata[i].version = Version(1);
    reseal(&mut block);
    assert!(check(&block, &spent, H).is_valid());
}

#[test]
fn bip68_time_lock() {
    let (mut block, mut spent) = load(H);
    let i = external_tx(&block, 1, |t| t.version.0 >= 2);
    block.txdata[i].input[0].sequence = Sequence((1 << 22) | 2); // 2 × 512 s
    reseal(&mut block);
    let off = spent_offset(&block, i);
    spent[off].creation_height = Some(H - 5);
    let t = 1_700_000_000u32;
    let lookup = move |h: u32| (h == H - 6).then_some(t);
    let run = |mtp: Option<u32>, with_lookup: bool| {
        let c = Context {
            median_time_past: mtp,
            mtp_of_height: if with_lookup { Some(&lookup as MtpLookup<'_>) } else { None },
            ..ctx(H)
        };
        check_rules(&block, &spent, &c).unwrap()
    };
    // Lock: coin MTP + 1024 - 1 must be below the previous block's MTP.
    assert_eq!(rules(&run(Some(t + 1023), true)), set(&[reason::BAD_TXNS_NONFINAL]));
    assert!(run(Some(t + 1024), true).is_valid());
    // No lookup: not checked, not passed.
    let r = run(Some(t + 1024), false);
    assert!(r.is_valid());
    assert!(r.not_checked.iter().any(|n| n.rule == reason::BAD_TXNS_NONFINAL));
}

// ---- parameters -----------------------------------------------------------------

#[test]
fn subsidy_schedule() {
    assert_eq!(block_subsidy(Network::Mainnet, 0), 50 * COIN);
    assert_eq!(block_subsidy(Network::Mainnet, 209_999), 50 * COIN);
    assert_eq!(block_subsidy(Network::Mainnet, 210_000), 25 * COIN);
    assert_eq!(block_subsidy(Network::Mainnet, 367_891), 25 * COIN);
    assert_eq!(block_subsidy(Network::Mainnet, 866_342), 312_500_000);
    assert_eq!(block_subsidy(Network::Mainnet, 64 * 210_000), 0);
    assert_eq!(block_subsidy(Network::Mainnet, u32::MAX), 0);
    assert_eq!(block_subsidy(Network::Regtest, 150), 25 * COIN);
    assert_eq!(block_subsidy(Network::Testnet4, 210_000), 25 * COIN);
}

#[test]
fn flags_by_height() {
    use flags::*;
    let base = P2SH | WITNESS | TAPROOT;
    assert_eq!(script_flags(Network::Mainnet, 0), base);
    assert_eq!(script_flags(Network::Mainnet, 363_725), base | DERSIG);
    assert_eq!(script_flags(Network::Mainnet, 388_381), base | DERSIG | CHECKLOCKTIMEVERIFY);
    assert_eq!(script_flags(Network::Mainnet, 419_328), base | DERSIG | CHECKLOCKTIMEVERIFY | CHECKSEQUENCEVERIFY);
    let all = base | DERSIG | CHECKLOCKTIMEVERIFY | CHECKSEQUENCEVERIFY | NULLDUMMY;
    assert_eq!(script_flags(Network::Mainnet, 481_824), all);
    assert_eq!(script_flags(Network::Testnet3, 834_624), all);
    assert_eq!(script_flags(Network::Testnet3, 834_623), all & !NULLDUMMY);
    assert_eq!(script_flags(Network::Testnet4, 1), all);
    assert_eq!(script_flags(Network::Signet, 1), all);
    assert_eq!(script_flags(Network::Regtest, 0), base | NULLDUMMY);
    assert_eq!(script_flags(Network::Regtest, 1), all);
    assert_eq!(Network::from(bitcoin::Network::Testnet4), Network::Testnet4);
}

// ---- robustness ----------------------------------------------------------------

#[test]
fn odd_shapes_do_not_panic() {
    let (block, spent) = load(H);
    // A lone non-coinbase transaction with no inputs and no outputs.
    let mut b = block.clone();
    b.txdata.truncate(1);
    b.txdata[0].input.clear();
    b.txdata[0].output.clear();
    let r = check(&b, &[], H);
    assert!(r.has(reason::BAD_CB_MISSING) && r.has(reason::BAD_TXNS_VIN_EMPTY) && r.has(reason::BAD_TXNS_VOUT_EMPTY));
    // Coinbase with an empty witness and scriptSig, at every network/height extreme.
    let mut b = block.clone();
    b.txdata.truncate(1);
    b.txdata[0].input[0].witness = Witness::new();
    b.txdata[0].input[0].script_sig = ScriptBuf::new();
    for net in [Network::Mainnet, Network::Testnet3, Network::Testnet4, Network::Signet, Network::Regtest] {
        for h in [0, 1, 16, 17, u32::MAX] {
            let _ = check_rules(&b, &[], &Context::new(net, h)).unwrap();
        }
    }
    // Garbage scripts in every position, sequence locks with extreme values.
    let mut b = block.clone();
    let mut s = spent.clone();
    for (i, tx) in b.txdata.iter_mut().enumerate().skip(1).take(50) {
        tx.input[0].script_sig = ScriptBuf::from_bytes(vec![0x4e, 0xff, 0xff, 0xff, 0xff, (i % 256) as u8]);
        tx.input[0].sequence = Sequence(i as u32 * 0x0040_1111);
        tx.version = Version(-1);
    }
    for e in s.iter_mut().take(200) {
        e.txout.script_pubkey =
            ScriptBuf::from_bytes(vec![0xa9, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x87]);
        e.creation_height = Some(u32::MAX);
        e.is_coinbase = true;
    }
    let lookup = |_h: u32| Some(u32::MAX);
    let c = Context { median_time_past: Some(0), mtp_of_height: Some(&lookup), ..ctx(u32::MAX) };
    let _ = check_rules(&b, &s, &c).unwrap();
}

/// CPU time this thread has run, in ns (Linux schedstat), so timings are not
/// inflated when the machine is shared; falls back to wall time.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> String {
    let (w, c) = (std::time::Instant::now(), cpu_ns());
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    let wall = w.elapsed() / runs;
    match (c, cpu_ns()) {
        (Some(a), Some(b)) => {
            format!("{:.2} ms cpu ({:.2} ms wall)", (b - a) as f64 / runs as f64 / 1e6, wall.as_secs_f64() * 1e3)
        }
        _ => format!("{:.2} ms wall", wall.as_secs_f64() * 1e3),
    }
}

/// `cargo test --release -- --ignored --nocapture timing`
#[test]
#[ignore]
fn timing_866342() {
    let (block, spent) = load(H);
    let c = ctx(H);
    let txids: Vec<_> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    let wtxids: Vec<_> = block.txdata.iter().map(|t| t.compute_wtxid()).collect();
    for _ in 0..3 {
        let _ = check_rules(&block, &spent, &c).unwrap();
    }
    let full = time(20, || check_rules(&block, &spent, &c).unwrap());
    let pre = Precomputed { txids: Some(&txids), wtxids: None };
    let with_txids = time(20, || check_spent_with(&block, &spent, &c, pre).unwrap());
    let pre = Precomputed { txids: Some(&txids), wtxids: Some(&wtxids) };
    let with_both = time(20, || check_spent_with(&block, &spent, &c, pre).unwrap());
    eprintln!(
        "866342 ({} txs, {} inputs): check_rules {full}; with txids {with_txids}; with txids+wtxids {with_both}",
        block.txdata.len(),
        spent.len(),
    );
}

#[test]
#[ignore]
fn timing_parts() {
    let (block, spent) = load(H);
    eprintln!("txids {}", time(10, || block.txdata.iter().map(|t| t.compute_txid()).collect::<Vec<_>>()));
    eprintln!("wtxids {}", time(10, || block.txdata.iter().map(|t| t.compute_wtxid()).collect::<Vec<_>>()));
    eprintln!("legacy sigops {}", time(10, || block.txdata.iter().map(legacy_sigops).sum::<u64>()));
    eprintln!("sizes {}", time(10, || block.txdata.iter().map(tx_sizes).fold(0, |a, (b, c)| a + b + c)));
    eprintln!(
        "outpoint map {}",
        time(10, || {
            let mut m: HashMap<OutPoint, usize> = HashMap::with_capacity(spent.len());
            for (i, tx) in block.txdata.iter().enumerate() {
                for inp in &tx.input {
                    m.insert(inp.previous_output, i);
                }
            }
            m
        })
    );
}

#[test]
#[ignore]
fn timing_sha() {
    let buf = vec![7u8; 8 << 20];
    eprintln!("sha256d 8 MiB {}", time(5, || sha256d::Hash::hash(&buf)));
    let pair = [3u8; 64];
    eprintln!(
        "10k sha256d(64B) {}",
        time(5, || {
            let mut h = [0u8; 32];
            for _ in 0..10_000 {
                h = sha256d::Hash::hash(&pair).to_byte_array();
            }
            h
        })
    );
}
