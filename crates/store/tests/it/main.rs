//! kiln-store's integration tests: real mainnet blocks round-tripped,
//! rotation across files, simulated crashes and corruption, and a real
//! SIGKILL of a writing process.

mod crash;
mod kill;
mod roundtrip;

use std::sync::OnceLock;

pub use kiln_testkit::TempDir;
use kiln_testkit::bitcoin::{self, Block};

/// A real mainnet block from tests/data, decoded.
pub fn mainnet(height: u32) -> (Vec<u8>, Block) {
    let raw = kiln_testkit::data::read(&format!("mainnet/block_{height}.raw.zst"));
    let block = bitcoin::consensus::deserialize(&raw).unwrap();
    (raw, block)
}

/// Block `i` of a deterministic family of small distinct blocks: block
/// 367891's header with nonce and time from `i`, and between 1 and 19 of its
/// transactions (the store checks records, not consensus).
pub fn synth(i: u64) -> Block {
    static BASE: OnceLock<Block> = OnceLock::new();
    let base = BASE.get_or_init(|| mainnet(367891).1);
    let mut header = base.header;
    header.nonce = i as u32;
    header.time = header.time.wrapping_add((i >> 32) as u32);
    // Its coinbase and then a run of between 0 and 18 of its ordinary
    // transactions (the small ones: no synthetic block passes 20 kB).
    let small: Vec<_> = base.txdata[1..]
        .iter()
        .filter(|t| kiln_testkit::bitcoin::consensus::serialize(*t).len() < 1000)
        .take(40)
        .collect();
    let n = (i % 19) as usize;
    let start = (i as usize / 19) % (small.len() - n);
    let mut txdata = vec![base.txdata[0].clone()];
    txdata.extend(small[start..start + n].iter().map(|t| (*t).clone()));
    Block { header, txdata }
}
