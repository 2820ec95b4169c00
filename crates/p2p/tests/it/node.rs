//! The node against real `bitcoind -regtest` processes on 127.0.0.1:
//! kiln syncs a chain of 3,000 blocks holding real segwit and
//! taproot spends from one Core node, then serves the whole chain to a
//! second, empty Core node connected to kiln only, relays a block the first
//! node mines to the second, and pushes a block handed to it to both; a
//! reorg between two Core nodes' competing branches; hostile inbound peers
//! dropped while the honest peer is unaffected. Every kiln–Core connection
//! here is BIP324 v2 (Core's default), checked on both sides. Skipped without a
//! `bitcoind` unless `KILN_REQUIRE_BITCOIND=1`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::{Amount, BlockHash, Network, TxOut};
use kiln_p2p::HeaderChain;
use kiln_p2p::headers::{from_bitcoin_hash, to_bitcoin_hash};
use kiln_p2p::node::{NodeDriver, NodeOptions as KilnOptions};
use kiln_p2p::wire::{self, Decoder};
use kiln_store::BlockStore;
use kiln_testkit::regtest::{self, AddrKind, Key};
use kiln_testkit::serde_json::json;
use kiln_testkit::{Node, NodeOptions, TempDir, require_node};

fn best(node: &Node) -> BlockHash {
    regtest::best_block_hash(node).unwrap()
}

fn kiln_options() -> KilnOptions {
    KilnOptions { listen: Some("127.0.0.1:0".parse().unwrap()), ..KilnOptions::default() }
}

fn full_node(dir: &TempDir, peers: &[SocketAddr]) -> NodeDriver {
    let store = BlockStore::open(dir.path()).unwrap();
    NodeDriver::with_store(peers, HeaderChain::new(Network::Regtest), store, kiln_options()).unwrap()
}

/// Runs kiln until `cond` holds, checking it at most every 100 ms (it may
/// call a node's RPC), failing after `limit` with `what`.
fn run_until(kiln: &mut NodeDriver, limit: Duration, what: &str, mut cond: impl FnMut(&NodeDriver) -> bool) {
    let mut last = Instant::now() - Duration::from_secs(1);
    let done = kiln
        .run_until(Instant::now() + limit, |k| {
            if last.elapsed() < Duration::from_millis(100) {
                return false;
            }
            last = Instant::now();
            cond(k)
        })
        .unwrap();
    assert!(
        done,
        "timed out after {limit:?} waiting for {what}; kiln: headers {}, block tip {:?}, {:?}, {:?}",
        kiln.chain().best_height(),
        kiln.block_tip(),
        kiln.stats(),
        kiln.connections()
    );
}

/// A chain of `blocks` blocks on `node` whose early blocks spend P2PKH,
/// P2WPKH, P2SH-P2WPKH and P2TR (key path) coins; returns the heights
/// holding the spends.
fn build_chain(node: &Node, blocks: u32) -> Vec<u32> {
    let owners: Vec<(Key, AddrKind)> = AddrKind::ALL.iter().map(|k| (Key::random(), *k)).collect();
    let coins = regtest::mine_coins(node, &owners).unwrap();
    let mut spend_heights = Vec::new();
    for chunk in coins.chunks(2) {
        for c in chunk {
            let out = TxOut {
                value: c.txout.value - Amount::from_sat(10_000),
                script_pubkey: regtest::op_true_address().script_pubkey(),
            };
            let spend = regtest::spend(node, std::slice::from_ref(c), vec![out]).unwrap();
            node.rpc("sendrawtransaction", json!([serialize_hex(&spend.tx)])).unwrap();
        }
        regtest::generate_to_address(node, 1, &regtest::op_true_address()).unwrap();
        spend_heights.push(regtest::block_count(node).unwrap());
    }
    let height = regtest::block_count(node).unwrap();
    // generatetoaddress in chunks, so a slow machine never meets an RPC timeout.
    let mut left = blocks.saturating_sub(height);
    while left > 0 {
        let n = left.min(500);
        regtest::generate_to_address(node, n, &regtest::op_true_address()).unwrap();
        left -= n;
    }
    spend_heights
}

