//! From inputs to signature checks: recognise the spent script's template,
//! pull out (signature, public key, message) and compute the sighash the way
//! consensus does. What kiln does not recognise becomes an interpreter check.

// `Extract` is the normal outcome of these helpers (returned once per input),
// so its size in an `Err` is not a cost worth boxing away.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};

use bitcoin::hashes::{Hash, hash160, sha256};
use bitcoin::script::Instruction;
use bitcoin::secp256k1::{Message, PublicKey, XOnlyPublicKey, ecdsa, schnorr};
use bitcoin::sighash::{Annex, EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::{ControlBlock, LeafVersion, TapLeafHash};
use bitcoin::{Block, Script, Transaction, TxOut};
use rayon::prelude::*;

use super::oracle;

/// What an input spends, as far as signature checking is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ScriptType {
    P2pk,
    P2pkh,
    P2shP2wpkh,
    P2wpkh,
    P2shMultisig,
    P2wshMultisig,
    P2shP2wshMultisig,
    P2trKeyPath,
    /// Script path with a `<32-byte key> OP_CHECKSIG` leaf, optionally
    /// followed by an inert `OP_0 OP_IF <data>… OP_ENDIF` envelope (the
    /// ordinals inscription shape, which never executes).
    P2trScriptPathSingleKey,
    /// The spent output's script is empty and the scriptSig is push-only:
    /// valid exactly when the last value pushed is true. No signature.
    EmptyScript,
    /// Anything else, checked by Bitcoin Core's script interpreter; the field
    /// names the spent output's kind.
    Interpreter(&'static str),
}

impl ScriptType {
    pub fn name(self) -> String {
        match self {
            ScriptType::P2pk => "p2pk".into(),
            ScriptType::P2pkh => "p2pkh".into(),
            ScriptType::P2shP2wpkh => "p2sh-p2wpkh".into(),
            ScriptType::P2wpkh => "p2wpkh".into(),
            ScriptType::P2shMultisig => "p2sh-multisig".into(),
            ScriptType::P2wshMultisig => "p2wsh-multisig".into(),
            ScriptType::P2shP2wshMultisig => "p2sh-p2wsh-multisig".into(),
            ScriptType::P2trKeyPath => "p2tr-keypath".into(),
            ScriptType::P2trScriptPathSingleKey => "p2tr-scriptpath-checksig".into(),
            ScriptType::EmptyScript => "empty-script-nosig".into(),
            ScriptType::Interpreter(kind) => format!("interpreter:{kind}"),
        }
    }
}

/// One input's verification job.
#[derive(Clone, Debug)]
pub enum SigCheck {
    Ecdsa {
        sig: ecdsa::Signature,
        pk: PublicKey,
        msg: Message,
    },
    Schnorr {
        sig: schnorr::Signature,
        pk: XOnlyPublicKey,
        msg: Message,
    },
    /// m-of-n: every signature must match a key, in key order (consensus rule).
    /// A key that does not parse matches nothing.
    Multisig {
        sigs: Vec<(ecdsa::Signature, Message)>,
        keys: Vec<Option<PublicKey>>,
    },
    /// Run Bitcoin Core's script interpreter on the whole input.
    Interpreter {
        flags: u32,
    },
    /// Decided during extraction: the input cannot be valid.
    Fail(String),
    /// Decided during extraction: valid, and there is no signature to check.
    NoSignature,
}

/// A check tied to the input it came from.
#[derive(Clone, Debug)]
pub struct InputCheck {
    pub tx_index: usize,
    pub input_index: usize,
    pub script_type: ScriptType,
    pub check: SigCheck,
}

/// The pushes of a push-only script; `None` if it has any other opcode
/// (including OP_1..OP_16, which kiln's templates never use).
fn pushes(script: &Script) -> Option<Vec<&[u8]>> {
    script
        .instructions()
        .map(|ins| match ins {
            Ok(Instruction::PushBytes(b)) => Some(b.as_bytes()),
            _ => None,
        })
        .collect()
}

/// True when legacy FindAndDelete would change the script code: it holds a
/// push equal to the signature. (Template script codes have exact shapes, so
/// they never hold an OP_CODESEPARATOR.)
fn find_and_delete_applies(script: &Script, sig: &[u8]) -> bool {
    script.instructions().any(|ins| matches!(ins, Ok(Instruction::PushBytes(b)) if b.as_bytes() == sig))
}

/// Whether `rest` (what follows `<key> OP_CHECKSIG` in a tapscript leaf) is
/// empty or exactly `OP_0 OP_IF` … `OP_ENDIF` holding only pushes of at most
/// 520 bytes and small-number opcodes: such a branch never executes, cannot
/// contain an OP_SUCCESS opcode, and leaves the CHECKSIG result on the stack.
fn inert_envelope(rest: &[u8]) -> bool {
    if rest.is_empty() {
        return true;
    }
    if rest.len() < 3 || rest[0] != 0x00 || rest[1] != 0x63 || rest[rest.len() - 1] != 0x68 {
        return false;
    }
    let body = Script::from_bytes(&rest[2..rest.len() - 1]);
    body.instructions().all(|ins| match ins {
        Ok(Instruction::PushBytes(b)) => b.len() <= 520,
        // OP_1NEGATE and OP_1..OP_16: push-like, not OP_SUCCESS.
        Ok(Instruction::Op(op)) => op.to_u8() == 0x4f || (0x51..=0x60).contains(&op.to_u8()),
        Err(_) => false,
    })
}

/// For an empty spent script: `Some(valid)` when the scriptSig is push-only
/// within the interpreter's limits (10,000 bytes, pushes of at most 520
/// bytes, at most 1,000 stack items), `None` to leave it to the interpreter.
fn empty_script_result(sig_script: &Script) -> Option<bool> {
    if sig_script.len() > 10_000 {
        return None;
    }
    let mut last: Option<Vec<u8>> = None;
    let mut items = 0;
    for ins in sig_script.instructions() {
        items += 1;
        last = Some(match ins.ok()? {
            Instruction::PushBytes(b) if b.len() <= 520 => b.as_bytes().to_vec(),
            Instruction::Op(op) if op.to_u8() == 0x4f => vec![0x81],
            Instruction::Op(op) if (0x51..=0x60).contains(&op.to_u8()) => vec![op.to_u8() - 0x50],
            _ => return None,
        });
    }
    if items > 1000 {
        return None;
    }
    // CastToBool: any non-zero byte, except a lone sign bit in the last byte.
    Some(last.is_some_and(|v| v.iter().enumerate().any(|(i, &b)| b != 0 && !(i == v.len() - 1 && b == 0x80))))
}

/// A parsed `OP_m <key>… OP_n OP_CHECKMULTISIG` script.
fn parse_multisig(script: &Script) -> Option<(usize, Vec<&[u8]>)> {
    let b = script.as_bytes();
    let small = |op: u8| (0x51..=0x60).contains(&op).then(|| (op - 0x50) as usize);
    if b.len() < 3 || *b.last()? != 0xae {
        return None;
    }
    let m = small(b[0])?;
    let n = small(b[b.len() - 2])?;
    let mut keys = Vec::new();
    let mut i = 1;
    while i < b.len() - 2 {
        let len = b[i] as usize;
        if !(len == 33 || len == 65) || i + 1 + len > b.len() - 2 {
            return None;
        }
        keys.push(&b[i + 1..i + 1 + len]);
        i += 1 + len;
    }
    (keys.len() == n && m <= n).then_some((m, keys))
}

/// Where extraction gives up on a template and hands the input over.
enum Extract {
    Check(ScriptType, SigCheck),
    Interpreter(&'static str),
}
use Extract::{Check, Interpreter};

fn fail(t: ScriptType, why: impl Into<String>) -> Extract {
    Check(t, SigCheck::Fail(why.into()))
}

/// Parses a DER signature with its hash-type byte. Before BIP66 consensus
/// parses laxly; after it strict DER is required. Where the two parsers
/// could disagree with consensus, `None` sends the input to the interpreter.
fn parse_ecdsa(sig: &[u8], strict: bool) -> Result<Option<(ecdsa::Signature, u32)>, String> {
    let (&ht, der) = sig.split_last().ok_or("empty signature")?;
    let parsed = if strict {
        match ecdsa::Signature::from_der(der) {
            Ok(s) => s,
            Err(_) if ecdsa::Signature::from_der_lax(der).is_ok() => return Ok(None),
            Err(_) => return Err("signature is not DER".into()),
        }
    } else {
        ecdsa::Signature::from_der_lax(der).map_err(|_| "signature does not parse".to_string())?
    };
    let mut s = parsed;
    // Consensus accepts high S; libsecp256k1 verifies only low S.
    s.normalize_s();
    Ok(Some((s, ht as u32)))
}

fn msg(hash: [u8; 32]) -> Message {
    Message::from_digest(hash)
}

/// Public keys parsed once per block. Parsing a compressed key costs a field
/// square root (about 3 µs); in real blocks most keys repeat (block 866342:
/// 3,038 of its 4,601 P2WPKH keys appear more than once), so each distinct
/// key is parsed once, in parallel, before extraction.
#[derive(Default)]
pub struct KeyCache {
    ecdsa: HashMap<Vec<u8>, PublicKey>,
    xonly: HashMap<[u8; 32], XOnlyPublicKey>,
}

impl KeyCache {
    /// Collects the keys the templates will need and parses each distinct one.
    pub fn for_block(block: &Block, per_tx: &[&[TxOut]]) -> Self {
        let mut ec: HashSet<&[u8]> = HashSet::new();
        let mut xo: HashSet<&[u8]> = HashSet::new();
        for (ti, tx) in block.txdata.iter().enumerate().skip(1) {
            for (i, input) in tx.input.iter().enumerate() {
                let spk = per_tx[ti][i].script_pubkey.as_bytes();
                if spk.len() == 34 && spk[0] == 0x51 && spk[1] == 0x20 {
                    xo.insert(&spk[2..]);
                }
                if input.witness.len() == 2
                    && let Some(k) = input.witness.nth(1).filter(|k| k.len() == 33)
                {
                    ec.insert(k);
                }
                if let Some(Ok(Instruction::PushBytes(k))) = input.script_sig.instructions().last()
                    && (k.len() == 33 || k.len() == 65)
                {
                    ec.insert(k.as_bytes());
                }
            }
        }
        let ec: Vec<&[u8]> = ec.into_iter().collect();
        let xo: Vec<&[u8]> = xo.into_iter().collect();
        KeyCache {
            ecdsa: ec.par_iter().filter_map(|k| PublicKey::from_slice(k).ok().map(|p| (k.to_vec(), p))).collect(),
            xonly: xo
                .par_iter()
                .filter_map(|k| Some((<[u8; 32]>::try_from(*k).ok()?, XOnlyPublicKey::from_slice(k).ok()?)))
                .collect(),
        }
    }

    fn ecdsa(&self, k: &[u8]) -> Option<PublicKey> {
        self.ecdsa.get(k).copied().or_else(|| PublicKey::from_slice(k).ok())
    }

    fn xonly(&self, k: &[u8]) -> Option<XOnlyPublicKey> {
        <[u8; 32]>::try_from(k)
            .ok()
            .and_then(|a| self.xonly.get(&a).copied())
            .or_else(|| XOnlyPublicKey::from_slice(k).ok())
    }
}

struct TxCtx<'a> {
    tx: &'a Transaction,
    spent: &'a [TxOut],
    cache: SighashCache<&'a Transaction>,
    flags: u32,
    keys: &'a KeyCache,
}

impl TxCtx<'_> {
    fn strict_der(&self) -> bool {
        self.flags & bitcoinconsensus::VERIFY_DERSIG != 0
    }

    fn legacy(
        &self,
        i: usize,
        script_code: &Script,
        sig: &[u8],
        t: ScriptType,
    ) -> Result<(ecdsa::Signature, Message), Extract> {
        // FindAndDelete would change the script code: leave that to the interpreter.
        if find_and_delete_applies(script_code, sig) {
            return Err(Interpreter("find-and-delete"));
        }
        let (s, ht) = match parse_ecdsa(sig, self.strict_der()) {
            Ok(Some(x)) => x,
            Ok(None) => return Err(Interpreter("lax-der")),
            Err(e) => return Err(fail(t, e)),
        };
        let h = super::sighash::legacy_with(&self.cache, i, script_code, ht).map_err(|e| fail(t, e))?;
        Ok((s, msg(h)))
    }

    fn segwit_v0(
        &mut self,
        i: usize,
        script_code: &Script,
        p2wpkh: bool,
        sig: &[u8],
        t: ScriptType,
    ) -> Result<(ecdsa::Signature, Message), Extract> {
        let (s, ht) = match parse_ecdsa(sig, true) {
            Ok(Some(x)) => x,
            Ok(None) => return Err(Interpreter("lax-der")),
            Err(e) => return Err(fail(t, e)),
        };
        // Non-standard hash types are valid in consensus but not expressible here.
        let ht = EcdsaSighashType::from_standard(ht).map_err(|_| Interpreter("nonstandard-sighash"))?;
        let value = self.spent[i].value;
        let h = if p2wpkh {
            self.cache
                .p2wpkh_signature_hash(i, script_code, value, ht)
                .map_err(|e| fail(t, e.to_string()))?
                .to_byte_array()
        } else {
            self.cache
                .p2wsh_signature_hash(i, script_code, value, ht)
                .map_err(|e| fail(t, e.to_string()))?
                .to_byte_array()
        };
        Ok((s, msg(h)))
    }

    fn multisig(&mut self, i: usize, script: &Script, items: &[&[u8]], segwit: bool, t: ScriptType) -> Extract {
        let Some((m, keys)) = parse_multisig(script) else { return Interpreter(if segwit { "p2wsh" } else { "p2sh" }) };
        // Items: the dummy (must be empty: NULLDUMMY), then exactly m signatures.
        if items.len() != m + 1 || !items[0].is_empty() {
            return Interpreter(if segwit { "p2wsh-multisig-shape" } else { "p2sh-multisig-shape" });
        }
        let mut sigs = Vec::with_capacity(m);
        for sig in &items[1..] {
            let r = if segwit { self.segwit_v0(i, script, false, sig, t) } else { self.legacy(i, script, sig, t) };
            match r {
                Ok(x) => sigs.push(x),
                Err(e) => return e,
            }
        }
        let keys = keys.iter().map(|k| PublicKey::from_slice(k).ok()).collect();
        Check(t, SigCheck::Multisig { sigs, keys })
    }

    fn p2wpkh(&mut self, i: usize, program: &Script, wit: &[&[u8]], t: ScriptType) -> Extract {
        if wit.len() != 2 {
            return fail(t, format!("P2WPKH witness has {} items, not 2", wit.len()));
        }
        if hash160::Hash::hash(wit[1]).as_byte_array() != &program.as_bytes()[2..22] {
            return fail(t, "public key does not match the witness program");
        }
        let Some(pk) = self.keys.ecdsa(wit[1]) else { return fail(t, "public key does not parse") };
        match self.segwit_v0(i, program, true, wit[0], t) {
            Ok((sig, msg)) => Check(t, SigCheck::Ecdsa { sig, pk, msg }),
            Err(e) => e,
        }
    }

    fn p2wsh(&mut self, i: usize, program: &[u8], wit: &[&[u8]], t: ScriptType) -> Extract {
        let Some((ws, items)) = wit.split_last() else { return fail(t, "empty P2WSH witness") };
        if sha256::Hash::hash(ws).as_byte_array() != program {
            return fail(t, "witness script does not match the witness program");
        }
        self.multisig(i, Script::from_bytes(ws), items, true, t)
    }

    fn input(&mut self, i: usize) -> Extract {
        let input = &self.tx.input[i];
        let spk = self.spent[i].script_pubkey.as_script();
        let b = spk.as_bytes();
        let wit: Vec<&[u8]> = input.witness.iter().collect();
        let sig_script = input.script_sig.as_script();
        let witness_on = self.flags & bitcoinconsensus::VERIFY_WITNESS != 0;

        if spk.is_p2pkh() {
            if !wit.is_empty() {
                return Interpreter("p2pkh-with-witness");
            }
            let Some(p) = pushes(sig_script).filter(|p| p.len() == 2) else { return Interpreter("p2pkh") };
            let t = ScriptType::P2pkh;
            if hash160::Hash::hash(p[1]).as_byte_array() != &b[3..23] {
                return fail(t, "public key does not match the P2PKH hash");
            }
            let Some(pk) = self.keys.ecdsa(p[1]) else { return Interpreter("p2pkh-odd-key") };
            if p[0].is_empty() {
                return fail(t, "empty signature");
            }
            return match self.legacy(i, spk, p[0], t) {
                Ok((sig, msg)) => Check(t, SigCheck::Ecdsa { sig, pk, msg }),
                Err(e) => e,
            };
        }
        if spk.is_p2pk() {
            if !wit.is_empty() {
                return Interpreter("p2pk-with-witness");
            }
            let Some(p) = pushes(sig_script).filter(|p| p.len() == 1) else { return Interpreter("p2pk") };
            let t = ScriptType::P2pk;
            let Ok(pk) = PublicKey::from_slice(&b[1..b.len() - 1]) else { return Interpreter("p2pk-odd-key") };
            if p[0].is_empty() {
                return fail(t, "empty signature");
            }
            return match self.legacy(i, spk, p[0], t) {
                Ok((sig, msg)) => Check(t, SigCheck::Ecdsa { sig, pk, msg }),
                Err(e) => e,
            };
        }
        if spk.is_p2sh() && self.flags & bitcoinconsensus::VERIFY_P2SH != 0 {
            let Some(p) = pushes(sig_script) else { return Interpreter("p2sh") };
            let Some((redeem, items)) = p.split_last() else { return Interpreter("p2sh") };
            if hash160::Hash::hash(redeem).as_byte_array() != &b[2..22] {
                return fail(ScriptType::Interpreter("p2sh"), "redeem script does not match the P2SH hash");
            }
            let redeem = Script::from_bytes(redeem);
            // BIP141: a P2SH-wrapped witness program's scriptSig must be
            // exactly one minimal push of the program (Core's
            // WITNESS_MALLEATED_P2SH); any other encoding of the same push
            // would change the txid without touching the witness.
            if witness_on && redeem.is_witness_program() {
                let canonical = sig_script.len() == redeem.len() + 1
                    && sig_script.as_bytes()[0] as usize == redeem.len()
                    && items.is_empty();
                if !canonical {
                    let t = if redeem.is_p2wpkh() { ScriptType::P2shP2wpkh } else { ScriptType::Interpreter("p2sh") };
                    return fail(
                        t,
                        "witness-malleated-p2sh: the scriptSig must be exactly one push of the witness program",
                    );
                }
            }
            if witness_on && redeem.is_p2wpkh() && items.is_empty() {
                return self.p2wpkh(i, redeem, &wit, ScriptType::P2shP2wpkh);
            }
            if witness_on && redeem.is_p2wsh() && items.is_empty() {
                return self.p2wsh(i, &redeem.as_bytes()[2..], &wit, ScriptType::P2shP2wshMultisig);
            }
            if wit.is_empty() && parse_multisig(redeem).is_some() {
                return self.multisig(i, redeem, items, false, ScriptType::P2shMultisig);
            }
            return Interpreter("p2sh");
        }
        if witness_on && spk.is_p2wpkh() {
            if !sig_script.is_empty() {
                return fail(ScriptType::P2wpkh, "native witness spend with a non-empty scriptSig");
            }
            return self.p2wpkh(i, spk, &wit, ScriptType::P2wpkh);
        }
        if witness_on && spk.is_p2wsh() {
            if !sig_script.is_empty() {
                return fail(ScriptType::P2wshMultisig, "native witness spend with a non-empty scriptSig");
            }
            return self.p2wsh(i, &b[2..], &wit, ScriptType::P2wshMultisig);
        }
        if spk.is_p2tr() && self.flags & bitcoinconsensus::VERIFY_TAPROOT != 0 {
            if !sig_script.is_empty() {
                return Interpreter("p2tr-with-scriptsig");
            }
            return self.taproot(i, &b[2..], &wit);
        }
        if spk.is_empty()
            && wit.is_empty()
            && let Some(v) = empty_script_result(sig_script)
        {
            return if v {
                Check(ScriptType::EmptyScript, SigCheck::NoSignature)
            } else {
                fail(ScriptType::EmptyScript, "the scriptSig leaves false on the stack")
            };
        }
        Interpreter(if spk.is_empty() {
            "empty-script"
        } else if spk.is_p2sh() {
            "p2sh"
        } else {
            "other"
        })
    }

    fn taproot(&mut self, i: usize, program: &[u8], wit: &[&[u8]]) -> Extract {
        let mut wit = wit.to_vec();
        let annex = if wit.len() >= 2 && wit.last().is_some_and(|a| a.first() == Some(&0x50)) {
            wit.pop().and_then(|a| Annex::new(a).ok())
        } else {
            None
        };
        let Some(output_key) = self.keys.xonly(program) else {
            return Interpreter("p2tr-invalid-key");
        };
        let prevouts = Prevouts::All(self.spent);
        let sig_parts = |sig: &[u8], t: ScriptType| -> Result<(schnorr::Signature, TapSighashType), Extract> {
            let (body, ht) = match sig.len() {
                64 => (sig, TapSighashType::Default),
                65 if sig[64] != 0 => match TapSighashType::from_consensus_u8(sig[64]) {
                    Ok(ht) => (&sig[..64], ht),
                    Err(_) => return Err(fail(t, "invalid taproot sighash type")),
                },
                0 => return Err(fail(t, "empty signature")),
                n => return Err(fail(t, format!("taproot signature of {n} bytes"))),
            };
            let s = schnorr::Signature::from_slice(body).map_err(|_| fail(t, "signature does not parse"))?;
            Ok((s, ht))
        };
        match wit.len() {
            0 => fail(ScriptType::P2trKeyPath, "empty taproot witness"),
            1 => {
                let t = ScriptType::P2trKeyPath;
                let (sig, ht) = match sig_parts(wit[0], t) {
                    Ok(x) => x,
                    Err(e) => return e,
                };
                match self.cache.taproot_signature_hash(i, &prevouts, annex, None, ht) {
                    Ok(h) => Check(t, SigCheck::Schnorr { sig, pk: output_key, msg: msg(h.to_byte_array()) }),
                    Err(e) => fail(t, e.to_string()),
                }
            }
            _ => {
                let t = ScriptType::P2trScriptPathSingleKey;
                let (control, rest) = wit.split_last().expect("two or more");
                let (script, args) = rest.split_last().expect("one or more");
                let Ok(cb) = ControlBlock::decode(control) else { return Interpreter("p2tr-script") };
                let s = *script;
                let single_key = s.len() >= 34 && s[0] == 0x20 && s[33] == 0xac && inert_envelope(&s[34..]);
                if cb.leaf_version != LeafVersion::TapScript || !single_key || args.len() != 1 {
                    return Interpreter("p2tr-script");
                }
                let script = Script::from_bytes(s);
                if !cb.verify_taproot_commitment(crate::secp(), output_key, script) {
                    return fail(t, "control block does not commit to the output key");
                }
                // BIP342: a 32-byte key that is not on the curve is still valid
                // (an unknown key type); leave that corner to the interpreter.
                let Ok(pk) = XOnlyPublicKey::from_slice(&s[1..33]) else { return Interpreter("p2tr-script") };
                let (sig, ht) = match sig_parts(args[0], t) {
                    Ok(x) => x,
                    Err(e) => return e,
                };
                let leaf = TapLeafHash::from_script(script, LeafVersion::TapScript);
                match self.cache.taproot_signature_hash(i, &prevouts, annex, Some((leaf, 0xffff_ffff)), ht) {
                    Ok(h) => Check(t, SigCheck::Schnorr { sig, pk, msg: msg(h.to_byte_array()) }),
                    Err(e) => fail(t, e.to_string()),
                }
            }
        }
    }
}

