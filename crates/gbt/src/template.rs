//! A `getblocktemplate` answer (BIP22/23, BIP9 rules, BIP145 segwit fields)
//! turned into an engine [`Job`], and a solved job turned back into a whole
//! block that is checked again before it goes to `submitblock`.
//!
//! The coinbase is cut the way a Stratum pool cuts it, so the engine needs
//! nothing new: `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`, where the two
//! extranonces sit inside one push in the scriptSig, right after the BIP34
//! height. extranonce1 is fixed per kiln process (so two kiln workers paying
//! one address never hash the same coinbase), extranonce2 is what the engine
//! rolls per scanner.

use std::fmt;

use bitcoin::blockdata::script::Builder;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Block, ScriptBuf, Transaction, Witness};
use serde_json::{Value, json};

use kiln_validate::block::{Bip34, TxHashes, WitnessCommitment, check_block_with};
use kiln_validate::rules::Network;
use kiln_work::merkle::{coinbase_branch, merkle_root};
use kiln_work::{CompactTarget, Job, Target};

/// Bytes the engine rolls per scanner (extranonce2).
pub const EXTRANONCE2_SIZE: usize = 8;
/// Bytes fixed per kiln process (extranonce1).
pub const EXTRANONCE1_SIZE: usize = 4;
/// The witness reserved value kiln puts in the coinbase witness (BIP141).
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];
/// Longest coinbase scriptSig (consensus: 2..=100 bytes).
const MAX_SCRIPT_SIG: usize = 100;

/// BIP9 rules kiln knows how to follow. A rule the node marks mandatory
/// (`!` prefix) that is not here means kiln cannot build a valid block.
const KNOWN_RULES: &[&str] = &["csv", "segwit", "taproot", "testdummy"];

/// Why a template cannot be mined, or a block built from it must not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("template field '{0}' is missing or has the wrong type")]
    Field(&'static str),
    #[error("template field '{field}' is invalid: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("the node requires rule '{0}', which kiln does not implement")]
    UnknownRule(String),
    #[error("signet blocks must carry a signature of the network's challenge key; kiln cannot mine on signet")]
    Signet,
    #[error("transaction {index}: {why}")]
    Transaction { index: usize, why: String },
    #[error("the template's witness commitment {template} differs from the one computed from its wtxids ({computed})")]
    WitnessCommitment { template: String, computed: String },
    #[error("coinbase scriptSig would be {0} bytes (consensus allows 2 to 100)")]
    ScriptSigLength(usize),
    #[error("the solution's coinbase does not parse: {0}")]
    Coinbase(String),
}

/// What the re-check before `submitblock` found wrong. Each is a kiln bug or
/// a broken kernel, never something to send to the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("previous block hash is not the template's")]
    PrevHash,
    #[error("nBits is not the template's")]
    Bits,
    #[error("the header hash does not meet its target")]
    ProofOfWork,
    #[error("merkle root does not match the transactions")]
    MerkleRoot,
    #[error("witness commitment is {0:?}")]
    WitnessCommitment(WitnessCommitment),
    #[error("coinbase height is {found:?}, the template's is {expected}")]
    Height { found: Bip34, expected: u32 },
    #[error("block weight {weight} is over the template's limit {limit}")]
    Weight { weight: u64, limit: u64 },
    #[error("coinbase pays {paid} sat, the template allows {allowed}")]
    CoinbaseValue { paid: u64, allowed: u64 },
    #[error("transactions are not the template's, in the template's order")]
    Transactions,
    #[error("block time {time} is before the template's mintime {mintime}")]
    Time { time: u32, mintime: u32 },
}

