//! The hashing core: SHA-256 compression, the `Midstate` of an 80-byte header,
//! sha256d, and the header-scan kernels that try many nonces at once.
//!
//! Two layers live here, kept apart on purpose:
//! - the friendly layer ([`sha256d`], [`sha256d_header`], [`Midstate`]) used by the
//!   rest of kiln to hash things once;
//! - the scan layer ([`ScanParams`], [`Backend::scan`]) that the scanners call in a
//!   hot loop. It precomputes everything that does not depend on the nonce and
//!   stops the second hash after round 60, where only the top word of the hash
//!   is known; callers re-check every candidate with the full hash.
//!
//! General-purpose hashing (merkle trees, txids, tests) goes through the `sha2`
//! crate, which also serves as the independent check of the kernels here.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod lanes;
mod platform;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod shani;

pub use platform::{Backend, BackendKind};

use sha2::Digest;

/// SHA-256 initial state (FIPS 180-4, 5.3.3).
pub const H0: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
pub const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

#[inline(always)]
pub(crate) const fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}
#[inline(always)]
pub(crate) const fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}
#[inline(always)]
pub(crate) const fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}
#[inline(always)]
pub(crate) const fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// One SHA-256 round on a scalar state, with `kw = K[i] + W[i]` already added.
#[inline(always)]
pub(crate) fn round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h.wrapping_add(big_sigma1(e)).wrapping_add((e & f) ^ (!e & g)).wrapping_add(kw);
    let t2 = big_sigma0(a).wrapping_add((a & b) ^ (a & c) ^ (b & c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// The SHA-256 compression function on one 64-byte block (portable reference).
pub fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 64];
    for (i, chunk) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    compress_words(state, &mut w);
}

/// Compression with the first 16 schedule words given as big-endian-decoded words.
pub(crate) fn compress_words(state: &mut [u32; 8], w: &mut [u32; 64]) {
    for i in 16..64 {
        w[i] =
            small_sigma1(w[i - 2]).wrapping_add(w[i - 7]).wrapping_add(small_sigma0(w[i - 15])).wrapping_add(w[i - 16]);
    }
    let mut s = *state;
    for i in 0..64 {
        round(&mut s, K[i].wrapping_add(w[i]));
    }
    for i in 0..8 {
        state[i] = state[i].wrapping_add(s[i]);
    }
}

/// The SHA-256 state after the first 64 bytes of a block header.
///
/// Every nonce tried for one header shares this state, so the scanners start
/// from it instead of hashing the first chunk again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Midstate(pub [u32; 8]);

impl Midstate {
    /// Hashes the first 64 bytes of a header.
    pub fn of_prefix(prefix: &[u8; 64]) -> Self {
        let mut s = H0;
        compress(&mut s, prefix);
        Midstate(s)
    }
}

/// sha256d of an 80-byte header with kiln's own portable compression.
pub fn sha256d_header(header: &[u8; 80]) -> [u8; 32] {
    let mid = Midstate::of_prefix(header[..64].try_into().expect("64 bytes"));
    let mut block = [0u8; 64];
    block[..16].copy_from_slice(&header[64..]);
    block[16] = 0x80;
    block[62..].copy_from_slice(&(640u16).to_be_bytes());
    let mut s = mid.0;
    compress(&mut s, &block);
    finish_second_hash(&s)
}

/// Second SHA-256 over a 32-byte first hash given as state words.
fn finish_second_hash(first: &[u32; 8]) -> [u8; 32] {
    let mut w = [0u32; 64];
    w[..8].copy_from_slice(first);
    w[8] = 0x8000_0000;
    w[15] = 256;
    let mut s = H0;
    compress_words(&mut s, &mut w);
    let mut out = [0u8; 32];
    for (i, word) in s.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// sha256d of arbitrary data, through the `sha2` crate.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = sha2::Sha256::digest(data);
    sha2::Sha256::digest(first).into()
}

