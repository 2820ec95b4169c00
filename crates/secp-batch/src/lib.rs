//! BIP340 batch verification: many Schnorr signatures checked with one
//! multi-scalar multiplication instead of one double multiplication each.
//!
//! The equation and its randomizers live in `csrc/schnorr_batch.c`, on top of
//! libsecp256k1's own field/group arithmetic and Pippenger/Strauss code (see
//! that file for the argument); `build.rs` compiles it against the sources of
//! the pinned `secp256k1-sys`. This crate is that C file and its one safe
//! entry point, nothing else, so that only the validation side compiles it.

use std::os::raw::c_int;

use secp256k1::ffi::CPtr;
use secp256k1::{XOnlyPublicKey, schnorr};

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

/// `true` when every (signature, key, message) verifies, decided by one batch
/// equation; `false` when at least one does not (or memory ran out). Messages
/// may have any length, as BIP340 allows.
pub fn batch_valid<'a>(
    items: impl ExactSizeIterator<Item = (&'a schnorr::Signature, &'a XOnlyPublicKey, &'a [u8])>,
) -> bool {
    let raw: Vec<Item> = items
        .map(|(sig, pk, msg)| Item {
            sig64: sig.as_ref().as_ptr(),
            msg: msg.as_ptr(),
            msglen: msg.len(),
            xonly64: pk.as_c_ptr().cast::<u8>(),
        })
        .collect();
    // SAFETY: every pointer in `raw` borrows from the items, which outlive the
    // call ('a): `sig64` points at a 64-byte signature, `msg` at `msglen`
    // readable bytes, `xonly64` at the 64-byte internal form of a parsed
    // x-only key (`secp256k1_xonly_pubkey`, a `#[repr(C)] [u8; 64]`). The C
    // function only reads them, keeps none of them, and allocates its own
    // memory.
    unsafe { kiln_schnorr_batch_verify(raw.as_ptr(), raw.len()) == 1 }
}
