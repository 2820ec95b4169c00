//! x86 SHA extensions backend (SHA-NI): `sha256rnds2` does two rounds per
//! instruction on a state split into ABEF and CDGH halves. One nonce is one
//! stream; `STREAMS` independent streams are interleaved so the round
//! instructions of one nonce fill the latency of another's.

#![allow(clippy::needless_range_loop)] // stream index `j` walks parallel arrays

use core::arch::x86_64::*;

use super::{H0, K, ScanParams};

/// Nonces hashed side by side in one loop iteration. Measured on Zen 4
/// (`kiln bench --backend sha-ni --threads 1`): 2 streams 25.1 MH/s, 3 23.2,
/// 4 21.6, 8 21.5; beyond two the sixteen XMM registers spill.
pub(super) const STREAMS: usize = 2;

/// The two SHA-NI state halves of one stream.
#[derive(Clone, Copy)]
struct St {
    abef: __m128i,
    cdgh: __m128i,
}

/// Packs `a..h` into the ABEF / CDGH layout `sha256rnds2` expects.
#[inline(always)]
unsafe fn pack(s: &[u32; 8]) -> St {
    let v = |x: u32| x as i32;
    // SAFETY: SSE2 is part of x86-64; callers run with SHA-NI and SSE4.1 enabled.
    unsafe {
        St {
            abef: _mm_set_epi32(v(s[0]), v(s[1]), v(s[4]), v(s[5])),
            cdgh: _mm_set_epi32(v(s[2]), v(s[3]), v(s[6]), v(s[7])),
        }
    }
}

/// Four rounds `i..i+4` on every stream with message words `w` (lanes = W[i..i+4]).
#[inline(always)]
unsafe fn quad<const N: usize>(st: &mut [St; N], w: &[__m128i; N], i: usize) {
    // SAFETY: called only from `scan`, which has the `sha` and SSE4.1 features.
    unsafe {
        let k = _mm_loadu_si128(K.as_ptr().add(i) as *const __m128i);
        for j in 0..N {
            let wk = _mm_add_epi32(w[j], k);
            st[j].cdgh = _mm_sha256rnds2_epu32(st[j].cdgh, st[j].abef, wk);
            st[j].abef = _mm_sha256rnds2_epu32(st[j].abef, st[j].cdgh, _mm_shuffle_epi32::<0x0e>(wk));
        }
    }
}

/// The next four schedule words from the previous sixteen (`w0..w3` oldest first).
#[inline(always)]
unsafe fn next_w(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    // SAFETY: called only from `scan`, which has the `sha` and SSE4.1 features.
    unsafe {
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8::<4>(w3, w2));
        _mm_sha256msg2_epu32(t, w3)
    }
}

/// Runs rounds `from..until` (multiples of 4) with the schedule in `w`, a
/// 16-word window per stream held as four quads, oldest first.
#[inline(always)]
unsafe fn rounds<const N: usize>(st: &mut [St; N], w: &mut [[__m128i; 4]; N], from: usize, until: usize) {
    // SAFETY: called only from `scan`, which has the `sha` and SSE4.1 features.
    unsafe {
        let mut i = from;
        while i < until {
            let q = (i / 4) % 4;
            if i >= 16 {
                for j in 0..N {
                    let [a, b, c, d] = w[j];
                    let n = next_w(a, b, c, d);
                    w[j] = [b, c, d, n];
                }
            }
            let cur: [__m128i; N] = core::array::from_fn(|j| w[j][if i >= 16 { 3 } else { q }]);
            quad(st, &cur, i);
            i += 4;
        }
    }
}

/// # Safety
/// The CPU must support the SHA extensions, SSSE3 and SSE4.1.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn scan(p: &ScanParams, start: u32, count: u32, out: &mut Vec<u32>) {
    const N: usize = STREAMS;
    // SAFETY: this function's contract guarantees every feature the intrinsics need.
    unsafe {
        // First hash: rounds 0 and 1 of the second chunk depend only on W0, W1.
        let mut s2 = p.midstate;
        super::round(&mut s2, K[0].wrapping_add(p.tail[0]));
        super::round(&mut s2, K[1].wrapping_add(p.tail[1]));
        let st2 = pack(&s2);
        let mid = pack(&p.midstate);
        let h0 = pack(&H0);
        let pad1 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
        let len1 = _mm_set_epi32(640, 0, 0, 0);
        let pad2 = pad1;
        let len2 = _mm_set_epi32(256, 0, 0, 0);
        let zero = _mm_setzero_si128();
        let k01 = _mm_set_epi32(K[3] as i32, K[2] as i32, 0, 0);

        let mut done: u32 = 0;
        while done < count {
            let base = start.wrapping_add(done);
            let left = count - done;
            // ---- first hash, from after round 1 ----
            let mut st = [st2; N];
            let mut w: [[__m128i; 4]; N] = core::array::from_fn(|j| {
                let n = base.wrapping_add(j as u32).swap_bytes();
                let w0 = _mm_set_epi32(n as i32, p.tail[2] as i32, p.tail[1] as i32, p.tail[0] as i32);
                [w0, pad1, zero, len1]
            });
            for j in 0..N {
                // Rounds 2 and 3: the upper half of W[0..4] + K[0..4]. One
                // `sha256rnds2` yields the new ABEF; the old ABEF becomes CDGH.
                let wk = _mm_shuffle_epi32::<0x0e>(_mm_add_epi32(w[j][0], k01));
                let abef = _mm_sha256rnds2_epu32(st[j].cdgh, st[j].abef, wk);
                st[j].cdgh = st[j].abef;
                st[j].abef = abef;
            }
            rounds(&mut st, &mut w, 4, 64);

            // ---- second hash: its message is the first hash's state ----
            let mut w2: [[__m128i; 4]; N] = core::array::from_fn(|j| {
                let abef = _mm_add_epi32(st[j].abef, mid.abef);
                let cdgh = _mm_add_epi32(st[j].cdgh, mid.cdgh);
                let rev_abef = _mm_shuffle_epi32::<0x1b>(abef); // a b e f
                let rev_cdgh = _mm_shuffle_epi32::<0x1b>(cdgh); // c d g h
                [_mm_unpacklo_epi64(rev_abef, rev_cdgh), _mm_unpackhi_epi64(rev_abef, rev_cdgh), pad2, len2]
            });
            let mut st = [h0; N];
            rounds(&mut st, &mut w2, 0, 60);
            // Rounds 60 and 61: afterwards lane 0 of ABEF is f = e after round 60.
            let k60 = _mm_loadu_si128(K.as_ptr().add(60) as *const __m128i);
            for j in 0..N {
                let [a, b, c, d] = w2[j];
                let n = next_w(a, b, c, d);
                let e60 = _mm_sha256rnds2_epu32(st[j].cdgh, st[j].abef, _mm_add_epi32(n, k60));
                let h7 = (_mm_cvtsi128_si32(e60) as u32).wrapping_add(H0[7]);
                if super::hash_top_word(h7) <= p.target_hi && (j as u32) < left {
                    out.push(base.wrapping_add(j as u32));
                }
            }
            done = done.saturating_add(N as u32);
        }
    }
}