/// A parsed, checked block template.
#[derive(Clone)]
pub struct Template {
    pub version: u32,
    /// Previous block hash, internal byte order.
    pub prev_hash: [u8; 32],
    pub height: u32,
    pub bits: u32,
    /// The block target, from `bits`.
    pub target: Target,
    pub curtime: u32,
    pub mintime: u32,
    pub coinbase_value: u64,
    pub weight_limit: u64,
    pub rules: Vec<String>,
    pub vbrequired: u32,
    /// BIP22 long polling: pass back to wait for the next template.
    pub longpollid: Option<String>,
    /// The witness commitment output script, when the block needs one.
    pub witness_commitment: Option<ScriptBuf>,
    /// `coinbaseaux.flags`, appended to the coinbase scriptSig as Core asks.
    pub coinbase_aux: Vec<u8>,
    /// Every transaction but the coinbase, in the template's order.
    pub transactions: Vec<Transaction>,
    /// Their txids (internal order), computed here, not taken from the node.
    pub txids: Vec<[u8; 32]>,
    /// Sum of the template's stated fees.
    pub fees: u64,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("height", &self.height)
            .field("prev_hash", &self.prev_hash_hex())
            .field("transactions", &self.transactions.len())
            .field("coinbase_value", &self.coinbase_value)
            .finish_non_exhaustive()
    }
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<&'a Value, TemplateError> {
    v.get(name).ok_or(TemplateError::Field(name))
}
fn u64_field(v: &Value, name: &'static str) -> Result<u64, TemplateError> {
    field(v, name)?.as_u64().ok_or(TemplateError::Field(name))
}
fn u32_field(v: &Value, name: &'static str) -> Result<u32, TemplateError> {
    u32::try_from(u64_field(v, name)?).map_err(|_| TemplateError::Invalid { field: name, why: "over 32 bits".into() })
}
fn str_field<'a>(v: &'a Value, name: &'static str) -> Result<&'a str, TemplateError> {
    field(v, name)?.as_str().ok_or(TemplateError::Field(name))
}
fn hex_field(v: &Value, name: &'static str) -> Result<Vec<u8>, TemplateError> {
    hex::decode(str_field(v, name)?).map_err(|e| TemplateError::Invalid { field: name, why: e.to_string() })
}

