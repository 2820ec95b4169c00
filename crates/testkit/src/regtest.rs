//! Wallet-free regtest helpers: keys and addresses, mining and funding,
//! signing (ECDSA through Core's `signrawtransactionwithkey`, taproot key
//! path locally), `getblocktemplate`-based block building with a mutation
//! hook, `submitblock`, and the spent-outputs JSON kiln's validator reads.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, TapTweak};
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::secp256k1::{self, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Address, Amount, Block, BlockHash, CompactTarget, CompressedPublicKey, Network, OutPoint, PrivateKey, Script,
    ScriptBuf, Sequence, Target, Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness, XOnlyPublicKey,
};
use serde_json::{Value, json};

use crate::node::Node;
use crate::rpc::RpcError;

/// A coinbase created at height `h` can be spent in a block at height `h + 100`
/// or later (so with the tip at `h + 99`, a mempool spend is accepted).
pub const COINBASE_MATURITY: u32 = 100;

/// Everything that can go wrong in these helpers.
#[derive(Debug)]
pub enum Error {
    Rpc(RpcError),
    /// Core answered, but not with what was expected.
    Unexpected(String),
    /// Signing could not complete.
    Sign(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rpc(e) => e.fmt(f),
            Error::Unexpected(s) => write!(f, "unexpected answer from bitcoind: {s}"),
            Error::Sign(s) => write!(f, "signing failed: {s}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        Error::Rpc(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn unexpected(what: impl fmt::Display) -> Error {
    Error::Unexpected(what.to_string())
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value> {
    v.get(name).ok_or_else(|| unexpected(format!("no `{name}` in {v}")))
}

fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    field(v, name)?.as_str().ok_or_else(|| unexpected(format!("`{name}` is not a string in {v}")))
}

fn u64_field(v: &Value, name: &str) -> Result<u64> {
    field(v, name)?.as_u64().ok_or_else(|| unexpected(format!("`{name}` is not an unsigned integer in {v}")))
}

/// Core prints amounts as BTC with 8 decimals; f64 holds every satoshi
/// amount up to 21e6 BTC exactly enough for rounding to be right.
fn btc_to_sat(v: &Value) -> Result<Amount> {
    let btc = v.as_f64().ok_or_else(|| unexpected(format!("amount {v} is not a number")))?;
    if !(0.0..=21e6).contains(&btc) {
        return Err(unexpected(format!("amount {btc} out of range")));
    }
    Ok(Amount::from_sat((btc * 1e8).round() as u64))
}

fn parse<T: FromStr>(s: &str) -> Result<T>
where
    T::Err: fmt::Display,
{
    s.parse::<T>().map_err(|e| unexpected(format!("cannot parse {s:?}: {e}")))
}

// ---------------------------------------------------------------------------
// Keys and addresses

/// The output types these helpers can create and spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrKind {
    P2pkh,
    P2wpkh,
    P2shP2wpkh,
    /// Key-path-only taproot (no script tree), BIP86-style tweak.
    P2tr,
}

impl AddrKind {
    pub const ALL: [AddrKind; 4] = [AddrKind::P2pkh, AddrKind::P2wpkh, AddrKind::P2shP2wpkh, AddrKind::P2tr];
}

/// A secp256k1 key pair (compressed), usable for every [`AddrKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub secret: SecretKey,
}

impl Key {
    /// A new random key.
    pub fn random() -> Key {
        Key { secret: SecretKey::new(&mut secp256k1::rand::thread_rng()) }
    }

    /// A key from 32 bytes (must be a valid scalar).
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key { secret: SecretKey::from_slice(&bytes).expect("valid secret key bytes") }
    }

    pub fn private_key(&self) -> PrivateKey {
        PrivateKey::new(self.secret, Network::Regtest)
    }

    /// WIF for regtest/testnet (what `signrawtransactionwithkey` takes).
    pub fn wif(&self) -> String {
        self.private_key().to_wif()
    }

    pub fn public_key(&self) -> CompressedPublicKey {
        CompressedPublicKey(self.secret.public_key(&Secp256k1::signing_only()))
    }

    /// The untweaked x-only key (taproot internal key).
    pub fn x_only(&self) -> XOnlyPublicKey {
        self.keypair().x_only_public_key().0
    }

    pub fn keypair(&self) -> Keypair {
        Keypair::from_secret_key(&Secp256k1::signing_only(), &self.secret)
    }

    /// The regtest address of `kind` for this key.
    pub fn address(&self, kind: AddrKind) -> Address {
        let pk = self.public_key();
        match kind {
            AddrKind::P2pkh => Address::p2pkh(pk, Network::Regtest),
            AddrKind::P2wpkh => Address::p2wpkh(&pk, Network::Regtest),
            AddrKind::P2shP2wpkh => Address::p2shwpkh(&pk, Network::Regtest),
            AddrKind::P2tr => Address::p2tr(&Secp256k1::verification_only(), self.x_only(), None, Network::Regtest),
        }
    }

    pub fn script_pubkey(&self, kind: AddrKind) -> ScriptBuf {
        self.address(kind).script_pubkey()
    }

    /// Core's output descriptor for this key and kind (no checksum).
    pub fn descriptor(&self, kind: AddrKind) -> String {
        let wif = self.wif();
        match kind {
            AddrKind::P2pkh => format!("pkh({wif})"),
            AddrKind::P2wpkh => format!("wpkh({wif})"),
            AddrKind::P2shP2wpkh => format!("sh(wpkh({wif}))"),
            AddrKind::P2tr => format!("tr({wif})"),
        }
    }
}

