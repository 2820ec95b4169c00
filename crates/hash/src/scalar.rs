//! Portable backend: the generic scan over one `u32` lane. It is the reference
//! every other backend is tested against, and the fallback on any CPU.

use super::ScanParams;
use super::lanes::{Lanes, scan_range};

impl Lanes for u32 {
    const N: usize = 1;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        x
    }
    #[inline(always)]
    fn nonces(base: u32) -> Self {
        base
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        self ^ o
    }
    #[inline(always)]
    fn shr<const R: i32>(self) -> Self {
        self >> R
    }
    #[inline(always)]
    fn rotr<const R: i32, const L: i32>(self) -> Self {
        self.rotate_right(R as u32)
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        self.swap_bytes()
    }
    #[inline(always)]
    fn le_mask(self, t: Self) -> u64 {
        (self <= t) as u64
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        g ^ (e & (f ^ g))
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        (a & b) | (c & (a | b))
    }
}

/// Scans `count` nonces from `start`, appending candidates to `out`.
pub(super) fn scan(p: &ScanParams, start: u32, count: u32, out: &mut Vec<u32>) {
    scan_range::<u32>(p, start, count, out);
}
