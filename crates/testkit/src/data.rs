//! Loading the test data shipped in tests/data.

use std::path::PathBuf;

pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(rel)
}

/// Reads a file, decompressing it when its name ends in `.zst`.
pub fn read(rel: &str) -> Vec<u8> {
    let p = path(rel);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    if rel.ends_with(".zst") {
        zstd::decode_all(&raw[..]).unwrap_or_else(|e| panic!("zstd {}: {e}", p.display()))
    } else {
        raw
    }
}

/// The 10,237 real mainnet headers, genesis first.
pub fn mainnet_headers() -> Vec<[u8; 80]> {
    let raw = read("mainnet/headers_0_10236.bin.zst");
    assert_eq!(raw.len() % 80, 0);
    raw.chunks_exact(80).map(|c| c.try_into().unwrap()).collect()
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    pub fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.next_u64() as u8;
        }
    }
}
