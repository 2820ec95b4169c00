//! Block-level checks: proof of work, merkle root, witness commitment, BIP34.

use bitcoin::hashes::Hash;
use bitcoin::{Block, Txid, Wtxid};
use rayon::prelude::*;
use serde::Serialize;

use kiln_work::merkle::merkle_root;
use kiln_work::{BlockHash, CompactTarget};

use crate::rules::Network;

/// The witness commitment (BIP141) of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WitnessCommitment {
    /// The coinbase commits to the witness merkle root, and it matches.
    Valid,
    /// No transaction has witness data and no commitment is present.
    NotRequired,
    /// Witness data present but the coinbase has no commitment.
    Missing,
    /// A commitment is present and does not match (or its nonce is malformed).
    Mismatch,
}

/// BIP34: the coinbase starts with the block height (version 2 and later).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Bip34 {
    /// The height the coinbase states.
    Height(u64),
    /// Version 1 blocks carry no height.
    NotApplicable,
    /// A version 2+ coinbase that does not begin with a height push.
    Malformed(String),
}

/// The header and commitment checks of one block.
#[derive(Clone, Debug, Serialize)]
pub struct BlockChecks {
    pub hash: String,
    pub bits: String,
    /// `None` when nBits itself is invalid (the reason is in `pow_error`).
    pub pow_ok: bool,
    pub pow_error: Option<String>,
    pub merkle_ok: bool,
    pub witness_commitment: WitnessCommitment,
    pub bip34: Bip34,
}

impl BlockChecks {
    pub fn is_valid(&self) -> bool {
        self.pow_ok
            && self.merkle_ok
            && matches!(self.witness_commitment, WitnessCommitment::Valid | WitnessCommitment::NotRequired)
            && !matches!(self.bip34, Bip34::Malformed(_))
    }

    /// The height from BIP34, when the block states one.
    pub fn height(&self) -> Option<u64> {
        match self.bip34 {
            Bip34::Height(h) => Some(h),
            _ => None,
        }
    }
}

/// BIP141: the last coinbase output starting `6a24aa21a9ed` holds
/// sha256d(witness merkle root ‖ reserved value), where the coinbase's wtxid
/// counts as zero and the reserved value is the coinbase's single 32-byte
/// witness item.
fn witness_commitment(block: &Block, wtxids: &[[u8; 32]], has_witness: bool) -> WitnessCommitment {
    const MAGIC: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    let Some(cb) = block.txdata.first() else { return WitnessCommitment::Missing };
    let Some(out) =
        cb.output.iter().rev().find(|o| o.script_pubkey.len() >= 38 && o.script_pubkey.as_bytes()[..6] == MAGIC)
    else {
        return if has_witness { WitnessCommitment::Missing } else { WitnessCommitment::NotRequired };
    };
    let reserved = match cb.input.first().map(|i| &i.witness) {
        Some(w) if w.len() == 1 && w.nth(0).is_some_and(|r| r.len() == 32) => w.nth(0).expect("checked"),
        _ => return WitnessCommitment::Mismatch,
    };
    let mut leaves = wtxids.to_vec();
    leaves[0] = [0; 32];
    let root = merkle_root(&leaves).expect("at least the coinbase");
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&root);
    buf[32..].copy_from_slice(reserved);
    if kiln_hash::sha256d(&buf)[..] == out.script_pubkey.as_bytes()[6..38] {
        WitnessCommitment::Valid
    } else {
        WitnessCommitment::Mismatch
    }
}

/// Every transaction's txid and wtxid, hashed once per block and shared by
/// the block checks and the consensus rules.
pub struct TxHashes {
    pub txids: Vec<Txid>,
    /// As Core computes them: a transaction without witness data has its
    /// txid here (no second hash).
    pub wtxids: Vec<Wtxid>,
}

impl TxHashes {
    /// Hashing every transaction is the bulk of the block-level work: do it
    /// in parallel.
    pub fn of(block: &Block) -> Self {
        let (txids, wtxids) = block
            .txdata
            .par_iter()
            .map(|tx| {
                let txid = tx.compute_txid();
                let wtxid = if tx.input.iter().all(|i| i.witness.is_empty()) {
                    Wtxid::from_byte_array(txid.to_byte_array())
                } else {
                    tx.compute_wtxid()
                };
                (txid, wtxid)
            })
            .unzip();
        TxHashes { txids, wtxids }
    }
}

/// The height a version 2+ block's coinbase states (BIP34), read as Core
/// requires it to be written; `None` for version 1 or no such push.
pub fn coinbase_height(block: &Block) -> Option<u32> {
    if block.header.version.to_consensus() < 2 {
        return None;
    }
    let input = block.txdata.first()?.input.first()?;
    crate::rules::bip34_height(input.script_sig.as_bytes())
}

/// The largest target a network allows (its `powLimit`).
pub fn pow_limit(network: Network) -> CompactTarget {
    CompactTarget(match network {
        Network::Mainnet | Network::Testnet3 | Network::Testnet4 => 0x1d00_ffff,
        Network::Signet => 0x1e03_77ae,
        Network::Regtest => 0x207f_ffff,
    })
}

/// Runs the block-level checks of a mainnet block.
pub fn check_block(block: &Block) -> BlockChecks {
    check_block_with(block, Network::Mainnet, &TxHashes::of(block))
}

/// Runs the block-level checks. The merkle root is recomputed with kiln's own
/// merkle code (`kiln_work::merkle`), independently of rust-bitcoin's and of
/// [`crate::rules`]'s.
pub fn check_block_with(block: &Block, network: Network, hashes: &TxHashes) -> BlockChecks {
    let header_bytes = bitcoin::consensus::serialize(&block.header);
    let hash = BlockHash(kiln_hash::sha256d(&header_bytes));
    let bits = CompactTarget(block.header.bits.to_consensus());
    let limit = pow_limit(network).to_target().expect("valid constant");
    let (pow_ok, pow_error) = match bits.to_target() {
        Ok(t) => (t.is_met_by(&hash) && t <= limit, None),
        Err(e) => (false, Some(e.to_string())),
    };
    let txids: Vec<[u8; 32]> = hashes.txids.iter().map(|t| t.to_byte_array()).collect();
    let wtxids: Vec<[u8; 32]> = hashes.wtxids.iter().map(|t| t.to_byte_array()).collect();
    let merkle_ok = merkle_root(&txids).is_some_and(|r| r == block.header.merkle_root.to_byte_array());

    let has_witness = block.txdata.iter().any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()));
    let witness_commitment = witness_commitment(block, &wtxids, has_witness);
    let bip34 = if block.header.version.to_consensus() < 2 {
        Bip34::NotApplicable
    } else {
        let script_sig = block.txdata.first().and_then(|tx| tx.input.first()).map(|i| i.script_sig.as_bytes());
        match script_sig.and_then(crate::rules::bip34_height) {
            Some(h) => Bip34::Height(u64::from(h)),
            None => Bip34::Malformed("the coinbase does not begin with its height as BIP34 pushes it".into()),
        }
    };
    BlockChecks {
        hash: hash.to_string(),
        bits: bits.to_string(),
        pow_ok,
        pow_error,
        merkle_ok,
        witness_commitment,
        bip34,
    }
}
