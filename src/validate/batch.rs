//! BIP340 batch verification: many Schnorr signatures checked with one
//! multi-scalar multiplication instead of one double multiplication each.
//!
//! The equation and its randomizers live in `csrc/schnorr_batch.c`, on top of
//! libsecp256k1's own arithmetic and Pippenger/Strauss code (see that file
//! for the argument). This module is the safe side: it lays the items out for
//! C, and when a batch fails it finds exactly which signatures are bad by
//! verifying one by one, so a failed batch never hides or invents a failure.

use std::os::raw::c_int;

use bitcoin::secp256k1::ffi::CPtr;
use bitcoin::secp256k1::{XOnlyPublicKey, schnorr};

use super::extract::SigCheck;
use super::verify::secp;

#[repr(C)]
struct Item {
    sig64: *const u8,
    msg: *const u8,
    msglen: usize,
    xonly64: *const u8,
}

unsafe extern "C" {
    fn kiln_schnorr_batch_verify(items: *const Item, n: usize) -> c_int;
}

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
    let raw: Vec<Item> = items
        .iter()
        .map(|it| Item {
            sig64: it.sig.as_ref().as_ptr(),
            msg: it.msg.as_ptr(),
            msglen: it.msg.len(),
            xonly64: it.pk.as_c_ptr().cast::<u8>(),
        })
        .collect();
    // SAFETY: every pointer in `raw` borrows from `items`, which outlives the
    // call: `sig64` points at a 64-byte signature, `msg` at `msglen` readable
    // bytes, `xonly64` at the 64-byte internal form of a parsed x-only key
    // (`secp256k1_xonly_pubkey`, a `#[repr(C)] [u8; 64]`). The C function
    // only reads them, keeps none of them, and allocates its own memory.
    unsafe { kiln_schnorr_batch_verify(raw.as_ptr(), raw.len()) == 1 }
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
    if items.len() >= MIN_BATCH && batch_valid(items) {
        return Vec::new();
    }
    (0..items.len()).filter(|&i| !verify_one(&items[i])).collect()
}
