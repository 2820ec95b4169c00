//! The header chain on the first 10,237 real mainnet headers (five retarget
//! boundaries), with one mutation per rule, and on mined regtest headers for
//! the rules a mutation of a real header cannot reach without re-mining it.

use bitcoin::Network;
use kiln_p2p::{HeaderChain, HeaderError};
use kiln_work::{BlockHash, CompactTarget, Header};

/// A clock far enough ahead that no real header is "in the future".
const NOW: u64 = 2_000_000_000;
const TIP: &str = "000000004f74d42205b9d7ae1cb5c1591e723894a71358fce73b7e0919628161";

fn mainnet() -> Vec<Header> {
    kiln_testkit::data::mainnet_headers().iter().map(|b| Header::parse(b).unwrap()).collect()
}

fn chain_to(headers: &[Header], height: usize) -> HeaderChain {
    let mut chain = HeaderChain::new(Network::Bitcoin);
    for h in &headers[1..=height] {
        chain.accept(h, NOW).unwrap();
    }
    chain
}

#[test]
fn all_mainnet_headers_from_genesis() {
    let headers = mainnet();
    assert_eq!(headers.len(), 10_237);
    let mut chain = HeaderChain::new(Network::Bitcoin);
    assert_eq!(chain.best_hash(), headers[0].block_hash());
    for (i, h) in headers.iter().enumerate().skip(1) {
        let a = chain.accept(h, NOW).unwrap_or_else(|e| panic!("height {i}: {e}"));
        assert!(a.new_tip && !a.known && a.height as usize == i);
    }
    assert_eq!(chain.best_height(), 10_236);
    assert_eq!(chain.best_hash().to_string(), TIP);
    // Again: every header is known, nothing changes.
    let again = chain.accept(&headers[5000], NOW).unwrap();
    assert!(again.known && !again.new_tip);
    assert_eq!(chain.len(), 10_237);

    // Core's locator: eleven one by one, then doubling steps, genesis last.
    let loc = chain.locator();
    let heights: Vec<u32> = loc.iter().map(|h| chain.get(h).unwrap().height).collect();
    assert_eq!(&heights[..12], &[10236, 10235, 10234, 10233, 10232, 10231, 10230, 10229, 10228, 10227, 10226, 10225]);
    assert_eq!(&heights[12..15], &[10223, 10219, 10211]);
    assert_eq!(*heights.last().unwrap(), 0);
    assert!(loc.len() < 30, "{heights:?}");
}

#[test]
fn mainnet_mutations_rejected_with_core_reasons() {
    let headers = mainnet();
    let mut chain = chain_to(&headers, 2015);
    let boundary = headers[2016];
    let reject = |chain: &mut HeaderChain, h: &Header, now: u64| -> HeaderError {
        let before = (chain.best_hash(), chain.len());
        let e = chain.accept(h, now).unwrap_err();
        assert_eq!((chain.best_hash(), chain.len()), before, "a rejected header changed the chain");
        e
    };

    // nBits at the first retarget boundary, slightly harder than required.
    // nBits is part of what is hashed, so the mutated header no longer meets
    // any target near difficulty 1 and the full check refuses it for its
    // proof of work first (Core checks PoW before the retarget rule); the
    // contextual check alone names the retarget rule. (Full accepts failing
    // on bad-diffbits are in the regtest test and the testnet unit tests,
    // where mutated headers can be re-mined.)
    let harder = Header { bits: CompactTarget(0x1d00fffe), ..boundary };
    assert_eq!(reject(&mut chain, &harder, NOW).reject_reason(), "high-hash");
    let e = chain.check_contextual(&harder, NOW).unwrap_err();
    assert_eq!(e.reject_reason(), "bad-diffbits", "{e}");
    assert!(matches!(e, HeaderError::BadDiffBits { height: 2016, got: 0x1d00fffe, expected: 0x1d00ffff }));
    assert_eq!(chain.next_work_required(&chain.best_hash(), boundary.time).unwrap(), boundary.bits);

    // Another nonce: the hash no longer meets the target.
    let e = reject(&mut chain, &boundary.with_nonce(boundary.nonce ^ 1), NOW);
    assert_eq!(e.reject_reason(), "high-hash", "{e}");
    // nBits easier than the pow limit is high-hash too, as in Core's CheckProofOfWork.
    let e = reject(&mut chain, &Header { bits: CompactTarget(0x1e00ffff), ..boundary }, NOW);
    assert_eq!(e.reject_reason(), "high-hash", "{e}");

    // A real header whose parent we do not have.
    let e = reject(&mut chain, &headers[2018], NOW);
    assert_eq!(e.reject_reason(), "prev-blk-not-found", "{e}");

    // The real next header, seen by a clock three hours behind it.
    let e = reject(&mut chain, &boundary, u64::from(boundary.time) - 3 * 3600);
    assert_eq!(e.reject_reason(), "time-too-new", "{e}");
    // Two hours ahead is still allowed.
    chain.check_contextual(&boundary, u64::from(boundary.time) - 2 * 3600).unwrap();

    // A time at the median time past. Changing the time changes the hash, so
    // the full check refuses it for its proof of work first (Core's order);
    // the contextual check names the time rule.
    let mtp = chain.median_time_past(&chain.best_hash()).unwrap();
    let old = Header { time: mtp, ..boundary };
    assert_eq!(reject(&mut chain, &old, NOW).reject_reason(), "high-hash");
    let e = chain.check_contextual(&old, NOW).unwrap_err();
    assert_eq!(e.reject_reason(), "time-too-old", "{e}");
    chain.check_contextual(&Header { time: mtp + 1, ..boundary }, NOW).unwrap();

    // And the real header is accepted after all that.
    chain.accept(&boundary, NOW).unwrap();
    assert_eq!(chain.best_height(), 2016);
}

