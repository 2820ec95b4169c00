//! BIP340 batch verification against one-by-one libsecp256k1: published
//! vectors, every Schnorr signature of a real block, and forgeries built to
//! cancel out in a batch that has no randomizers.

use bitcoin::secp256k1::{Scalar, SecretKey, XOnlyPublicKey, schnorr::Signature};
use kiln_validate::batch::{MIN_BATCH, SchnorrItem, batch_valid, verify_all, verify_one};
use kiln_validate::extract::{extract_all, split_prevouts};
use kiln_validate::{InputCheck, verify::validate_with};

use kiln_testkit::blocks::load;
use kiln_testkit::data::read;

/// An owned BIP340 case: signature, key and message (any length).
struct Case {
    sig: Signature,
    pk: XOnlyPublicKey,
    msg: Vec<u8>,
}

impl Case {
    fn item(&self) -> SchnorrItem<'_> {
        SchnorrItem { sig: &self.sig, pk: &self.pk, msg: &self.msg }
    }
}

/// The BIP340 vectors split into valid and invalid cases; invalid vectors
/// whose key does not parse (no point has that x) cannot enter a batch.
fn bip340_cases() -> (Vec<Case>, Vec<(String, Case)>, usize) {
    let text = String::from_utf8(read("vectors/bip340-test-vectors.csv")).unwrap();
    let (mut valid, mut invalid, mut unparsable) = (Vec::new(), Vec::new(), 0);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let Ok(pk) = XOnlyPublicKey::from_slice(&hex::decode(f[2]).unwrap()) else {
            assert_eq!(f[6], "FALSE", "vector {}: a valid vector's key parses", f[0]);
            unparsable += 1;
            continue;
        };
        let case = Case {
            sig: Signature::from_slice(&hex::decode(f[5]).unwrap()).unwrap(),
            pk,
            msg: hex::decode(f[4]).unwrap(),
        };
        if f[6] == "TRUE" { valid.push(case) } else { invalid.push((f[0].to_string(), case)) }
    }
    (valid, invalid, unparsable)
}

#[test]
fn bip340_vectors_through_the_batch_verifier() {
    let (valid, invalid, unparsable) = bip340_cases();
    assert_eq!(valid.len() + invalid.len() + unparsable, 19);
    assert!(valid.iter().any(|c| c.msg.len() != 32), "vectors 15-18 have other message lengths");
    let good: Vec<SchnorrItem> = valid.iter().map(Case::item).collect();
    assert!(batch_valid(&good), "the valid vectors pass as one batch");
    for (index, bad) in &invalid {
        assert!(!verify_one(&bad.item()), "vector {index} fails one by one");
        // The invalid case at every position of a batch of valid ones (and
        // padded past MIN_BATCH so verify_all takes the batch path).
        for at in [0, good.len() / 2, good.len()] {
            let mut items: Vec<SchnorrItem> = good.iter().cycle().take(MIN_BATCH + good.len()).copied().collect();
            items.insert(at, bad.item());
            assert!(!batch_valid(&items), "vector {index} at {at} fails the batch");
            assert_eq!(verify_all(&items), vec![at], "vector {index} is named");
        }
    }
}

/// Every check of block 866342.
fn checks_866342() -> Vec<InputCheck> {
    let (b, p) = load(866342);
    extract_all(&b, &split_prevouts(&b, &p))
}

fn block_schnorr_items(checks: &[InputCheck]) -> Vec<SchnorrItem<'_>> {
    checks.iter().filter_map(|c| SchnorrItem::of(&c.check)).collect()
}

fn flip(sig: &Signature, byte: usize) -> Signature {
    let mut b = *sig.as_ref();
    b[byte] ^= 0x01;
    Signature::from_slice(&b).unwrap()
}

#[test]
fn every_schnorr_signature_of_866342_as_batches_and_one_by_one() {
    let checks = checks_866342();
    let items = block_schnorr_items(&checks);
    assert_eq!(items.len(), 2370);
    assert!(items.iter().all(verify_one));
    assert!(batch_valid(&items), "all 2,370 as one batch");
    for size in [MIN_BATCH, 100, 1000] {
        assert!(items.chunks(size).all(batch_valid), "batches of {size}");
    }

    // Bad signatures of three kinds (R changed, s changed, message changed)
    // in one batch: exactly those are named.
    let r_flipped = flip(items[7].sig, 3);
    let s_flipped = flip(items[1500].sig, 40);
    let other_msg = [0x42u8; 32];
    let mut mutated = items.clone();
    mutated[7].sig = &r_flipped;
    mutated[1500].sig = &s_flipped;
    mutated[2369].msg = &other_msg;
    assert!(!batch_valid(&mutated));
    assert_eq!(verify_all(&mutated), vec![7, 1500, 2369]);
}

/// s₁ + d and s₂ − d leave the plain sum of the two verification equations
/// unchanged, so a batch without randomizers would accept both forgeries.
#[test]
fn forgeries_that_cancel_without_randomizers_are_caught() {
    let checks = checks_866342();
    let items: Vec<SchnorrItem> = block_schnorr_items(&checks).into_iter().take(40).collect();
    let d = Scalar::from_be_bytes([0x11; 32]).unwrap();
    let s_of = |sig: &Signature| SecretKey::from_slice(&sig.as_ref()[32..]).unwrap();
    let with_s = |sig: &Signature, s: SecretKey| {
        let mut b = *sig.as_ref();
        b[32..].copy_from_slice(&s.secret_bytes());
        Signature::from_slice(&b).unwrap()
    };
    let plus = with_s(items[0].sig, s_of(items[0].sig).add_tweak(&d).unwrap());
    let minus = with_s(items[1].sig, s_of(items[1].sig).negate().add_tweak(&d).unwrap().negate());
    let mut forged = items.clone();
    forged[0].sig = &plus;
    forged[1].sig = &minus;
    assert!(!verify_one(&forged[0]) && !verify_one(&forged[1]));
    assert!(!batch_valid(&forged));
    assert_eq!(verify_all(&forged), vec![0, 1]);
}

/// The pipeline with and without batching reports the same bad inputs.
#[test]
fn batched_and_one_by_one_pipelines_agree() {
    let (mut b, p) = load(866342);
    let mut flipped = 0;
    for tx in b.txdata.iter_mut().skip(1).step_by(7) {
        // Key-path spends only: a one-element witness of a 64/65-byte signature.
        if tx.input[0].witness.len() == 1 && matches!(tx.input[0].witness[0].len(), 64 | 65) {
            let mut w: Vec<Vec<u8>> = tx.input[0].witness.to_vec();
            w[0][10] ^= 0x80;
            tx.input[0].witness = bitcoin::Witness::from_slice(&w);
            flipped += 1;
        }
    }
    assert!(flipped > 20, "{flipped}");
    let batched = validate_with(&b, &p, 2, true).unwrap();
    let one = validate_with(&b, &p, 2, false).unwrap();
    assert_eq!(batched.bad_inputs, one.bad_inputs);
    assert_eq!(batched.bad_inputs.len(), flipped);
    assert!(batched.bad_inputs.iter().all(|x| x.script_type == "p2tr-keypath" || x.reason.contains("Schnorr")));
}