fn block_hash_at(node: &Node, height: u32) -> BlockHash {
    node.rpc("getblockhash", json!([height])).unwrap().as_str().unwrap().parse().unwrap()
}

#[test]
fn syncs_from_core_serves_core_and_relays_both_ways() {
    let a = require_node!(NodeOptions::default());
    let spend_heights = build_chain(&a, 3_000);
    let a_tip = best(&a);
    let height = regtest::block_count(&a).unwrap();
    assert!(height >= 3_000);

    // 1. kiln syncs every header and block from Core.
    let dir = TempDir::new("node-sync");
    let mut kiln = full_node(&dir, &[a.p2p_addr().unwrap()]);
    let started = Instant::now();
    run_until(&mut kiln, Duration::from_secs(180), "kiln to sync from Core", |k| {
        k.block_tip().0 == from_bitcoin_hash(&a_tip)
    });
    let took = started.elapsed();
    eprintln!(
        "kiln synced {height} blocks from Core in {took:?} ({:.0} blocks/s)",
        f64::from(height) / took.as_secs_f64()
    );
    assert_eq!(kiln.block_tip().1, height);
    assert_eq!(kiln.chain().best_hash(), from_bitcoin_hash(&a_tip));
    // The stored blocks are Core's, byte for byte (the spends included).
    let store = kiln.store().unwrap();
    for h in spend_heights.iter().copied().chain([1, height / 2, height]) {
        let hash = block_hash_at(&a, h);
        let core_hex = a.rpc("getblock", json!([hash.to_string(), 0])).unwrap();
        let ours = store.get_raw(&hash).unwrap().unwrap_or_else(|| panic!("block {h} not stored"));
        assert_eq!(hex::encode(ours), core_hex.as_str().unwrap(), "block at height {h}");
    }
    let with_witness = spend_heights.iter().filter(|&&h| {
        let b = store.get(&block_hash_at(&a, h)).unwrap().unwrap();
        b.txdata.iter().any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()) && !tx.is_coinbase())
    });
    assert!(with_witness.count() >= 2, "segwit and taproot spends are in the synced blocks");

    // 2. An empty Core node connected to kiln only syncs everything from kiln.
    let listen = kiln.listen_addr().unwrap();
    let b = Node::start(NodeOptions::default().listen(false).arg(format!("-connect={listen}"))).unwrap();
    let started = Instant::now();
    run_until(&mut kiln, Duration::from_secs(180), "Core to sync from kiln", |_| best(&b) == a_tip);
    eprintln!("Core synced {height} blocks from kiln in {:?}", started.elapsed());
    assert!(kiln.stats().blocks_served >= u64::from(height));
    // Both connections are BIP324 v2, as each Core node sees them too.
    let conns = kiln.connections();
    assert!(conns.iter().all(|c| c.transport == "v2") && conns.len() == 2, "{conns:?}");
    for (node, inbound) in [(&a, true), (&b, false)] {
        let peers = node.rpc("getpeerinfo", json!([])).unwrap();
        let p = &peers.as_array().unwrap()[0];
        assert_eq!(p["transport_protocol_type"], "v2", "{p}");
        assert_eq!(p["inbound"], inbound, "{p}");
        assert!(p["subver"].as_str().unwrap().contains("kiln"), "{p}");
    }

    // 3. Core A mines a block: kiln takes it and relays it to B.
    let mined = regtest::generate_to_address(&a, 1, &regtest::op_true_address()).unwrap()[0];
    run_until(&mut kiln, Duration::from_secs(60), "B to get A's new block through kiln", |_| best(&b) == mined);
    assert_eq!(kiln.block_tip().0, from_bitcoin_hash(&mined));

    // 4. A block handed to kiln reaches both Core nodes through it.
    let template = regtest::Template::fetch(&a).unwrap();
    let block = regtest::build_block(&template, &[], &regtest::op_true_script(), |_| ());
    let ours = block.block_hash();
    kiln.submit_block(block).unwrap();
    assert_eq!(kiln.block_tip().0, from_bitcoin_hash(&ours));
    run_until(&mut kiln, Duration::from_secs(60), "both Core nodes to accept kiln's block", |_| {
        best(&a) == ours && best(&b) == ours
    });
    let stats = kiln.stats();
    eprintln!("{stats:?}");
    assert!(stats.announcements >= 2);

    // 5. A restart restores headers and blocks from the store: connected to
    // A again, which has every block, kiln finds nothing to fetch.
    drop(kiln);
    let mut again = full_node(&dir, &[a.p2p_addr().unwrap()]);
    assert_eq!(again.block_tip(), (from_bitcoin_hash(&ours), height + 2));
    assert_eq!(again.chain().best_height(), height + 2);
    run_until(&mut again, Duration::from_secs(30), "A to be ready again", |k| {
        k.connections().iter().any(|c| c.ready && c.best_known.is_some())
    });
    again.run_until(Instant::now() + Duration::from_millis(500), |_| false).unwrap();
    assert_eq!(again.download().stats().requested, 0);
    assert_eq!(again.block_tip().1, height + 2);
}