/// Extracts the checks of one transaction (not the coinbase).
pub fn extract_tx(tx: &Transaction, tx_index: usize, spent: &[TxOut], flags: u32) -> Vec<InputCheck> {
    extract_tx_with(tx, tx_index, spent, flags, &KeyCache::default())
}

/// [`extract_tx`] with keys already parsed.
pub fn extract_tx_with(
    tx: &Transaction,
    tx_index: usize,
    spent: &[TxOut],
    flags: u32,
    keys: &KeyCache,
) -> Vec<InputCheck> {
    let mut ctx = TxCtx { tx, spent, cache: SighashCache::new(tx), flags, keys };
    (0..tx.input.len())
        .map(|i| {
            let (script_type, check) = match ctx.input(i) {
                Check(t, c) => (t, c),
                Interpreter(kind) => (ScriptType::Interpreter(kind), SigCheck::Interpreter { flags }),
            };
            InputCheck { tx_index, input_index: i, script_type, check }
        })
        .collect()
}

/// The spent outputs of each transaction, split from the block-order list.
pub fn split_prevouts<'a>(block: &Block, prevouts: &'a [TxOut]) -> Vec<&'a [TxOut]> {
    let mut out = Vec::with_capacity(block.txdata.len());
    let mut at = 0;
    for (ti, tx) in block.txdata.iter().enumerate() {
        let n = if ti == 0 { 0 } else { tx.input.len() };
        // Callers check the count first; a short list still never panics
        // here (the missing transactions get empty slices).
        out.push(prevouts.get(at..at + n).unwrap_or(&[]));
        at += n;
    }
    out
}

