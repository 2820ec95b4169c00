//! Block-level differential test against a real Bitcoin Core (issue 11).
//!
//! On a fresh regtest `bitcoind` this builds one valid block with real
//! P2PKH, P2WPKH, P2SH-P2WPKH and P2TR key-path spends (plus P2WSH(OP_TRUE)
//! spends and an in-block parent/child pair), then one mutated copy per
//! consensus rule from the table in [`cases`]. Every block is submitted to
//! Core (`submitblock`) and validated by kiln with the outputs it spends;
//! the verdicts must agree block by block, and when Core rejects a block,
//! Core's reject reason must be among the rules kiln names.
//!
//! Spent outputs are given to kiln *as the mutated block spends them*: an
//! outpoint created by a transaction of the block is that transaction's output
//! (kiln itself decides whether it was created early enough); any other is
//! looked up in Core's UTXO set; one in neither (the null outpoint) gets an
//! empty stand-in. A case may adjust the list further (`spent`).
//!
//! All invalid copies are submitted before the valid block: once a valid
//! block of equal work is the tip, Core no longer connects an invalid sibling
//! and only answers `inconclusive`.
//!
//! Not covered, because kiln leaves them to the caller (header rules needing
//! the chain: `bad-diffbits`, `time-too-old`, `time-too-new`, `bad-version`),
//! or because Core's RPC changes the block before validating it: a coinbase
//! without a witness reserved value is given a 32-zero-byte one by
//! `submitblock` (`UpdateUncommittedBlockStructures`), so that block is
//! accepted over RPC although the P2P network would reject it.

use std::collections::HashMap;
use std::time::Instant;

use kiln_testkit::bitcoin::absolute::LockTime;
use kiln_testkit::bitcoin::hashes::Hash;
use kiln_testkit::bitcoin::script::{Builder, ScriptBuf};
use kiln_testkit::bitcoin::transaction::Version as TxVersion;
use kiln_testkit::bitcoin::{Amount, Block, OutPoint, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use kiln_testkit::regtest::{self, AddrKind, BlockTx, Key, SpentOutput, Template};
use kiln_testkit::{Node, NodeOptions, require_node};
use kiln_validate::rules::{CoinOrigin, MAX_MONEY, Network};
use kiln_validate::{Bip34, Options, Report, validate_block};

/// Cases where kiln and Core are known to disagree, with the reason found.
/// Listing a case here does not excuse it: every disagreement fails the test
/// (Core is the oracle); the list only says what is already understood.
const KNOWN_DISAGREEMENTS: &[(&str, &str)] = &[];

/// Mutates the freshly built block (see [`regtest::build_block`] for what is
/// recomputed afterwards: commitment, merkle root and nonce, unless changed).
type Tweak = Box<dyn FnOnce(&mut Block)>;
/// Adjusts the spent outputs kiln is given for the mutated block.
type SpentTweak = Box<dyn FnOnce(&Block, &mut Vec<Spent>)>;

/// One mutation: what it is, what Core must answer, and how to make it.
struct Case {
    name: &'static str,
    /// Core's full `submitblock` answer (`None`: accepted).
    core: Option<&'static str>,
    tweak: Tweak,
    spent: Option<SpentTweak>,
}

fn case(name: &'static str, core: &'static str, tweak: impl FnOnce(&mut Block) + 'static) -> Case {
    Case { name, core: Some(core), tweak: Box::new(tweak), spent: None }
}

/// A spent output as kiln takes it.
#[derive(Clone, Debug)]
struct Spent {
    txout: TxOut,
    origin: CoinOrigin,
}

impl From<SpentOutput> for Spent {
    fn from(s: SpentOutput) -> Self {
        Spent {
            txout: s.txout,
            origin: CoinOrigin {
                is_coinbase: s.is_coinbase,
                creation_height: Some(s.creation_height),
                creation_time: Some(s.creation_time),
            },
        }
    }
}

/// A P2WSH(OP_TRUE) coin (spent with the witness `[OP_TRUE]`, no signature).
#[derive(Clone, Copy, Debug)]
struct OpTrueCoin {
    outpoint: OutPoint,
    value: Amount,
}

fn op_true_witness() -> Witness {
    Witness::from_slice(&[[0x51u8]])
}

/// A version-2 transaction spending `coins` (sequence 0xfffffffd) to one
/// P2WSH(OP_TRUE) output worth their total less `fee`.
fn op_true_spend(coins: &[OpTrueCoin], fee: Amount) -> BlockTx {
    let total: Amount = coins.iter().map(|c| c.value).sum();
    let tx = Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: coins
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: op_true_witness(),
            })
            .collect(),
        output: vec![TxOut { value: total - fee, script_pubkey: regtest::op_true_address().script_pubkey() }],
    };
    BlockTx { tx, fee }
}

