//! Every backend against the portable reference: real blocks, random headers,
//! random ranges whose lengths exercise every lane-count tail.

use kiln_hash::{Backend, ScanParams, sha256d};
use kiln_scan::selfcheck::{real_header, self_check};
use kiln_work::{Header, Work};

use kiln_testkit::data::Rng;

#[test]
fn self_check_passes_for_every_backend() {
    for b in Backend::available() {
        self_check(b).unwrap();
    }
}

/// Blocks 100000 and 866342: the real nonce is found when the range holds it
/// (at various offsets inside a range), and nothing at the block's target in a
/// nearby range that does not hold it.
#[test]
fn real_blocks_nonce_found_in_range_and_absent_nearby() {
    for i in 0..2 {
        let bytes = real_header(i);
        let h = Header::parse(&bytes).unwrap();
        let target = h.bits.to_target().unwrap();
        for b in Backend::available() {
            for (before, len) in [(0u32, 1u32), (7, 64), (100_000, 262_144), (31, 33)] {
                let start = h.nonce - before;
                let w = Work::with_range(0, bytes, target, start, start as u64 + len as u64);
                let mut c = Vec::new();
                b.scan(&w.params, start, len, &mut c);
                let found: Vec<u32> = c.into_iter().filter(|&n| w.check(n).is_some()).collect();
                assert_eq!(found, [h.nonce], "{b}: block {i}, range {start}+{len}");
            }
            // A range of 1M nonces just after the real one holds no solution.
            let start = h.nonce + 1;
            let w = Work::with_range(0, bytes, target, start, start as u64 + (1 << 20));
            let mut c = Vec::new();
            b.scan(&w.params, start, 1 << 20, &mut c);
            assert!(c.iter().all(|&n| w.check(n).is_none()), "{b}: block {i} nearby");
        }
    }
}

/// Random headers, random starts, lengths 0..=70 and a few long ones, easy
/// top-word targets: every backend returns exactly the scalar's candidates, and
/// the scalar's candidates are exactly what the sha2 crate says.
#[test]
fn backends_equal_scalar_on_random_work() {
    let mut rng = Rng(0x6b69_6c6e);
    let scalar = Backend::scalar();
    for round in 0..60 {
        let mut header = [0u8; 80];
        rng.fill(&mut header);
        let target_hi = match round % 3 {
            0 => 0x00ff_ffff,
            1 => 0x0fff_ffff,
            _ => u32::MAX, // every nonce is a candidate
        };
        let p = ScanParams::new(&header, target_hi);
        let start = if round % 5 == 0 { u32::MAX - 40 } else { rng.next_u32() };
        let len = if round < 50 { (round as u32 * 7) % 71 } else { 3000 + rng.next_u32() % 1000 };
        let len = len.min((u32::MAX - start) + 1);
        let mut want = Vec::new();
        scalar.scan(&p, start, len, &mut want);
        // Independent check of the scalar kernel with the sha2 crate.
        let mut by_sha2 = Vec::new();
        for k in 0..len {
            let n = start.wrapping_add(k);
            let mut h = header;
            h[76..].copy_from_slice(&n.to_le_bytes());
            let d = sha256d(&h);
            if u32::from_le_bytes(d[28..32].try_into().unwrap()) <= target_hi {
                by_sha2.push(n);
            }
        }
        assert_eq!(want, by_sha2, "scalar vs sha2, round {round}");
        for b in Backend::available() {
            let mut got = Vec::new();
            b.scan(&p, start, len, &mut got);
            assert_eq!(got, want, "{b} vs scalar, round {round}, start {start}, len {len}");
        }
    }
}

/// The real nonce of each block at every position that matters to a kernel of
/// 1, 2, 8, 16 or 32 lanes: first and last lane of a batch, either side of a
/// batch boundary, and as the last nonce of a range that ends inside a batch
/// (the masked tail). Every backend must report it, and only it, at the
/// block's own target.
#[test]
fn real_nonce_found_at_every_lane_and_batch_boundary() {
    for i in 0..2 {
        let bytes = real_header(i);
        let h = Header::parse(&bytes).unwrap();
        let target = h.bits.to_target().unwrap();
        for b in Backend::available() {
            for before in [0u32, 1, 2, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 48, 63, 64, 65] {
                for after in [0u32, 1, 8, 15, 16, 31, 40] {
                    let start = h.nonce - before;
                    let len = before + 1 + after;
                    let w = Work::with_range(0, bytes, target, start, start as u64 + len as u64);
                    let mut c = Vec::new();
                    b.scan(&w.params, start, len, &mut c);
                    let found: Vec<u32> = c.into_iter().filter(|&n| w.check(n).is_some()).collect();
                    assert_eq!(found, [h.nonce], "{b}: block {i}, nonce at offset {before} of {len}");
                }
            }
        }
    }
}
