//! Tests against a real regtest bitcoind (skipped without one; set
//! BITCOIND=/path/to/bitcoind, and KILN_REQUIRE_BITCOIND=1 to make a missing
//! binary a failure).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_testkit::bitcoin::{Amount, Block, CompactTarget, TxOut, Witness};
use kiln_testkit::regtest::{self, AddrKind, BlockTx, Key, Template};
use kiln_testkit::serde_json::{Value, json};
use kiln_testkit::{Auth, JsonRpcVersion, NodeOptions, RpcError, require_node};

fn process_alive(pid: u32) -> bool {
    // A zombie would still have /proc/PID, but Node reaps its child.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn start_stop_removes_datadir() {
    let t = Instant::now();
    let node = require_node!();
    let started = t.elapsed();
    let datadir = node.datadir().to_owned();
    let pid = node.pid().unwrap();
    assert!(datadir.join("regtest").is_dir());
    assert!(node.rpc_url().starts_with("http://127.0.0.1:"));
    let info = node.rpc("getblockchaininfo", json!([])).unwrap();
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 0);
    // P2P port accepts connections; cookie file absent with user/password auth.
    let p2p = node.p2p_addr().expect("listening by default");
    std::net::TcpStream::connect_timeout(&p2p, Duration::from_secs(2)).expect("p2p port accepts");
    assert!(!node.cookie_path().exists());
    let t2 = Instant::now();
    drop(node);
    let stopped = t2.elapsed();
    assert!(!datadir.exists(), "datadir {} still exists", datadir.display());
    assert!(!process_alive(pid), "bitcoind {pid} still running");
    eprintln!("start {started:?}, stop {stopped:?}");
}

#[test]
fn panic_in_test_still_stops_node() {
    let mut seen: Option<(PathBuf, u32)> = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let node = require_node!();
        seen = Some((node.datadir().to_owned(), node.pid().unwrap()));
        assert!(process_alive(node.pid().unwrap()));
        panic!("deliberate failure inside a test");
    }));
    let Some((datadir, pid)) = seen else {
        // Skipped, unless the panic we caught was the "required" one.
        assert!(!kiln_testkit::node::bitcoind_required(), "no bitcoind but KILN_REQUIRE_BITCOIND=1");
        return;
    };
    assert!(result.is_err(), "the closure should have panicked");
    assert!(!datadir.exists(), "datadir {} left behind", datadir.display());
    assert!(!process_alive(pid), "bitcoind {pid} left running");
}

#[test]
fn cookie_auth_and_rpc_errors() {
    let node = require_node!(NodeOptions::new().auth(Auth::Cookie).listen(false));
    assert!(node.cookie_path().is_file());
    assert!(node.p2p_addr().is_none());
    let cookie = std::fs::read_to_string(node.cookie_path()).unwrap();
    assert!(cookie.starts_with("__cookie__:"));

    for version in [JsonRpcVersion::V1, JsonRpcVersion::V2] {
        let mut c = node.rpc_client().clone();
        c.version = version;
        assert_eq!(c.call("getblockcount", Value::Null).unwrap(), json!(0));
        match c.call("getblock", json!(["00"])) {
            Err(RpcError::Rpc { code: -8, message }) => assert!(message.contains("length 64"), "{message}"),
            other => panic!("{version:?}: {other:?}"),
        }
        match c.call("nosuchmethod", json!([])) {
            Err(RpcError::Rpc { code: -32601, .. }) => {}
            other => panic!("{version:?}: {other:?}"),
        }
        // named parameters
        let h = c.call("getblockhash", json!({"height": 0})).unwrap();
        assert_eq!(h.as_str().unwrap().len(), 64);
    }
    let wrong = kiln_testkit::RpcClient::new(node.rpc_addr(), "__cookie__", "wrong");
    assert!(matches!(wrong.call("getblockcount", Value::Null), Err(RpcError::Http { status: 401, .. })));
}