/// `OP_TRUE` (anyone can spend it with an empty scriptSig).
pub fn op_true_script() -> ScriptBuf {
    Builder::new().push_opcode(bitcoin::opcodes::OP_TRUE).into_script()
}

/// P2WSH(OP_TRUE): `bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85`.
/// Spend it with the witness `[51]` (the script) and nothing else.
pub fn op_true_address() -> Address {
    Address::p2wsh(&op_true_script(), Network::Regtest)
}

// ---------------------------------------------------------------------------
// Mining and funding

/// `generatetoaddress n address`: the new block hashes.
pub fn generate_to_address(node: &Node, n: u32, address: &Address) -> Result<Vec<BlockHash>> {
    let v = node.rpc("generatetoaddress", json!([n, address.to_string()]))?;
    let list = v.as_array().ok_or_else(|| unexpected(&v))?;
    list.iter().map(|h| parse(h.as_str().unwrap_or_default())).collect()
}

/// `getblockcount`.
pub fn block_count(node: &Node) -> Result<u32> {
    let v = node.rpc("getblockcount", Value::Null)?;
    v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| unexpected(v))
}

/// `getbestblockhash`.
pub fn best_block_hash(node: &Node) -> Result<BlockHash> {
    let v = node.rpc("getbestblockhash", Value::Null)?;
    parse(v.as_str().ok_or_else(|| unexpected(&v))?)
}

/// `getblock HASH 0`, decoded.
pub fn get_block(node: &Node, hash: &BlockHash) -> Result<Block> {
    let v = node.rpc("getblock", json!([hash.to_string(), 0]))?;
    deserialize_hex(v.as_str().ok_or_else(|| unexpected(&v))?).map_err(|e| unexpected(format!("block hex: {e}")))
}

/// An output we hold the key for.
#[derive(Clone, Debug)]
pub struct Coin {
    pub outpoint: OutPoint,
    pub txout: TxOut,
    pub key: Key,
    pub kind: AddrKind,
}

/// Mines one block paying to each `(key, kind)` in turn, then
/// [`COINBASE_MATURITY`] blocks to [`op_true_address`], and returns the
/// (now spendable) coinbase outputs in the same order.
pub fn mine_coins(node: &Node, owners: &[(Key, AddrKind)]) -> Result<Vec<Coin>> {
    let mut coins = Vec::with_capacity(owners.len());
    for &(key, kind) in owners {
        let hash = generate_to_address(node, 1, &key.address(kind))?
            .pop()
            .ok_or_else(|| unexpected("generatetoaddress returned no hash"))?;
        let block = get_block(node, &hash)?;
        let cb = block.txdata.first().ok_or_else(|| unexpected("block without coinbase"))?;
        let spk = key.script_pubkey(kind);
        let vout = cb
            .output
            .iter()
            .position(|o| o.script_pubkey == spk)
            .ok_or_else(|| unexpected("coinbase does not pay the requested address"))?;
        coins.push(Coin {
            outpoint: OutPoint { txid: cb.compute_txid(), vout: vout as u32 },
            txout: cb.output[vout].clone(),
            key,
            kind,
        });
    }
    generate_to_address(node, COINBASE_MATURITY, &op_true_address())?;
    Ok(coins)
}

// ---------------------------------------------------------------------------
// Transactions and signing

/// A transaction together with the fee it pays (what [`build_block`] adds to
/// the coinbase value).
#[derive(Clone, Debug)]
pub struct BlockTx {
    pub tx: Transaction,
    pub fee: Amount,
}

