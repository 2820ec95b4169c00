//! Signature-operation counting, byte-for-byte as Bitcoin Core does it.
//!
//! rust-bitcoin has `Script::count_sigops()` / `count_sigops_legacy()`, but
//! its "accurate" mode is not Core's: it remembers the last `OP_1..OP_16` seen
//! across intervening `OP_CHECKSIG` / `OP_CHECKMULTISIG` opcodes, while Core's
//! `GetSigOpCount(true)` only looks at the opcode immediately before the
//! CHECKMULTISIG. `OP_2 OP_CHECKSIG OP_CHECKMULTISIG` is 1 + 20 in Core and
//! 1 + 2 in rust-bitcoin. Sigop cost is a consensus limit, so this module
//! re-implements the counting with a small opcode reader of its own.

use bitcoin::{TxOut, Witness};

use super::params::flags;

const OP_0: u8 = 0x00;
const OP_PUSHDATA1: u8 = 0x4c;
const OP_PUSHDATA2: u8 = 0x4d;
const OP_PUSHDATA4: u8 = 0x4e;
const OP_1: u8 = 0x51;
const OP_16: u8 = 0x60;
const OP_CHECKSIG: u8 = 0xac;
const OP_CHECKSIGVERIFY: u8 = 0xad;
const OP_CHECKMULTISIG: u8 = 0xae;
const OP_CHECKMULTISIGVERIFY: u8 = 0xaf;
const OP_HASH160: u8 = 0xa9;
const OP_EQUAL: u8 = 0x87;

/// Core's `MAX_PUBKEYS_PER_MULTISIG`: what an unsized CHECKMULTISIG counts.
const MAX_PUBKEYS_PER_MULTISIG: u64 = 20;

/// Core's `WITNESS_SCALE_FACTOR`: legacy and P2SH sigops cost 4 each.
pub const WITNESS_SCALE_FACTOR: u64 = 4;

/// Reads one operation at `*pos` like Core's `GetScriptOp`: returns the
/// opcode and its pushed bytes (empty for non-push opcodes), or `None` when a
/// push runs past the end of the script. `*pos` must be `< script.len()`.
fn read_op<'a>(script: &'a [u8], pos: &mut usize) -> Option<(u8, &'a [u8])> {
    let opcode = *script.get(*pos)?;
    *pos += 1;
    let len = match opcode {
        OP_0 => return Some((opcode, &[])),
        1..=0x4b => usize::from(opcode),
        OP_PUSHDATA1 => {
            let b = *script.get(*pos)?;
            *pos += 1;
            usize::from(b)
        }
        OP_PUSHDATA2 => {
            let b = script.get(*pos..)?.get(..2)?;
            *pos += 2;
            usize::from(u16::from_le_bytes([b[0], b[1]]))
        }
        OP_PUSHDATA4 => {
            let b = script.get(*pos..)?.get(..4)?;
            *pos += 4;
            usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()?
        }
        _ => return Some((opcode, &[])),
    };
    let data = script.get(*pos..)?.get(..len)?;
    *pos += len;
    Some((opcode, data))
}

/// Core's `CScript::GetSigOpCount(fAccurate)`.
///
/// CHECKSIG(VERIFY) counts 1. CHECKMULTISIG(VERIFY) counts 20, or — in
/// accurate mode, used for redeem and witness scripts whose key count is
/// knowable — N when the opcode right before it is `OP_N` (1..16). Counting
/// stops silently at the first malformed push, keeping what was counted.
pub fn sigop_count(script: &[u8], accurate: bool) -> u64 {
    let mut n = 0u64;
    let mut last = 0xff_u8; // OP_INVALIDOPCODE
    let mut pos = 0;
    while pos < script.len() {
        let Some((opcode, _)) = read_op(script, &mut pos) else { break };
        match opcode {
            OP_CHECKSIG | OP_CHECKSIGVERIFY => n += 1,
            OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
                n += if accurate && (OP_1..=OP_16).contains(&last) {
                    u64::from(last - (OP_1 - 1))
                } else {
                    MAX_PUBKEYS_PER_MULTISIG
                };
            }
            _ => {}
        }
        last = opcode;
    }
    n
}

/// If `script_sig` is push-only (every opcode `<= OP_16`, no malformed push),
/// the data of its last push — the P2SH redeem script. Empty when the script
/// is empty or ends in a numeric opcode. `None` when not push-only.
fn last_push_if_push_only(script_sig: &[u8]) -> Option<&[u8]> {
    let mut pos = 0;
    let mut last: &[u8] = &[];
    while pos < script_sig.len() {
        let (opcode, data) = read_op(script_sig, &mut pos)?;
        if opcode > OP_16 {
            return None;
        }
        last = data;
    }
    Some(last)
}

