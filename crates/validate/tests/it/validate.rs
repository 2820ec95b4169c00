//! Block validation on real mainnet blocks with their spent outputs.

use std::path::PathBuf;

use bitcoin::{Amount, Block, TxOut};
use kiln_testkit::blocks::{flip_first_signature, load};
use kiln_validate::{Report, validate};

fn count(r: &Report, t: &str) -> usize {
    r.inputs_by_type.get(t).copied().unwrap_or(0)
}

#[test]
fn block_866342_is_valid_and_every_input_is_accounted_for() {
    let (b, p) = load(866342);
    let r = validate(&b, &p, 2).unwrap();
    eprintln!("{:#?}", r.inputs_by_type);
    assert!(r.bad_inputs.is_empty(), "{:#?}", &r.bad_inputs[..r.bad_inputs.len().min(5)]);
    assert!(r.is_valid(), "{:?}", r.block);
    assert_eq!(r.transactions, 4864);
    assert_eq!(r.inputs, 7972);
    assert_eq!(r.inputs_by_type.values().sum::<usize>(), 7972);
    assert_eq!(r.block.height(), Some(866342));
    // The spent-type census of the shared data's README.
    assert_eq!(count(&r, "p2wpkh"), 4374);
    assert_eq!(
        count(&r, "p2tr-keypath") + count(&r, "interpreter:p2tr-script") + count(&r, "p2tr-scriptpath-checksig"),
        2373
    );
    // 147 of the 150 script-path spends are inscription-style single-key leaves;
    // the other three are other scripts, for the interpreter.
    assert_eq!(count(&r, "p2tr-scriptpath-checksig"), 147);
    assert_eq!(count(&r, "interpreter:p2tr-script"), 3);
    assert!(count(&r, "p2pkh") >= 900, "905 P2PKH spends, allowing a few odd keys");
}

#[test]
fn block_367891_is_valid_and_every_input_is_accounted_for() {
    let (b, p) = load(367891);
    let r = validate(&b, &p, 2).unwrap();
    eprintln!("{:#?}", r.inputs_by_type);
    assert!(r.bad_inputs.is_empty(), "{:#?}", &r.bad_inputs[..r.bad_inputs.len().min(5)]);
    assert!(r.is_valid());
    assert_eq!(r.inputs, 20_817);
    assert_eq!(r.inputs_by_type.values().sum::<usize>(), 20_817);
}

