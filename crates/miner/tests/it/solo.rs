//! Solo mining against a real `bitcoind -regtest` on loopback: kiln builds
//! every block (coinbase, witness commitment, merkle root) and Core's own
//! validation accepts it; real P2PKH, P2WPKH, P2SH-P2WPKH and P2TR spends
//! from the node's mempool end up in kiln's blocks; kiln follows a block the
//! node found itself, survives a node restart, and refuses bad credentials
//! and an address of another network before mining.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, BlockHash, ScriptBuf, TxOut, Txid};
use serde_json::{Value, json};

use kiln_gbt::{Auth, Dialect};
use kiln_hash::Backend;
use kiln_miner::source::solo::{SoloConfig, SoloOptions};
use kiln_miner::{JobSource, Miner, MinerConfig, MinerError};
use kiln_scan::gpu::{GpuScannerOptions, GpuSelection};
use kiln_testkit::regtest::{self, AddrKind, Coin, Key};
use kiln_testkit::{Node, NodeOptions, require_node};

fn cookie_node() -> NodeOptions {
    NodeOptions::new().listen(false).auth(kiln_testkit::Auth::Cookie)
}

fn solo(node: &Node, address: &str) -> SoloConfig {
    SoloConfig {
        endpoint: node.rpc_url().parse().unwrap(),
        auth: Auth::Cookie(node.cookie_path()),
        address: address.to_string(),
        tag: b"/kiln-test/".to_vec(),
        dialect: Dialect::V2,
        proposal: false,
        opts: SoloOptions {
            refresh: Duration::from_secs(2),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..SoloOptions::default()
        },
    }
}

fn config(solo: SoloConfig, rate: Option<f64>) -> MinerConfig {
    MinerConfig {
        source: JobSource::Solo(solo),
        cpu_threads: 1,
        backend: Backend::detect(),
        gpu: GpuSelection::Off,
        gpu_options: GpuScannerOptions::default(),
        api: None,
        max_solutions_per_second: rate,
        cgminer_api: None,
    }
}

/// Waits until `f` holds, or fails the test with `what`.
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < until, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn height(node: &Node) -> u32 {
    regtest::block_count(node).unwrap()
}

fn block_at(node: &Node, h: u32) -> bitcoin::Block {
    let hash: BlockHash = node.rpc("getblockhash", json!([h])).unwrap().as_str().unwrap().parse().unwrap();
    regtest::get_block(node, &hash).unwrap()
}

/// Spends each coin to P2WSH(OP_TRUE) and puts the transaction in the
/// node's mempool; returns the txids.
fn send_spends(node: &Node, coins: &[Coin]) -> Vec<Txid> {
    coins
        .iter()
        .map(|c| {
            let out = TxOut {
                value: c.txout.value - Amount::from_sat(5_000),
                script_pubkey: regtest::op_true_address().script_pubkey(),
            };
            let spend = regtest::spend(node, std::slice::from_ref(c), vec![out]).unwrap();
            let txid = node.rpc("sendrawtransaction", json!([serialize_hex(&spend.tx)])).unwrap();
            assert_eq!(txid.as_str().unwrap(), spend.tx.compute_txid().to_string());
            spend.tx.compute_txid()
        })
        .collect()
}

fn payout() -> (String, ScriptBuf) {
    let key = Key::random();
    (key.address(AddrKind::P2wpkh).to_string(), key.script_pubkey(AddrKind::P2wpkh))
}