/// Core's `CScript::IsPayToScriptHash`: exactly `HASH160 <20 bytes> EQUAL`.
pub fn is_p2sh(spk: &[u8]) -> bool {
    spk.len() == 23 && spk[0] == OP_HASH160 && spk[1] == 0x14 && spk[22] == OP_EQUAL
}

/// Core's `CScript::IsWitnessProgram`: a version opcode (`OP_0`, `OP_1..16`)
/// followed by one direct push of 2..=40 bytes filling the rest.
fn witness_program(spk: &[u8]) -> Option<(u8, &[u8])> {
    if spk.len() < 4 || spk.len() > 42 {
        return None;
    }
    let version = match spk[0] {
        OP_0 => 0,
        v @ OP_1..=OP_16 => v - (OP_1 - 1),
        _ => return None,
    };
    if usize::from(spk[1]) + 2 != spk.len() {
        return None;
    }
    Some((version, &spk[2..]))
}

/// Core's `WitnessSigOps`: P2WPKH costs 1, P2WSH the accurate count of the
/// witness script (last stack item); other versions (taproot) cost nothing —
/// tapscript has its own per-input budget instead of the block limit.
fn witness_sigops(version: u8, program: &[u8], witness: &Witness) -> u64 {
    if version != 0 {
        return 0;
    }
    match program.len() {
        20 => 1,
        32 => witness.last().map_or(0, |ws| sigop_count(ws, true)),
        _ => 0,
    }
}

/// Legacy (inaccurate) sigops of a transaction — Core's
/// `GetLegacySigOpCount`: every scriptSig and every output script.
pub fn legacy_sigops(tx: &bitcoin::Transaction) -> u64 {
    let ins: u64 = tx.input.iter().map(|i| sigop_count(i.script_sig.as_bytes(), false)).sum();
    let outs: u64 = tx.output.iter().map(|o| sigop_count(o.script_pubkey.as_bytes(), false)).sum();
    ins + outs
}

/// Sigop cost one non-coinbase input adds on top of the legacy count — the
/// per-input terms of Core's `GetTransactionSigOpCost`:
///
/// * P2SH (flag `P2SH`): when the spent script is P2SH, 4 × the accurate
///   count of the redeem script, which is the last push of a push-only
///   scriptSig (Core's `GetSigOpCount(scriptSig)` returns 0 otherwise).
/// * Witness (flag `WITNESS`): `WitnessSigOps` for a native witness program,
///   or for a P2SH-wrapped one whose redeem script is a witness program;
///   counted at weight 1.
pub fn input_sigop_cost(script_sig: &[u8], witness: &Witness, prevout: &TxOut, flags: u32) -> u64 {
    let spk = prevout.script_pubkey.as_bytes();
    let mut cost = 0;
    let p2sh = is_p2sh(spk);
    let redeem = if p2sh { last_push_if_push_only(script_sig) } else { None };
    if flags & flags::P2SH != 0
        && let Some(redeem) = redeem
    {
        cost += sigop_count(redeem, true) * WITNESS_SCALE_FACTOR;
    }
    if flags & flags::WITNESS != 0 {
        if let Some((v, prog)) = witness_program(spk) {
            cost += witness_sigops(v, prog, witness);
        } else if let Some((v, prog)) = redeem.and_then(witness_program) {
            cost += witness_sigops(v, prog, witness);
        }
    }
    cost
}

/// The push Core's `CScript() << height` produces, which BIP34 requires at the
/// start of the coinbase scriptSig: `OP_0` for 0, `OP_1..OP_16` for 1..=16,
/// otherwise a minimal little-endian `CScriptNum` with a one-byte length.
/// Returns the bytes in a fixed buffer and the used length.
/// The height a coinbase scriptSig states the way BIP34 requires it (the
/// exact bytes of [`bip34_prefix`]), or `None` when it does not begin with
/// such a push. rust-bitcoin's `Block::bip34_block_height` reads only data
/// pushes, so it misses the `OP_1..OP_16` of heights 1 to 16 (every young
/// regtest chain).
pub fn bip34_height(script_sig: &[u8]) -> Option<u32> {
    let first = *script_sig.first()?;
    let candidate = match first {
        0 => 0,
        op if (OP_1..OP_1 + 16).contains(&op) => u32::from(op - OP_1 + 1),
        len @ 1..=5 => {
            let bytes = script_sig.get(1..1 + len as usize)?;
            if bytes.last().is_some_and(|b| b & 0x80 != 0) && len < 5 {
                return None; // negative
            }
            let mut v = 0u64;
            for (i, b) in bytes.iter().enumerate() {
                v |= u64::from(*b) << (8 * i);
            }
            u32::try_from(v).ok()?
        }
        _ => return None,
    };
    let (prefix, n) = bip34_prefix(candidate);
    script_sig.starts_with(&prefix[..n]).then_some(candidate)
}