/// Every check of a mainnet block in one call: flags from its BIP34 height
/// (read from the coinbase, no hashing), keys parsed once. For callers that
/// want the checks rather than a report (benchmarks, tests);
/// [`super::validate`] runs the same steps inside the whole pipeline.
pub fn extract_all(block: &Block, per_tx: &[&[TxOut]]) -> Vec<InputCheck> {
    let height = crate::block::coinbase_height(block).map(u64::from);
    extract_block(block, per_tx, flags_for(height), &KeyCache::for_block(block, per_tx))
}

/// Extracts every non-coinbase input's check, transactions in parallel.
pub fn extract_block(block: &Block, per_tx: &[&[TxOut]], flags: u32, keys: &KeyCache) -> Vec<InputCheck> {
    block
        .txdata
        .par_iter()
        .enumerate()
        .skip(1)
        .flat_map_iter(|(ti, tx)| extract_tx_with(tx, ti, per_tx[ti], flags, keys))
        .collect()
}

/// Script flags at a mainnet height, as the pipeline uses them
/// ([`crate::rules::script_flags`]); all of them when the height is unknown.
pub fn flags_for(height: Option<u64>) -> u32 {
    match height.and_then(|h| u32::try_from(h).ok()) {
        Some(h) => crate::rules::script_flags(crate::rules::Network::Mainnet, h),
        None => oracle::ALL_FLAGS,
    }
}