#[test]
fn mine_101_blocks_and_coinbase_maturity() {
    let node = require_node!(NodeOptions::new().listen(false));
    let key = Key::random();
    let addr = key.address(AddrKind::P2wpkh);
    let t = Instant::now();
    let hashes = regtest::generate_to_address(&node, 99, &addr).unwrap();
    assert_eq!(hashes.len(), 99);
    assert_eq!(regtest::block_count(&node).unwrap(), 99);

    // The height-1 coinbase, spent at tip 99 (next block 100): premature.
    let block1 = regtest::get_block(&node, &hashes[0]).unwrap();
    let coin = regtest::coin_of(&block1.txdata[0], 0, key, AddrKind::P2wpkh);
    let out = vec![TxOut {
        value: coin.txout.value - Amount::from_sat(1000),
        script_pubkey: regtest::op_true_address().script_pubkey(),
    }];
    let spend = regtest::spend(&node, std::slice::from_ref(&coin), out).unwrap();
    let early = regtest::test_mempool_accept(&node, &spend.tx).unwrap();
    assert_eq!(early.as_deref(), Some("bad-txns-premature-spend-of-coinbase"));
    // Tip 100: the next block, 101, is 100 blocks after the coin's: mature.
    regtest::generate_to_address(&node, 1, &addr).unwrap();
    assert_eq!(regtest::test_mempool_accept(&node, &spend.tx).unwrap(), None, "mature for block 101");

    let last = regtest::generate_to_address(&node, 1, &addr).unwrap();
    assert_eq!(regtest::block_count(&node).unwrap(), 101);
    assert_eq!(regtest::best_block_hash(&node).unwrap(), last[0]);
    eprintln!("101 blocks + checks in {:?}", t.elapsed());
}

/// The key test: one block holding P2PKH, P2WPKH, P2SH-P2WPKH and P2TR
/// key-path spends (single-type txs, one mixed 4-input tx, and a child
/// spending a parent in the same block), built in Rust from a template.
#[test]
fn block_with_every_spend_type_is_accepted_and_mutation_rejected() {
    let node = require_node!(NodeOptions::new().listen(false));
    let t = Instant::now();
    let keys: Vec<Key> = (0..4).map(|_| Key::random()).collect();
    // Two coins of each kind: 8 coinbases, then 100 maturing blocks.
    let owners: Vec<(Key, AddrKind)> = (0..8).map(|i| (keys[i % 4], AddrKind::ALL[i % 4])).collect();
    let coins = regtest::mine_coins(&node, &owners).unwrap();
    assert_eq!(regtest::block_count(&node).unwrap(), 108);
    let funded = t.elapsed();

    let fee = Amount::from_sat(2_000);
    let mut txs: Vec<BlockTx> = Vec::new();
    // One single-input tx per kind, each paying to the next kind's address.
    for (i, coin) in coins[..4].iter().enumerate() {
        let next = AddrKind::ALL[(i + 1) % 4];
        let out = vec![TxOut { value: coin.txout.value - fee, script_pubkey: keys[i].script_pubkey(next) }];
        txs.push(regtest::spend(&node, std::slice::from_ref(coin), out).unwrap());
    }
    // One tx mixing all four kinds as inputs, two outputs.
    let total: Amount = coins[4..].iter().map(|c| c.txout.value).sum();
    let half = (total - fee) / 2;
    let mixed = regtest::spend(
        &node,
        &coins[4..],
        vec![
            TxOut { value: half, script_pubkey: keys[0].script_pubkey(AddrKind::P2tr) },
            TxOut { value: total - fee - half, script_pubkey: keys[1].script_pubkey(AddrKind::P2shP2wpkh) },
        ],
    )
    .unwrap();
    // A child spending the mixed tx's P2TR output inside the same block.
    let parent_out = regtest::coin_of(&mixed.tx, 0, keys[0], AddrKind::P2tr);
    let child = regtest::spend(
        &node,
        std::slice::from_ref(&parent_out),
        vec![TxOut { value: half - fee, script_pubkey: keys[2].script_pubkey(AddrKind::P2pkh) }],
    )
    .unwrap();
    txs.push(mixed);
    txs.push(child);
    // Each standalone spend is also acceptable to Core's mempool checks.
    for btx in &txs[..5] {
        assert_eq!(regtest::test_mempool_accept(&node, &btx.tx).unwrap(), None);
    }

    // Fees looked up from the node (and from the in-block parent) agree.
    let looked_up = regtest::with_fees(&node, txs.iter().map(|t| t.tx.clone()).collect()).unwrap();
    assert!(looked_up.iter().all(|t| t.fee == fee));

    let template = Template::fetch(&node).unwrap();
    assert_eq!(template.height, 109);
    assert!(template.segwit);
    assert!(template.transactions.is_empty());
    let payout = keys[3].script_pubkey(AddrKind::P2wpkh);

    let good = regtest::build_block(&template, &txs, &payout, |_| {});
    assert_eq!(good.txdata.len(), 7);
    assert_eq!(good.txdata[0].output[0].value, template.coinbase_value + fee * 6);

    // Spent outputs, looked up before submitting.
    let spent = regtest::spent_outputs_json(&node, &good).unwrap();
    let spent = spent.as_array().unwrap().clone();
    assert_eq!(spent.len(), 9); // 4 + 4 + 1 inputs

    // The mutated copy first: it has the same parent, so Core connects it
    // (and rejects it) rather than parking it as an equal-work side branch.
    let over = regtest::build_block(&template, &txs, &payout, |b: &mut Block| {
        b.txdata[0].output[0].value += Amount::ONE_SAT;
    });
    assert_ne!(over.block_hash(), good.block_hash());
    assert_eq!(regtest::submit_block(&node, &over).unwrap().as_deref(), Some("bad-cb-amount"));
    assert_eq!(regtest::block_count(&node).unwrap(), 108);

    assert_eq!(regtest::submit_block(&node, &good).unwrap(), None, "Core rejected the good block");
    assert_eq!(regtest::best_block_hash(&node).unwrap(), good.block_hash());
    assert_eq!(regtest::submit_block(&node, &good).unwrap().as_deref(), Some("duplicate"));

    // Compare our spent outputs with Core's own `getblock HASH 3` prevouts.
    let b3 = node.rpc("getblock", json!([good.block_hash().to_string(), 3])).unwrap();
    let mut core_prevouts = Vec::new();
    for tx in b3["tx"].as_array().unwrap().iter().skip(1) {
        for vin in tx["vin"].as_array().unwrap() {
            core_prevouts.push(vin["prevout"].clone());
        }
    }
    assert_eq!(core_prevouts.len(), spent.len());
    for (ours, core) in spent.iter().zip(&core_prevouts) {
        let sats = (core["value"].as_f64().unwrap() * 1e8).round() as u64;
        assert_eq!(ours["txout"]["value"].as_u64().unwrap(), sats);
        assert_eq!(ours["txout"]["script_pubkey"], core["scriptPubKey"]["hex"]);
        assert_eq!(ours["is_coinbase"], core["generated"]);
        assert_eq!(ours["creation_height"], core["height"]);
        let h = ours["creation_height"].as_u64().unwrap();
        let hash = node.rpc("getblockhash", json!([h])).unwrap();
        let header = node.rpc("getblockheader", json!([hash])).unwrap();
        assert_eq!(ours["creation_time"], header["time"]);
    }
    // The types spent, as Core names them.
    let mut types: Vec<String> =
        core_prevouts.iter().map(|p| p["scriptPubKey"]["type"].as_str().unwrap().to_owned()).collect();
    types.sort();
    types.dedup();
    assert_eq!(types, ["pubkeyhash", "scripthash", "witness_v0_keyhash", "witness_v1_taproot"]);
    eprintln!("funded in {funded:?}; whole test {:?}; spent outputs[0] = {}", t.elapsed(), spent[0]);
}