/// An unsigned version-2 transaction spending `coins` (sequence 0xfffffffd,
/// locktime 0) to `outputs`.
pub fn unsigned_tx(coins: &[Coin], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: coins
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

/// Signs every input of `tx`; `coins[i]` is what input `i` spends.
/// P2PKH, P2WPKH and P2SH-P2WPKH inputs are signed by Core
/// (`signrawtransactionwithkey`), P2TR key-path inputs here
/// ([`sign_taproot_key_path`]). All with SIGHASH_ALL / SIGHASH_DEFAULT.
pub fn sign(node: &Node, tx: &Transaction, coins: &[Coin]) -> Result<Transaction> {
    if tx.input.len() != coins.len() {
        return Err(Error::Sign(format!("{} inputs but {} coins", tx.input.len(), coins.len())));
    }
    for (i, (input, coin)) in tx.input.iter().zip(coins).enumerate() {
        if input.previous_output != coin.outpoint {
            return Err(Error::Sign(format!(
                "input {i} spends {} but coin {i} is {}",
                input.previous_output, coin.outpoint
            )));
        }
    }
    let mut tx = tx.clone();
    let ecdsa: Vec<usize> = (0..coins.len()).filter(|&i| coins[i].kind != AddrKind::P2tr).collect();
    if !ecdsa.is_empty() {
        tx = sign_with_core(node, &tx, coins, &ecdsa)?;
    }
    let prevouts: Vec<TxOut> = coins.iter().map(|c| c.txout.clone()).collect();
    for (i, coin) in coins.iter().enumerate() {
        if coin.kind == AddrKind::P2tr {
            sign_taproot_key_path(&mut tx, i, &prevouts, &coin.key)?;
        }
    }
    Ok(tx)
}

/// Core's `signrawtransactionwithkey` for the inputs listed in `which`.
fn sign_with_core(node: &Node, tx: &Transaction, coins: &[Coin], which: &[usize]) -> Result<Transaction> {
    let mut wifs: Vec<String> = which.iter().map(|&i| coins[i].key.wif()).collect();
    wifs.sort();
    wifs.dedup();
    // Prevouts for every input, so Core does not need to look any up.
    let prevtxs: Vec<Value> = coins
        .iter()
        .map(|c| {
            let mut p = json!({
                "txid": c.outpoint.txid.to_string(),
                "vout": c.outpoint.vout,
                "scriptPubKey": c.txout.script_pubkey.to_hex_string(),
                "amount": c.txout.value.to_btc(),
            });
            // Core refuses a P2SH prevout without its redeemScript (-8
            // "Missing redeemScript/witnessScript"), even with the key given.
            if c.kind == AddrKind::P2shP2wpkh {
                let redeem = ScriptBuf::new_p2wpkh(&c.key.public_key().wpubkey_hash());
                p["redeemScript"] = json!(redeem.to_hex_string());
            }
            p
        })
        .collect();
    let res = node.rpc("signrawtransactionwithkey", json!([serialize_hex(tx), wifs, prevtxs]))?;
    let signed: Transaction =
        deserialize_hex(str_field(&res, "hex")?).map_err(|e| unexpected(format!("signed hex: {e}")))?;
    // Core reports the inputs it could not sign (our taproot ones among them).
    if let Some(errors) = res.get("errors").and_then(Value::as_array) {
        for e in errors {
            let vout = e.get("vout").and_then(Value::as_u64);
            let txid = e.get("txid").and_then(Value::as_str);
            let failed = which.iter().any(|&i| {
                Some(u64::from(coins[i].outpoint.vout)) == vout
                    && Some(coins[i].outpoint.txid.to_string().as_str()) == txid
            });
            if failed {
                return Err(Error::Sign(format!("Core could not sign an input: {e}")));
            }
        }
    }
    Ok(signed)
}

/// Signs input `index` of `tx` as a BIP86-style key-path spend by `key`
/// (SIGHASH_DEFAULT; `prevouts` are the outputs spent by *all* inputs, in
/// order) and sets its witness to the 64-byte signature.
pub fn sign_taproot_key_path(tx: &mut Transaction, index: usize, prevouts: &[TxOut], key: &Key) -> Result<()> {
    let secp = Secp256k1::new();
    let sighash = SighashCache::new(&*tx)
        .taproot_key_spend_signature_hash(index, &Prevouts::All(prevouts), TapSighashType::Default)
        .map_err(|e| Error::Sign(format!("taproot sighash for input {index}: {e}")))?;
    let tweaked = key.keypair().tap_tweak(&secp, None);
    let msg = Message::from_digest(sighash.to_byte_array());
    let signature = secp.sign_schnorr(&msg, &tweaked.to_keypair());
    // Paranoia: the signature must verify against the output key in the spk.
    let (output_key, _) = tweaked.to_keypair().x_only_public_key();
    secp.verify_schnorr(&signature, &msg, &output_key)
        .map_err(|e| Error::Sign(format!("own schnorr signature does not verify: {e}")))?;
    let sig = bitcoin::taproot::Signature { signature, sighash_type: TapSighashType::Default };
    tx.input[index].witness = Witness::p2tr_key_spend(&sig);
    Ok(())
}

/// Builds and signs a transaction spending `coins` to `outputs`.
pub fn spend(node: &Node, coins: &[Coin], outputs: Vec<TxOut>) -> Result<BlockTx> {
    let total_in: Amount = coins.iter().map(|c| c.txout.value).sum();
    let total_out: Amount = outputs.iter().map(|o| o.value).sum();
    let fee = total_in
        .checked_sub(total_out)
        .ok_or_else(|| Error::Sign(format!("outputs ({total_out}) exceed inputs ({total_in})")))?;
    let tx = sign(node, &unsigned_tx(coins, outputs), coins)?;
    Ok(BlockTx { tx, fee })
}

/// The coin created by output `vout` of `tx`, owned by `key` as `kind`.
pub fn coin_of(tx: &Transaction, vout: u32, key: Key, kind: AddrKind) -> Coin {
    Coin { outpoint: OutPoint { txid: tx.compute_txid(), vout }, txout: tx.output[vout as usize].clone(), key, kind }
}

/// `testmempoolaccept [tx]`: `Ok(None)` if allowed, else Core's reject reason.
pub fn test_mempool_accept(node: &Node, tx: &Transaction) -> Result<Option<String>> {
    let v = node.rpc("testmempoolaccept", json!([[serialize_hex(tx)]]))?;
    let r = v.get(0).ok_or_else(|| unexpected(&v))?;
    if r.get("allowed").and_then(Value::as_bool) == Some(true) {
        Ok(None)
    } else {
        Ok(Some(r.get("reject-reason").and_then(Value::as_str).unwrap_or("?").to_owned()))
    }
}

// ---------------------------------------------------------------------------
// Block templates and block building

/// The parts of a `getblocktemplate` answer a block builder needs.
#[derive(Clone, Debug)]
pub struct Template {
    pub height: u32,
    pub version: i32,
    pub previous_block_hash: BlockHash,
    pub bits: CompactTarget,
    pub target: Target,
    pub curtime: u32,
    pub mintime: u32,
    /// Subsidy plus the fees of `transactions`.
    pub coinbase_value: Amount,
    /// The template's own transactions (from the mempool), with their fees.
    pub transactions: Vec<BlockTx>,
    /// segwit is an active rule (then the coinbase gets a witness commitment).
    pub segwit: bool,
    /// The raw answer.
    pub json: Value,
}

impl Template {
    /// `getblocktemplate {"rules":["segwit"]}` from `node`.
    pub fn fetch(node: &Node) -> Result<Template> {
        let v = node.rpc("getblocktemplate", json!([{"rules": ["segwit"]}]))?;
        Template::from_json(v)
    }

    pub fn from_json(v: Value) -> Result<Template> {
        let bits_hex = str_field(&v, "bits")?;
        let bits = u32::from_str_radix(bits_hex, 16).map_err(|e| unexpected(format!("bits {bits_hex:?}: {e}")))?;
        let bits = CompactTarget::from_consensus(bits);
        let mut transactions = Vec::new();
        for t in field(&v, "transactions")?.as_array().ok_or_else(|| unexpected("transactions not an array"))? {
            let tx: Transaction =
                deserialize_hex(str_field(t, "data")?).map_err(|e| unexpected(format!("template tx: {e}")))?;
            transactions.push(BlockTx { tx, fee: Amount::from_sat(u64_field(t, "fee")?) });
        }
        let segwit = field(&v, "rules")?
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x.as_str().map(|s| s.trim_start_matches('!')) == Some("segwit")));
        let version = field(&v, "version")?.as_i64().ok_or_else(|| unexpected("version"))?;
        let t32 = |name: &str| -> Result<u32> {
            u32::try_from(u64_field(&v, name)?).map_err(|_| unexpected(format!("{name} out of range")))
        };
        Ok(Template {
            height: t32("height")?,
            version: i32::try_from(version).map_err(|_| unexpected("version out of range"))?,
            previous_block_hash: parse(str_field(&v, "previousblockhash")?)?,
            bits,
            target: Target::from_compact(bits),
            curtime: t32("curtime")?,
            mintime: t32("mintime")?,
            coinbase_value: Amount::from_sat(u64_field(&v, "coinbasevalue")?),
            transactions,
            segwit,
            json: v,
        })
    }
}

