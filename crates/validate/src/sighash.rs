//! Sighash helpers where consensus and rust-bitcoin's API differ in shape.

use std::borrow::Borrow;

use bitcoin::hashes::Hash;
use bitcoin::script::Instruction;
use bitcoin::sighash::SighashCache;
use bitcoin::{Script, ScriptBuf, Transaction};

/// Legacy (pre-segwit) signature hash as Bitcoin Core's `SignatureHash`
/// computes it: OP_CODESEPARATORs are dropped from the script code, any
/// 32-bit hash type is accepted, and SIGHASH_SINGLE without a matching output
/// gives the hash "one" (a historic quirk consensus keeps).
///
/// # Errors
/// When `input_index` is out of range.
pub fn legacy(tx: &Transaction, input_index: usize, script_code: &Script, hash_type: u32) -> Result<[u8; 32], String> {
    legacy_with(&SighashCache::new(tx), input_index, script_code, hash_type)
}

/// [`legacy`] with the transaction's sighash cache already made.
///
/// # Errors
/// When `input_index` is out of range.
pub fn legacy_with<T: Borrow<Transaction>>(
    cache: &SighashCache<T>,
    input_index: usize,
    script_code: &Script,
    hash_type: u32,
) -> Result<[u8; 32], String> {
    let cleaned;
    let code = if script_code
        .instructions()
        .any(|i| matches!(i, Ok(Instruction::Op(op)) if op == bitcoin::opcodes::all::OP_CODESEPARATOR))
    {
        cleaned = strip_codeseparators(script_code);
        cleaned.as_script()
    } else {
        script_code
    };
    cache.legacy_signature_hash(input_index, code, hash_type).map(|h| h.to_byte_array()).map_err(|e| e.to_string())
}

/// The script with every OP_CODESEPARATOR opcode removed (push data untouched).
fn strip_codeseparators(script: &Script) -> ScriptBuf {
    let b = script.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut pos = 0;
    for item in script.instruction_indices() {
        let Ok((at, ins)) = item else { break };
        // Copy everything up to this instruction, then skip it if it is a codeseparator.
        out.extend_from_slice(&b[pos..at]);
        pos = at;
        if matches!(ins, Instruction::Op(op) if op == bitcoin::opcodes::all::OP_CODESEPARATOR) {
            pos = at + 1;
        }
    }
    out.extend_from_slice(&b[pos..]);
    ScriptBuf::from_bytes(out)
}
