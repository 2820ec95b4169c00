//! The header-scan algorithm, written once over a lane type.
//!
//! Each SIMD backend implements [`Lanes`] for its vector type (8 lanes for AVX2,
//! 16 for AVX-512, 1 for the portable `u32`) and instantiates
//! [`scan_batch`] inside a `#[target_feature]` function. Everything here is
//! `#[inline(always)]`, so the whole scan is compiled with the caller's target
//! features and becomes straight-line vector code.

// Loop counters here are SHA-256 round numbers: indexing `K[i]` and `w[i]` by
// round is the clearest way to write the algorithm.
#![allow(clippy::needless_range_loop)]

use super::{H0, K, ScanParams};

/// A vector of 32-bit lanes, each lane hashing a different nonce.
pub(crate) trait Lanes: Copy {
    /// How many nonces one value covers.
    const N: usize;
    fn splat(x: u32) -> Self;
    /// `base, base+1, …, base+N-1` (wrapping).
    fn nonces(base: u32) -> Self;
    fn add(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn shr<const R: i32>(self) -> Self;
    /// Rotate right by `R`; `L` must equal `32 - R` (stable Rust cannot compute it).
    fn rotr<const R: i32, const L: i32>(self) -> Self;
    fn bswap(self) -> Self;
    /// Bit `i` set when lane `i` is `<= t` (unsigned).
    fn le_mask(self, t: Self) -> u64;

    #[inline(always)]
    fn xor3(self, b: Self, c: Self) -> Self {
        self.xor(b).xor(c)
    }
    /// `(e & f) ^ (!e & g)`, written as `g ^ (e & (f ^ g))`.
    fn ch(e: Self, f: Self, g: Self) -> Self;
    /// `(a & b) | (c & (a | b))`.
    fn maj(a: Self, b: Self, c: Self) -> Self;
}

#[inline(always)]
fn bsig0<L: Lanes>(x: L) -> L {
    x.rotr::<2, 30>().xor3(x.rotr::<13, 19>(), x.rotr::<22, 10>())
}
#[inline(always)]
fn bsig1<L: Lanes>(x: L) -> L {
    x.rotr::<6, 26>().xor3(x.rotr::<11, 21>(), x.rotr::<25, 7>())
}
#[inline(always)]
fn ssig0<L: Lanes>(x: L) -> L {
    x.rotr::<7, 25>().xor3(x.rotr::<18, 14>(), x.shr::<3>())
}
#[inline(always)]
fn ssig1<L: Lanes>(x: L) -> L {
    x.rotr::<17, 15>().xor3(x.rotr::<19, 13>(), x.shr::<10>())
}

/// The eight working variables.
#[derive(Clone, Copy)]
struct State<L>([L; 8]);

impl<L: Lanes> State<L> {
    #[inline(always)]
    fn splat(s: &[u32; 8]) -> Self {
        State(s.map(L::splat))
    }

    /// One round with `kw = K[i] + W[i]`.
    #[inline(always)]
    fn round(&mut self, kw: L) {
        let [a, b, c, d, e, f, g, h] = self.0;
        let t1 = h.add(bsig1(e)).add(L::ch(e, f, g)).add(kw);
        let t2 = bsig0(a).add(L::maj(a, b, c));
        self.0 = [t1.add(t2), a, b, c, d.add(t1), e, f, g];
    }

    /// A round whose `K[i] + W[i]` is a compile-time or per-work constant.
    #[inline(always)]
    fn round_c(&mut self, kw: u32) {
        self.round(L::splat(kw));
    }