#[test]
fn follows_the_most_work_branch_between_two_core_nodes() {
    let a = require_node!(NodeOptions::default());
    let c = Node::start(NodeOptions::default()).unwrap();
    let payout = regtest::op_true_address();
    // A shared base of 20 blocks, copied to C.
    regtest::generate_to_address(&a, 20, &payout).unwrap();
    for h in 1..=20 {
        let block = regtest::get_block(&a, &block_hash_at(&a, h)).unwrap();
        assert_eq!(regtest::submit_block(&c, &block).unwrap(), None);
    }
    assert_eq!(best(&a), best(&c));

    // kiln follows A alone first: the base, then A's two-block branch.
    let dir = TempDir::new("node-reorg");
    let mut kiln = full_node(&dir, &[a.p2p_addr().unwrap()]);
    let base = from_bitcoin_hash(&best(&a));
    run_until(&mut kiln, Duration::from_secs(60), "the shared base", |k| k.block_tip().0 == base);
    let a_branch = regtest::generate_to_address(&a, 2, &payout).unwrap();
    run_until(&mut kiln, Duration::from_secs(60), "A's branch", |k| {
        k.block_tip().0 == from_bitcoin_hash(a_branch.last().unwrap())
    });
    // C, still isolated, mines a longer branch (more work) on the base.
    let key = Key::random();
    let c_branch = regtest::generate_to_address(&c, 4, &key.address(AddrKind::P2wpkh)).unwrap();
    let c_tip = *c_branch.last().unwrap();
    // kiln restarts on its store with both peers: it reorgs to C's branch.
    drop(kiln);
    let mut kiln = full_node(&dir, &[a.p2p_addr().unwrap(), c.p2p_addr().unwrap()]);
    assert_eq!(kiln.block_tip(), (from_bitcoin_hash(a_branch.last().unwrap()), 22));
    run_until(&mut kiln, Duration::from_secs(60), "the reorg to C's branch", |k| {
        k.block_tip().0 == from_bitcoin_hash(&c_tip)
    });
    assert_eq!(kiln.block_tip().1, 24);
    assert_eq!(kiln.chain().best_hash(), from_bitcoin_hash(&c_tip));
    // A's blocks stay stored, off the best chain.
    let store = kiln.store().unwrap();
    assert!(store.contains(&a_branch[0]).unwrap());
    assert!(!kiln.chain().is_active(&from_bitcoin_hash(&a_branch[0])));
    assert_eq!(store.tip().unwrap(), Some((c_tip, 24)));
    // kiln relays the winning branch to A, which reorgs too.
    run_until(&mut kiln, Duration::from_secs(60), "A to reorg to C's branch through kiln", |_| best(&a) == c_tip);
}

/// Completes a handshake as a minimal regtest peer; returns the stream.
fn hostile_peer(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let magic = wire::magic(Network::Regtest);
    let a = bitcoin::p2p::Address::new(&addr, bitcoin::p2p::ServiceFlags::NONE);
    let mut v = bitcoin::p2p::message_network::VersionMessage::new(
        bitcoin::p2p::ServiceFlags::NONE,
        0,
        a.clone(),
        a,
        7,
        "/hostile/".into(),
        0,
    );
    v.version = 70016;
    s.write_all(&wire::encode_message(magic, NetworkMessage::Version(v))).unwrap();
    let mut d = Decoder::new(magic);
    let mut buf = [0u8; 4096];
    let mut verack = false;
    while !verack {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "kiln closed during the handshake");
        d.feed(&buf[..n]);
        while let Some(m) = d.next_message().unwrap() {
            verack |= m == NetworkMessage::Verack;
        }
    }
    s.write_all(&wire::encode_message(magic, NetworkMessage::Verack)).unwrap();
    s
}

