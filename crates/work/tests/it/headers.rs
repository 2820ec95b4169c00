//! The real mainnet header chain: hashing, proof of work, linkage, targets.

use kiln_hash::{Backend, ScanParams, sha256d};
use kiln_work::{BlockHash, CompactTarget, Header, Target, TargetError};

use kiln_testkit::data::mainnet_headers;

#[test]
fn all_real_headers_hash_link_and_meet_their_targets() {
    let headers = mainnet_headers();
    assert_eq!(headers.len(), 10_237);
    let mut prev = BlockHash([0; 32]);
    for (height, bytes) in headers.iter().enumerate() {
        let h = Header::parse(bytes).unwrap();
        assert_eq!(h.serialize(), *bytes, "round trip at {height}");
        assert_eq!(h.prev_blockhash, prev, "linkage at {height}");
        let hash = h.block_hash();
        assert_eq!(hash.0, sha256d(bytes), "own sha256d vs sha2 at {height}");
        let target = h.bits.to_target().unwrap();
        assert!(target.is_met_by(&hash), "pow at {height}");
        prev = hash;
    }
    assert_eq!(prev.to_string(), "000000004f74d42205b9d7ae1cb5c1591e723894a71358fce73b7e0919628161");
    assert_eq!(
        Header::parse(&headers[0]).unwrap().block_hash().to_string(),
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    );
}

/// Every backend, scanning exactly the real nonce of each header at the
/// header's own target, reports it — and nothing for the nonce just before it.
#[test]
fn every_backend_finds_every_real_nonce() {
    let headers = mainnet_headers();
    for backend in Backend::available() {
        for (height, bytes) in headers.iter().enumerate() {
            let h = Header::parse(bytes).unwrap();
            let target = h.bits.to_target().unwrap();
            let p = ScanParams::new(bytes, target.top_u32());
            let mut out = Vec::new();
            backend.scan(&p, h.nonce, 1, &mut out);
            assert_eq!(out, [h.nonce], "{backend} at height {height}");
            if h.nonce > 0 {
                out.clear();
                backend.scan(&p, h.nonce - 1, 1, &mut out);
                // The top word alone rarely passes; whatever does must fail the full check.
                for n in out {
                    let hash = BlockHash(sha256d(&h.with_nonce(n).serialize()));
                    assert!(!target.is_met_by(&hash) || n == h.nonce);
                }
            }
        }
    }
}

#[test]
fn real_nbits_convert_and_difficulty_is_consistent() {
    let headers = mainnet_headers();
    let mut seen = std::collections::BTreeSet::new();
    for bytes in &headers {
        seen.insert(Header::parse(bytes).unwrap().bits.0);
    }
    for bits in seen {
        let t = CompactTarget(bits).to_target().unwrap();
        assert!(t <= Target::DIFF1, "early mainnet targets are at most diff 1");
        let d = t.difficulty().0;
        assert!((1.0..1e3).contains(&d), "{bits:08x} -> {d}");
        let back = Target::from_difficulty(t.difficulty()).unwrap();
        // f64 keeps 53 bits; the mantissa of nBits has 23, so the round trip is close.
        let ratio = back.difficulty().0 / d;
        assert!((ratio - 1.0).abs() < 1e-12);
    }
    // Genesis nBits is difficulty 1 exactly.
    assert_eq!(CompactTarget(0x1d00ffff).to_target().unwrap(), Target::DIFF1);
    // Block 866342's nBits.
    let t = CompactTarget(0x17030ecd).to_target().unwrap();
    assert!((t.difficulty().0 - 92_049_594_548_485.47).abs() / 9.2e13 < 1e-9, "{}", t.difficulty());
}

#[test]
fn invalid_nbits_are_typed_errors() {
    assert!(matches!(CompactTarget(0x1d80ffff).to_target(), Err(TargetError::Negative { .. })));
    assert!(matches!(CompactTarget(0x2300ffff).to_target(), Err(TargetError::Overflow { .. })));
    assert!(matches!(CompactTarget(0x1d000000).to_target(), Err(TargetError::Zero { .. })));
    // A zero mantissa with the sign bit is zero, not negative (as in Core).
    assert!(matches!(CompactTarget(0x1d800000).to_target(), Err(TargetError::Zero { .. })));
}

#[test]
fn block_125552_hash() {
    // Public fact (shared/testdata README): block 125552.
    let hex = "01000000\
        81cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000\
        e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122b\
        c7f5d74d\
        f2b9441a\
        42a14695";
    let bytes = hex::decode(hex).unwrap();
    let h = Header::parse(&bytes).unwrap();
    assert_eq!(h.block_hash().to_string(), "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d");
    assert!(Header::parse(&bytes[..79]).is_err());
}
