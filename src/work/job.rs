//! `Work`: one header template with its precomputed scan parameters and the
//! slice of nonce space a scanner owns. Scanners see only this, never Stratum
//! or getblocktemplate.

use super::header::{BlockHash, Header};
use super::target::Target;
use crate::sha256::{sha256d_header, ScanParams};

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
        let hash = BlockHash(sha256d_header(&self.header_with_nonce(nonce)));
        self.target.is_met_by(&hash).then_some(hash)
    }

    /// The decoded header template.
    pub fn decoded_header(&self) -> Header {
        Header::parse(&self.header).expect("80 bytes")
    }
}
