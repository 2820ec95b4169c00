//! The block download scheduler without sockets, on mined regtest headers:
//! requests spread over peers with at most `per_peer` each and never past
//! the moving window; only peers known to hold a block are asked for it; a
//! peer holding up the window while another sits idle is dropped as
//! stalling (and the timeout doubles), a lone peer never is; `notfound`
//! sends a block elsewhere; an old request times out.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bitcoin::Network;
use kiln_p2p::HeaderChain;
use kiln_p2p::blocks::{BlockDownload, DownloadConfig, DownloadError};
use kiln_work::BlockHash;

use crate::sync::{NOW, branch, genesis};

fn chain(n: u32) -> (HeaderChain, Vec<BlockHash>) {
    let (g, t) = genesis();
    let mut chain = HeaderChain::new(Network::Regtest);
    let mut hashes = vec![g];
    for h in branch(g, t, n, 3) {
        hashes.push(chain.accept_bitcoin(&h, NOW).unwrap().hash);
    }
    (chain, hashes)
}

fn config(per_peer: usize, window: u32) -> DownloadConfig {
    DownloadConfig { per_peer, window, ..DownloadConfig::default() }
}

/// A scheduler with these peers ready, each holding the given block (and
/// its ancestors) when one is named.
fn with_peers(config: DownloadConfig, chain: &HeaderChain, peers: &[(u64, Option<BlockHash>)]) -> BlockDownload {
    let mut dl = BlockDownload::new(config);
    for &(peer, best) in peers {
        dl.peer_ready(peer);
        if let Some(b) = best {
            dl.peer_has(peer, b, chain);
        }
    }
    dl
}

#[test]
fn requests_spread_over_peers_within_the_window() {
    let (chain, hashes) = chain(300);
    let tip = *hashes.last().unwrap();
    let mut dl = with_peers(config(16, 64), &chain, &[(1, None), (2, None)]);
    let t0 = Instant::now();
    // Nobody has shown it holds anything: nothing is asked.
    assert!(dl.schedule(&chain, 0, |_| false, t0).is_empty());
    dl.peer_has(1, tip, &chain);
    dl.peer_has(2, hashes[40], &chain);
    let plan = dl.schedule(&chain, 0, |_| false, t0);
    assert_eq!(plan.len(), 2);
    let all: Vec<BlockHash> = plan.iter().flat_map(|(_, h)| h.clone()).collect();
    assert_eq!(all.len(), 32);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 32, "no block asked twice");
    assert_eq!(dl.in_flight(), 32);
    for (peer, asked) in &plan {
        assert_eq!(asked.len(), 16, "peer {peer}");
    }
    // Heights 1..=32 in all; what peer 2 got is within what it has.
    let want: HashSet<BlockHash> = hashes[1..=32].iter().copied().collect();
    assert_eq!(all.iter().copied().collect::<HashSet<_>>(), want);
    // Everything up to 32 arrives; block 33 is then never delivered, so the
    // window stays at 33..=96 however much else arrives.
    let mut stored: HashSet<BlockHash> = hashes[1..=32].iter().copied().collect();
    for (peer, asked) in &plan {
        for h in asked {
            assert!(dl.received(*peer, h));
        }
    }
    let mut asked = Vec::new();
    for _ in 0..10 {
        let plan = dl.schedule(&chain, 0, |h| stored.contains(h), t0);
        for (peer, hs) in plan {
            for h in &hs {
                let height = chain.get(h).unwrap().height;
                assert!(peer == 1 || height <= 40, "peer 2 asked for {height}, beyond what it has");
                if *h != hashes[33] {
                    assert!(dl.received(peer, h), "answered by the peer asked");
                    stored.insert(*h);
                }
            }
            asked.extend(hs);
        }
    }
    let highest = asked.iter().map(|h| chain.get(h).unwrap().height).max().unwrap();
    assert_eq!(highest, 96, "never beyond the window");
    assert_eq!(dl.in_flight(), 1);
    assert_eq!(dl.stats().requested, dl.stats().received + 1);
}