/// The coinbase output of the block at `height` paying P2WSH(OP_TRUE).
fn op_true_coinbase(node: &Node, height: u32) -> OpTrueCoin {
    let hash = node.rpc("getblockhash", kiln_testkit::serde_json::json!([height])).unwrap();
    let block = regtest::get_block(node, &hash.as_str().unwrap().parse().unwrap()).unwrap();
    let cb = &block.txdata[0];
    let spk = regtest::op_true_address().script_pubkey();
    let vout = cb.output.iter().position(|o| o.script_pubkey == spk).expect("coinbase pays OP_TRUE");
    OpTrueCoin { outpoint: OutPoint { txid: cb.compute_txid(), vout: vout as u32 }, value: cb.output[vout].value }
}

/// Looks outpoints up in Core's UTXO set once (the set does not change while
/// the invalid copies are submitted, as Core connects none of them).
struct UtxoView<'a> {
    node: &'a Node,
    cache: HashMap<OutPoint, Option<SpentOutput>>,
}

impl UtxoView<'_> {
    /// The outputs every non-coinbase-position input of `block` spends, in
    /// block order, as the block spends them (see the module comment).
    fn spent(&mut self, block: &Block, height: u32) -> Vec<Spent> {
        let mut first: HashMap<Txid, usize> = HashMap::new();
        for (i, tx) in block.txdata.iter().enumerate() {
            first.entry(tx.compute_txid()).or_insert(i);
        }
        let mut out = Vec::new();
        for tx in block.txdata.iter().skip(1) {
            for input in &tx.input {
                let op = input.previous_output;
                let in_block =
                    first.get(&op.txid).and_then(|&k| block.txdata[k].output.get(op.vout as usize).map(|o| (k, o)));
                let spent = match in_block {
                    Some((k, o)) => Spent {
                        txout: o.clone(),
                        origin: CoinOrigin {
                            is_coinbase: k == 0,
                            creation_height: Some(height),
                            creation_time: Some(block.header.time),
                        },
                    },
                    None => {
                        let node = self.node;
                        let found = self
                            .cache
                            .entry(op)
                            .or_insert_with(|| regtest::lookup_spent_output(node, op).expect("gettxout"))
                            .clone();
                        match found {
                            Some(s) => s.into(),
                            None => Spent {
                                txout: TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new() },
                                origin: CoinOrigin {
                                    is_coinbase: false,
                                    creation_height: Some(height),
                                    creation_time: Some(block.header.time),
                                },
                            },
                        }
                    }
                };
                out.push(spent);
            }
        }
        out
    }
}

