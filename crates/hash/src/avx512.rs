//! AVX-512 backend: sixteen nonces per 512-bit vector, with native rotates
//! (`vprord`) and three-input logic (`vpternlogd`) for Ch, Maj and the
//! three-way XORs of the sigma functions.
//!
//! The kernel is the straight-line expansion of `lanes::scan_batch` (about 3,160
//! instructions per 16 nonces, 2,850 of them on the vector ports), with the
//! state and the schedule ring in `zmm` registers. One batch per thread: on the
//! Ice Lake server the two 512-bit ports are the bound, not the rounds'
//! dependency chains, and a second interleaved batch measured slower (it no
//! longer fits the 32 registers). See BENCHMARKS.md, 2026-11-23.

use core::arch::x86_64::*;

use super::ScanParams;
use super::lanes::{Lanes, scan_range};

/// Sixteen 32-bit lanes. Only ever created inside [`scan`], which runs with
/// AVX-512F and AVX-512BW enabled.
#[derive(Clone, Copy)]
struct V(__m512i);

// SAFETY (for every `unsafe` block in this impl): these intrinsics are only
// reachable through `scan`, a `#[target_feature(enable = "avx512f,avx512bw")]`
// function that `Backend` calls only after run-time detection found both
// features. The methods are `#[inline(always)]`, so they compile into it.
impl Lanes for V {
    const N: usize = 16;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm512_set1_epi32(x as i32) })
    }
    #[inline(always)]
    fn nonces(base: u32) -> Self {
        // SAFETY: see the impl comment.
        unsafe {
            V(_mm512_add_epi32(
                _mm512_set1_epi32(base as i32),
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            ))
        }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm512_add_epi32(self.0, o.0) })
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm512_xor_si512(self.0, o.0) })
    }
    #[inline(always)]
    fn shr<const R: i32>(self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm512_srl_epi32(self.0, _mm_cvtsi32_si128(R)) })
    }
    #[inline(always)]
    fn rotr<const R: i32, const L: i32>(self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm512_ror_epi32::<R>(self.0) })
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        // SAFETY: see the impl comment.
        unsafe {
            let m = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
            V(_mm512_shuffle_epi8(self.0, m))
        }
    }
    #[inline(always)]
    fn le_mask(self, t: Self) -> u64 {
        // SAFETY: see the impl comment.
        unsafe { _mm512_cmple_epu32_mask(self.0, t.0) as u64 }
    }
    #[inline(always)]
    fn xor3(self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl comment. 0x96 is the truth table of a ^ b ^ c.
        V(unsafe { _mm512_ternarylogic_epi32::<0x96>(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        // SAFETY: see the impl comment. 0xca: e ? f : g.
        V(unsafe { _mm512_ternarylogic_epi32::<0xca>(e.0, f.0, g.0) })
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl comment. 0xe8: majority of a, b, c.
        V(unsafe { _mm512_ternarylogic_epi32::<0xe8>(a.0, b.0, c.0) })
    }
}

/// # Safety
/// The CPU must support AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn scan(p: &ScanParams, start: u32, count: u32, out: &mut Vec<u32>) {
    scan_range::<V>(p, start, count, out);
}
