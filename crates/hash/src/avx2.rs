//! AVX2 backend: eight nonces per 256-bit vector.

use core::arch::x86_64::*;

use super::ScanParams;
use super::lanes::{Lanes, scan_range};

/// Eight 32-bit lanes. Only ever created inside [`scan`], which runs with AVX2
/// enabled, so every intrinsic below executes on a CPU that has it.
#[derive(Clone, Copy)]
struct V(__m256i);

// SAFETY (for every `unsafe` block in this impl): the AVX2 intrinsics are only
// reachable through `scan`, a `#[target_feature(enable = "avx2")]` function
// that `Backend` calls only after run-time detection found AVX2. The methods
// are `#[inline(always)]`, so they are compiled into that function.
impl Lanes for V {
    const N: usize = 8;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm256_set1_epi32(x as i32) })
    }
    #[inline(always)]
    fn nonces(base: u32) -> Self {
        // SAFETY: see the impl comment.
        unsafe { V(_mm256_add_epi32(_mm256_set1_epi32(base as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm256_add_epi32(self.0, o.0) })
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm256_xor_si256(self.0, o.0) })
    }
    #[inline(always)]
    fn shr<const R: i32>(self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm256_srli_epi32::<R>(self.0) })
    }
    #[inline(always)]
    fn rotr<const R: i32, const L: i32>(self) -> Self {
        debug_assert_eq!(R + L, 32);
        // SAFETY: see the impl comment.
        V(unsafe { _mm256_or_si256(_mm256_srli_epi32::<R>(self.0), _mm256_slli_epi32::<L>(self.0)) })
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        // SAFETY: see the impl comment.
        unsafe {
            let m = _mm256_setr_epi8(
                3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13,
                12,
            );
            V(_mm256_shuffle_epi8(self.0, m))
        }
    }
    #[inline(always)]
    fn le_mask(self, t: Self) -> u64 {
        // SAFETY: see the impl comment. x <= t (unsigned) exactly when max(x, t) == t.
        unsafe {
            let eq = _mm256_cmpeq_epi32(_mm256_max_epu32(self.0, t.0), t.0);
            _mm256_movemask_ps(_mm256_castsi256_ps(eq)) as u32 as u64
        }
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        // SAFETY: see the impl comment.
        V(unsafe { _mm256_xor_si256(g.0, _mm256_and_si256(e.0, _mm256_xor_si256(f.0, g.0))) })
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl comment.
        unsafe { V(_mm256_or_si256(_mm256_and_si256(a.0, b.0), _mm256_and_si256(c.0, _mm256_or_si256(a.0, b.0)))) }
    }
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn scan(p: &ScanParams, start: u32, count: u32, out: &mut Vec<u32>) {
    scan_range::<V>(p, start, count, out);
}
