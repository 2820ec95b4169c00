//! BIP340 batch verification: many Schnorr signatures checked with one
//! multi-scalar multiplication instead of one double multiplication each.
//!
//! The equation itself is `kiln-secp-batch` (C on libsecp256k1's internals).
//! This module decides when batching pays, and when a batch fails it finds exactly which signatures are bad by
//! verifying one by one, so a failed batch never hides or invents a failure.

use bitcoin::secp256k1::ffi::CPtr;
use bitcoin::secp256k1::{XOnlyPublicKey, schnorr};

use crate::extract::SigCheck;
use crate::secp;

/// Below this many signatures a batch saves nothing: break-even is near 10 on
/// a Zen 4 core (`cargo bench --bench schnorr`, BENCHMARKS.md), as the
/// multi-multiplication's fixed cost and the lift of each R dominate small
/// batches.
pub const MIN_BATCH: usize = 16;

/// One Schnorr signature to check: the parsed key (so it is never parsed
/// twice) and the message, of any length as BIP340 allows.
#[derive(Clone, Copy, Debug)]
pub struct SchnorrItem<'a> {
    pub sig: &'a schnorr::Signature,
    pub pk: &'a XOnlyPublicKey,
    pub msg: &'a [u8],
}

impl<'a> SchnorrItem<'a> {
    /// The item a Schnorr check verifies; `None` for any other check.
    pub fn of(check: &'a SigCheck) -> Option<Self> {
        match check {
            SigCheck::Schnorr { sig, pk, msg } => Some(SchnorrItem { sig, pk, msg: msg.as_ref() }),
            _ => None,
        }
    }
}

/// `true` when every signature verifies, decided by one batch equation;
/// `false` when at least one does not (or memory ran out).
pub fn batch_valid(items: &[SchnorrItem<'_>]) -> bool {
    kiln_secp_batch::batch_valid(items.iter().map(|it| (it.sig, it.pk, it.msg)))
}

/// [`batch_valid`] once the batch code has passed its known-answer test;
/// `None` when it failed (then everything is verified one by one).
fn batch_valid_checked(items: &[SchnorrItem<'_>]) -> Option<bool> {
    kiln_secp_batch::batch_valid_checked(items.iter().map(|it| (it.sig, it.pk, it.msg)))
}

/// One-by-one BIP340 verification with libsecp256k1, any message length.
pub fn verify_one(item: &SchnorrItem<'_>) -> bool {
    use bitcoin::secp256k1::ffi;
    // SAFETY: the context is a valid verification context for the program's
    // lifetime; `sig` is 64 bytes, `msg` is valid for `msg.len()` bytes, and
    // `pk` is a parsed x-only key; libsecp256k1 only reads them.
    unsafe {
        ffi::secp256k1_schnorrsig_verify(
            secp().ctx().as_ptr(),
            item.sig.as_c_ptr(),
            item.msg.as_ptr(),
            item.msg.len(),
            item.pk.as_c_ptr(),
        ) == 1
    }
}

/// Verifies every item and returns the indices of the invalid ones (empty
/// when all are valid). Batches of at least [`MIN_BATCH`] go through the
/// batch equation; a failed batch is resolved one by one, so the answer is
/// always exactly the set one-by-one verification would give.
pub fn verify_all(items: &[SchnorrItem<'_>]) -> Vec<usize> {
    if items.len() >= MIN_BATCH && batch_valid_checked(items) == Some(true) {
        return Vec::new();
    }
    (0..items.len()).filter(|&i| !verify_one(&items[i])).collect()
}
