//! The sans-I/O sync state machine on mined regtest headers: a long fork of
//! less work is measured in presync and never stored; a fork of more work is
//! presynced, redownloaded and becomes the best chain (a reorg); a peer that
//! redownloads something else than it presynced, or that goes over the cap
//! on off-best headers, is disconnected with a reason; a silent sync peer is
//! replaced by the next one.

use std::time::{Duration, Instant};

use bitcoin::Network;
use kiln_p2p::headers::from_bitcoin;
use kiln_p2p::{Action, HeaderChain, Sync, SyncConfig, SyncError};
use kiln_work::{BlockHash, Header};

pub const NOW: u64 = 2_000_000_000;

/// `n` regtest headers on `prev` (at `height`), 600 s apart; `tag` makes
/// branches differ.
pub fn branch(prev: BlockHash, prev_time: u32, n: u32, tag: u8) -> Vec<bitcoin::block::Header> {
    let bits = kiln_work::CompactTarget(0x207fffff);
    let target = bits.to_target().unwrap();
    let mut out = Vec::new();
    let mut prev = prev;
    for i in 1..=n {
        let mut h = Header {
            version: 4,
            prev_blockhash: prev,
            merkle_root: [tag; 32],
            time: prev_time + 600 * i,
            bits,
            nonce: 0,
        };
        while !target.is_met_by(&h.block_hash()) {
            h.nonce += 1;
        }
        prev = h.block_hash();
        out.push(bitcoin::consensus::deserialize(&h.serialize()).unwrap());
    }
    out
}

pub fn genesis() -> (BlockHash, u32) {
    let c = HeaderChain::new(Network::Regtest);
    (c.best_hash(), c.tip().header.time)
}

/// A sync over a regtest chain of `n` headers, with peer 1 ready.
fn synced(n: u32, config: SyncConfig) -> (Sync, Vec<bitcoin::block::Header>) {
    let (g, t) = genesis();
    let ours = branch(g, t, n, 0);
    let mut chain = HeaderChain::new(Network::Regtest);
    for h in &ours {
        chain.accept_bitcoin(h, NOW).unwrap();
    }
    let mut s = Sync::new(chain, config);
    let actions = s.peer_ready(1, 0, Instant::now());
    assert!(matches!(&actions[..], [Action::GetHeaders { peer: 1, .. }]));
    (s, ours)
}

fn get_headers_from(actions: &[Action]) -> Option<BlockHash> {
    match actions {
        [Action::GetHeaders { locator, .. }] => locator.first().copied(),
        _ => None,
    }
}

fn hash(h: &bitcoin::block::Header) -> BlockHash {
    from_bitcoin(h).block_hash()
}

#[test]
fn long_low_work_fork_is_not_stored() {
    let (mut s, _) = synced(3000, SyncConfig::default());
    let (g, t) = genesis();
    let fork = branch(g, t, 2500, 0xf);
    let before = (s.chain().len(), s.chain().best_hash());
    let a = s.headers(1, &fork[..2000], Instant::now(), NOW);
    // Asked to go on from its last header: presync, nothing stored.
    assert_eq!(get_headers_from(&a), Some(hash(&fork[1999])), "{a:?}");
    assert_eq!((s.chain().len(), s.chain().best_hash()), before);
    assert!(s.presyncing());
    let a = s.headers(1, &fork[2000..], Instant::now(), NOW);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!((s.chain().len(), s.chain().best_hash()), before);
    assert_eq!(s.chain().off_best_len(), 0);
    assert_eq!(s.stats().presync_headers, 2500);
    assert_eq!(s.stats().headers_stored, 0);
    assert!(!s.presyncing());
}