const WITNESS_COMMITMENT_MAGIC: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];

/// Index of the coinbase output holding the BIP141 witness commitment (the
/// last output whose script starts `OP_RETURN 0x24 aa21a9ed`).
pub fn witness_commitment_index(coinbase: &Transaction) -> Option<usize> {
    coinbase.output.iter().rposition(|o| {
        let b = o.script_pubkey.as_bytes();
        b.len() >= 38 && b[0] == OP_RETURN.to_u8() && b[1] == 0x24 && b[2..6] == WITNESS_COMMITMENT_MAGIC
    })
}

/// Rewrites the witness commitment output (if the coinbase has one) to match
/// the block's current transactions and the coinbase's witness reserved value.
pub fn update_witness_commitment(block: &mut Block) {
    let Some(idx) = block.txdata.first().and_then(witness_commitment_index) else { return };
    let reserved = block.txdata[0].input.first().and_then(|i| i.witness.nth(0)).map(<[u8]>::to_vec).unwrap_or_default();
    let Some(root) = block.witness_root() else { return };
    let commitment = Block::compute_witness_commitment(&root, &reserved);
    block.txdata[0].output[idx].script_pubkey = commitment_script(commitment.as_byte_array());
}

fn commitment_script(commitment: &[u8; 32]) -> ScriptBuf {
    let mut data = PushBytesBuf::new();
    data.extend_from_slice(&WITNESS_COMMITMENT_MAGIC).expect("small");
    data.extend_from_slice(commitment).expect("small");
    Builder::new().push_opcode(OP_RETURN).push_slice(data).into_script()
}

