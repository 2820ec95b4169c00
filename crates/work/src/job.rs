//! `Work`: one header template with its precomputed scan parameters and the
//! slice of nonce space a scanner owns. Scanners see only this, never Stratum
//! or getblocktemplate.

use super::header::{BlockHash, Header};

use super::target::Target;
use kiln_hash::{ScanParams, sha256d_header};

/// One unit of scannable work.
#[derive(Clone, Debug)]
pub struct Work {
    /// Identifies the work to whoever made it (the engine maps it back to a
    /// job, extranonce2 and ntime). Candidates carry it.
    pub id: u64,
    /// The header template; its nonce field is ignored.
    pub header: [u8; 80],
    /// The share (or block) target that a result must meet.
    pub target: Target,
    /// First nonce of the range.
    pub nonce_start: u32,
    /// One past the last nonce, at most 2^32.
    pub nonce_end: u64,
    /// Nonce-independent precomputation, shared by every backend.
    pub params: ScanParams,
}

impl Work {
    /// Work over the whole 32-bit nonce range.
    pub fn new(id: u64, header: [u8; 80], target: Target) -> Self {
        Work::with_range(id, header, target, 0, 1 << 32)
    }

    /// Work over `nonce_start..nonce_end` (end clamped to 2^32).
    pub fn with_range(id: u64, header: [u8; 80], target: Target, nonce_start: u32, nonce_end: u64) -> Self {
        let nonce_end = nonce_end.clamp(nonce_start as u64, 1 << 32);
        Work { id, params: ScanParams::new(&header, target.top_u32()), header, target, nonce_start, nonce_end }
    }

    /// How many nonces the range holds.
    pub fn len(&self) -> u64 {
        self.nonce_end - self.nonce_start as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The header with `nonce` filled in.
    pub fn header_with_nonce(&self, nonce: u32) -> [u8; 80] {
        let mut h = self.header;
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// Full re-check of a candidate on the portable path: the complete hash,
    /// compared as a 256-bit number with the full target. `Some(hash)` only if
    /// it really meets the target.
    pub fn check(&self, nonce: u32) -> Option<BlockHash> {
        let hash = self.hash(nonce);
        self.target.is_met_by(&hash).then_some(hash)
    }

    /// sha256d of the header with `nonce`, on the portable path.
    pub fn hash(&self, nonce: u32) -> BlockHash {
        BlockHash(sha256d_header(&self.header_with_nonce(nonce)))
    }
}

/// A mining job as a pool (or node) states it: everything needed to build
/// headers for any extranonce2, ntime and version inside the job's rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub job_id: String,
    /// Previous block hash, internal byte order.
    pub prev_hash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    /// Merkle branch of the coinbase, internal byte order.
    pub merkle_branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean_jobs: bool,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    /// The share target in force when the job arrived.
    pub share_target: Target,
    /// Version bits the miner may roll (BIP320 / BIP310), 0 for none.
    pub version_mask: u32,
}

impl Job {
    /// coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2.
    pub fn coinbase(&self, extranonce2: &[u8]) -> Vec<u8> {
        [&self.coinb1[..], &self.extranonce1, extranonce2, &self.coinb2].concat()
    }

    /// The merkle root for a given extranonce2 (internal byte order).
    pub fn merkle_root(&self, extranonce2: &[u8]) -> [u8; 32] {
        let cb = kiln_hash::sha256d(&self.coinbase(extranonce2));
        super::merkle::root_from_branch(&cb, &self.merkle_branch)
    }

    /// The 80-byte header (nonce zero) for this extranonce2, ntime and version.
    pub fn header(&self, extranonce2: &[u8], ntime: u32, version: u32) -> [u8; 80] {
        Header {
            version: version as i32,
            prev_blockhash: BlockHash(self.prev_hash),
            merkle_root: self.merkle_root(extranonce2),
            time: ntime,
            bits: super::target::CompactTarget(self.nbits),
            nonce: 0,
        }
        .serialize()
    }

    /// The block target from nBits, if nBits is valid.
    pub fn network_target(&self) -> Option<Target> {
        super::target::CompactTarget(self.nbits).to_target().ok()
    }

    /// `version` with its rollable bits replaced by `bits` (BIP310's formula:
    /// `(job_version & !mask) | (bits & mask)`).
    pub fn rolled_version(&self, bits: u32) -> u32 {
        (self.version & !self.version_mask) | (bits & self.version_mask)
    }
}