#[test]
fn mines_twenty_blocks_core_accepts_with_real_mempool_transactions() {
    let node = require_node!(cookie_node());
    // Two coins of each kind: one batch in the mempool before kiln starts,
    // one sent while it mines (picked up by a later template).
    let owners: Vec<(Key, AddrKind)> =
        AddrKind::ALL.iter().chain(AddrKind::ALL.iter()).map(|k| (Key::random(), *k)).collect();
    let coins = regtest::mine_coins(&node, &owners).unwrap();
    let mut expected: HashSet<Txid> = send_spends(&node, &coins[..4]).into_iter().collect();
    let start = height(&node);
    let (address, payout_spk) = payout();
    let api = Some("127.0.0.1:0".parse().unwrap());
    let miner = Miner::start(MinerConfig { api, ..config(solo(&node, &address), Some(20.0)) }).unwrap();
    let stats = miner.stats();
    wait_for("5 accepted blocks", Duration::from_secs(60), || stats.snapshot().blocks_accepted >= 5);
    expected.extend(send_spends(&node, &coins[4..]));
    wait_for("25 accepted blocks", Duration::from_secs(90), || stats.snapshot().blocks_accepted >= 25);
    // The same API as pool mining: the node, its state and the blocks.
    let api = miner.api_addr.unwrap();
    let summary = crate::dashboard::json(api, "/summary");
    assert!(summary["blocks_accepted"].as_u64().unwrap() >= 25, "{summary}");
    assert_eq!(summary["pool"], node.rpc_url().trim_end_matches('/'));
    assert_eq!(summary["pool_state"], "connected");
    let (_, metrics) = crate::dashboard::http_get(api, "/metrics");
    assert!(metrics.contains("blocks_accepted_total"), "{metrics}");
    miner.stop();
    let s = stats.snapshot();
    eprintln!(
        "solo: {} found, {} accepted, {} rejected, stale {}; median template→hashing {:?} ms ({}), found→submitted {:?} ms ({})",
        s.blocks,
        s.blocks_accepted,
        s.blocks_rejected,
        s.stale,
        s.job_switch_ms_median,
        s.job_switch_samples,
        s.submit_ms_median,
        s.submit_samples
    );
    assert_eq!(s.blocks_rejected, 0, "rejections: {:?}", s.rejected_by_reason);
    assert_eq!(s.hw_errors, 0);

    // Every block after `start` is kiln's (pays kiln's address), the node's
    // best chain is made of them, and every spend is in one of them.
    let tip = height(&node);
    assert!(tip >= start + 25, "tip {tip}, start {start}");
    assert_eq!(u64::from(tip - start), s.blocks_accepted, "every accepted block is on the best chain");
    let mut included = HashSet::new();
    let mut prev = block_at(&node, start).block_hash();
    for h in start + 1..=tip {
        let b = block_at(&node, h);
        assert_eq!(b.header.prev_blockhash, prev, "height {h} extends the chain");
        assert_eq!(b.txdata[0].output[0].script_pubkey, payout_spk, "height {h} is kiln's");
        assert!(String::from_utf8_lossy(b.txdata[0].input[0].script_sig.as_bytes()).contains("/kiln-test/"));
        included.extend(b.txdata.iter().skip(1).map(|t| t.compute_txid()));
        prev = b.block_hash();
    }
    let best: BlockHash = node.rpc("getbestblockhash", json!([])).unwrap().as_str().unwrap().parse().unwrap();
    assert_eq!(best, prev);
    let missing: Vec<_> = expected.difference(&included).collect();
    assert!(missing.is_empty(), "spends not mined by kiln: {missing:?}");
    // Taproot and segwit spends make the witness commitment matter: Core
    // accepted it (the blocks are on its best chain).
    let mempool = node.rpc("getrawmempool", json!([])).unwrap();
    assert_eq!(mempool.as_array().map(Vec::len), Some(0));
}