/// Searches nonces from 0 until the header's hash meets (`valid`) or misses
/// (`!valid`) the target encoded in its `bits`. Regtest needs about 2 tries.
pub fn grind_nonce(header: &mut Header, valid: bool) {
    let target = header.target();
    for nonce in 0..=u32::MAX {
        header.nonce = nonce;
        if target.is_met_by(header.block_hash()) == valid {
            return;
        }
    }
    panic!("no nonce gives the wanted proof-of-work result; bump the time and retry");
}

static EXTRANONCE: AtomicU64 = AtomicU64::new(0);

/// The coinbase for `height`: scriptSig = BIP34 height push + 8-byte extra
/// nonce (unique per call in this process); sequence 0xfffffffe and locktime
/// `height - 1` (like Core's own miner); one output paying `value` to
/// `script`, then the witness commitment output (placeholder, see
/// [`update_witness_commitment`]) and the 32-zero-byte witness reserved value
/// when `segwit`.
pub fn coinbase_tx(height: u32, value: Amount, script: &Script, segwit: bool) -> Transaction {
    let extranonce = EXTRANONCE.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 32);
    let script_sig = Builder::new().push_int(i64::from(height)).push_slice(extranonce.to_le_bytes()).into_script();
    let mut output = vec![TxOut { value, script_pubkey: script.to_owned() }];
    let mut witness = Witness::new();
    if segwit {
        output.push(TxOut { value: Amount::ZERO, script_pubkey: commitment_script(&[0; 32]) });
        witness.push([0u8; 32]);
    }
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::from_consensus(height.saturating_sub(1)),
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::ENABLE_LOCKTIME_NO_RBF,
            witness,
        }],
        output,
    }
}