pub fn bip34_prefix(height: u32) -> ([u8; 6], usize) {
    let mut out = [0u8; 6];
    match height {
        0 => (out, 1),
        1..=16 => {
            out[0] = OP_1 - 1 + height as u8;
            (out, 1)
        }
        _ => {
            let mut n = height;
            let mut len = 0;
            while n > 0 {
                out[1 + len] = (n & 0xff) as u8;
                n >>= 8;
                len += 1;
            }
            // A set top bit would read as negative: append a zero byte.
            if out[len] & 0x80 != 0 {
                out[1 + len] = 0;
                len += 1;
            }
            out[0] = len as u8;
            (out, len + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accurate_multisig_uses_only_the_immediately_preceding_opcode() {
        // OP_2 <checksig> <checkmultisig>: Core counts 1 + 20.
        assert_eq!(sigop_count(&[0x52, 0xac, 0xae], true), 21);
        // OP_3 CHECKMULTISIG: 3 accurate, 20 legacy.
        assert_eq!(sigop_count(&[0x53, 0xae], true), 3);
        assert_eq!(sigop_count(&[0x53, 0xae], false), 20);
        // OP_0 before CHECKMULTISIG is not OP_1..16.
        assert_eq!(sigop_count(&[0x00, 0xae], true), 20);
        // A truncated push stops counting but keeps what was counted.
        assert_eq!(sigop_count(&[0xac, 0x4c], false), 1);
        assert_eq!(sigop_count(&[0xac, 0x05, 0x01], false), 1);
        // Push data is not interpreted as opcodes.
        assert_eq!(sigop_count(&[0x02, 0xac, 0xac, 0xac], false), 1);
    }

    #[test]
    fn rust_bitcoin_accurate_count_differs_from_core() {
        // Why this module exists: rust-bitcoin keeps the OP_N across the
        // CHECKSIG; Core does not.
        let s = bitcoin::ScriptBuf::from_bytes(vec![0x52, 0xac, 0xae]);
        assert_eq!(s.count_sigops(), 3);
        assert_eq!(sigop_count(s.as_bytes(), true), 21);
        // Legacy counting agrees.
        assert_eq!(s.count_sigops_legacy() as u64, sigop_count(s.as_bytes(), false));
    }

    #[test]
    fn p2sh_redeem_script_extraction() {
        assert_eq!(last_push_if_push_only(&[]), Some(&[][..]));
        assert_eq!(last_push_if_push_only(&[0x01, 0xaa, 0x51]), Some(&[][..]));
        assert_eq!(last_push_if_push_only(&[0x51, 0x02, 0x53, 0xae]), Some(&[0x53, 0xae][..]));
        assert_eq!(last_push_if_push_only(&[0x76]), None);
        assert_eq!(last_push_if_push_only(&[0x4d, 0x01]), None);
    }

    #[test]
    fn bip34_push_encoding() {
        let enc = |h| {
            let (b, n) = bip34_prefix(h);
            b[..n].to_vec()
        };
        assert_eq!(enc(0), vec![0x00]);
        assert_eq!(enc(1), vec![0x51]);
        assert_eq!(enc(16), vec![0x60]);
        assert_eq!(enc(17), vec![0x01, 0x11]);
        assert_eq!(enc(128), vec![0x02, 0x80, 0x00]);
        assert_eq!(enc(227_931), vec![0x03, 0x5b, 0x7a, 0x03]);
        assert_eq!(enc(866_342), vec![0x03, 0x26, 0x38, 0x0d]);
        assert_eq!(enc(u32::MAX), vec![0x05, 0xff, 0xff, 0xff, 0xff, 0x00]);
    }
}

#[cfg(test)]
mod bip34_tests {
    use super::*;

    #[test]
    fn heights_round_trip_through_the_prefix() {
        for h in [0, 1, 16, 17, 127, 128, 255, 256, 32_767, 32_768, 866_342, 8_388_607, 8_388_608, u32::MAX] {
            let (p, n) = bip34_prefix(h);
            let mut script = p[..n].to_vec();
            script.extend_from_slice(b"\x0cextranonce..");
            assert_eq!(bip34_height(&script), Some(h), "height {h}");
        }
        // Non-minimal or negative encodings are not BIP34 heights.
        assert_eq!(bip34_height(&[0x01, 0x01]), None, "1 must be OP_1");
        assert_eq!(bip34_height(&[0x02, 0x05, 0x00]), None, "5 with a needless zero byte");
        assert_eq!(bip34_height(&[0x01, 0x80]), None);
        assert_eq!(bip34_height(&[]), None);
        assert_eq!(bip34_height(&[0x03, 0x26, 0x38]), None, "truncated");
    }
}
