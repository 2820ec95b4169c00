//! The 80-byte block header and the block hash.

use std::fmt;

use super::target::CompactTarget;

/// A block (or transaction) hash in internal byte order: the order SHA-256
/// produces and the chain serializes. Displays reversed, as block explorers
/// and Bitcoin Core print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// The hash as a 256-bit little-endian number's limbs (least significant first).
    pub fn to_le_limbs(&self) -> [u64; 4] {
        core::array::from_fn(|i| u64::from_le_bytes(self.0[8 * i..8 * i + 8].try_into().unwrap()))
    }
}

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().rev() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({self})")
    }
}

/// Errors from decoding headers and hashes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("a block header is 80 bytes, got {len}")]
    WrongLength { len: usize },
    #[error("not a 64-digit hex hash")]
    BadHex,
}

/// A Bitcoin block header with its fields decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: i32,
    pub prev_blockhash: BlockHash,
    pub merkle_root: [u8; 32],
    pub time: u32,
    pub bits: CompactTarget,
    pub nonce: u32,
}

impl Header {
    /// Decodes the 80-byte consensus serialization.
    ///
    /// # Errors
    /// [`HeaderError::WrongLength`] unless `bytes` is exactly 80 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let b: &[u8; 80] = bytes.try_into().map_err(|_| HeaderError::WrongLength { len: bytes.len() })?;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        Ok(Header {
            version: u32_at(0) as i32,
            prev_blockhash: BlockHash(b[4..36].try_into().unwrap()),
            merkle_root: b[36..68].try_into().unwrap(),
            time: u32_at(68),
            bits: CompactTarget(u32_at(72)),
            nonce: u32_at(76),
        })
    }

    /// The 80-byte consensus serialization.
    pub fn serialize(&self) -> [u8; 80] {
        let mut b = [0u8; 80];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..36].copy_from_slice(&self.prev_blockhash.0);
        b[36..68].copy_from_slice(&self.merkle_root);
        b[68..72].copy_from_slice(&self.time.to_le_bytes());
        b[72..76].copy_from_slice(&self.bits.0.to_le_bytes());
        b[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// sha256d of the header, computed with kiln's own compression function.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash(kiln_hash::sha256d_header(&self.serialize()))
    }

    /// The same header with another nonce.
    pub fn with_nonce(mut self, nonce: u32) -> Self {
        self.nonce = nonce;
        self
    }
}