/// Builds a block on `template`: coinbase paying `coinbase_value + fees of
/// txs` to `coinbase_script`, then the template's own transactions, then
/// `txs` (in order; parents before children), a correct witness commitment,
/// merkle root and a nonce meeting the target.
///
/// `tweak` then gets the finished block to mutate. Afterwards, whatever the
/// tweak left untouched is made consistent again, and whatever it changed is
/// kept as it is:
/// - the witness commitment output is recomputed unless the tweak changed it
///   (or removed it);
/// - the header's merkle root is recomputed unless the tweak changed it;
/// - the nonce is re-ground (only if needed) unless the tweak changed it.
///
/// So `|b| b.txdata[0].output[0].value += Amount::ONE_SAT` gives a block that
/// fails only on `bad-cb-amount`; `|_| ()` leaves the block valid.
pub fn build_block(
    template: &Template,
    txs: &[BlockTx],
    coinbase_script: &Script,
    tweak: impl FnOnce(&mut Block),
) -> Block {
    let fees: Amount = txs.iter().map(|t| t.fee).sum();
    let coinbase = coinbase_tx(template.height, template.coinbase_value + fees, coinbase_script, template.segwit);
    let mut txdata = vec![coinbase];
    txdata.extend(template.transactions.iter().map(|t| t.tx.clone()));
    txdata.extend(txs.iter().map(|t| t.tx.clone()));
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(template.version),
            prev_blockhash: template.previous_block_hash,
            merkle_root: TxMerkleNode::all_zeros(),
            time: template.curtime.max(template.mintime),
            bits: template.bits,
            nonce: 0,
        },
        txdata,
    };
    update_witness_commitment(&mut block);
    block.header.merkle_root = block.compute_merkle_root().expect("block has a coinbase");
    grind_nonce(&mut block.header, true);

    let commitment_before = block
        .txdata
        .first()
        .and_then(|cb| witness_commitment_index(cb).map(|i| (i, cb.output[i].script_pubkey.clone())));
    let root_before = block.header.merkle_root;
    let nonce_before = block.header.nonce;
    tweak(&mut block);

    if let Some((i, spk)) = commitment_before {
        let untouched = block.txdata.first().and_then(|cb| cb.output.get(i)).is_some_and(|o| o.script_pubkey == spk);
        if untouched {
            update_witness_commitment(&mut block);
        }
    }
    if block.header.merkle_root == root_before
        && let Some(root) = block.compute_merkle_root()
    {
        block.header.merkle_root = root;
    }
    if block.header.nonce == nonce_before && !block.header.target().is_met_by(block.header.block_hash()) {
        grind_nonce(&mut block.header, true);
    }
    block
}

/// `submitblock`: `Ok(None)` when Core accepted it (`null`), else its
/// reason string (`bad-cb-amount`, `high-hash`, `duplicate`, `inconclusive`...).
pub fn submit_block(node: &Node, block: &Block) -> Result<Option<String>> {
    let v = node.rpc("submitblock", json!([serialize_hex(block)]))?;
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(unexpected(format!("submitblock answered {other}"))),
    }
}

// ---------------------------------------------------------------------------
// Spent outputs

/// One output spent by a block, with the context validation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentOutput {
    pub txout: TxOut,
    pub is_coinbase: bool,
    /// Height of the block that created it.
    pub creation_height: u32,
    /// Header time (`nTime`) of the block that created it.
    pub creation_time: u32,
}

impl SpentOutput {
    /// `{"txout":{"value":sats,"script_pubkey":hex},"is_coinbase":b,"creation_height":n,"creation_time":t}`
    pub fn to_json(&self) -> Value {
        json!({
            "txout": {
                "value": self.txout.value.to_sat(),
                "script_pubkey": self.txout.script_pubkey.to_hex_string(),
            },
            "is_coinbase": self.is_coinbase,
            "creation_height": self.creation_height,
            "creation_time": self.creation_time,
        })
    }
}

/// The outputs spent by every non-coinbase input of `block`, in block order,
/// looked up on `node` before the block is submitted. `block` must build on
/// the node's current tip. Outputs created earlier in the same block are
/// taken from the block itself (height = the block's, time = its header's);
/// the others come from the node's UTXO set (`gettxout` without mempool),
/// with creation time from `getblockheader`.
pub fn spent_outputs(node: &Node, block: &Block) -> Result<Vec<SpentOutput>> {
    let tip = best_block_hash(node)?;
    if block.header.prev_blockhash != tip {
        return Err(unexpected(format!(
            "block builds on {} but the node's tip is {tip}; spent outputs are looked up at the tip",
            block.header.prev_blockhash
        )));
    }
    let tip_header = node.rpc("getblockheader", json!([tip.to_string()]))?;
    let tip_height = u32::try_from(u64_field(&tip_header, "height")?).map_err(|_| unexpected("height"))?;
    let height = tip_height + 1;
    let resolver = PrevoutResolver { node, tip_height, times: HashMap::new() };
    resolver.resolve_block(&block.txdata, height, block.header.time)
}

/// [`spent_outputs`] as the JSON array kiln's validator reads.
pub fn spent_outputs_json(node: &Node, block: &Block) -> Result<Value> {
    Ok(Value::Array(spent_outputs(node, block)?.iter().map(SpentOutput::to_json).collect()))
}