/// The rules kiln's report names, in Core's words.
fn kiln_names(r: &Report) -> Vec<String> {
    let mut names: Vec<String> = r.rules.violations.iter().map(|v| v.rule.to_owned()).collect();
    if !r.block.pow_ok {
        names.push("high-hash".into());
    }
    if !r.block.merkle_ok {
        names.push("bad-txnmrklroot".into());
    }
    // The witness commitment's Missing/Mismatch are named by the rules
    // (unexpected-witness, bad-witness-nonce-size, bad-witness-merkle-match).
    if matches!(r.block.bip34, Bip34::Malformed(_)) {
        names.push("bad-cb-height".into());
    }
    if !r.bad_inputs.is_empty() {
        names.push("block-script-verify-flag-failed".into());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Core's reject reason without its parenthesised detail.
fn core_rule(answer: &str) -> &str {
    answer.split(" (").next().unwrap_or(answer)
}

/// What was learnt about one block.
struct Row {
    name: &'static str,
    core: String,
    kiln: String,
    agree: bool,
    generator_ok: bool,
}

#[test]
fn core_and_kiln_agree_on_every_mutation() {
    let node = require_node!(NodeOptions::new().listen(false));
    let t0 = Instant::now();

    // ---- Chain: 8 OP_TRUE coinbases, one coin per key kind, 100 to mature.
    let op_true_addr = regtest::op_true_address();
    let op_true_spk = op_true_addr.script_pubkey();
    regtest::generate_to_address(&node, 8, &op_true_addr).unwrap();
    let key = Key::random();
    let owners: Vec<(Key, AddrKind)> = AddrKind::ALL.iter().map(|&k| (key, k)).collect();
    let coins = regtest::mine_coins(&node, &owners).unwrap();
    let tip = regtest::block_count(&node).unwrap();
    assert_eq!(tip, 8 + 4 + 100);
    // Mature: heights 1..=8 and 13; height 14 is one block short.
    let op_true: Vec<OpTrueCoin> = (1..=8).map(|h| op_true_coinbase(&node, h)).collect();
    let immature = op_true_coinbase(&node, 14);
    let funded = t0.elapsed();

    // ---- The valid block's transactions (positions 1..=6; 7 txs in all,
    // an odd count, which CVE-2012-2459's duplication needs).
    let fee = Amount::from_sat(2_000);
    let mut txs: Vec<BlockTx> = Vec::new();
    for (i, coin) in coins.iter().enumerate() {
        // 1: P2PKH, 2: P2WPKH, 3: P2SH-P2WPKH, 4: P2TR, each paying the next kind.
        let next = AddrKind::ALL[(i + 1) % 4];
        let out = vec![TxOut { value: coin.txout.value - fee, script_pubkey: key.script_pubkey(next) }];
        txs.push(regtest::spend(&node, std::slice::from_ref(coin), out).unwrap());
    }
    // 5: P2WSH(OP_TRUE) spend with two outputs; 6: its child in the same block.
    let mut parent = op_true_spend(&op_true[0..1], fee);
    let half = parent.tx.output[0].value / 2;
    parent.tx.output = vec![
        TxOut { value: half, script_pubkey: op_true_spk.clone() },
        TxOut { value: parent.tx.output[0].value - half, script_pubkey: op_true_spk.clone() },
    ];
    let child = op_true_spend(
        &[OpTrueCoin { outpoint: OutPoint { txid: parent.tx.compute_txid(), vout: 0 }, value: half }],
        fee,
    );
    txs.push(parent);
    txs.push(child);
    for btx in &txs[..5] {
        assert_eq!(regtest::test_mempool_accept(&node, &btx.tx).unwrap(), None, "Core's mempool refuses a base tx");
    }

    let template = Template::fetch(&node).unwrap();
    assert_eq!(template.height, tip + 1);
    assert!(template.segwit && template.transactions.is_empty());
    let height = template.height;
    let mtp = regtest::tip_median_time_past(&node).unwrap();
    let payout = key.script_pubkey(AddrKind::P2wpkh);

    // ---- The cases. Positions: 0 coinbase (outputs: payout, commitment),
    // 1 P2PKH, 2 P2WPKH, 3 P2SH-P2WPKH, 4 P2TR, 5 OP_TRUE parent, 6 child.
    let script_fail = |detail: &'static str| -> &'static str {
        Box::leak(format!("block-script-verify-flag-failed ({detail})").into_boxed_str())
    };
    let false_stack = script_fail("Script evaluated without error but finished with a false/empty top stack element");
    let extranonce = [7u8; 8];
    let (o2, o3) = (op_true[1], op_true[2]);
    let mut cases: Vec<Case> = vec![
        case("high-hash", "high-hash", |b| regtest::grind_nonce(&mut b.header, false)),
        case("bad-txnmrklroot", "bad-txnmrklroot", |b| b.header.merkle_root = Hash::all_zeros()),
        case("bad-txns-duplicate (CVE-2012-2459: last tx repeated)", "bad-txns-duplicate", |b| {
            let last = b.txdata.last().unwrap().clone();
            b.txdata.push(last);
        }),
        case("bad-cb-missing (coinbase prevout not null)", "bad-cb-missing", |b| {
            b.txdata[0].input[0].previous_output = OutPoint { txid: Txid::all_zeros(), vout: 0 };
        }),
        case("bad-cb-multiple", "bad-cb-multiple", move |b| {
            b.txdata.push(regtest::coinbase_tx(height, Amount::ZERO, &regtest::op_true_script(), false));
        }),
        case("bad-cb-length (101+ bytes)", "bad-cb-length", move |b| {
            b.txdata[0].input[0].script_sig =
                Builder::new().push_int(height.into()).push_slice([0u8; 64]).push_slice([0u8; 36]).into_script();
        }),
        case("bad-cb-length (1 byte)", "bad-cb-length", |b| {
            b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(vec![0x51]);
        }),
        case("bad-cb-height (height + 1)", "bad-cb-height", move |b| {
            b.txdata[0].input[0].script_sig =
                Builder::new().push_int(i64::from(height) + 1).push_slice(extranonce).into_script();
        }),
        case("bad-cb-height (height pushed with OP_PUSHDATA1)", "bad-cb-height", move |b| {
            let h = Builder::new().push_int(height.into()).into_script().to_bytes();
            assert_eq!(h.len(), 2, "height {height} is one pushed byte");
            let mut s = vec![0x4c, 0x01, h[1], 0x08];
            s.extend_from_slice(&extranonce);
            b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(s);
        }),
        case("bad-cb-amount", "bad-cb-amount", |b| b.txdata[0].output[0].value += Amount::ONE_SAT),
        case("bad-blk-length (1 MB coinbase output script)", "bad-blk-length", |b| {
            b.txdata[0]
                .output
                .push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0x61; 1_000_001]) });
        }),
        case("bad-blk-weight (4 MB witness item)", "bad-blk-weight", move |b| {
            let mut t = op_true_spend(&[o3], fee).tx;
            t.input[0].witness = Witness::from_slice(&[vec![0u8; 4_000_000], vec![0x51]]);
            b.txdata.push(t);
        }),
        case("unexpected-witness (commitment removed)", "unexpected-witness", |b| {
            b.txdata[0].output.pop();
        }),
        case("bad-witness-nonce-size (31 bytes)", "bad-witness-nonce-size", |b| {
            b.txdata[0].input[0].witness = Witness::from_slice(&[[0u8; 31]]);
        }),
        case("bad-witness-merkle-match", "bad-witness-merkle-match", |b| {
            b.txdata[0].output[1].script_pubkey.as_mut_bytes()[10] ^= 1;
        }),
        case("bad-txns-vout-empty", "bad-txns-vout-empty", |b| b.txdata[6].output.clear()),
        case("bad-txns-vout-negative", "bad-txns-vout-negative", |b| {
            b.txdata[6].output[0].value = Amount::from_sat(u64::MAX); // -1 as int64
        }),
        case("bad-txns-vout-toolarge", "bad-txns-vout-toolarge", |b| {
            b.txdata[6].output[0].value = Amount::from_sat(MAX_MONEY + 1);
        }),
        case("bad-txns-txouttotal-toolarge", "bad-txns-txouttotal-toolarge", |b| {
            b.txdata[6].output[0].value = Amount::from_sat(MAX_MONEY);
            let extra = TxOut { value: Amount::ONE_SAT, script_pubkey: regtest::op_true_address().script_pubkey() };
            b.txdata[6].output.push(extra);
        }),
        case("bad-txns-inputs-duplicate", "bad-txns-inputs-duplicate", |b| {
            let again = b.txdata[6].input[0].clone();
            b.txdata[6].input.push(again);
        }),
        case("bad-txns-prevout-null (second input)", "bad-txns-prevout-null", |b| {
            b.txdata[6].input.push(TxIn { previous_output: OutPoint::null(), ..TxIn::default() });
        }),
        case("bad-txns-inputs-missingorspent (child before parent)", "bad-txns-inputs-missingorspent", |b| {
            b.txdata.swap(5, 6);
        }),
        case("bad-txns-inputs-missingorspent (double spend in block)", "bad-txns-inputs-missingorspent", |b| {
            let mut twin = b.txdata[6].clone();
            twin.output[0].value -= Amount::ONE_SAT;
            b.txdata.push(twin);
        }),
        case("bad-txns-premature-spend-of-coinbase (depth 99)", "bad-txns-premature-spend-of-coinbase", move |b| {
            b.txdata.push(op_true_spend(&[immature], fee).tx);
        }),
        case("bad-txns-in-belowout", "bad-txns-in-belowout", move |b| {
            b.txdata[6].output[0].value += fee + Amount::ONE_SAT;
        }),
        case("bad-txns-nonfinal (nLockTime = height)", "bad-txns-nonfinal", move |b| {
            b.txdata[6].lock_time = LockTime::from_consensus(height);
        }),
        case("bad-txns-nonfinal (nLockTime = MTP, BIP113)", "bad-txns-nonfinal", move |b| {
            b.txdata[6].lock_time = LockTime::from_consensus(mtp);
        }),
        case("bad-txns-nonfinal (BIP68: 1 block on an in-block coin)", "bad-txns-nonfinal", |b| {
            b.txdata[6].input[0].sequence = Sequence::from_height(1);
        }),
        case("bad-txns-nonfinal (BIP68: 65535 blocks on a confirmed coin)", "bad-txns-nonfinal", move |b| {
            let mut t = op_true_spend(&[o2], fee).tx;
            t.input[0].sequence = Sequence::from_height(u16::MAX);
            b.txdata.push(t);
        }),
        case("bad-blk-sigops (1,001 OP_CHECKMULTISIG in the coinbase)", "bad-blk-sigops", |b| {
            let script = ScriptBuf::from_bytes(vec![0xae; 1_001]);
            b.txdata[0].output.push(TxOut { value: Amount::ZERO, script_pubkey: script });
        }),
        case("bad ECDSA signature (P2PKH)", false_stack, |b| regtest::corrupt_signature(&mut b.txdata[1])),
        case("bad ECDSA signature (P2WPKH)", false_stack, |b| regtest::corrupt_signature(&mut b.txdata[2])),
        case("bad ECDSA signature (P2SH-P2WPKH)", false_stack, |b| regtest::corrupt_signature(&mut b.txdata[3])),
        case("bad Schnorr signature (P2TR key path)", script_fail("Invalid Schnorr signature"), |b| {
            regtest::corrupt_signature(&mut b.txdata[4])
        }),
        case("P2TR with an empty witness", script_fail("Witness program was passed an empty witness"), |b| {
            b.txdata[4].input[0].witness = Witness::new();
        }),
        case("P2WSH witness script not matching the hash", script_fail("Witness program hash mismatch"), |b| {
            b.txdata[5].input[0].witness = Witness::from_slice(&[[0x52u8]]);
        }),
        case("witness on a P2PKH input", script_fail("Witness provided for non-witness script"), |b| {
            b.txdata[1].input[0].witness = Witness::from_slice(&[[0x01u8]]);
        }),
        case(
            "P2SH-P2WPKH redeem script pushed with OP_PUSHDATA1",
            script_fail("Witness requires only-redeemscript scriptSig"),
            |b| {
                let s = b.txdata[3].input[0].script_sig.to_bytes();
                assert_eq!((s.len(), s[0]), (23, 0x16), "P2SH-P2WPKH scriptSig is one 22-byte push");
                let mut t = vec![0x4c, 0x16];
                t.extend_from_slice(&s[1..]);
                b.txdata[3].input[0].script_sig = ScriptBuf::from_bytes(t);
            },
        ),
    ];
    let mutations = cases.len();
    // Last: the valid block itself.
    cases.push(Case { name: "valid block", core: None, tweak: Box::new(|_| ()), spent: None });

    // ---- Run every case through Core and kiln.
    let mut view = UtxoView { node: &node, cache: HashMap::new() };
    let opts =
        Options { network: Network::Regtest, height: Some(height), median_time_past: Some(mtp), ..Options::default() };
    let mut rows: Vec<Row> = Vec::new();
    let mut good_hash = None;
    let mut good_report = None;
    for Case { name, core: want, tweak, spent: spent_tweak } in cases {
        let block = regtest::build_block(&template, &txs, &payout, tweak);
        let mut spent = view.spent(&block, height);
        if let Some(f) = spent_tweak {
            f(&block, &mut spent);
        }
        let txouts: Vec<TxOut> = spent.iter().map(|s| s.txout.clone()).collect();
        let origins: Vec<CoinOrigin> = spent.iter().map(|s| s.origin).collect();
        let kiln = validate_block(&block, &txouts, Some(&origins), &opts);

        let core = match regtest::submit_block(&node, &block) {
            Ok(None) => None,
            Ok(Some(reason)) => Some(reason),
            Err(e) => Some(format!("rpc error: {e}")),
        };
        let generator_ok = core.as_deref() == want;
        let (agree, kiln_text) = match &kiln {
            Err(e) => (false, format!("error: {e}")),
            Ok(r) => {
                let names = kiln_names(r);
                let agree = match &core {
                    None => r.is_valid(),
                    Some(reason) => !r.is_valid() && names.iter().any(|n| n == core_rule(reason)),
                };
                let mut text = if r.is_valid() { "valid".to_owned() } else { names.join(", ") };
                if let Some(bad) = r.bad_inputs.first() {
                    text.push_str(&format!(" [tx {} input {}: {}]", bad.tx_index, bad.input_index, bad.reason));
                }
                (agree, text)
            }
        };
        if want.is_none()
            && let Ok(r) = kiln
        {
            good_hash = Some(block.block_hash());
            good_report = Some(r);
        }
        rows.push(Row { name, core: core.unwrap_or_else(|| "accepted".into()), kiln: kiln_text, agree, generator_ok });
    }
    let elapsed = t0.elapsed();

    // ---- Report.
    eprintln!("\n{:<58} | {:<40} | kiln", "case", "Core");
    eprintln!("{}", "-".repeat(140));
    for r in &rows {
        let mark = if !r.agree {
            "  <-- DISAGREE"
        } else if !r.generator_ok {
            "  <-- unexpected Core answer"
        } else {
            ""
        };
        eprintln!("{:<58} | {:<40} | {}{mark}", r.name, r.core, r.kiln);
    }
    eprintln!("\n{} mutations + the valid block; funded in {funded:?}, whole test {elapsed:?}", mutations);

    // ---- Assertions.
    assert!(mutations >= 25, "at least 25 mutations, got {mutations}");
    let tip_now = regtest::best_block_hash(&node).unwrap();
    assert_eq!(Some(tip_now), good_hash, "the valid block did not become Core's tip");
    let good = good_report.expect("kiln validated the valid block");
    let unchecked: Vec<&str> = good.not_checked().iter().map(|n| n.rule).filter(|&r| r != "bad-txns-BIP30").collect();
    assert!(unchecked.is_empty(), "kiln left rules unchecked on the valid block: {unchecked:?}");
    eprintln!("valid block's inputs by type: {:?}", good.inputs_by_type);
    // The valid block spends every output type, as Core classifies them.
    let b3 = node.rpc("getblock", kiln_testkit::serde_json::json!([tip_now.to_string(), 3])).unwrap();
    let mut types: Vec<&str> = b3["tx"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .flat_map(|tx| tx["vin"].as_array().unwrap())
        .map(|vin| vin["prevout"]["scriptPubKey"]["type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        ["pubkeyhash", "scripthash", "witness_v0_keyhash", "witness_v0_scripthash", "witness_v1_taproot"]
    );

    let generator: Vec<String> =
        rows.iter().filter(|r| !r.generator_ok).map(|r| format!("{}: Core said {}", r.name, r.core)).collect();
    assert!(
        generator.is_empty(),
        "cases that did not get the Core answer they were written for:\n{}",
        generator.join("\n")
    );
    let disagreements: Vec<String> = rows
        .iter()
        .filter(|r| !r.agree)
        .map(|r| {
            let known = KNOWN_DISAGREEMENTS.iter().find(|(n, _)| *n == r.name).map(|(_, why)| *why);
            format!(
                "{}: Core `{}`, kiln `{}`{}",
                r.name,
                r.core,
                r.kiln,
                known.map(|w| format!(" (known: {w})")).unwrap_or_default()
            )
        })
        .collect();
    assert!(
        disagreements.is_empty(),
        "kiln disagrees with Core on {} block(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(elapsed.as_secs() < 60, "the test took {elapsed:?}");
}
