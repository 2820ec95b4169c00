use kiln::validate::{read_block, read_prevouts};
fn main() {
    let b = read_block(std::path::Path::new("tests/data/mainnet/block_866342.raw.zst")).unwrap();
    let p = read_prevouts(std::path::Path::new("tests/data/mainnet/block_866342.spent_utxos.json.zst")).unwrap();
    let mut at = 0; let mut shown = 0;
    for tx in b.txdata.iter().skip(1) { for inp in &tx.input { let o = &p[at]; at += 1;
        if o.script_pubkey.is_p2tr() && inp.witness.len() >= 2 && shown < 4 { shown += 1;
            let w: Vec<_> = inp.witness.iter().collect(); let s = w[w.len()-2];
            println!("items {} script {} bytes: {}", w.len(), s.len(), hex::encode(&s[..s.len().min(80)])); } } }
    let b = read_block(std::path::Path::new("tests/data/mainnet/block_367891.raw.zst")).unwrap();
    let p = read_prevouts(std::path::Path::new("tests/data/mainnet/block_367891.spent_utxos.json.zst")).unwrap();
    let mut at = 0; let mut shown = 0; let mut sizes = std::collections::BTreeMap::new();
    for tx in b.txdata.iter().skip(1) { for inp in &tx.input { let o = &p[at]; at += 1;
        if o.script_pubkey.is_empty() { *sizes.entry(tx.input.len()).or_insert(0) += 1; if shown < 3 { shown += 1; println!("empty spk, scriptSig {}", hex::encode(inp.script_sig.as_bytes())); } } } }
    println!("{sizes:?}");
}