/// The output `op` as the node's UTXO set holds it now (`gettxout` without
/// mempool), with its creation height and time; `Ok(None)` when it is not
/// there (spent, unconfirmed, never created, or the null outpoint).
pub fn lookup_spent_output(node: &Node, op: OutPoint) -> Result<Option<SpentOutput>> {
    if op.is_null() {
        return Ok(None);
    }
    let v = node.rpc("gettxout", json!([op.txid.to_string(), op.vout, false]))?;
    if v.is_null() {
        return Ok(None);
    }
    let tip_height = block_count(node)?;
    let mut resolver = PrevoutResolver { node, tip_height, times: HashMap::new() };
    resolver.lookup_utxo(op).map(Some)
}

/// Median time past of the node's tip (`getblockchaininfo`'s `mediantime`):
/// the nLockTime cutoff (BIP113) for a block built on it.
pub fn tip_median_time_past(node: &Node) -> Result<u32> {
    let v = node.rpc("getblockchaininfo", Value::Null)?;
    u32::try_from(u64_field(&v, "mediantime")?).map_err(|_| unexpected("mediantime out of range"))
}

/// Wraps arbitrary transactions (spending confirmed outputs or outputs of
/// earlier ones in `txs`) as [`BlockTx`]es with their fees, looked up on `node`.
pub fn with_fees(node: &Node, txs: Vec<Transaction>) -> Result<Vec<BlockTx>> {
    let tip_height = block_count(node)?;
    let resolver = PrevoutResolver { node, tip_height, times: HashMap::new() };
    let mut all = vec![Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn::default()],
        output: vec![],
    }]; // stands in for a coinbase, so resolve_block's "skip tx 0" holds
    all.extend(txs);
    let spent = resolver.resolve_block(&all, tip_height + 1, 0)?;
    let mut spent = spent.into_iter();
    let mut out = Vec::new();
    for tx in all.into_iter().skip(1) {
        let inputs: Amount = spent.by_ref().take(tx.input.len()).map(|s| s.txout.value).sum();
        let outputs: Amount = tx.output.iter().map(|o| o.value).sum();
        let fee = inputs
            .checked_sub(outputs)
            .ok_or_else(|| unexpected(format!("tx {} spends more than it has", tx.compute_txid())))?;
        out.push(BlockTx { tx, fee });
    }
    Ok(out)
}

struct PrevoutResolver<'a> {
    node: &'a Node,
    tip_height: u32,
    times: HashMap<u32, u32>,
}

impl PrevoutResolver<'_> {
    /// Spent outputs of `txdata[1..]`, in order.
    fn resolve_block(mut self, txdata: &[Transaction], height: u32, time: u32) -> Result<Vec<SpentOutput>> {
        let mut in_block: HashMap<Txid, &Transaction> = HashMap::new();
        let mut out = Vec::new();
        for (ti, tx) in txdata.iter().enumerate() {
            if ti > 0 {
                for input in &tx.input {
                    let op = input.previous_output;
                    let spent = match in_block.get(&op.txid) {
                        Some(parent) => {
                            let txout = parent
                                .output
                                .get(op.vout as usize)
                                .cloned()
                                .ok_or_else(|| unexpected(format!("tx {ti} spends {op}, which does not exist")))?;
                            SpentOutput { txout, is_coinbase: false, creation_height: height, creation_time: time }
                        }
                        None => self.lookup_utxo(op)?,
                    };
                    out.push(spent);
                }
            }
            in_block.insert(tx.compute_txid(), tx);
        }
        Ok(out)
    }

    fn lookup_utxo(&mut self, op: OutPoint) -> Result<SpentOutput> {
        let v = self.node.rpc("gettxout", json!([op.txid.to_string(), op.vout, false]))?;
        if v.is_null() {
            return Err(unexpected(format!("{op} is not in the node's UTXO set (spent, unconfirmed or unknown)")));
        }
        let confirmations = u32::try_from(u64_field(&v, "confirmations")?).map_err(|_| unexpected("confirmations"))?;
        let creation_height = (self.tip_height + 1)
            .checked_sub(confirmations)
            .ok_or_else(|| unexpected(format!("{op}: {confirmations} confirmations at height {}", self.tip_height)))?;
        let spk = str_field(field(&v, "scriptPubKey")?, "hex")?;
        let txout = TxOut {
            value: btc_to_sat(field(&v, "value")?)?,
            script_pubkey: ScriptBuf::from_bytes(hex::decode(spk).map_err(|e| unexpected(format!("spk hex: {e}")))?),
        };
        let is_coinbase = field(&v, "coinbase")?.as_bool().ok_or_else(|| unexpected("coinbase"))?;
        let creation_time = self.block_time(creation_height)?;
        Ok(SpentOutput { txout, is_coinbase, creation_height, creation_time })
    }

    fn block_time(&mut self, height: u32) -> Result<u32> {
        if let Some(t) = self.times.get(&height) {
            return Ok(*t);
        }
        let hash = self.node.rpc("getblockhash", json!([height]))?;
        let header = self.node.rpc("getblockheader", json!([hash]))?;
        let t = u32::try_from(u64_field(&header, "time")?).map_err(|_| unexpected("time"))?;
        self.times.insert(height, t);
        Ok(t)
    }
}