/// Reads until kiln closes the connection; true if it did within the timeout.
fn closed_by_kiln(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 65536];
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

fn frame(command: &str, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = wire::encode_raw(wire::magic(Network::Regtest), command, payload);
    v[16..20].copy_from_slice(&len.to_le_bytes());
    v
}

/// A Core node with `blocks` blocks and a kiln synced to it (`None`: no
/// bitcoind and none required, so the test skips).
fn synced_to_core(opts: NodeOptions, blocks: u32, name: &str) -> Option<(Node, TempDir, NodeDriver)> {
    let a = require_node!(opts, None);
    regtest::generate_to_address(&a, blocks, &regtest::op_true_address()).unwrap();
    let dir = TempDir::new(name);
    let mut kiln = full_node(&dir, &[a.p2p_addr().unwrap()]);
    let tip = from_bitcoin_hash(&best(&a));
    run_until(&mut kiln, Duration::from_secs(60), "sync", |k| k.block_tip().0 == tip);
    Some((a, dir, kiln))
}

#[test]
fn hostile_inbound_peers_are_dropped_and_the_honest_peer_is_not() {
    let Some((a, _dir, mut kiln)) = synced_to_core(NodeOptions::default(), 10, "node-hostile") else { return };
    let listen = kiln.listen_addr().unwrap();

    let magic = wire::magic(Network::Regtest);
    let genesis = bitcoin::blockdata::constants::genesis_block(Network::Regtest).header;
    let mut no_pow = genesis;
    no_pow.prev_blockhash = genesis.block_hash();
    no_pow.bits = bitcoin::CompactTarget::from_consensus(0x1d00_ffff);
    let mut unconnecting = genesis;
    unconnecting.prev_blockhash = BlockHash::from_byte_array([7; 32]);
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", frame("block", 5_000_000, &[])),
        ("bad checksum", {
            let mut f = wire::encode_message(magic, NetworkMessage::Ping(1));
            f[20] ^= 0xff;
            f
        }),
        ("100,000 inv entries", {
            let mut p = vec![0xfe];
            p.extend_from_slice(&100_000u32.to_le_bytes());
            p.extend(std::iter::repeat_n(0u8, 36 * 1000));
            wire::encode_raw(magic, "inv", &p)
        }),
        ("ping flood", (0..150u64).flat_map(|n| wire::encode_message(magic, NetworkMessage::Ping(n))).collect()),
        ("headers without proof of work", wire::encode_message(magic, NetworkMessage::Headers(vec![no_pow]))),
        (
            "headers that never connect",
            (0..12).flat_map(|_| wire::encode_message(magic, NetworkMessage::Headers(vec![unconnecting]))).collect(),
        ),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let attacker = std::thread::spawn(move || {
        let mut verdicts = Vec::new();
        for (name, bytes) in attacks {
            let mut s = hostile_peer(listen);
            let _ = s.write_all(&bytes);
            verdicts.push((name, closed_by_kiln(&mut s)));
        }
        flag.store(true, Ordering::SeqCst);
        verdicts
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    kiln.run_until(deadline, |_| done.load(Ordering::SeqCst)).unwrap();
    let verdicts = attacker.join().unwrap();
    for (name, closed) in &verdicts {
        assert!(closed, "kiln did not drop the peer sending {name}");
    }
    assert!(kiln.stats().disconnects >= verdicts.len() as u64);
    // The honest Core peer is still there and still followed.
    assert!(kiln.connections().iter().any(|c| !c.inbound && c.ready), "{:?}", kiln.connections());
    let mined = regtest::generate_to_address(&a, 1, &regtest::op_true_address()).unwrap()[0];
    run_until(&mut kiln, Duration::from_secs(30), "A's next block", |k| k.block_tip().0 == from_bitcoin_hash(&mined));
    assert_eq!(to_bitcoin_hash(&kiln.block_tip().0), mined);
}

/// A Core node with v2 turned off (`-v2transport=0`) closes on kiln's v2
/// key; kiln dials it again with v1 at once and syncs.
#[test]
fn falls_back_to_v1_for_a_v1_only_core_node() {
    let opts = NodeOptions::default().arg("-v2transport=0");
    let Some((a, _dir, kiln)) = synced_to_core(opts, 10, "node-v1") else { return };
    let conns = kiln.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].transport, "v1");
    let peers = a.rpc("getpeerinfo", json!([])).unwrap();
    assert_eq!(peers[0]["transport_protocol_type"], "v1");
    assert!(kiln.peers()[0].1.connections >= 2, "a v2 attempt, then v1");
}

