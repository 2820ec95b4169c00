//! The consensus rules through the whole pipeline, on real mainnet blocks:
//! the blocks stay valid, and each mutation that creates money or spends
//! what it may not is rejected with Core's reject reason.

use bitcoin::{Amount, Block};
use kiln_testkit::data::path;
use kiln_validate::rules::reason;
use kiln_validate::{Options, Prevouts, Report, read_block, read_spent, validate_block};

fn load(height: u32) -> (Block, Prevouts) {
    let b = read_block(&path(&format!("mainnet/block_{height}.raw.zst"))).unwrap();
    let p = read_spent(&path(&format!("mainnet/block_{height}.spent_utxos.json.zst"))).unwrap();
    assert!(p.origins_known, "the test data states every coin's origin");
    (b, p)
}

fn run(b: &Block, p: &Prevouts) -> Report {
    validate_block(b, &p.txouts, Some(&p.origins), &Options::default()).unwrap()
}

fn rules_of(r: &Report) -> Vec<&'static str> {
    let mut v: Vec<_> = r.rules.violations.iter().map(|v| v.rule).collect();
    v.dedup();
    v
}

#[test]
fn both_real_blocks_break_no_rule() {
    for h in [866342, 367891] {
        let (b, p) = load(h);
        let r = run(&b, &p);
        assert!(r.rules.violations.is_empty(), "{h}: {:?}", &r.rules.violations[..r.rules.violations.len().min(3)]);
        assert!(r.is_valid());
    }
    // 866342's coinbase takes exactly the subsidy plus the fees.
    let (b, p) = load(866342);
    let r = run(&b, &p);
    let coinbase: u64 = b.txdata[0].output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(coinbase, 312_500_000 + r.rules.fees);
    assert_eq!(coinbase, 317_526_183);
}

/// CVE-2012-2459: 866342 has 4,864 = 19 × 256 transactions, so appending the
/// last 256 again leaves the merkle root unchanged. kiln's own merkle check
/// agrees the root matches; the rules see the mutation.
#[test]
fn duplicated_last_256_transactions_are_bad_txns_duplicate() {
    let (mut b, mut p) = load(866342);
    let n = b.txdata.len();
    let tail: Vec<_> = b.txdata[n - 256..].to_vec();
    let tail_inputs: usize = tail.iter().map(|t| t.input.len()).sum();
    let from = p.txouts.len() - tail_inputs;
    let (outs, origins) = (p.txouts[from..].to_vec(), p.origins[from..].to_vec());
    b.txdata.extend(tail);
    p.txouts.extend(outs);
    p.origins.extend(origins);
    assert_eq!(b.compute_merkle_root(), Some(b.header.merkle_root), "the mutation keeps the root");
    let r = run(&b, &p);
    assert!(r.block.merkle_ok);
    assert!(!r.is_valid());
    assert!(rules_of(&r).contains(&reason::BAD_TXNS_DUPLICATE), "{:?}", rules_of(&r));
}

/// A P2PKH input's amount set to 0: legacy signatures do not commit to
/// amounts, so only the value rules can see that the transaction now pays
/// out more than it takes in.
#[test]
fn a_zero_amount_p2pkh_prevout_is_bad_txns_in_belowout() {
    let (b, mut p) = load(866342);
    let k = p.txouts.iter().position(|o| o.script_pubkey.is_p2pkh()).unwrap();
    p.txouts[k].value = Amount::ZERO;
    let r = run(&b, &p);
    assert!(r.bad_inputs.is_empty(), "the signature still verifies: {:?}", r.bad_inputs);
    assert_eq!(rules_of(&r), vec![reason::BAD_TXNS_IN_BELOWOUT]);
    assert!(!r.is_valid());
}

#[test]
fn a_coinbase_output_from_10_blocks_ago_is_a_premature_spend() {
    let (b, mut p) = load(866342);
    p.origins[100].is_coinbase = true;
    p.origins[100].creation_height = Some(866342 - 10);
    let r = run(&b, &p);
    assert_eq!(rules_of(&r), vec![reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE]);
    // Exactly 100 deep is mature.
    p.origins[100].creation_height = Some(866342 - 100);
    assert!(run(&b, &p).is_valid());
}

