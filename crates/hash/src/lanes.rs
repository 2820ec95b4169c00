//! The header-scan algorithm, written once over a lane type.
//!
//! Each SIMD backend implements [`Lanes`] for its vector type (8 lanes for AVX2,
//! 16 for AVX-512, 1 for the portable `u32`) and instantiates
//! [`scan_batch`] inside a `#[target_feature]` function. Everything here is
//! `#[inline(always)]`, so the whole scan is compiled with the caller's target
//! features and becomes straight-line vector code: no loop over rounds, the
//! message schedule a sixteen-word ring the compiler can keep in registers
//! (see [`scan_batch`]).

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
    ///
    /// The sums are ordered so the terms that do not depend on this round's
    /// `e` and `a` (`h + kw`, then `Ch`) are added first: the path from `e` to
    /// the next `e` is then σ1 (rotates, one ternary XOR) and two adds.
    #[inline(always)]
    fn round(&mut self, kw: L) {
        let [a, b, c, d, e, f, g, h] = self.0;
        let t1 = h.add(kw).add(L::ch(e, f, g)).add(bsig1(e));
        let t2 = bsig0(a).add(L::maj(a, b, c));
        // Once unrolled, this shift is only a renaming of registers.
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

/// Expands `$body` once per listed round number with `$i` bound to it as a
/// `const`. Every schedule index then is a compile-time constant, which is
/// what lets LLVM keep the 16-word ring below in registers (SROA only splits
/// arrays indexed by constants) and drop the rounds' register rotation: a
/// `for` loop over the rounds would be left rolled, with the schedule in
/// memory and a dozen moves per round.
macro_rules! unroll {
    ($i:ident in [$($n:literal)*] $body:block) => {
        $({
            const $i: usize = $n;
            $body
        })*
    };
}

/// The message schedule as a ring of its last sixteen words: `W[i]` lives in
/// slot `i % 16`, which is where `W[i - 16]`, the oldest word the general
/// schedule step reads, was.
#[derive(Clone, Copy)]
struct Ring<L>([L; 16]);

impl<L: Lanes> Ring<L> {
    #[inline(always)]
    fn at(&self, i: usize) -> L {
        self.0[i % 16]
    }
    #[inline(always)]
    fn set(&mut self, i: usize, w: L) -> L {
        self.0[i % 16] = w;
        w
    }
    /// The general schedule step `W[i] = σ1(W[i-2]) + W[i-7] + σ0(W[i-15]) + W[i-16]`,
    /// stored over `W[i-16]`. The two terms that are ready earliest are added
    /// first; `W[i-2]`, computed two steps ago, goes last.
    #[inline(always)]
    fn sched(&mut self, i: usize) -> L {
        let w = self.at(i - 16).add(self.at(i - 7)).add(ssig0(self.at(i - 15))).add(ssig1(self.at(i - 2)));
        self.set(i, w)
    }
}

/// Per-work values the lane code starts from, computed once per
/// [`scan_range`] call on scalars.
#[derive(Clone, Copy)]
pub(crate) struct Pre {
    /// The working variables after round 3 of the first hash's second chunk
    /// with the nonce word `W[3]` taken as zero. Round 3 is the first round
    /// that sees the nonce, and it only adds `W[3]` to `T1`, so the real
    /// state after it is this one with `W[3]` added to `a` and `e`.
    state4: [u32; 8],
}

impl Pre {
    #[inline(always)]
    pub(crate) fn new(p: &ScanParams) -> Self {
        let mut state4 = p.state3;
        super::round(&mut state4, K[3]);
        Pre { state4 }
    }
}

/// Hashes the `L::N` nonces `base..base+N` and returns a bit mask of the lanes
/// whose hash's top 32 bits are `<= p.target_hi`.
///
/// Written straight-line: every round and schedule step is expanded (by
/// [`unroll!`] where a run of them has the same form), so the compiled kernel
/// has no loop, no schedule array in memory and no state moves, and the work
/// that cannot reach the result (the `a` side of rounds 57..59 of the second
/// hash, schedule words past `W[60]`) is removed as dead code.
#[inline(always)]
pub(crate) fn scan_batch<L: Lanes>(p: &ScanParams, pre: &Pre, base: u32) -> u64 {
    let z = L::splat(0);
    // ---- first hash, second chunk, starting after round 3 ----
    let w3 = L::nonces(base).bswap();
    let mut s = State::<L>::splat(&pre.state4);
    s.0[0] = s.0[0].add(w3);
    s.0[4] = s.0[4].add(w3);
    s.round_c(K[4].wrapping_add(0x8000_0000));
    unroll!(I in [5 6 7 8 9 10 11 12 13 14] {
        s.round_c(K[I]);
    });
    s.round_c(K[15].wrapping_add(640));
    s.round_c(p.kw16);
    s.round_c(p.kw17);

    // W[0..16] of the padded second chunk: W[4] is the padding bit, W[5..15]
    // are zero and W[15] is the length, 640 bits.
    let mut w = Ring([z; 16]);
    w.set(0, L::splat(p.tail[0]));
    w.set(1, L::splat(p.tail[1]));
    w.set(2, L::splat(p.tail[2]));
    w.set(3, w3);
    w.set(4, L::splat(0x8000_0000));
    w.set(15, L::splat(640));
    w.set(16, L::splat(p.w16));
    w.set(17, L::splat(p.w17));
    // W[18..33]: terms that are zero or constant in the padded chunk are dropped.
    let w18 = w.set(18, L::splat(p.w18_part).add(ssig0(w3)));
    s.round_w(18, w18);
    let w19 = w.set(19, L::splat(p.w19_part).add(w3));
    s.round_w(19, w19);
    let w20 = w.set(20, ssig1(w.at(18)).add(L::splat(0x8000_0000)));
    s.round_w(20, w20);
    let w21 = w.set(21, ssig1(w.at(19)));
    s.round_w(21, w21);
    let w22 = w.set(22, ssig1(w.at(20)).add(L::splat(640)));
    s.round_w(22, w22);
    unroll!(I in [23 24 25 26 27 28 29] {
        let wi = w.set(I, w.at(I - 7).add(ssig1(w.at(I - 2))));
        s.round_w(I, wi);
    });
    let w30 = w.set(30, w.at(23).add(L::splat(super::small_sigma0(640))).add(ssig1(w.at(28))));
    s.round_w(30, w30);
    let w31 = w.set(31, w.at(24).add(L::splat(p.w31_part)).add(ssig1(w.at(29))));
    s.round_w(31, w31);
    let w32 = w.set(32, w.at(25).add(L::splat(p.w32_part)).add(ssig1(w.at(30))));
    s.round_w(32, w32);
    unroll!(I in [33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48
                  49 50 51 52 53 54 55 56 57 58 59 60 61 62 63] {
        let wi = w.sched(I);
        s.round_w(I, wi);
    });
    let mut first = [z; 8];
    unroll!(I in [0 1 2 3 4 5 6 7] {
        first[I] = s.0[I].add(L::splat(p.midstate[I]));
    });

    // ---- second hash: 32-byte message, W[8] = 0x80000000, W[15] = 256 ----
    let mut s = State::<L>::splat(&H0);
    let mut w = Ring([z; 16]);
    unroll!(I in [0 1 2 3 4 5 6 7] {
        let wi = w.set(I, first[I]);
        s.round_w(I, wi);
    });
    w.set(8, L::splat(0x8000_0000));
    w.set(15, L::splat(256));
    s.round_c(K[8].wrapping_add(0x8000_0000));
    unroll!(I in [9 10 11 12 13 14] {
        s.round_c(K[I]);
    });
    s.round_c(K[15].wrapping_add(256));
    // W[16..24] with the zero padding words dropped.
    let w16 = w.set(16, w.at(0).add(ssig0(w.at(1))));
    s.round_w(16, w16);
    let w17 = w.set(17, w.at(1).add(L::splat(super::small_sigma1(256))).add(ssig0(w.at(2))));
    s.round_w(17, w17);
    unroll!(I in [18 19 20 21] {
        let wi = w.set(I, w.at(I - 16).add(ssig0(w.at(I - 15))).add(ssig1(w.at(I - 2))));
        s.round_w(I, wi);
    });
    let w22 = w.set(22, w.at(6).add(L::splat(256)).add(ssig0(w.at(7))).add(ssig1(w.at(20))));
    s.round_w(22, w22);
    let w23 = w.set(23, w.at(7).add(L::splat(super::small_sigma0(0x8000_0000))).add(w.at(16)).add(ssig1(w.at(21))));
    s.round_w(23, w23);
    unroll!(I in [24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41
                  42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59] {
        let wi = w.sched(I);
        s.round_w(I, wi);
    });
    // Round 60, `e` side only: `e` after it becomes `h` after round 63, the
    // state word behind the hash's top 32 bits. Rounds 61..63 cannot change
    // it, so they are never run.
    let w60 = w.sched(60);
    let [_, _, _, d, e, f, g, h] = s.0;
    let t1 = h.add(w60.add(L::splat(K[60]))).add(L::ch(e, f, g)).add(bsig1(e));
    let h7 = d.add(t1).add(L::splat(H0[7]));
    h7.bswap().le_mask(L::splat(p.target_hi))
}

/// Scans `count` nonces from `start` in batches of `L::N`, pushing every
/// candidate nonce. Lanes past the end of the range are masked off.
#[inline(always)]
pub(crate) fn scan_range<L: Lanes>(p: &ScanParams, start: u32, count: u32, out: &mut Vec<u32>) {
    let pre = Pre::new(p);
    let mut done: u32 = 0;
    while done < count {
        let base = start.wrapping_add(done);
        let left = count - done;
        let mut mask = scan_batch::<L>(p, &pre, base);
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