/// Every input's verdict from Bitcoin Core's interpreter alone.
fn oracle_bad_inputs(b: &Block, p: &[TxOut], flags: u32) -> Vec<(usize, usize)> {
    use rayon::prelude::*;
    let per_tx = kiln_validate::extract::split_prevouts(b, p);
    b.txdata
        .par_iter()
        .enumerate()
        .skip(1)
        .flat_map_iter(|(ti, tx)| {
            let bytes = bitcoin::consensus::serialize(tx);
            let spent = per_tx[ti];
            (0..tx.input.len())
                .filter(|&i| kiln_validate::oracle::verify_input(&bytes, spent, i, flags).is_err())
                .map(|i| (ti, i))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Differential: for every input of block 866342, real and with one signature
/// flipped in every 25th transaction, kiln's verdict equals the interpreter's.
#[test]
fn differential_every_input_of_866342_against_the_interpreter() {
    let (mut b, p) = load(866342);
    let flags = kiln_validate::extract::flags_for(Some(866342));
    assert_eq!(oracle_bad_inputs(&b, &p, flags), vec![], "the real block is valid for the oracle too");
    let mut flipped = Vec::new();
    for ti in (1..b.txdata.len()).step_by(25) {
        if flip_first_signature(&mut b.txdata[ti]) {
            flipped.push((ti, 0));
        }
    }
    assert!(flipped.len() > 150);
    let r = validate(&b, &p, 2).unwrap();
    let kiln_bad: Vec<(usize, usize)> = r.bad_inputs.iter().map(|x| (x.tx_index, x.input_index)).collect();
    let oracle_bad = oracle_bad_inputs(&b, &p, flags);
    assert_eq!(kiln_bad, oracle_bad, "kiln and the interpreter disagree");
    assert_eq!(kiln_bad, flipped, "exactly the flipped inputs fail");
    // The witness commitment no longer matches once witnesses change; the
    // block-level checks report that separately from the inputs.
    assert!(!r.is_valid());
}

fn bad(r: &Report) -> Vec<(usize, usize)> {
    r.bad_inputs.iter().map(|x| (x.tx_index, x.input_index)).collect()
}

/// A transaction whose inputs all spend `want` and none spends taproot
/// (taproot sighashes commit to every spent output, so a change to one
/// prevout would invalidate its taproot siblings too).
fn find_tx(b: &Block, p: &[TxOut], want: fn(&bitcoin::Script) -> bool, min_inputs: usize) -> (usize, usize) {
    let mut at = 0;
    for (ti, tx) in b.txdata.iter().enumerate().skip(1) {
        let spent = &p[at..at + tx.input.len()];
        if tx.input.len() >= min_inputs && spent.iter().all(|o| want(&o.script_pubkey)) {
            return (ti, at);
        }
        at += tx.input.len();
    }
    panic!("no such transaction");
}

#[test]
fn mutations_report_exactly_the_mutated_inputs() {
    let (b, p) = load(866342);
    // One flipped byte in one signature.
    let mut b1 = b.clone();
    let (ti, _) = find_tx(&b, &p, |s| s.is_p2pkh(), 1);
    assert!(flip_first_signature(&mut b1.txdata[ti]));
    let r = validate(&b1, &p, 2).unwrap();
    assert_eq!(bad(&r), vec![(ti, 0)]);
    assert_eq!(r.bad_inputs[0].script_type, "p2pkh");
    assert_eq!(r.bad_inputs[0].txid, b1.txdata[ti].compute_txid().to_string());

    // A wrong amount for one segwit input (BIP143 commits to it).
    let (ti, at) = find_tx(&b, &p, |s| s.is_p2wpkh(), 2);
    let mut p2 = p.clone();
    p2[at + 1].value += Amount::from_sat(1);
    let r = validate(&b, &p2, 2).unwrap();
    assert_eq!(bad(&r), vec![(ti, 1)]);
    assert!(r.block.is_valid(), "block-level checks do not depend on prevouts");

    // A swapped prevout script: the input now spends someone else's key hash.
    let (ti, at) = find_tx(&b, &p, |s| s.is_p2pkh(), 1);
    let other = p.iter().position(|o| o.script_pubkey.is_p2pkh() && o.script_pubkey != p[at].script_pubkey).unwrap();
    let mut p3 = p.clone();
    p3[at].script_pubkey = p[other].script_pubkey.clone();
    let r = validate(&b, &p3, 2).unwrap();
    assert_eq!(bad(&r), vec![(ti, 0)]);
    assert!(r.bad_inputs[0].reason.contains("hash"), "{}", r.bad_inputs[0].reason);

    // Too few prevouts is an input error, not an invalid block.
    assert!(validate(&b, &p[1..], 2).is_err());
}

#[allow(dead_code)]
pub fn unused(_: PathBuf) {}

/// kiln's own witness-commitment and merkle checks agree with rust-bitcoin's.
#[test]
fn block_checks_agree_with_rust_bitcoin() {
    use kiln_validate::{WitnessCommitment, check_block};
    for h in [866342, 367891] {
        let (b, _) = load(h);
        let c = check_block(&b);
        assert!(c.merkle_ok && b.check_merkle_root());
        let expect = if h == 866342 { WitnessCommitment::Valid } else { WitnessCommitment::NotRequired };
        assert_eq!(c.witness_commitment, expect);
        assert!(b.check_witness_commitment());
        assert!(c.is_valid());
    }
    let (mut b, _) = load(866342);
    let cb = &mut b.txdata[0];
    let out = cb
        .output
        .iter_mut()
        .rev()
        .find(|o| o.script_pubkey.as_bytes().starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]))
        .unwrap();
    let mut spk = out.script_pubkey.to_bytes();
    spk[20] ^= 1;
    out.script_pubkey = bitcoin::ScriptBuf::from_bytes(spk);
    let c = check_block(&b);
    assert_eq!(c.witness_commitment, WitnessCommitment::Mismatch);
    assert!(!b.check_witness_commitment());
    assert!(!c.merkle_ok, "the coinbase changed, so its txid and the merkle root did too");
    // A header with a bad nonce fails proof of work.
    let (mut b, _) = load(866342);
    b.header.nonce ^= 1;
    assert!(!check_block(&b).pow_ok);
}

/// Malformed blocks (truncated, bytes flipped) give an error or a report,
/// never a panic, whatever part of the block is damaged.
#[test]
fn damaged_blocks_never_panic() {
    let raw = kiln_testkit::data::read("mainnet/block_866342.raw.zst");
    let (_, p) = load(866342);
    let mut rng = kiln_testkit::data::Rng(0xb10c);
    let (mut errors, mut reports) = (0, 0);
    for round in 0..70 {
        let mut bytes = raw.clone();
        if round % 2 == 0 {
            bytes.truncate((rng.next_u64() % raw.len() as u64) as usize);
        } else {
            for _ in 0..1 + rng.next_u32() % 8 {
                let i = (rng.next_u64() % bytes.len() as u64) as usize;
                bytes[i] ^= 1 << (rng.next_u32() % 8);
            }
        }
        match kiln_validate::decode_block(&bytes, "damaged") {
            Err(_) => errors += 1,
            Ok(b) => match validate(&b, &p, 2) {
                Ok(r) => {
                    reports += 1;
                    // Odd flips often leave the block decodable but invalid.
                    let _ = r.is_valid();
                }
                Err(_) => errors += 1,
            },
        }
    }
    assert!(errors > 15 && reports > 5, "errors {errors}, reports {reports}");
}

/// Damaged spent outputs (absurd values, coinbase flags, heights from the
/// future or the far past, random scripts) through the whole pipeline with
/// the consensus rules: a report every time, never a panic, and every value
/// change that makes a transaction pay out more than it takes in is caught.
#[test]
fn damaged_prevouts_never_panic() {
    let b = kiln_validate::read_block(&kiln_testkit::data::path("mainnet/block_866342.raw.zst")).unwrap();
    let p0 = kiln_validate::read_spent(&kiln_testkit::data::path("mainnet/block_866342.spent_utxos.json.zst")).unwrap();
    let mut rng = kiln_testkit::data::Rng(0x5eed);
    let opts = kiln_validate::Options::default();
    let mut invalid = 0;
    for round in 0..24 {
        let mut p = p0.clone();
        for _ in 0..1 + rng.next_u32() % 4 {
            let k = (rng.next_u64() % p.txouts.len() as u64) as usize;
            match round % 4 {
                0 => p.txouts[k].value = bitcoin::Amount::from_sat(rng.next_u64()),
                1 => {
                    p.origins[k].is_coinbase = true;
                    p.origins[k].creation_height = Some(rng.next_u32());
                }
                2 => p.origins[k].creation_height = Some(rng.next_u32() % 900_000),
                _ => {
                    let mut s = vec![0u8; (rng.next_u32() % 64) as usize];
                    rng.fill(&mut s);
                    p.txouts[k].script_pubkey = bitcoin::ScriptBuf::from_bytes(s);
                }
            }
        }
        let r = kiln_validate::validate_block(&b, &p.txouts, Some(&p.origins), &opts).expect("a report");
        if round % 4 == 0 {
            // A random u64 value is almost surely above 21M BTC: out of range.
            assert!(!r.is_valid(), "round {round}");
        }
        invalid += usize::from(!r.is_valid());
    }
    assert!(invalid >= 6, "{invalid}");
}

/// `read_spent_bytes` (what the fuzz target and any in-memory caller use)
/// reads what the file readers read, and applies the same count rules.
#[test]
fn spent_outputs_from_bytes_match_the_file_readers() {
    let path = kiln_testkit::data::path("mainnet/block_866342.spent_utxos.json.zst");
    let bytes = kiln_testkit::data::read("mainnet/block_866342.spent_utxos.json.zst");
    let from_file = kiln_validate::read_spent(&path).unwrap();
    let n = from_file.txouts.len();
    let from_bytes = kiln_validate::read_spent_bytes(&bytes, None, "mem").unwrap();
    assert_eq!(from_bytes.txouts, from_file.txouts);
    assert_eq!(from_bytes.origins_known, from_file.origins_known);
    assert_eq!(kiln_validate::read_spent_bytes(&bytes, Some(n), "mem").unwrap().txouts, from_file.txouts);
    assert_eq!(kiln_validate::read_spent_for(&path, n).unwrap().txouts, from_file.txouts);
    let fewer = kiln_validate::read_spent_bytes(&bytes, Some(n - 1), "mem").unwrap_err().to_string();
    assert!(fewer.starts_with("mem: entry ") && fewer.contains("more spent outputs"), "{fewer}");
    let more = kiln_validate::read_spent_bytes(&bytes, Some(n + 1), "mem").unwrap_err();
    assert!(matches!(more, kiln_validate::InputError::PrevoutCount { .. }), "{more}");
}