/// Mines a regtest header on `prev` (half of all hashes meet regtest's limit).
fn mine(chain: &HeaderChain, prev: BlockHash, time: u32, version: i32, tag: u8) -> Header {
    let bits = chain.next_work_required(&prev, time).unwrap();
    let mut h = Header { version, prev_blockhash: prev, merkle_root: [tag; 32], time, bits, nonce: 0 };
    let target = bits.to_target().unwrap();
    while !target.is_met_by(&h.block_hash()) {
        h.nonce += 1;
    }
    h
}

fn regtest_chain(n: u32) -> (HeaderChain, u32) {
    let mut chain = HeaderChain::new(Network::Regtest);
    let t0 = chain.tip().header.time;
    for i in 1..=n {
        let h = mine(&chain, chain.best_hash(), t0 + 600 * i, 4, 0);
        chain.accept(&h, NOW).unwrap();
    }
    (chain, t0 + 600 * n)
}

#[test]
fn regtest_time_and_version_rules() {
    let (mut chain, last) = regtest_chain(12);
    let tip = chain.best_hash();
    let mtp = chain.median_time_past(&tip).unwrap();
    assert_eq!(mtp, last - 5 * 600);

    let e = chain.accept(&mine(&chain, tip, mtp, 4, 1), NOW).unwrap_err();
    assert_eq!(e.reject_reason(), "time-too-old", "{e}");

    let now = u64::from(last) + 600;
    let e = chain.accept(&mine(&chain, tip, (now + 2 * 3600 + 1) as u32, 4, 1), now).unwrap_err();
    assert_eq!(e.reject_reason(), "time-too-new", "{e}");
    let e = chain.accept(&mine(&chain, tip, (now + 3 * 3600) as u32, 4, 1), now).unwrap_err();
    assert_eq!(e.reject_reason(), "time-too-new", "{e}");

    // Regtest never retargets: any other nBits, even re-mined, is refused.
    let mut h = Header { bits: CompactTarget(0x207ffffe), ..mine(&chain, tip, mtp + 1, 4, 2) };
    while !h.bits.to_target().unwrap().is_met_by(&h.block_hash()) {
        h.nonce += 1;
    }
    let e = chain.accept(&h, NOW).unwrap_err();
    assert_eq!(e.reject_reason(), "bad-diffbits", "{e}");

    // Regtest enforces BIP34/66/65 from height 1.
    for (v, reason) in [(1, "bad-version(0x00000001)"), (2, "bad-version(0x00000002)"), (3, "bad-version(0x00000003)")]
    {
        let e = chain.accept(&mine(&chain, tip, mtp + 1, v, 1), NOW).unwrap_err();
        assert_eq!(e.reject_reason(), reason, "{e}");
    }
    assert_eq!(chain.best_hash(), tip);
    chain.accept(&mine(&chain, tip, (now + 2 * 3600) as u32, 4, 1), now).unwrap();
    assert_eq!(chain.best_height(), 13);
}

#[test]
fn fork_most_work_wins_and_both_are_kept() {
    let (mut chain, last) = regtest_chain(3);
    let fork_point = chain.best_hash();
    let branch = |chain: &mut HeaderChain, from: BlockHash, n: u32, tag: u8| -> Vec<BlockHash> {
        let mut prev = from;
        let mut out = Vec::new();
        for i in 1..=n {
            let h = mine(chain, prev, last + 600 * i, 4, tag);
            prev = chain.accept(&h, NOW).unwrap().hash;
            out.push(prev);
        }
        out
    };
    let a = branch(&mut chain, fork_point, 2, 0xa);
    assert_eq!(chain.best_hash(), a[1]);
    let b = branch(&mut chain, fork_point, 3, 0xb);
    assert_eq!(chain.best_hash(), b[2]);
    assert_eq!(chain.best_height(), 6);
    assert!(chain.contains(&a[0]) && chain.contains(&a[1]));
    assert_eq!(chain.at_height(4).unwrap().hash, b[0]);

    // An equal-work rival does not displace the tip (first seen wins)...
    let a3 = mine(&chain, a[1], last + 1800, 4, 0xa);
    let r = chain.accept(&a3, NOW).unwrap();
    assert!(!r.new_tip);
    assert_eq!(chain.best_hash(), b[2]);
    // ...one more block does, and the best chain is re-indexed.
    let a4 = mine(&chain, r.hash, last + 2400, 4, 0xa);
    let r = chain.accept(&a4, NOW).unwrap();
    assert!(r.new_tip);
    assert_eq!(chain.best_height(), 7);
    assert_eq!(chain.at_height(4).unwrap().hash, a[0]);
    assert_eq!(chain.at_height(3).unwrap().hash, fork_point);
    assert!(chain.contains(&b[2]));
    assert_eq!(chain.len(), 1 + 3 + 4 + 3);
    assert_eq!(*chain.locator().first().unwrap(), r.hash);
}
