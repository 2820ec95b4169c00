use kiln_store::{BlockStore, StoreError, StoreOptions, data_file_name};
use kiln_testkit::bitcoin::hashes::Hash;
use kiln_testkit::bitcoin::{Block, BlockHash, Transaction, TxOut, absolute, transaction};

use crate::{TempDir, mainnet, synth};

#[test]
fn mainnet_blocks_round_trip_and_survive_reopen() {
    let dir = TempDir::new("mainnet");
    let (raw_a, a) = mainnet(866342);
    let (raw_b, b) = mainnet(367891);
    {
        let store = BlockStore::open(dir.path()).unwrap();
        assert!(store.is_empty().unwrap());
        assert_eq!(store.tip().unwrap(), None);
        assert_eq!(store.put(&b).unwrap(), b.block_hash());
        assert_eq!(store.put_tip(&a, 866342).unwrap(), a.block_hash());
        assert_eq!(store.len().unwrap(), 2);
        assert_eq!(store.get(&a.block_hash()).unwrap().unwrap(), a);
        assert_eq!(store.get_raw(&b.block_hash()).unwrap().unwrap(), raw_b);
        assert_eq!(store.tip().unwrap(), Some((a.block_hash(), 866342)));
        // A second put of a stored block writes nothing.
        let end = store.location(&a.block_hash()).unwrap().unwrap().end();
        store.put(&a).unwrap();
        assert_eq!(store.len().unwrap(), 2);
        let size = std::fs::metadata(dir.path().join(data_file_name(0))).unwrap().len();
        assert_eq!(size, end);
    }
    let store = BlockStore::open(dir.path()).unwrap();
    assert_eq!(store.len().unwrap(), 2);
    assert_eq!(store.get_raw(&a.block_hash()).unwrap().unwrap(), raw_a);
    assert_eq!(store.get(&b.block_hash()).unwrap().unwrap(), b);
    assert!(store.contains(&b.block_hash()).unwrap());
    let loc = store.location(&a.block_hash()).unwrap().unwrap();
    assert_eq!(loc.height, Some(866342));
    assert_eq!(store.location(&b.block_hash()).unwrap().unwrap().height, None);
    assert_eq!(store.tip().unwrap(), Some((a.block_hash(), 866342)));
    let unknown = BlockHash::from_byte_array([7; 32]);
    assert!(store.get(&unknown).unwrap().is_none());
    assert!(!store.contains(&unknown).unwrap());
    // The tip moves to a stored block (a reorg), not to an unknown one.
    store.set_tip(&b.block_hash(), 367891).unwrap();
    assert_eq!(store.tip().unwrap(), Some((b.block_hash(), 367891)));
    assert!(matches!(
        store.set_tip(&unknown, 1),
        Err(StoreError::UnknownBlock(h)) if h == unknown
    ));
    assert_eq!(store.tip().unwrap(), Some((b.block_hash(), 367891)));
}

#[test]
fn many_small_blocks_rotate_across_files() {
    let dir = TempDir::new("rotate");
    let opts = StoreOptions { max_file_size: 64 << 10 };
    let n = 300;
    {
        let store = BlockStore::open_with(dir.path(), opts.clone()).unwrap();
        for i in 0..n {
            store.put(&synth(i)).unwrap();
        }
        assert_eq!(store.len().unwrap(), n);
    }
    let store = BlockStore::open_with(dir.path(), opts.clone()).unwrap();
    let mut files = std::collections::BTreeSet::new();
    for i in 0..n {
        let b = synth(i);
        let loc = store.location(&b.block_hash()).unwrap().unwrap();
        assert!(loc.end() <= opts.max_file_size, "{loc:?}");
        files.insert(loc.file);
        assert_eq!(store.get(&b.block_hash()).unwrap().unwrap(), b);
    }
    assert!(files.len() > 3, "{files:?}");
    // Files are filled in order: every file but the last is a prefix of
    // records with no gaps, so its size is its last record's end.
    for &f in files.iter() {
        let size = std::fs::metadata(dir.path().join(data_file_name(f))).unwrap().len();
        assert!(size <= opts.max_file_size);
    }
    // Appending continues after reopening.
    for i in n..n + 50 {
        store.put(&synth(i)).unwrap();
    }
    drop(store);
    let store = BlockStore::open_with(dir.path(), opts).unwrap();
    assert_eq!(store.len().unwrap(), n + 50);
    for i in (0..n + 50).step_by(7) {
        assert_eq!(store.get(&synth(i).block_hash()).unwrap().unwrap(), synth(i));
    }
}