#[test]
fn follows_a_block_the_node_found_and_submits_nothing_on_the_old_tip() {
    let node = require_node!(cookie_node());
    regtest::generate_to_address(&node, 5, &regtest::op_true_address()).unwrap();
    let (address, payout_spk) = payout();
    // About one block every 4 s: the node's own block lands while kiln works,
    // and the chance that kiln finds one in the ~20 ms before the long poll
    // tells it about the node's block (which would make an honest fork) is
    // about 0.5 %.
    let miner = Miner::start(config(solo(&node, &address), Some(0.25))).unwrap();
    let stats = miner.stats();
    wait_for("the first template on the scanners", Duration::from_secs(30), || {
        stats.snapshot().job_switch_samples >= 1
    });
    let switches = stats.snapshot().job_switch_samples;
    let theirs = regtest::generate_to_address(&node, 1, &regtest::op_true_address()).unwrap().pop().unwrap();
    let their_height = height(&node);
    let t = Instant::now();
    wait_for("kiln on the node's new tip", Duration::from_secs(10), || stats.snapshot().job_switch_samples > switches);
    let followed_in = t.elapsed();
    let accepted = stats.snapshot().blocks_accepted;
    wait_for("two kiln blocks on top", Duration::from_secs(60), || stats.snapshot().blocks_accepted >= accepted + 2);
    miner.stop();
    eprintln!("kiln followed the node's block in {followed_in:?}");

    // The node's block is still on the best chain, kiln built on it, and no
    // kiln block competes with it at its height.
    assert_eq!(block_at(&node, their_height).block_hash(), theirs);
    let next = block_at(&node, their_height + 1);
    assert_eq!(next.header.prev_blockhash, theirs);
    assert_eq!(next.txdata[0].output[0].script_pubkey, payout_spk);
    let tips = node.rpc("getchaintips", json!([])).unwrap();
    let forks: Vec<&Value> = tips.as_array().unwrap().iter().filter(|t| t["status"] != "active").collect();
    assert!(forks.is_empty(), "kiln submitted a competing block: {forks:?}");
    assert_eq!(stats.snapshot().blocks_rejected, 0);
}

#[test]
fn waits_through_a_node_restart_and_mines_on() {
    let mut node = require_node!(cookie_node());
    let (address, _) = payout();
    let miner = Miner::start(config(solo(&node, &address), Some(5.0))).unwrap();
    let stats = miner.stats();
    wait_for("3 accepted blocks", Duration::from_secs(60), || stats.snapshot().blocks_accepted >= 3);
    // The restart writes a new cookie: kiln must read it again.
    node.restart(Duration::from_secs(2)).unwrap();
    let before = stats.snapshot().blocks_accepted;
    wait_for("3 more accepted blocks after the restart", Duration::from_secs(60), || {
        stats.snapshot().blocks_accepted >= before + 3
    });
    assert!(miner.is_running());
    assert!(miner.failure().is_none());
    let s = stats.snapshot();
    assert_eq!(s.pool_state, "connected", "the status says the node is back");
    assert!(s.pools[0].failures >= 1, "the outage was noticed: {:?}", s.pools);
    miner.stop();
    assert_eq!(u64::from(height(&node)), stats.snapshot().blocks_accepted);
}

#[test]
fn proposals_and_json_rpc_1_0_work_too() {
    let node = require_node!(cookie_node());
    let (address, _) = payout();
    let cfg = SoloConfig { proposal: true, dialect: Dialect::V1, ..solo(&node, &address) };
    let miner = Miner::start(config(cfg, Some(10.0))).unwrap();
    let stats = miner.stats();
    wait_for("3 accepted blocks", Duration::from_secs(60), || stats.snapshot().blocks_accepted >= 3);
    miner.stop();
    assert_eq!(stats.snapshot().blocks_rejected, 0);
}

#[test]
fn bad_credentials_and_foreign_addresses_are_refused_before_mining() {
    let node = require_node!(cookie_node());
    let (address, _) = payout();
    let wrong =
        SoloConfig { auth: Auth::UserPass { user: "kiln".into(), pass: "wrong".into() }, ..solo(&node, &address) };
    let e = Miner::start(config(wrong, None)).err().expect("bad credentials must not start");
    assert!(matches!(e, MinerError::Solo(_)), "{e}");
    assert!(e.to_string().contains("401"), "{e}");
    let mainnet = solo(&node, "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq");
    let e = Miner::start(config(mainnet, None)).err().expect("a mainnet address on regtest must not start");
    assert!(e.to_string().contains("regtest"), "{e}");
    assert_eq!(height(&node), 0, "nothing was mined");
}