#[test]
fn more_work_fork_is_presynced_redownloaded_and_wins() {
    let (mut s, ours) = synced(3000, SyncConfig::default());
    let fork_point = &ours[999]; // height 1000
    let fork = branch(hash(fork_point), fork_point.time, 2100, 0xa); // heights 1001..=3100
    // 2,000 headers end at height 3000: equal work, not more: presync.
    let a = s.headers(1, &fork[..2000], Instant::now(), NOW);
    assert_eq!(get_headers_from(&a), Some(hash(&fork[1999])));
    assert_eq!(s.chain().len(), 3001);
    // The next one passes our tip's work: redownload from the fork point.
    let a = s.headers(1, &fork[2000..], Instant::now(), NOW);
    assert_eq!(get_headers_from(&a), Some(hash(fork_point)), "{a:?}");
    assert_eq!(s.chain().len(), 3001);
    let a = s.headers(1, &fork[..2000], Instant::now(), NOW);
    assert_eq!(get_headers_from(&a), Some(hash(&fork[1999])), "{a:?}");
    assert_eq!(s.chain().best_height(), 3000);
    assert_eq!(s.chain().off_best_len(), 2000);
    let a = s.headers(1, &fork[2000..], Instant::now(), NOW);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(s.chain().best_height(), 3100);
    assert_eq!(s.chain().best_hash(), hash(&fork[2099]));
    assert_eq!(s.chain().at_height(1000).unwrap().hash, hash(fork_point));
    assert_eq!(s.chain().at_height(1001).unwrap().hash, hash(&fork[0]));
    assert_eq!(s.chain().off_best_len(), 2000);
    assert!(!s.presyncing());
    // Normal sync from here: the next header is stored at once.
    let next = branch(hash(&fork[2099]), fork[2099].time, 1, 0xa);
    s.headers(1, &next, Instant::now(), NOW);
    assert_eq!(s.chain().best_height(), 3101);
}

