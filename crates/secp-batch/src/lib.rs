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

/// BIP340's published test vectors 0–3 (public key, message, signature),
/// all valid: the known answers for [`self_test`].
const KNOWN: [(&str, &str, &str); 4] = [
    (
        "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0",
    ),
    (
        "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
        "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
        "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A",
    ),
    (
        "DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8",
        "7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C",
        "5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1BAB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7",
    ),
    (
        "25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517",
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        "7EB0509757E246F19449885651611CB965ECC1A187DD51B64FDA1EDC9637D5EC97582B9CB13DB3933705B32BA982AF5AF25FD78881EBB32771FC5922EFC66EA3",
    ),
];

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

/// Checks the C code against known answers: BIP340 vectors 0–3 batch as
/// valid, and each of them with one signature bit flipped batches as
/// invalid. Run once before the first batch ([`batch_valid_checked`]): a
/// libsecp256k1 whose internals no longer match what the C file was written
/// against shows up here, and batching is then switched off, not trusted.
pub fn self_test() -> bool {
    let parsed: Option<Vec<(schnorr::Signature, XOnlyPublicKey, [u8; 32])>> = KNOWN
        .iter()
        .map(|(pk, msg, sig)| {
            let pk = XOnlyPublicKey::from_slice(&unhex::<32>(pk)).ok()?;
            let sig = schnorr::Signature::from_slice(&unhex::<64>(sig)).ok()?;
            Some((sig, pk, unhex::<32>(msg)))
        })
        .collect();
    let Some(items) = parsed else { return false };
    let all_valid = batch_valid(items.iter().map(|(s, p, m)| (s, p, &m[..])));
    let each_forgery_caught = (0..items.len()).all(|bad| {
        let mut forged = items.clone();
        let mut bytes = *forged[bad].0.as_ref();
        bytes[40] ^= 1;
        match schnorr::Signature::from_slice(&bytes) {
            Ok(sig) => {
                forged[bad].0 = sig;
                !batch_valid(forged.iter().map(|(s, p, m)| (s, p, &m[..])))
            }
            Err(_) => false,
        }
    });
    all_valid && each_forgery_caught
}

/// [`batch_valid`] behind a once-per-process [`self_test`]: `None` when the
/// self-test failed, so the caller verifies one by one instead.
pub fn batch_valid_checked<'a>(
    items: impl ExactSizeIterator<Item = (&'a schnorr::Signature, &'a XOnlyPublicKey, &'a [u8])>,
) -> Option<bool> {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    OK.get_or_init(self_test).then(|| batch_valid(items))
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_known_answers_hold() {
        assert!(super::self_test());
    }
}