#[test]
fn mutations_get_cores_reject_strings() {
    let node = require_node!(NodeOptions::new().listen(false));
    let key = Key::random();
    let owners: Vec<(Key, AddrKind)> = AddrKind::ALL.iter().map(|&k| (key, k)).collect();
    let coins = regtest::mine_coins(&node, &owners).unwrap();
    let payout = regtest::op_true_address().script_pubkey();
    // txs[i] spends coins[i] (block position i + 1).
    let txs: Vec<BlockTx> = coins
        .iter()
        .map(|c| {
            let out = TxOut { value: c.txout.value - Amount::from_sat(1_000), script_pubkey: payout.clone() };
            regtest::spend(&node, std::slice::from_ref(c), vec![out]).unwrap()
        })
        .collect();
    let template = Template::fetch(&node).unwrap();
    let bad_sig = "block-script-verify-flag-failed (Script evaluated without error but finished with a false/empty top stack element)";
    type Tweak = Box<dyn FnOnce(&mut Block)>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("high-hash", Box::new(|b| regtest::grind_nonce(&mut b.header, false))),
        ("bad-txnmrklroot", Box::new(|b| b.header.merkle_root = kiln_testkit::bitcoin::hashes::Hash::all_zeros())),
        ("bad-diffbits", Box::new(|b| b.header.bits = CompactTarget::from_consensus(0x207ffffe))),
        ("time-too-old", Box::new(move |b| b.header.time = template.mintime - 1)),
        ("time-too-new", Box::new(move |b| b.header.time = template.curtime + 3 * 3600)),
        ("bad-witness-nonce-size", Box::new(|b| b.txdata[0].input[0].witness = Witness::from_slice(&[[0u8; 31]]))),
        ("bad-witness-merkle-match", Box::new(|b| b.txdata[0].output[1].script_pubkey.as_mut_bytes()[10] ^= 1)),
        ("unexpected-witness", Box::new(|b| drop(b.txdata[0].output.pop()))),
        (
            "bad-cb-height",
            Box::new(|b| {
                b.txdata[0].input[0].script_sig =
                    kiln_testkit::bitcoin::script::Builder::new().push_int(1000).push_int(7).into_script()
            }),
        ),
        ("bad-cb-amount", Box::new(|b| b.txdata[0].output[0].value += Amount::ONE_SAT)),
        ("bad-txns-in-belowout", Box::new(|b| b.txdata[1].output[0].value += Amount::from_sat(1_001))),
        (bad_sig, Box::new(|b| regtest::corrupt_signature(&mut b.txdata[1]))), // P2PKH
        (bad_sig, Box::new(|b| regtest::corrupt_signature(&mut b.txdata[2]))), // P2WPKH
        (bad_sig, Box::new(|b| regtest::corrupt_signature(&mut b.txdata[3]))), // P2SH-P2WPKH
        (
            "block-script-verify-flag-failed (Invalid Schnorr signature)",
            Box::new(|b| regtest::corrupt_signature(&mut b.txdata[4])),
        ),
        (
            "block-script-verify-flag-failed (Witness program was passed an empty witness)",
            Box::new(|b| b.txdata[4].input[0].witness = Witness::new()),
        ),
    ];
    let mut seen = Vec::new();
    for (want, tweak) in cases {
        let block = regtest::build_block(&template, &txs, &payout, tweak);
        let got = regtest::submit_block(&node, &block).unwrap();
        seen.push(got.clone().unwrap_or_default());
        assert_eq!(got.as_deref(), Some(want), "so far: {seen:?}");
    }
    let good = regtest::build_block(&template, &txs, &payout, |_| {});
    assert_eq!(regtest::submit_block(&node, &good).unwrap(), None);
    // Once the good block is the tip, a mutated sibling with equal work is
    // not connected, so Core cannot say what is wrong with it.
    let late = regtest::build_block(&template, &txs, &payout, |b| b.txdata[0].output[0].value += Amount::ONE_SAT);
    assert_eq!(regtest::submit_block(&node, &late).unwrap().as_deref(), Some("inconclusive"));
    assert_eq!(regtest::best_block_hash(&node).unwrap(), good.block_hash());
    eprintln!("{} reject strings checked", seen.len());
}