#[test]
fn redownload_must_match_presync() {
    let (mut s, ours) = synced(2100, SyncConfig::default());
    let fork_point = &ours[99]; // height 100
    let honest = branch(hash(fork_point), fork_point.time, 2100, 0xa);
    let other = branch(hash(fork_point), fork_point.time, 2100, 0xb);
    // The honest branch: equal work after 2,000, more with the next.
    s.headers(1, &honest[..2000], Instant::now(), NOW);
    let a = s.headers(1, &honest[2000..], Instant::now(), NOW);
    assert_eq!(get_headers_from(&a), Some(hash(fork_point)), "{a:?}");
    // Another branch comes back: caught at the first remembered height (200).
    let a = s.headers(1, &other[..2000], Instant::now(), NOW);
    match &a[..] {
        [Action::Disconnect { peer: 1, reason: SyncError::CommitmentMismatch { height: 200, .. } }] => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(s.chain().off_best_len(), 99);
    assert_eq!(s.chain().best_height(), 2100);
}

#[test]
fn off_best_cap_disconnects() {
    let (mut s, ours) = synced(300, SyncConfig { max_off_best: 50, ..SyncConfig::default() });
    let fork_point = &ours[99];
    // One message ending with more work than ours is stored directly; its
    // first 200 headers are off the best chain until it overtakes.
    let fork = branch(hash(fork_point), fork_point.time, 250, 0xa);
    let a = s.headers(1, &fork, Instant::now(), NOW);
    match &a[..] {
        [Action::Disconnect { peer: 1, reason: e @ SyncError::TooManyForkHeaders { stored: 50 } }] => {
            assert!(e.to_string().contains("cap"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.chain().off_best_len(), 50);
    assert_eq!(s.chain().best_height(), 300);
}

#[test]
fn stalled_sync_peer_is_replaced() {
    let (mut s, _) = synced(10, SyncConfig { stall_timeout: Duration::from_secs(120), ..SyncConfig::default() });
    let t0 = Instant::now();
    // Peer 2 is ready but not asked: one sync peer at a time, busy.
    assert!(s.peer_ready(2, 50, t0).is_empty());
    assert_eq!(s.sync_peer(), Some(1));
    assert!(s.tick(t0 + Duration::from_secs(60)).is_empty());
    let deadline = s.next_deadline().unwrap();
    let a = s.tick(deadline + Duration::from_secs(1));
    match &a[..] {
        [Action::Disconnect { peer: 1, reason: SyncError::Stalled(_) }, Action::GetHeaders { peer: 2, locator }] => {
            // From the tip's parent, so the answer shows the peer has our tip.
            assert_eq!(locator[0], s.chain().at_height(s.chain().best_height() - 1).unwrap().hash);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.sync_peer(), Some(2));
    assert_eq!(s.stats().stalls, 1);
    // A bad header from peer 2 drops it, with Core's reason.
    let (g, t) = genesis();
    let mut bad = branch(g, t, 1, 9);
    bad[0].nonce ^= 0x5555;
    while bitcoin::Target::from_compact(bad[0].bits).is_met_by(bad[0].block_hash()) {
        bad[0].nonce += 1;
    }
    let a = s.headers(2, &bad, Instant::now(), NOW);
    assert!(matches!(&a[..], [Action::Disconnect { peer: 2, reason: SyncError::BadHeader(_) }]), "{a:?}");
}

#[test]
fn mainnet_headers_below_minimum_chain_work_are_not_stored() {
    let real: Vec<bitcoin::block::Header> =
        kiln_testkit::data::mainnet_headers().iter().map(|b| bitcoin::consensus::deserialize(b).unwrap()).collect();
    let mut s = Sync::new(HeaderChain::new(Network::Bitcoin), SyncConfig::default());
    s.peer_ready(1, 900_000, Instant::now());
    let a = s.headers(1, &real[1..2001], Instant::now(), NOW);
    assert_eq!(get_headers_from(&a), Some(hash(&real[2000])), "{a:?}");
    assert_eq!(s.chain().len(), 1);
    assert!(s.presyncing());
    // With Core's minimum chain work lowered to zero they are stored.
    let mut params = kiln_p2p::ChainParams::for_network(Network::Bitcoin);
    params.min_chain_work = bitcoin::Work::from_le_bytes([0; 32]);
    let mut s = Sync::new(HeaderChain::with_params(params), SyncConfig::default());
    s.peer_ready(1, 900_000, Instant::now());
    s.headers(1, &real[1..2001], Instant::now(), NOW);
    assert_eq!(s.chain().best_height(), 2000);
}

#[test]
fn every_peer_is_asked_once_so_we_learn_what_it_holds() {
    let (mut s, ours) = synced(10, SyncConfig::default());
    // While the sync peer's request is in flight, a new peer waits...
    assert!(s.peer_ready(2, 10, Instant::now()).is_empty());
    // ...and is asked once the sync peer answers (here: nothing new).
    let a = s.headers(1, &[], Instant::now(), NOW);
    // (from our tip's parent, so the answer shows it has our tip)
    assert_eq!(get_headers_from(&a), Some(hash(&ours[8])), "{a:?}");
    // With the sync peer idle, a new peer is asked at once, whatever height
    // it announced.
    let a = s.peer_ready(3, 5, Instant::now());
    assert_eq!(get_headers_from(&a), Some(hash(&ours[8])), "{a:?}");
    assert_eq!(s.sync_peer(), Some(1));
}

/// A header more than two hours ahead of our clock is refused but, as in
/// Core, does not cost the peer its connection (our clock may be wrong).
#[test]
fn a_header_from_the_future_is_refused_without_disconnecting() {
    let (mut s, ours) = synced(10, SyncConfig::default());
    let last = ours.last().unwrap();
    let mut next = branch(hash(last), last.time, 1, 9);
    let h = &mut next[0];
    h.time = (NOW + 3 * 3600) as u32;
    while !bitcoin::Target::from_compact(h.bits).is_met_by(h.block_hash()) {
        h.nonce += 1;
    }
    let a = s.headers(1, &next, Instant::now(), NOW);
    assert!(a.iter().all(|a| !matches!(a, Action::Disconnect { .. })), "{a:?}");
    assert_eq!(s.chain().best_height(), 10);
}