impl Template {
    /// Parses and checks a `getblocktemplate` result: every transaction
    /// decodes and hashes to the txid the node states, every mandatory rule
    /// is one kiln follows, and the node's witness commitment equals the one
    /// kiln computes from the wtxids.
    ///
    /// # Errors
    /// See [`TemplateError`].
    pub fn from_json(v: &Value) -> Result<Template, TemplateError> {
        let rules: Vec<String> = field(v, "rules")?
            .as_array()
            .ok_or(TemplateError::Field("rules"))?
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        for r in &rules {
            let name = r.trim_start_matches('!');
            if name == "signet" {
                return Err(TemplateError::Signet);
            }
            if r.starts_with('!') && !KNOWN_RULES.contains(&name) {
                return Err(TemplateError::UnknownRule(name.to_string()));
            }
        }
        let prev = hex_field(v, "previousblockhash")?;
        let mut prev_hash: [u8; 32] = prev
            .try_into()
            .map_err(|_| TemplateError::Invalid { field: "previousblockhash", why: "not 32 bytes".into() })?;
        prev_hash.reverse();
        let bits_bytes = hex_field(v, "bits")?;
        let bits = <[u8; 4]>::try_from(bits_bytes.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| TemplateError::Invalid { field: "bits", why: "not 4 bytes".into() })?;
        let target = CompactTarget(bits)
            .to_target()
            .map_err(|e| TemplateError::Invalid { field: "bits", why: e.to_string() })?;
        let curtime = u32_field(v, "curtime")?;
        let mintime = v.get("mintime").and_then(Value::as_u64).map_or(0, |t| t.min(u64::from(u32::MAX)) as u32);

        let list = field(v, "transactions")?.as_array().ok_or(TemplateError::Field("transactions"))?;
        let mut transactions = Vec::with_capacity(list.len());
        let mut txids = Vec::with_capacity(list.len());
        let mut fees = 0u64;
        for (i, t) in list.iter().enumerate() {
            let index = i + 1;
            let bad = |why: String| TemplateError::Transaction { index, why };
            let data = hex::decode(t.get("data").and_then(Value::as_str).ok_or_else(|| bad("no data".into()))?)
                .map_err(|e| bad(format!("data is not hex: {e}")))?;
            let tx: Transaction = deserialize(&data).map_err(|e| bad(format!("does not decode: {e}")))?;
            if tx.is_coinbase() {
                return Err(bad("is a coinbase".into()));
            }
            let txid = tx.compute_txid();
            if let Some(stated) = t.get("txid").and_then(Value::as_str)
                && stated != txid.to_string()
            {
                return Err(bad(format!("txid is {txid}, the node says {stated}")));
            }
            fees = fees.saturating_add(t.get("fee").and_then(Value::as_u64).unwrap_or(0));
            txids.push(txid.to_byte_array());
            transactions.push(tx);
        }

        let commitment = compute_witness_commitment(&transactions);
        let witness_commitment = match v.get("default_witness_commitment").and_then(Value::as_str) {
            Some(h) => {
                let stated =
                    ScriptBuf::from_bytes(hex::decode(h).map_err(|e| TemplateError::Invalid {
                        field: "default_witness_commitment",
                        why: e.to_string(),
                    })?);
                if stated != commitment {
                    return Err(TemplateError::WitnessCommitment {
                        template: h.to_string(),
                        computed: hex::encode(commitment.as_bytes()),
                    });
                }
                Some(stated)
            }
            // A node that states none still needs one if a transaction has
            // witness data (BIP141), and then kiln's is the only one there is.
            None if transactions.iter().any(has_witness) => Some(commitment),
            None => None,
        };
        let coinbase_aux = match v.get("coinbaseaux").and_then(|a| a.get("flags")).and_then(Value::as_str) {
            Some(f) => {
                hex::decode(f).map_err(|e| TemplateError::Invalid { field: "coinbaseaux", why: e.to_string() })?
            }
            None => Vec::new(),
        };
        Ok(Template {
            version: u32_field(v, "version")?,
            prev_hash,
            height: u32_field(v, "height")?,
            bits,
            target,
            curtime,
            mintime,
            coinbase_value: u64_field(v, "coinbasevalue")?,
            weight_limit: v.get("weightlimit").and_then(Value::as_u64).unwrap_or(4_000_000),
            rules,
            vbrequired: v.get("vbrequired").and_then(Value::as_u64).unwrap_or(0) as u32,
            longpollid: v.get("longpollid").and_then(Value::as_str).map(str::to_string),
            witness_commitment,
            coinbase_aux,
            transactions,
            txids,
            fees,
        })
    }

    /// The previous block hash as Core prints it.
    pub fn prev_hash_hex(&self) -> String {
        let mut h = self.prev_hash;
        h.reverse();
        hex::encode(h)
    }

    /// The header time to mine with: the node's `curtime`, never before `mintime`.
    pub fn ntime(&self) -> u32 {
        self.curtime.max(self.mintime)
    }

    /// The block version: the template's, with every bit the node requires.
    pub fn block_version(&self) -> u32 {
        self.version | self.vbrequired
    }

