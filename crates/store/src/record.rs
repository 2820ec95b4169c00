//! The on-disk record around one block in a `blkNNNNN.dat` file, and the
//! index entry that points at it.
//!
//! A record is a 72-byte header followed by the block's consensus
//! serialization:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | [`MAGIC`] `b"KBLK"` |
//! | 4..8 | payload length, u32 little-endian |
//! | 8..40 | the block hash (internal byte order) |
//! | 40..72 | SHA-256 of the payload |
//!
//! The block hash covers only the 80-byte header, so the payload has its
//! own checksum: a flipped byte anywhere in a transaction is caught before
//! decoding, and the record names the block it belongs to even when the
//! payload is damaged.

use bitcoin::hashes::{Hash, sha256};

/// First four bytes of every record.
pub const MAGIC: [u8; 4] = *b"KBLK";
/// Size of the record header that precedes each block.
pub const HEADER_LEN: usize = 72;
/// The largest block payload stored or read: Core's `MAX_BLOCK_SERIALIZED_SIZE`
/// (a block's weight is at most 4,000,000 and every byte weighs at least 1).
/// A length above it in the index or a record header is corruption, refused
/// before anything is allocated for it.
pub const MAX_BLOCK_LEN: u32 = 4_000_000;

/// Encodes the header of the record holding `payload` (the block `hash`).
pub fn header(hash: &[u8; 32], payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..40].copy_from_slice(hash);
    h[40..72].copy_from_slice(sha256::Hash::hash(payload).as_byte_array());
    h
}

/// What is wrong with a record read back, checked in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFault {
    Magic,
    Length { header: u32, index: u32 },
    Hash,
    Checksum,
}

impl std::fmt::Display for RecordFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordFault::Magic => write!(f, "bad record magic"),
            RecordFault::Length { header, index } => {
                write!(f, "record says {header} bytes, index says {index}")
            }
            RecordFault::Hash => write!(f, "record header names another block"),
            RecordFault::Checksum => write!(f, "payload checksum mismatch"),
        }
    }
}

/// Checks a record header and payload against what the index expects.
pub fn check(header: &[u8; HEADER_LEN], payload: &[u8], hash: &[u8; 32]) -> Result<(), RecordFault> {
    if header[0..4] != MAGIC {
        return Err(RecordFault::Magic);
    }
    let len = u32::from_le_bytes(header[4..8].try_into().unwrap());
    if len as usize != payload.len() {
        return Err(RecordFault::Length { header: len, index: payload.len() as u32 });
    }
    if header[8..40] != hash[..] {
        return Err(RecordFault::Hash);
    }
    if header[40..72] != sha256::Hash::hash(payload).as_byte_array()[..] {
        return Err(RecordFault::Checksum);
    }
    Ok(())
}

/// Where a block lives: the index table's value, 20 bytes fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// `NNNNN` in `blkNNNNN.dat`.
    pub file: u32,
    /// Offset of the record header in that file.
    pub offset: u64,
    /// Payload length (the serialized block), header excluded.
    pub len: u32,
    /// The block's height when the caller knew it.
    pub height: Option<u32>,
}

const NO_HEIGHT: u32 = u32::MAX;

impl Location {
    pub(crate) fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..4].copy_from_slice(&self.file.to_le_bytes());
        b[4..12].copy_from_slice(&self.offset.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..20].copy_from_slice(&self.height.unwrap_or(NO_HEIGHT).to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; 20]) -> Location {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let height = u32_at(16);
        Location {
            file: u32_at(0),
            offset: u64::from_le_bytes(b[4..12].try_into().unwrap()),
            len: u32_at(12),
            height: (height != NO_HEIGHT).then_some(height),
        }
    }

    /// The offset just past this record.
    pub fn end(&self) -> u64 {
        self.offset + HEADER_LEN as u64 + u64::from(self.len)
    }
}
