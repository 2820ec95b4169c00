//! Published vectors: BIP340, Wycheproof ECDSA (Bitcoin variant), Bitcoin
//! Core's legacy sighash cases, and the BIP341 wallet key-path spends.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut, Witness};
use kiln::validate::extract::{extract_tx, ScriptType, SigCheck};
use kiln::validate::oracle::ALL_FLAGS;
use kiln::validate::sighash;
use kiln::validate::verify::{run_check, verify_ecdsa_policy, verify_schnorr_any_len};

use crate::data::read;

#[test]
fn bip340_vectors_0_to_18() {
    let text = String::from_utf8(read("vectors/bip340-test-vectors.csv")).unwrap();
    let mut n = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (index, pk, msg, sig, expect) = (f[0], f[2], f[4], f[5], f[6] == "TRUE");
        let got = verify_schnorr_any_len(&hex::decode(sig).unwrap(), &hex::decode(pk).unwrap(), &hex::decode(msg).unwrap());
        assert_eq!(got, expect, "BIP340 vector {index}");
        n += 1;
    }
    assert_eq!(n, 19);
}

#[test]
fn wycheproof_ecdsa_secp256k1_bitcoin() {
    let v: serde_json::Value = serde_json::from_slice(&read("vectors/wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json")).unwrap();
    let mut n = 0;
    for g in v["testGroups"].as_array().unwrap() {
        let pk = hex::decode(g["publicKey"]["uncompressed"].as_str().unwrap()).unwrap();
        for t in g["tests"].as_array().unwrap() {
            let msg = hex::decode(t["msg"].as_str().unwrap()).unwrap();
            let sig = hex::decode(t["sig"].as_str().unwrap()).unwrap();
            let digest = kiln::sha256::sha256(&msg);
            let got = verify_ecdsa_policy(&sig, &pk, digest);
            let want = match t["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                other => panic!("unexpected result kind {other}"),
            };
            assert_eq!(got, want, "Wycheproof tcId {} ({})", t["tcId"], t["comment"]);
            n += 1;
        }
    }
    // The file states its own count (463; the shared README says 464).
    assert_eq!(n, v["numberOfTests"].as_u64().unwrap());
    assert!(n >= 463);
}

#[test]
fn bitcoin_core_legacy_sighash_cases() {
    let v: serde_json::Value = serde_json::from_slice(&read("vectors/bitcoin-core/sighash.json")).unwrap();
    let mut n = 0;
    for case in v.as_array().unwrap().iter().skip(1) {
        let c = case.as_array().unwrap();
        let tx: Transaction = bitcoin::consensus::deserialize(&hex::decode(c[0].as_str().unwrap()).unwrap()).unwrap();
        let script = ScriptBuf::from_bytes(hex::decode(c[1].as_str().unwrap()).unwrap());
        let index = c[2].as_u64().unwrap() as usize;
        let hash_type = c[3].as_i64().unwrap() as i32 as u32;
        let mut want = hex::decode(c[4].as_str().unwrap()).unwrap();
        want.reverse(); // the file gives display order
        let got = sighash::legacy(&tx, index, &script, hash_type).unwrap();
        assert_eq!(got.to_vec(), want, "sighash case {n}: {case}");
        n += 1;
    }
    assert_eq!(n, 500);
}

#[test]
fn bip341_wallet_key_path_spends() {
    let v: serde_json::Value = serde_json::from_slice(&read("vectors/bip341-wallet-test-vectors.json")).unwrap();
    let kps = &v["keyPathSpending"][0];
    let raw = hex::decode(kps["given"]["rawUnsignedTx"].as_str().unwrap()).unwrap();
    let unsigned: Transaction = bitcoin::consensus::deserialize(&raw).unwrap();
    let spent: Vec<TxOut> = kps["given"]["utxosSpent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| TxOut {
            value: Amount::from_sat(u["amountSats"].as_u64().unwrap()),
            script_pubkey: ScriptBuf::from_bytes(hex::decode(u["scriptPubKey"].as_str().unwrap()).unwrap()),
        })
        .collect();
    let mut n = 0;
    for case in kps["inputSpending"].as_array().unwrap() {
        let i = case["given"]["txinIndex"].as_u64().unwrap() as usize;
        let items: Vec<Vec<u8>> =
            case["expected"]["witness"].as_array().unwrap().iter().map(|w| hex::decode(w.as_str().unwrap()).unwrap()).collect();
        let mut tx = unsigned.clone();
        tx.input[i].witness = Witness::from_slice(&items);
        let checks = extract_tx(&tx, 1, &spent, ALL_FLAGS);
        let c = &checks[i];
        assert_eq!(c.script_type, ScriptType::P2trKeyPath, "input {i}");
        let SigCheck::Schnorr { msg, .. } = &c.check else { panic!("input {i}: {:?}", c.check) };
        let want = hex::decode(case["intermediary"]["sigHash"].as_str().unwrap()).unwrap();
        assert_eq!(msg.as_ref().to_vec(), want, "sighash of input {i}");
        run_check(&c.check, || bitcoin::consensus::serialize(&tx), &spent, i).unwrap();
        // A flipped signature bit must fail.
        let mut bad = items.clone();
        bad[0][5] ^= 1;
        tx.input[i].witness = Witness::from_slice(&bad);
        let c = &extract_tx(&tx, 1, &spent, ALL_FLAGS)[i];
        assert!(run_check(&c.check, || Vec::new(), &spent, i).is_err());
        n += 1;
    }
    assert_eq!(n, 7);
    let _ = bitcoin::Txid::all_zeros();
}
