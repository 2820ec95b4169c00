//! The driver against a real `bitcoind -regtest` on 127.0.0.1: handshake,
//! header sync of 300 blocks, then five more arriving as announcements.
//! Skipped without a `bitcoind` unless `KILN_REQUIRE_BITCOIND=1`.

use std::time::{Duration, Instant};

use bitcoin::Network;
use kiln_p2p::HeaderChain;
use kiln_p2p::driver::{Driver, DriverOptions};
use kiln_p2p::headers::from_bitcoin_hash;
use kiln_testkit::regtest;
use kiln_testkit::{NodeOptions, require_node};

#[test]
fn syncs_headers_from_bitcoind_and_follows_new_blocks() {
    let node = require_node!(NodeOptions::default());
    let addr = node.p2p_addr().expect("listening node");
    let payout = regtest::op_true_address();
    regtest::generate_to_address(&node, 300, &payout).unwrap();
    let best = from_bitcoin_hash(&regtest::best_block_hash(&node).unwrap());

    let started = Instant::now();
    let mut d = Driver::connect(addr, HeaderChain::new(Network::Regtest), DriverOptions::default()).unwrap();
    d.run_until(started + Duration::from_secs(30), |c| c.best_hash() == best).unwrap_or_else(|e| {
        panic!("sync: {e}; kiln at {}; node log:\n{}", d.chain().best_height(), node.log_tail(4000))
    });
    assert_eq!(d.chain().best_height(), 300);
    assert!(d.peer().is_ready());
    let after_sync = d.stats();
    assert_eq!(after_sync.headers_stored, 300);
    eprintln!("synced 300 headers in {:?}: {after_sync:?}", started.elapsed());

    // Five more: the node announces them (headers, after our sendheaders).
    let hashes = regtest::generate_to_address(&node, 5, &payout).unwrap();
    let best = from_bitcoin_hash(hashes.last().unwrap());
    assert_eq!(best, from_bitcoin_hash(&regtest::best_block_hash(&node).unwrap()));
    d.run_until(Instant::now() + Duration::from_secs(30), |c| c.best_hash() == best)
        .unwrap_or_else(|e| panic!("follow: {e}; kiln at {}", d.chain().best_height()));
    assert_eq!(d.chain().best_height(), 305);
    for h in &hashes {
        assert!(d.chain().contains(&from_bitcoin_hash(h)));
    }
    // They came as `headers` announcements: no inv, no new getheaders.
    let stats = d.stats();
    eprintln!("followed 5 blocks: {stats:?}");
    assert_eq!(stats.headers_stored, 305);
    assert_eq!((stats.getheaders_sent, stats.block_invs), (after_sync.getheaders_sent, 0));
    assert!(stats.headers_messages > after_sync.headers_messages);
}