#[test]
fn two_nodes_sync_over_p2p() {
    let a = require_node!();
    let a_p2p = a.p2p_addr().unwrap();
    let b = require_node!(NodeOptions::new().listen(false).arg(format!("-connect={a_p2p}")));
    regtest::generate_to_address(&a, 5, &regtest::op_true_address()).unwrap();
    let want = regtest::best_block_hash(&a).unwrap();
    let t = Instant::now();
    while regtest::best_block_hash(&b).unwrap() != want {
        assert!(t.elapsed() < Duration::from_secs(15), "B did not sync from A");
        std::thread::sleep(Duration::from_millis(50));
    }
    let peers = b.rpc("getpeerinfo", json!([])).unwrap();
    assert_eq!(peers.as_array().unwrap().len(), 1);
    eprintln!("B synced 5 blocks in {:?}; transport {}", t.elapsed(), peers[0]["transport_protocol_type"]);
}

/// Re-runs `start_stop_removes_datadir` in a child process with no bitcoind
/// reachable: it must pass as skipped normally and fail under
/// KILN_REQUIRE_BITCOIND=1.
#[test]
fn missing_bitcoind_skips_or_fails_as_configured() {
    if std::env::var_os("KILN_TESTKIT_CHILD").is_some() {
        return; // don't recurse
    }
    let exe = std::env::current_exe().unwrap();
    let run = |require: bool| {
        let mut cmd = Command::new(&exe);
        cmd.args(["real_node::start_stop_removes_datadir", "--exact", "--nocapture", "--test-threads=1"])
            .env_remove("BITCOIND")
            .env("PATH", "/nonexistent")
            .env("KILN_TESTKIT_CHILD", "1");
        if require {
            cmd.env("KILN_REQUIRE_BITCOIND", "1");
        } else {
            cmd.env_remove("KILN_REQUIRE_BITCOIND");
        }
        let out = cmd.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = run(false);
    assert!(ok, "{text}");
    assert!(text.contains("skipped: no bitcoind (set BITCOIND)"), "{text}");
    let (ok, text) = run(true);
    assert!(!ok, "{text}");
    assert!(text.contains("KILN_REQUIRE_BITCOIND=1 but no bitcoind was found"), "{text}");
}