#[test]
fn a_stalling_peer_is_dropped_a_lone_one_never() {
    let (chain, hashes) = chain(50);
    let tip = *hashes.last().unwrap();
    let mut dl = with_peers(config(4, 8), &chain, &[(1, Some(tip)), (2, Some(tip))]);
    let t0 = Instant::now();
    let plan = dl.schedule(&chain, 0, |_| false, t0);
    let of = |p: u64| plan.iter().find(|(id, _)| *id == p).unwrap().1.clone();
    let (one, two) = (of(1), of(2));
    assert_eq!(one[0], hashes[1]);
    // Peer 2 delivers; the window (1..=8) is full, held by peer 1's block 1.
    let mut stored: HashSet<BlockHash> = HashSet::new();
    for h in &two {
        assert!(dl.received(2, h));
        stored.insert(*h);
    }
    assert!(dl.schedule(&chain, 0, |h| stored.contains(h), t0).is_empty());
    assert!(dl.tick(t0 + Duration::from_millis(1_500)).is_empty());
    let dropped = dl.tick(t0 + Duration::from_secs(2));
    assert!(matches!(&dropped[..], [(1, DownloadError::Stalling { height: 1, .. })]), "{dropped:?}");
    assert_eq!(dl.stall_timeout(), Duration::from_secs(4), "doubled");
    assert_eq!(dl.stats().stalls, 1);
    // Peer 1's blocks go to peer 2.
    let plan = dl.schedule(&chain, 0, |h| stored.contains(h), t0);
    assert_eq!(plan, vec![(2, one)]);

    // An idle peer that holds nothing beyond the window makes no stall.
    let mut dl = with_peers(config(4, 8), &chain, &[(1, Some(tip)), (2, Some(hashes[8]))]);
    let plan = dl.schedule(&chain, 0, |_| false, t0);
    let mut stored: HashSet<BlockHash> = HashSet::new();
    for (peer, hs) in &plan {
        if *peer == 2 {
            for h in hs {
                assert!(dl.received(2, h));
                stored.insert(*h);
            }
        }
    }
    dl.schedule(&chain, 0, |h| stored.contains(h), t0);
    assert!(dl.tick(t0 + Duration::from_secs(30)).is_empty(), "peer 2 could not have helped");

    // A lone peer with room is never a staller.
    let mut dl = with_peers(config(16, 8), &chain, &[(7, Some(tip))]);
    let plan = dl.schedule(&chain, 0, |_| false, t0);
    assert_eq!(plan[0].1.len(), 8);
    assert!(dl.tick(t0 + Duration::from_secs(30)).is_empty());
}

#[test]
fn not_found_goes_elsewhere_and_old_requests_time_out() {
    let (chain, hashes) = chain(20);
    let tip = *hashes.last().unwrap();
    let cfg = DownloadConfig { request_timeout: Duration::from_secs(60), ..config(2, 100) };
    let mut dl = with_peers(cfg, &chain, &[(1, Some(tip))]);
    let t0 = Instant::now();
    assert_eq!(dl.schedule(&chain, 0, |_| false, t0), vec![(1, vec![hashes[1], hashes[2]])]);
    dl.not_found(1, &[hashes[1]]);
    // Not asked of peer 1 again; peer 1 gets the next one instead.
    assert_eq!(dl.schedule(&chain, 0, |_| false, t0), vec![(1, vec![hashes[3]])]);
    dl.peer_ready(2);
    dl.peer_has(2, tip, &chain);
    let plan = dl.schedule(&chain, 0, |_| false, t0);
    assert_eq!(plan, vec![(2, vec![hashes[1], hashes[4]])]);
    assert!(!dl.received(1, &hashes[1]), "block 1 was asked of peer 2");
    let timed_out = dl.tick(t0 + Duration::from_secs(61));
    assert_eq!(timed_out.len(), 2, "{timed_out:?}");
    assert!(timed_out.iter().all(|(_, e)| matches!(e, DownloadError::Timeout { .. })));
    assert_eq!(dl.in_flight(), 0);
}
