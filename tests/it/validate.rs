//! Block validation on real mainnet blocks with their spent outputs.

use std::path::PathBuf;

use bitcoin::{Amount, Block, TxOut};
use kiln::validate::{read_block, read_prevouts, validate, Report};

use crate::data::path;

pub fn load(height: u32) -> (Block, Vec<TxOut>) {
    let b = read_block(&path(&format!("mainnet/block_{height}.raw.zst"))).unwrap();
    let p = read_prevouts(&path(&format!("mainnet/block_{height}.spent_utxos.json.zst"))).unwrap();
    (b, p)
}

fn count(r: &Report, t: &str) -> usize {
    r.inputs_by_type.get(t).copied().unwrap_or(0)
}

#[test]
fn block_866342_is_valid_and_every_input_is_accounted_for() {
    let (b, p) = load(866342);
    let r = validate(&b, &p, 2).unwrap();
    eprintln!("{:#?}", r.inputs_by_type);
    assert!(r.bad_inputs.is_empty(), "{:#?}", &r.bad_inputs[..r.bad_inputs.len().min(5)]);
    assert!(r.is_valid(), "{:?}", r.block);
    assert_eq!(r.transactions, 4864);
    assert_eq!(r.inputs, 7972);
    assert_eq!(r.inputs_by_type.values().sum::<usize>(), 7972);
    assert_eq!(r.block.height(), Some(866342));
    // The spent-type census of the shared data's README.
    assert_eq!(count(&r, "p2wpkh"), 4374);
    assert_eq!(count(&r, "p2tr-keypath") + count(&r, "interpreter:p2tr-script") + count(&r, "p2tr-scriptpath-checksig"), 2373);
    // 147 of the 150 script-path spends are inscription-style single-key leaves;
    // the other three are other scripts, for the interpreter.
    assert_eq!(count(&r, "p2tr-scriptpath-checksig"), 147);
    assert_eq!(count(&r, "interpreter:p2tr-script"), 3);
    assert!(count(&r, "p2pkh") >= 900, "905 P2PKH spends, allowing a few odd keys");
}

#[test]
fn block_367891_is_valid_and_every_input_is_accounted_for() {
    let (b, p) = load(367891);
    let r = validate(&b, &p, 2).unwrap();
    eprintln!("{:#?}", r.inputs_by_type);
    assert!(r.bad_inputs.is_empty(), "{:#?}", &r.bad_inputs[..r.bad_inputs.len().min(5)]);
    assert!(r.is_valid());
    assert_eq!(r.inputs, 20_817);
    assert_eq!(r.inputs_by_type.values().sum::<usize>(), 20_817);
}

#[allow(dead_code)]
pub fn unused(_: PathBuf, _: Amount) {}