#[test]
fn block_byte_mutations_are_rejected_with_the_right_rule() {
    let (b0, p) = load(866342);
    // The coinbase takes one satoshi more than subsidy + fees.
    let mut b = b0.clone();
    b.txdata[0].output[0].value += Amount::from_sat(1);
    b.header.merkle_root = b.compute_merkle_root().unwrap();
    assert!(rules_of(&run(&b, &p)).contains(&reason::BAD_CB_AMOUNT));
    // An output worth more than all bitcoin.
    let mut b = b0.clone();
    b.txdata[5].output[0].value = Amount::from_sat(21_000_000 * 100_000_000 + 1);
    assert!(rules_of(&run(&b, &p)).contains(&reason::BAD_TXNS_VOUT_TOOLARGE));
    // A transaction spending the same outpoint twice.
    let mut b = b0.clone();
    let dup = b.txdata[7].input[0].clone();
    b.txdata[7].input.push(dup);
    let mut p2 = p.clone();
    let at: usize = b0.txdata[1..=7].iter().map(|t| t.input.len()).sum();
    p2.txouts.insert(at, p.txouts[at - 1].clone());
    p2.origins.insert(at, p.origins[at - 1]);
    assert!(rules_of(&run(&b, &p2)).contains(&reason::BAD_TXNS_INPUTS_DUPLICATE));
    // The coinbase moved away from the front.
    let mut b = b0.clone();
    b.txdata.swap(0, 1);
    let r = validate_block(&b, &p.txouts[..0], None, &Options { height: Some(866342), ..Options::default() });
    assert!(r.is_err() || !r.unwrap().is_valid(), "never valid");
}

/// Without the coins' origins, maturity is reported as not checked for the
/// whole block instead of passing silently.
#[test]
fn unknown_origins_are_reported_not_checked() {
    let (b, p) = load(866342);
    let r = validate_block(&b, &p.txouts, None, &Options::default()).unwrap();
    assert!(r.is_valid());
    assert!(r.not_checked().iter().any(|n| n.rule == reason::BAD_TXNS_PREMATURE_SPEND_OF_COINBASE));
}

/// A real P2SH-P2WPKH input whose scriptSig pushes the same redeem script
/// with OP_PUSHDATA1 instead of a direct push: the witness still verifies,
/// but BIP141 requires the canonical push (Core: WITNESS_MALLEATED_P2SH).
/// kiln's template and Core's interpreter must both reject it.
#[test]
fn a_non_minimal_push_of_a_p2sh_witness_program_is_malleated() {
    let (mut b, p) = load(866342);
    let per_tx = kiln_validate::extract::split_prevouts(&b, &p.txouts);
    let (ti, ii) = b
        .txdata
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(ti, tx)| {
            tx.input
                .iter()
                .position(|i| {
                    let s = i.script_sig.as_bytes();
                    s.len() == 23 && s[0] == 0x16 && s[1] == 0x00 && s[2] == 0x14
                })
                .map(|ii| (ti, ii))
        })
        .expect("866342 has P2SH-P2WPKH spends");
    let spent = per_tx[ti].to_vec();
    let mut sig = vec![0x4c];
    sig.extend_from_slice(b.txdata[ti].input[ii].script_sig.as_bytes());
    b.txdata[ti].input[ii].script_sig = bitcoin::ScriptBuf::from_bytes(sig);
    let bytes = bitcoin::consensus::serialize(&b.txdata[ti]);
    let flags = kiln_validate::rules::script_flags(kiln_validate::rules::Network::Mainnet, 866342);
    assert!(kiln_validate::oracle::verify_input(&bytes, &spent, ii, flags).is_err(), "Core's interpreter rejects it");
    b.header.merkle_root = b.compute_merkle_root().unwrap();
    // The new root breaks the proof of work: ask for the scripts anyway.
    let all = Options { all_scripts: true, ..Options::default() };
    let r = validate_block(&b, &p.txouts, Some(&p.origins), &all).unwrap();
    assert!(!r.block.pow_ok);
    assert_eq!(r.bad_inputs.len(), 1, "{:?}", r.bad_inputs);
    assert_eq!((r.bad_inputs[0].tx_index, r.bad_inputs[0].input_index), (ti, ii));
    assert!(r.bad_inputs[0].reason.contains("witness-malleated-p2sh"), "{}", r.bad_inputs[0].reason);
}

