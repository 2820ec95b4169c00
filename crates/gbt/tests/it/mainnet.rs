//! The template of mainnet block 866342: with the real coinbase, kiln's
//! merkle root is the real header's; with a coinbase kiln builds, the witness
//! commitment is the template's and the block passes kiln's validation
//! (every rule and every script, against the real spent outputs), all but
//! the proof of work, which only a miner's luck supplies.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Block, ScriptBuf, Transaction};
use serde_json::Value;

use kiln_gbt::template::{EXTRANONCE2_SIZE, compute_witness_commitment};
use kiln_gbt::{CheckError, Template, TemplateError};
use kiln_testkit::data::{path, read};
use kiln_validate::rules::Network;
use kiln_validate::{Options, read_spent, validate_block};

fn data() -> Value {
    serde_json::from_slice(&read("gbt/block_866342_as_getblocktemplate.json.zst")).unwrap()
}

fn payout() -> ScriptBuf {
    kiln_gbt::chain::payout_script("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", bitcoin::Network::Bitcoin).unwrap()
}

#[test]
fn real_coinbase_gives_the_real_merkle_root_and_commitment() {
    let d = data();
    let t = Template::from_json(&d["template"]).unwrap();
    assert_eq!(t.height, 866342);
    assert_eq!(t.transactions.len(), 4863);
    assert_eq!(t.coinbase_value, 317_526_183);
    let cb: Transaction =
        deserialize(&hex::decode(d["real_block"]["coinbase_tx_hex"].as_str().unwrap()).unwrap()).unwrap();
    let header: bitcoin::block::Header =
        deserialize(&hex::decode(d["real_block"]["header_hex"].as_str().unwrap()).unwrap()).unwrap();
    let mut leaves = vec![cb.compute_txid().to_byte_array()];
    leaves.extend_from_slice(&t.txids);
    assert_eq!(kiln_work::merkle::merkle_root(&leaves).unwrap(), header.merkle_root.to_byte_array());
    // The real coinbase carries the template's commitment.
    let wc = t.witness_commitment.clone().unwrap();
    assert!(cb.output.iter().any(|o| o.script_pubkey == wc));
    assert_eq!(header.prev_blockhash.to_byte_array(), t.prev_hash);
    assert_eq!(header.bits.to_consensus(), t.bits);
    // The real block, as kiln assembles it, passes the full pre-submit check.
    let block = Block { header, txdata: [vec![cb], t.transactions.clone()].concat() };
    assert_eq!(block.block_hash().to_string(), d["real_block"]["block_hash_display"].as_str().unwrap());
    t.check(&block, Network::Mainnet).unwrap();
}

#[test]
fn kiln_coinbase_block_is_valid_but_for_the_proof_of_work() {
    let d = data();
    let t = Template::from_json(&d["template"]).unwrap();
    let job = t.job("1".into(), &payout(), b"/kiln/", [1, 2, 3, 4], true).unwrap();
    let en2 = [7u8; EXTRANONCE2_SIZE];
    let header = job.header(&en2, job.ntime, job.version);
    let block = t.assemble(&job, &en2, &header).unwrap();
    // The commitment kiln computes is the template's, and it is in the coinbase.
    assert_eq!(Some(compute_witness_commitment(&t.transactions)), t.witness_commitment);
    assert_eq!(block.txdata[0].output[1].script_pubkey, t.witness_commitment.clone().unwrap());
    assert_eq!(block.header.merkle_root, block.compute_merkle_root().unwrap());
    assert_eq!(block.bip34_block_height().unwrap(), 866342);
    t.check_except_pow(&block, Network::Mainnet).unwrap();
    assert_eq!(t.check(&block, Network::Mainnet), Err(CheckError::ProofOfWork));

    // Kiln's whole validation with the real spent outputs: every rule and
    // every one of the 7,972 inputs' scripts.
    let p = read_spent(&path("mainnet/block_866342.spent_utxos.json.zst")).unwrap();
    let opts = Options { height: Some(866342), ..Options::default() };
    let r = validate_block(&block, &p.txouts, Some(&p.origins), &opts).unwrap();
    assert!(r.rules.violations.is_empty(), "{:?}", r.rules.violations);
    assert!(r.bad_inputs.is_empty());
    assert!(r.block.merkle_ok);
    assert!(!r.block.pow_ok);

    // What the re-check catches: a coinbase paying one satoshi more, a
    // transaction dropped, a wrong height.
    let mut more = block.clone();
    more.txdata[0].output[0].value += bitcoin::Amount::from_sat(1);
    more.header.merkle_root = more.compute_merkle_root().unwrap();
    assert!(matches!(t.check_except_pow(&more, Network::Mainnet), Err(CheckError::CoinbaseValue { .. })));
    let mut fewer = block.clone();
    fewer.txdata.pop();
    fewer.header.merkle_root = fewer.compute_merkle_root().unwrap();
    assert!(matches!(
        t.check_except_pow(&fewer, Network::Mainnet),
        Err(CheckError::WitnessCommitment(_) | CheckError::Transactions)
    ));
    let mut stale = block.clone();
    stale.header.merkle_root = bitcoin::TxMerkleNode::all_zeros();
    assert_eq!(t.check_except_pow(&stale, Network::Mainnet), Err(CheckError::MerkleRoot));
    // The serialized block round-trips (what submitblock receives).
    assert_eq!(deserialize::<Block>(&serialize(&block)).unwrap(), block);
}

#[test]
fn broken_templates_are_refused_with_reasons() {
    let d = data();
    let mut v = d["template"].clone();
    v["default_witness_commitment"] = Value::from(format!("6a24aa21a9ed{}", "00".repeat(32)));
    assert!(matches!(Template::from_json(&v), Err(TemplateError::WitnessCommitment { .. })));
    let mut v = d["template"].clone();
    v["transactions"][5]["txid"] = Value::from("00".repeat(32));
    assert!(matches!(Template::from_json(&v), Err(TemplateError::Transaction { index: 6, .. })));
    let mut v = d["template"].clone();
    v["rules"].as_array_mut().unwrap().push(Value::from("!newfork"));
    assert_eq!(Template::from_json(&v).unwrap_err(), TemplateError::UnknownRule("newfork".into()));
    let mut v = d["template"].clone();
    v["rules"].as_array_mut().unwrap().push(Value::from("!signet"));
    assert_eq!(Template::from_json(&v).unwrap_err(), TemplateError::Signet);
    let mut v = d["template"].clone();
    v.as_object_mut().unwrap().remove("coinbasevalue");
    assert_eq!(Template::from_json(&v).unwrap_err(), TemplateError::Field("coinbasevalue"));
    let mut v = d["template"].clone();
    v["transactions"][0]["data"] = Value::from("00");
    assert!(matches!(Template::from_json(&v), Err(TemplateError::Transaction { index: 1, .. })));
}