/// Flips one byte inside the first signature of input 0 (scriptSig for
/// P2PKH, first witness item otherwise), so the signature no longer verifies.
pub fn corrupt_signature(tx: &mut Transaction) {
    let input = &mut tx.input[0];
    if input.witness.is_empty() {
        let mut s = input.script_sig.to_bytes();
        s[5] ^= 1;
        input.script_sig = s.into();
    } else {
        let mut items: Vec<Vec<u8>> = input.witness.iter().map(<[u8]>::to_vec).collect();
        items[0][5] ^= 1;
        input.witness = Witness::from_slice(&items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_true_address_matches_core() {
        assert_eq!(op_true_address().to_string(), "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85");
    }

    #[test]
    fn coinbase_has_bip34_height_and_commitment() {
        for height in [1u32, 16, 17, 127, 128, 255, 256, 65535, 1_000_000] {
            let cb = coinbase_tx(height, Amount::from_sat(5), &op_true_script(), true);
            assert!(cb.is_coinbase());
            let len = cb.input[0].script_sig.len();
            assert!((2..=100).contains(&len), "scriptSig length {len}");
            let block = Block {
                header: Header {
                    version: BlockVersion::TWO,
                    prev_blockhash: BlockHash::all_zeros(),
                    merkle_root: TxMerkleNode::all_zeros(),
                    time: 0,
                    bits: CompactTarget::from_consensus(0x207fffff),
                    nonce: 0,
                },
                txdata: vec![cb],
            };
            // rust-bitcoin only decodes heights pushed as data (>16); small
            // ones use OP_1..OP_16 like Core's `CScript() << height`.
            if height > 16 {
                assert_eq!(block.bip34_block_height().unwrap(), u64::from(height));
            } else {
                assert_eq!(block.txdata[0].input[0].script_sig.as_bytes()[0], 0x50 + height as u8);
            }
            let mut block = block;
            // A witness tx is needed for rust-bitcoin to check the commitment.
            let mut tx = unsigned_tx(&[], vec![]);
            tx.input.push(TxIn { witness: Witness::from_slice(&[[1u8]]), ..TxIn::default() });
            block.txdata.push(tx);
            assert!(!block.check_witness_commitment());
            update_witness_commitment(&mut block);
            assert!(block.check_witness_commitment());
        }
    }

    #[test]
    fn tweak_rules() {
        let tpl = Template::from_json(json!({
            "version": 0x20000000, "rules": ["csv", "!segwit", "taproot"], "previousblockhash": "00".repeat(32),
            "transactions": [], "coinbasevalue": 5_000_000_000u64, "bits": "207fffff", "height": 200,
            "curtime": 1_700_000_000u32, "mintime": 1_600_000_000u32,
        }))
        .unwrap();
        let good = build_block(&tpl, &[], &op_true_script(), |_| ());
        assert!(good.check_merkle_root() && good.check_witness_commitment());
        assert!(good.header.target().is_met_by(good.block_hash()));
        assert_eq!(good.bip34_block_height().unwrap(), 200);
        assert_eq!(good.txdata[0].output[0].value, Amount::from_sat(5_000_000_000));

        let over = build_block(&tpl, &[], &op_true_script(), |b| b.txdata[0].output[0].value += Amount::ONE_SAT);
        assert!(over.check_merkle_root());
        assert_eq!(over.txdata[0].output[0].value, Amount::from_sat(5_000_000_001));
        assert!(over.header.target().is_met_by(over.block_hash()));

        let bad_root = build_block(&tpl, &[], &op_true_script(), |b| b.header.merkle_root = TxMerkleNode::all_zeros());
        assert_eq!(bad_root.header.merkle_root, TxMerkleNode::all_zeros());
        assert!(bad_root.header.target().is_met_by(bad_root.block_hash()));

        let high = build_block(&tpl, &[], &op_true_script(), |b| grind_nonce(&mut b.header, false));
        assert!(!high.header.target().is_met_by(high.block_hash()));
    }
}
