//! The validation side: decode a block and the outputs it spends, check the
//! header and block commitments, turn every input into a signature check, and
//! verify the checks in parallel batches.
//!
//! ```text
//! bytes ─▶ input::read_block / read_prevouts ─▶ block::check_block (PoW, merkle,
//!   witness commitment, BIP34) ─▶ extract (templates → SigCheck, sighash)
//!   ─▶ verify (rayon batches; script interpreter for the rest) ─▶ Report
//! ```
//!
//! Consensus subtleties are handled where they arise: lax DER before BIP66,
//! high-S signatures normalized (consensus never required low S), legacy
//! SIGHASH_SINGLE's "one" hash, m-of-n matching in key order. Anything outside
//! the templates kiln understands goes through Bitcoin Core's own script
//! interpreter (`bitcoinconsensus`) and is reported as such.

pub mod batch;
pub mod bench;
pub mod block;
pub mod extract;
pub mod input;
pub mod oracle;
pub mod rules;
pub mod sighash;
pub mod verify;

/// The shared verification context (its tables are built once).
pub fn secp() -> &'static bitcoin::secp256k1::Secp256k1<bitcoin::secp256k1::VerifyOnly> {
    static CTX: std::sync::OnceLock<bitcoin::secp256k1::Secp256k1<bitcoin::secp256k1::VerifyOnly>> =
        std::sync::OnceLock::new();
    CTX.get_or_init(bitcoin::secp256k1::Secp256k1::verification_only)
}

pub use block::{Bip34, BlockChecks, WitnessCommitment, check_block};
pub use extract::{InputCheck, ScriptType, SigCheck, extract_block};
pub use input::{
    HeaderTimes, InputError, Prevouts, decode_block, read_block, read_file, read_prevouts, read_spent,
    read_spent_bytes, read_spent_for,
};
pub use verify::{BadInput, Options, Report, validate, validate_block};