/// Single SHA-256 of arbitrary data, through the `sha2` crate.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Everything about one header template that does not depend on the nonce,
/// computed once per work so the kernels only do the nonce-dependent part.
///
/// Word names follow FIPS 180-4: `W[i]` is the message schedule of the header's
/// second 64-byte chunk (bytes 64..80 plus padding); `W[3]` is the nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanParams {
    /// State after the header's first chunk.
    pub midstate: [u32; 8],
    /// `W[0..3]`: the last 4 merkle-root bytes, the time and nBits, as SHA words.
    pub tail: [u32; 3],
    /// The working variables after rounds 0..=2 of the second chunk.
    pub state3: [u32; 8],
    /// `K[16] + W[16]` and `K[17] + W[17]`, both nonce-free.
    pub kw16: u32,
    pub kw17: u32,
    /// `W[16]`, `W[17]`, reused by later schedule words.
    pub w16: u32,
    pub w17: u32,
    /// `W[18] - σ0(W[3])`: the nonce-free part of `W[18]`.
    pub w18_part: u32,
    /// `W[19] - W[3]`: the nonce-free part of `W[19]`.
    pub w19_part: u32,
    /// `σ0(W[16]) + W[15]`, the constant tail of `W[31]`.
    pub w31_part: u32,
    /// `σ0(W[17]) + W[16]`, the constant tail of `W[32]`.
    pub w32_part: u32,
    /// The top 32 bits of the target: a nonce is a candidate when the top 32
    /// bits of its hash (read as a 256-bit little-endian number) are `<=` this.
    pub target_hi: u32,
}

impl ScanParams {
    /// Precomputes the scan of `header` (its nonce field is ignored) against a
    /// target whose most significant 32 bits are `target_hi`.
    pub fn new(header: &[u8; 80], target_hi: u32) -> Self {
        let midstate = Midstate::of_prefix(header[..64].try_into().expect("64 bytes")).0;
        let word = |i: usize| u32::from_be_bytes(header[64 + 4 * i..68 + 4 * i].try_into().unwrap());
        let tail = [word(0), word(1), word(2)];
        let mut state3 = midstate;
        for (i, w) in tail.iter().enumerate() {
            round(&mut state3, K[i].wrapping_add(*w));
        }
        // Second-chunk schedule: W4 = 0x80000000 (padding), W5..W14 = 0, W15 = 640.
        let w16 = small_sigma0(tail[1]).wrapping_add(tail[0]);
        let w17 = small_sigma1(640).wrapping_add(small_sigma0(tail[2])).wrapping_add(tail[1]);
        let w18_part = small_sigma1(w16).wrapping_add(tail[2]);
        let w19_part = small_sigma1(w17).wrapping_add(small_sigma0(0x8000_0000));
        ScanParams {
            midstate,
            tail,
            state3,
            kw16: K[16].wrapping_add(w16),
            kw17: K[17].wrapping_add(w17),
            w16,
            w17,
            w18_part,
            w19_part,
            w31_part: small_sigma0(w16).wrapping_add(640),
            w32_part: small_sigma0(w17).wrapping_add(w16),
            target_hi,
        }
    }
}

/// The top 32 bits of a hash read as a 256-bit little-endian number, from the
/// last state word of the second SHA-256 (its bytes are the hash's last four).
#[inline(always)]
pub(crate) const fn hash_top_word(h7: u32) -> u32 {
    h7.swap_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_matches_sha2_on_headers() {
        let mut h = [0u8; 80];
        for seed in 0..200u32 {
            for (i, b) in h.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2654435761).wrapping_add(i as u32 * 40503) >> 7) as u8;
            }
            assert_eq!(sha256d_header(&h), sha256d(&h));
        }
    }

    /// Every kernel this CPU runs against sha2, nonce by nonce, on ranges that
    /// start and end at every lane of a 16-lane batch and across the 2^32 wrap.
    #[test]
    fn every_backend_matches_sha2_at_batch_edges() {
        let mut header = [0u8; 80];
        for (i, b) in header.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        let target_hi = 0x3fff_ffff; // about one nonce in four is a candidate
        let p = ScanParams::new(&header, target_hi);
        for start in [0u32, 5, 16, 1_000_003, u32::MAX - 20] {
            for len in 0..=37u32 {
                let len = u64::from(len).min(u64::from(u32::MAX - start) + 1) as u32;
                let want: Vec<u32> = (0..len)
                    .map(|k| start.wrapping_add(k))
                    .filter(|&n| {
                        let mut h = header;
                        h[76..].copy_from_slice(&n.to_le_bytes());
                        let d = sha256d(&h);
                        u32::from_le_bytes(d[28..32].try_into().unwrap()) <= target_hi
                    })
                    .collect();
                for b in Backend::available() {
                    let mut got = Vec::new();
                    b.scan(&p, start, len, &mut got);
                    assert_eq!(got, want, "{b}: start {start}, len {len}");
                }
            }
        }
    }

    #[test]
    fn empty_string_sha256() {
        assert_eq!(hex::encode(sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