    /// The coinbase cut around the extranonces: `(coinb1, coinb2)`.
    ///
    /// scriptSig = BIP34 height push ‖ push(extranonce1 ‖ extranonce2) ‖
    /// push(tag) ‖ coinbaseaux; outputs = the whole `coinbasevalue` to
    /// `payout`, then the witness commitment when there is one.
    ///
    /// # Errors
    /// A scriptSig over 100 bytes (a very long tag or aux flags).
    pub fn coinbase_parts(&self, payout: &ScriptBuf, tag: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TemplateError> {
        let height = Builder::new().push_int(i64::from(self.height)).into_script();
        let tag = &tag[..tag.len().min(40)];
        let en = EXTRANONCE1_SIZE + EXTRANONCE2_SIZE;
        let script_sig_len = height.len() + 1 + en + 1 + tag.len() + self.coinbase_aux.len();
        if !(2..=MAX_SCRIPT_SIG).contains(&script_sig_len) {
            return Err(TemplateError::ScriptSigLength(script_sig_len));
        }
        let mut c1 = Vec::with_capacity(64);
        c1.extend_from_slice(&2u32.to_le_bytes()); // version
        c1.push(1); // one input
        c1.extend_from_slice(&[0; 32]);
        c1.extend_from_slice(&u32::MAX.to_le_bytes());
        c1.push(script_sig_len as u8); // < 0xfd: one byte
        c1.extend_from_slice(height.as_bytes());
        c1.push(en as u8); // a direct push of the extranonces

        let mut c2 = Vec::with_capacity(128);
        c2.push(tag.len() as u8);
        c2.extend_from_slice(tag);
        c2.extend_from_slice(&self.coinbase_aux);
        c2.extend_from_slice(&u32::MAX.to_le_bytes()); // sequence
        let mut outputs = vec![(self.coinbase_value, payout.as_bytes())];
        if let Some(wc) = &self.witness_commitment {
            outputs.push((0, wc.as_bytes()));
        }
        c2.push(outputs.len() as u8);
        for (value, script) in outputs {
            c2.extend_from_slice(&value.to_le_bytes());
            c2.extend_from_slice(&serialize(&bitcoin::VarInt(script.len() as u64)));
            c2.extend_from_slice(script);
        }
        c2.extend_from_slice(&0u32.to_le_bytes()); // lock time
        Ok((c1, c2))
    }

    /// The engine's job for this template. Its share target is the block
    /// target: every solution is a block. No version rolling: the extranonce
    /// space is ample, and the node's `version` is then sent unchanged.
    ///
    /// # Errors
    /// As [`Template::coinbase_parts`].
    pub fn job(
        &self,
        job_id: String,
        payout: &ScriptBuf,
        tag: &[u8],
        extranonce1: [u8; EXTRANONCE1_SIZE],
        clean_jobs: bool,
    ) -> Result<Job, TemplateError> {
        let (coinb1, coinb2) = self.coinbase_parts(payout, tag)?;
        let mut leaves = Vec::with_capacity(self.txids.len() + 1);
        leaves.push([0; 32]);
        leaves.extend_from_slice(&self.txids);
        Ok(Job {
            job_id,
            prev_hash: self.prev_hash,
            coinb1,
            coinb2,
            merkle_branch: coinbase_branch(&leaves),
            version: self.block_version(),
            nbits: self.bits,
            ntime: self.ntime(),
            clean_jobs,
            extranonce1: extranonce1.to_vec(),
            extranonce2_size: EXTRANONCE2_SIZE,
            share_target: self.target,
            version_mask: 0,
        })
    }

    /// The whole block for a solved `job` (built from this template).
    ///
    /// # Errors
    /// The coinbase or header does not parse (a bug, never the node's doing).
    pub fn assemble(&self, job: &Job, extranonce2: &[u8], header: &[u8; 80]) -> Result<Block, TemplateError> {
        let mut coinbase: Transaction =
            deserialize(&job.coinbase(extranonce2)).map_err(|e| TemplateError::Coinbase(e.to_string()))?;
        if self.witness_commitment.is_some() {
            coinbase.input[0].witness = Witness::from_slice(&[WITNESS_RESERVED_VALUE]);
        }
        let header = deserialize(header).map_err(|e| TemplateError::Coinbase(format!("header: {e}")))?;
        let mut txdata = Vec::with_capacity(self.transactions.len() + 1);
        txdata.push(coinbase);
        txdata.extend(self.transactions.iter().cloned());
        Ok(Block { header, txdata })
    }

    /// The block with any nonce, for BIP23 proposal mode: the node checks
    /// everything but the proof of work.
    pub fn proposal_params(block: &Block) -> Value {
        json!([{"mode": "proposal", "data": hex::encode(serialize(block))}])
    }

    /// Checks a block built from this template before it is submitted:
    /// proof of work, merkle root, witness commitment, BIP34 height, weight,
    /// coinbase value, the template's transactions in the template's order,
    /// and the time.
    ///
    /// # Errors
    /// The first problem found (see [`CheckError`]).
    pub fn check(&self, block: &Block, network: Network) -> Result<(), CheckError> {
        self.check_inner(block, network, true)
    }

    /// [`Template::check`] without the proof of work: what a BIP23 proposal
    /// (or a test with an unsolved header) can be held to.
    ///
    /// # Errors
    /// As [`Template::check`], never [`CheckError::ProofOfWork`].
    pub fn check_except_pow(&self, block: &Block, network: Network) -> Result<(), CheckError> {
        self.check_inner(block, network, false)
    }

    fn check_inner(&self, block: &Block, network: Network, pow: bool) -> Result<(), CheckError> {
        let h = &block.header;
        if h.prev_blockhash.to_byte_array() != self.prev_hash {
            return Err(CheckError::PrevHash);
        }
        if h.bits.to_consensus() != self.bits {
            return Err(CheckError::Bits);
        }
        if h.time < self.mintime {
            return Err(CheckError::Time { time: h.time, mintime: self.mintime });
        }
        let hashes = TxHashes::of(block);
        let checks = check_block_with(block, network, &hashes);
        if pow && !checks.pow_ok {
            return Err(CheckError::ProofOfWork);
        }
        if !checks.merkle_ok {
            return Err(CheckError::MerkleRoot);
        }
        match checks.witness_commitment {
            WitnessCommitment::Valid | WitnessCommitment::NotRequired => {}
            other => return Err(CheckError::WitnessCommitment(other)),
        }
        match checks.bip34 {
            Bip34::Height(found) if found == u64::from(self.height) => {}
            Bip34::NotApplicable => {}
            found => return Err(CheckError::Height { found, expected: self.height }),
        }
        let weight = block.weight().to_wu();
        if weight > self.weight_limit {
            return Err(CheckError::Weight { weight, limit: self.weight_limit });
        }
        let paid = block.txdata[0].output.iter().fold(0u64, |a, o| a.saturating_add(o.value.to_sat()));
        if paid > self.coinbase_value {
            return Err(CheckError::CoinbaseValue { paid, allowed: self.coinbase_value });
        }
        if hashes.txids.len() != self.txids.len() + 1
            || hashes.txids[1..].iter().zip(&self.txids).any(|(a, b)| a.to_byte_array() != *b)
        {
            return Err(CheckError::Transactions);
        }
        Ok(())
    }
}

fn has_witness(tx: &Transaction) -> bool {
    tx.input.iter().any(|i| !i.witness.is_empty())
}

/// BIP141's commitment output for these (non-coinbase) transactions with
/// kiln's witness reserved value: `OP_RETURN PUSH36 aa21a9ed ‖ sha256d(root ‖ reserved)`.
pub fn compute_witness_commitment(transactions: &[Transaction]) -> ScriptBuf {
    let mut leaves = Vec::with_capacity(transactions.len() + 1);
    leaves.push([0u8; 32]); // the coinbase's wtxid is defined as zero
    for tx in transactions {
        leaves.push(if has_witness(tx) {
            tx.compute_wtxid().to_byte_array()
        } else {
            tx.compute_txid().to_byte_array()
        });
    }
    let root = merkle_root(&leaves).unwrap_or([0; 32]);
    let commitment = kiln_hash::sha256d(&[root, WITNESS_RESERVED_VALUE].concat());
    let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    script.extend_from_slice(&commitment);
    ScriptBuf::from_bytes(script)
}