    /// A round with a lane-varying schedule word `w`.
    #[inline(always)]
    fn round_w(&mut self, i: usize, w: L) {
        self.round(w.add(L::splat(K[i])));
    }
}

/// The general schedule step `W[i] = σ1(W[i-2]) + W[i-7] + σ0(W[i-15]) + W[i-16]`.
#[inline(always)]
fn sched<L: Lanes>(w: &[L; 64], i: usize) -> L {
    ssig1(w[i - 2]).add(w[i - 7]).add(ssig0(w[i - 15])).add(w[i - 16])
}

/// Rounds `from..61` and the schedule words they need, computing `W[i]` for
/// `i >= from_sched` with the general formula. Returns `e` after round 60,
/// which becomes `h` after round 63, i.e. the state word behind the hash's top
/// 32 bits. Rounds 61..63 cannot change it, so they are never run.
#[inline(always)]
fn rounds_to_60<L: Lanes>(s: &mut State<L>, w: &mut [L; 64], from: usize) -> L {
    for i in from..60 {
        w[i] = sched(w, i);
        s.round_w(i, w[i]);
    }
    w[60] = sched(w, 60);
    let [_, _, _, d, e, f, g, h] = s.0;
    let t1 = h.add(bsig1(e)).add(L::ch(e, f, g)).add(w[60].add(L::splat(K[60])));
    d.add(t1)
}

/// Hashes the `L::N` nonces `base..base+N` and returns a bit mask of the lanes
/// whose hash's top 32 bits are `<= p.target_hi`.
#[inline(always)]
pub(crate) fn scan_batch<L: Lanes>(p: &ScanParams, base: u32) -> u64 {
    let z = L::splat(0);
    // ---- first hash, second chunk, starting after round 2 ----
    let w3 = L::nonces(base).bswap();
    let mut s = State::<L>::splat(&p.state3);
    s.round_w(3, w3);
    s.round_c(K[4].wrapping_add(0x8000_0000));
    for i in 5..15 {
        s.round_c(K[i]);
    }
    s.round_c(K[15].wrapping_add(640));
    s.round_c(p.kw16);
    s.round_c(p.kw17);

    let mut w = [z; 64];
    w[0] = L::splat(p.tail[0]);
    w[1] = L::splat(p.tail[1]);
    w[2] = L::splat(p.tail[2]);
    w[3] = w3;
    w[4] = L::splat(0x8000_0000);
    w[15] = L::splat(640);
    w[16] = L::splat(p.w16);
    w[17] = L::splat(p.w17);
    w[18] = L::splat(p.w18_part).add(ssig0(w3));
    s.round_w(18, w[18]);
    w[19] = L::splat(p.w19_part).add(w3);
    s.round_w(19, w[19]);
    // W[20..33]: terms that are zero or constant in the padded chunk are dropped.
    w[20] = ssig1(w[18]).add(L::splat(0x8000_0000));
    s.round_w(20, w[20]);
    w[21] = ssig1(w[19]);
    s.round_w(21, w[21]);
    w[22] = ssig1(w[20]).add(L::splat(640));
    s.round_w(22, w[22]);
    for i in 23..30 {
        w[i] = ssig1(w[i - 2]).add(w[i - 7]);
        s.round_w(i, w[i]);
    }
    w[30] = ssig1(w[28]).add(w[23]).add(L::splat(super::small_sigma0(640)));
    s.round_w(30, w[30]);
    w[31] = ssig1(w[29]).add(w[24]).add(L::splat(p.w31_part));
    s.round_w(31, w[31]);
    w[32] = ssig1(w[30]).add(w[25]).add(L::splat(p.w32_part));
    s.round_w(32, w[32]);
    for i in 33..64 {
        w[i] = sched(&w, i);
        s.round_w(i, w[i]);
    }
    let mut first = [z; 8];
    for i in 0..8 {
        first[i] = s.0[i].add(L::splat(p.midstate[i]));
    }

    // ---- second hash: 32-byte message, W[8] = 0x80000000, W[15] = 256 ----
    let mut s = State::<L>::splat(&H0);
    let mut w = [z; 64];
    for i in 0..8 {
        w[i] = first[i];
        s.round_w(i, w[i]);
    }
    w[8] = L::splat(0x8000_0000);
    w[15] = L::splat(256);
    s.round_c(K[8].wrapping_add(0x8000_0000));
    for i in 9..15 {
        s.round_c(K[i]);
    }
    s.round_c(K[15].wrapping_add(256));
    // W[16..24] with the zero padding words dropped.
    w[16] = ssig0(w[1]).add(w[0]);
    w[17] = L::splat(super::small_sigma1(256)).add(ssig0(w[2])).add(w[1]);
    for i in 18..22 {
        w[i] = ssig1(w[i - 2]).add(ssig0(w[i - 15])).add(w[i - 16]);
    }
    w[22] = ssig1(w[20]).add(L::splat(256)).add(ssig0(w[7])).add(w[6]);
    w[23] = ssig1(w[21]).add(w[16]).add(L::splat(super::small_sigma0(0x8000_0000))).add(w[7]);
    for i in 16..24 {
        s.round_w(i, w[i]);
    }
    let e60 = rounds_to_60(&mut s, &mut w, 24);
    let h7 = e60.add(L::splat(H0[7]));
    h7.bswap().le_mask(L::splat(p.target_hi))
}

/// Scans `count` nonces from `start` in batches of `L::N`, pushing every
/// candidate nonce. Lanes past the end of the range are masked off.
#[inline(always)]
pub(crate) fn scan_range<L: Lanes>(p: &ScanParams, start: u32, count: u32, out: &mut Vec<u32>) {
    let mut done: u32 = 0;
    while done < count {
        let base = start.wrapping_add(done);
        let left = count - done;
        let mut mask = scan_batch::<L>(p, base);
        if (left as usize) < L::N {
            mask &= (1u64 << left) - 1;
        }
        while mask != 0 {
            let lane = mask.trailing_zeros();
            out.push(base.wrapping_add(lane));
            mask &= mask - 1;
        }
        done = done.saturating_add(L::N as u32);
    }
}
