//! Bitcoin Core's script interpreter (libbitcoinconsensus, via the
//! `bitcoinconsensus` crate): the fallback for inputs outside kiln's
//! templates, and the independent oracle in tests.

use bitcoin::TxOut;

/// Every consensus rule the library knows (taproot included).
pub const ALL_FLAGS: u32 = bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT;

/// Runs the interpreter on input `index` of the serialized transaction.
///
/// # Errors
/// The interpreter's error, as text.
pub fn verify_input(tx_bytes: &[u8], spent: &[TxOut], index: usize, flags: u32) -> Result<(), String> {
    let utxos: Vec<bitcoinconsensus::Utxo> = spent
        .iter()
        .map(|o| bitcoinconsensus::Utxo {
            script_pubkey: o.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: o.script_pubkey.len() as u32,
            value: o.value.to_sat() as i64,
        })
        .collect();
    let out = &spent[index];
    let with_spent = (flags & bitcoinconsensus::VERIFY_TAPROOT != 0).then_some(&utxos[..]);
    bitcoinconsensus::verify_with_flags(
        out.script_pubkey.as_bytes(),
        out.value.to_sat(),
        tx_bytes,
        with_spent,
        index,
        flags,
    )
    .map_err(|e| format!("script interpreter: {e:?}"))
}