/// The cheap checks come first: a block whose merkle root no longer matches
/// gets no script work by default (as Core's CheckBlock), and the report says
/// why; `all_scripts` still names the bad input for a diagnosis.
#[test]
fn a_block_failing_cheap_checks_gets_no_script_work() {
    let (mut b, p) = load(866342);
    // A legacy input: its signature is part of the txid, hence of the root.
    let ti = (1..b.txdata.len())
        .find(|&t| b.txdata[t].input[0].witness.is_empty() && !b.txdata[t].input[0].script_sig.is_empty())
        .unwrap();
    assert!(kiln_testkit::blocks::flip_first_signature(&mut b.txdata[ti]));
    let r = run(&b, &p);
    assert!(!r.is_valid());
    assert!(r.bad_inputs.is_empty() && r.signatures == 0, "no script was run");
    assert!(r.scripts_skipped.as_deref().is_some_and(|w| w.contains("bad-txnmrklroot")), "{:?}", r.scripts_skipped);
    let all = Options { all_scripts: true, ..Options::default() };
    let r = validate_block(&b, &p.txouts, Some(&p.origins), &all).unwrap();
    assert_eq!(r.bad_inputs.len(), 1);
}

/// What a node without a UTXO set checks (`check_block_rules`): the real
/// blocks pass with no spent outputs at all and nothing reported as
/// skipped; the CVE-2012-2459 duplicate is caught and counts as a mutation
/// (the peer's fault, not the block's), an extra coinbase output value
/// mutates the merkle root, and a second coinbase is an invalid block.
#[test]
fn rules_without_spent_outputs_for_a_node() {
    use kiln_validate::rules::{Context, Network, Precomputed, check_block_rules, is_mutation};
    for (h, mtp) in [(866342u32, 1_729_120_000u32), (367891, 1_437_000_000)] {
        let (b, _) = load(h);
        let ctx = Context { median_time_past: Some(mtp), ..Context::new(Network::Mainnet, h) };
        let r = check_block_rules(&b, &ctx, Precomputed::default()).unwrap();
        assert!(r.is_valid(), "{h}: {:?}", r.violations);
        assert!(r.not_checked.is_empty(), "{h}: {:?}", r.not_checked);
        assert!(r.weight > 0 && r.sigop_cost > 0);
    }
    let ctx = Context { median_time_past: Some(1_729_120_000), ..Context::new(Network::Mainnet, 866342) };
    let (mut b, _) = load(866342);
    let n = b.txdata.len();
    let tail: Vec<_> = b.txdata[n - 256..].to_vec();
    b.txdata.extend(tail);
    let r = check_block_rules(&b, &ctx, Precomputed::default()).unwrap();
    assert!(
        r.has(reason::BAD_TXNS_DUPLICATE) && r.violations.iter().any(|v| is_mutation(v.rule)),
        "{:?}",
        r.violations
    );

    let (mut b, _) = load(866342);
    b.txdata[0].output[0].value += Amount::ONE_SAT;
    let r = check_block_rules(&b, &ctx, Precomputed::default()).unwrap();
    assert!(r.has(reason::BAD_TXNMRKLROOT) && is_mutation(reason::BAD_TXNMRKLROOT));

    let (mut b, _) = load(866342);
    let cb = b.txdata[0].clone();
    b.txdata.insert(1, cb);
    b.header.merkle_root = b.compute_merkle_root().unwrap();
    let r = check_block_rules(&b, &ctx, Precomputed::default()).unwrap();
    assert!(r.has(reason::BAD_CB_MULTIPLE), "{:?}", r.violations);
    assert!(!is_mutation(reason::BAD_CB_MULTIPLE));
}
