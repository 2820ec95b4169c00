//! The real mainnet blocks in the test data, and mutations of them.
//!
//! The spent outputs are read here with plain serde_json, independently of
//! kiln-validate's reader, so that tests of that reader compare against
//! something it did not produce.

use bitcoin::{Amount, Block, ScriptBuf, TxOut};

use crate::data::read;

/// Block `height` (866342 or 367891) and the outputs its inputs spend, in block order.
pub fn load(height: u32) -> (Block, Vec<TxOut>) {
    let raw = read(&format!("mainnet/block_{height}.raw.zst"));
    let block: Block = bitcoin::consensus::deserialize(&raw).expect("test block decodes");
    let json: serde_json::Value =
        serde_json::from_slice(&read(&format!("mainnet/block_{height}.spent_utxos.json.zst"))).expect("JSON");
    let prevouts = json
        .as_array()
        .expect("an array of spent outputs")
        .iter()
        .map(|e| TxOut {
            value: Amount::from_sat(e["txout"]["value"].as_u64().expect("value")),
            script_pubkey: ScriptBuf::from_bytes(
                hex::decode(e["txout"]["script_pubkey"].as_str().expect("script")).expect("hex"),
            ),
        })
        .collect();
    (block, prevouts)
}

/// Flips one byte inside the first signature-sized item of input 0 of `tx`
/// (witness first, then scriptSig pushes). Returns false if it found none.
pub fn flip_first_signature(tx: &mut bitcoin::Transaction) -> bool {
    let sig_len = |n: usize| (60..=73).contains(&n) || n == 64 || n == 65;
    let input = &mut tx.input[0];
    let mut items: Vec<Vec<u8>> = input.witness.iter().map(|w| w.to_vec()).collect();
    let n_items = items.len();
    if let Some(item) = items.iter_mut().take(n_items.saturating_sub(1).max(1)).find(|w| sig_len(w.len())) {
        item[10] ^= 0x01;
        input.witness = bitcoin::Witness::from_slice(&items);
        return true;
    }
    let mut bytes = input.script_sig.to_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let len = bytes[at] as usize;
        if (1..=75).contains(&len) {
            if sig_len(len) && at + 1 + len <= bytes.len() {
                bytes[at + 1 + 10] ^= 0x01;
                input.script_sig = bitcoin::ScriptBuf::from_bytes(bytes);
                return true;
            }
            at += 1 + len;
        } else {
            at += 1;
        }
    }
    false
}