/// Blocks that break rules kiln checks without a UTXO set, handed to kiln
/// and to Core: the verdicts agree and Core's reject reason is kiln's; a
/// mutated copy of a valid block is refused without marking the block
/// invalid, so the valid block is still taken and reaches Core through kiln.
#[test]
fn invalid_blocks_are_refused_as_core_refuses_them() {
    let Some((a, dir, mut kiln)) = synced_to_core(NodeOptions::default(), 120, "node-invalid") else { return };
    let tip = kiln.block_tip().0;

    let template = regtest::Template::fetch(&a).unwrap();
    let cases: Vec<(&str, bitcoin::Block)> = vec![
        (
            "bad-cb-height",
            regtest::build_block(&template, &[], &regtest::op_true_script(), |b| {
                let mut script = b.txdata[0].input[0].script_sig.to_bytes();
                script[1] ^= 1; // the height's low byte
                b.txdata[0].input[0].script_sig = bitcoin::ScriptBuf::from_bytes(script);
            }),
        ),
        (
            "bad-cb-multiple",
            regtest::build_block(&template, &[], &regtest::op_true_script(), |b| {
                let cb = b.txdata[0].clone();
                b.txdata.push(cb);
            }),
        ),
        (
            "bad-txns-nonfinal",
            regtest::build_block(&template, &[], &regtest::op_true_script(), |b| {
                b.txdata[0].lock_time = bitcoin::absolute::LockTime::from_height(10_000).unwrap();
                b.txdata[0].input[0].sequence = bitcoin::Sequence::ZERO;
            }),
        ),
    ];
    let mut invalid = Vec::new();
    for (reason, block) in cases {
        invalid.push(from_bitcoin_hash(&block.block_hash()));
        let core = regtest::submit_block(&a, &block).unwrap();
        let ours = kiln.submit_block(block.clone());
        match &ours {
            Err(kiln_p2p::node::BlockReject::Invalid { rules, .. }) => {
                assert!(rules.contains(reason), "{reason}: kiln says {rules}");
            }
            other => panic!("{reason}: kiln {other:?}"),
        }
        assert_eq!(core.as_deref(), Some(reason), "Core's verdict");
        assert!(kiln.chain().is_invalid(&from_bitcoin_hash(&block.block_hash())));
        assert_eq!(kiln.block_tip().0, tip, "the tip does not move");
    }
    assert_eq!(kiln.stats().blocks_invalid, 3);

    // A mutated copy (a transaction appended without updating the merkle
    // root) is refused as mutated; the real block is then taken and relayed.
    let good = regtest::build_block(&template, &[], &regtest::op_true_script(), |_| ());
    let mut mutated = good.clone();
    mutated.txdata.push(good.txdata[0].clone());
    assert!(matches!(kiln.submit_block(mutated), Err(kiln_p2p::node::BlockReject::Mutated { .. })));
    assert!(!kiln.chain().is_invalid(&from_bitcoin_hash(&good.block_hash())));
    kiln.submit_block(good.clone()).unwrap();
    let hash = good.block_hash();
    run_until(&mut kiln, Duration::from_secs(30), "Core to take kiln's block", |_| best(&a) == hash);

    // A restart remembers which blocks were invalid.
    drop(kiln);
    let again = full_node(&dir, &[]);
    for h in &invalid {
        assert!(again.chain().is_invalid(h), "{h}");
    }
    assert_eq!(again.block_tip().0, from_bitcoin_hash(&hash));
}