#[test]
fn a_block_larger_than_a_file_gets_its_own_file() {
    let dir = TempDir::new("bigfile");
    let store = BlockStore::open_with(dir.path(), StoreOptions { max_file_size: 1000 }).unwrap();
    let (_, a) = mainnet(866342);
    store.put(&synth(1)).unwrap();
    store.put(&a).unwrap();
    store.put(&synth(2)).unwrap();
    let files: Vec<u32> = [synth(1), a.clone(), synth(2)]
        .iter()
        .map(|b| store.location(&b.block_hash()).unwrap().unwrap().file)
        .collect();
    assert_eq!(files, [0, 1, 2]);
    assert_eq!(store.get(&a.block_hash()).unwrap().unwrap(), a);
}

#[test]
fn blocks_over_four_megabytes_are_refused() {
    let dir = TempDir::new("toolarge");
    let store = BlockStore::open(dir.path()).unwrap();
    let mut block: Block = synth(3);
    block.txdata.push(Transaction {
        version: transaction::Version::ONE,
        lock_time: absolute::LockTime::ZERO,
        input: vec![],
        output: vec![TxOut { value: kiln_testkit::bitcoin::Amount::ZERO, script_pubkey: vec![0x6a; 4_000_001].into() }],
    });
    assert!(matches!(store.put(&block), Err(StoreError::TooLarge { .. })));
    assert_eq!(store.len().unwrap(), 0);
    store.put(&synth(4)).unwrap();
    assert_eq!(store.get(&synth(4).block_hash()).unwrap().unwrap(), synth(4));
}

/// Headers recorded with their heights come back lowest first, checked
/// against their hashes, after a reopen; recording one again changes nothing.
#[test]
fn headers_are_kept_across_reopen() {
    let dir = TempDir::new("headers");
    let blocks: Vec<Block> = [866342u32, 367891].iter().map(|&h| mainnet(h).1).collect();
    {
        let store = BlockStore::open(dir.path()).unwrap();
        assert!(store.headers().unwrap().is_empty());
        store.put_headers(&[(blocks[0].header, 866342), (blocks[1].header, 367891)]).unwrap();
        store.put_headers(&[(blocks[1].header, 367891)]).unwrap();
        store.put(&blocks[1]).unwrap();
    }
    let store = BlockStore::open(dir.path()).unwrap();
    let got = store.headers().unwrap();
    assert_eq!(got, vec![(blocks[1].header, 367891), (blocks[0].header, 866342)]);
    assert_eq!(store.hashes().unwrap(), vec![blocks[1].block_hash()]);
}

/// One batch of 200 blocks across several files, with the tip, in one
/// commit; a batch naming a tip that is not stored commits nothing and the
/// store goes on; repeats inside a batch are written once.
#[test]
fn batches_rotate_commit_once_and_are_all_or_nothing() {
    let dir = TempDir::new("batch");
    let opts = StoreOptions { max_file_size: 64 << 10 };
    let blocks: Vec<Block> = (0..200).map(synth).collect();
    {
        let store = BlockStore::open_with(dir.path(), opts.clone()).unwrap();
        let mut refs: Vec<&Block> = blocks.iter().collect();
        refs.push(&blocks[3]);
        store.put_batch(&refs, Some((blocks[199].block_hash(), 199))).unwrap();
        assert_eq!(store.len().unwrap(), 200);
        assert_eq!(store.tip().unwrap(), Some((blocks[199].block_hash(), 199)));
        // An unknown tip: refused, nothing of this batch committed.
        let extra = synth(1000);
        let r = store.put_batch(&[&extra], Some((synth(1001).block_hash(), 1)));
        assert!(matches!(r, Err(StoreError::UnknownBlock(_))), "{r:?}");
        assert!(!store.contains(&extra.block_hash()).unwrap());
        store.put(&extra).unwrap();
    }
    let store = BlockStore::open_with(dir.path(), opts).unwrap();
    assert_eq!(store.len().unwrap(), 201);
    let files: std::collections::BTreeSet<u32> =
        blocks.iter().map(|b| store.location(&b.block_hash()).unwrap().unwrap().file).collect();
    assert!(files.len() > 3, "{files:?}");
    for b in blocks.iter().chain([&synth(1000)]) {
        assert_eq!(&store.get(&b.block_hash()).unwrap().unwrap(), b);
    }
    assert_eq!(store.location(&blocks[199].block_hash()).unwrap().unwrap().height, Some(199));
}
