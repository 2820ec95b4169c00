use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;

use kiln_store::record::{self, HEADER_LEN};
use kiln_store::{BlockStore, StoreError, StoreOptions, data_file_name};
use kiln_testkit::bitcoin::hashes::Hash;

use crate::{TempDir, mainnet, synth};

#[test]
fn a_torn_tail_after_the_last_commit_is_truncated_on_open() {
    let dir = TempDir::new("tail");
    let blocks: Vec<_> = (0..20).map(synth).collect();
    let file0 = dir.path().join(data_file_name(0));
    let committed_end;
    {
        let store = BlockStore::open(dir.path()).unwrap();
        for b in &blocks {
            store.put(b).unwrap();
        }
        store.put_tip(&blocks[19], 19).unwrap();
        committed_end = std::fs::metadata(&file0).unwrap().len();
    }
    // What a crash between the append and the commit leaves: a whole record
    // header and half a payload of a block the index never heard of.
    let lost = synth(1000);
    let payload = kiln_testkit::bitcoin::consensus::serialize(&lost);
    let header = record::header(&lost.block_hash().to_byte_array(), &payload);
    let mut f = OpenOptions::new().append(true).open(&file0).unwrap();
    f.write_all(&header).unwrap();
    f.write_all(&payload[..payload.len() / 2]).unwrap();
    drop(f);
    // And a rotation whose first record was never committed.
    std::fs::write(dir.path().join(data_file_name(1)), b"KBLK garbage").unwrap();

    let store = BlockStore::open(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&file0).unwrap().len(), committed_end);
    assert!(!dir.path().join(data_file_name(1)).exists());
    assert_eq!(store.len().unwrap(), 20);
    assert!(!store.contains(&lost.block_hash()).unwrap());
    for b in &blocks {
        assert_eq!(store.get(&b.block_hash()).unwrap().unwrap(), *b);
    }
    assert_eq!(store.tip().unwrap(), Some((blocks[19].block_hash(), 19)));
    // New puts go where the tail was, and read back.
    store.put(&lost).unwrap();
    let loc = store.location(&lost.block_hash()).unwrap().unwrap();
    assert_eq!(loc.offset, committed_end);
    drop(store);
    let store = BlockStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&lost.block_hash()).unwrap().unwrap(), lost);
    assert_eq!(store.len().unwrap(), 21);
}

#[test]
fn a_flipped_byte_is_an_error_naming_the_block() {
    let dir = TempDir::new("flip");
    let (_, a) = mainnet(866342);
    let others: Vec<_> = (0..3).map(synth).collect();
    let store = BlockStore::open(dir.path()).unwrap();
    store.put(&others[0]).unwrap();
    store.put(&a).unwrap();
    store.put(&others[1]).unwrap();
    let loc = store.location(&a.block_hash()).unwrap().unwrap();
    let path = dir.path().join(data_file_name(loc.file));
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let flip = |at: u64| {
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    };
    let hash = a.block_hash();
    // Positions: in a transaction, in the header's hash field, in the magic.
    for at in [loc.offset + HEADER_LEN as u64 + loc.len as u64 / 2, loc.offset + 9, loc.offset, loc.offset + 5] {
        flip(at);
        for result in [store.get(&hash).map(|_| ()), store.get_raw(&hash).map(|_| ())] {
            match result {
                Err(e @ StoreError::Corrupt { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&hash.to_string()), "{msg}");
                }
                other => panic!("flip at {at}: {other:?}"),
            }
        }
        flip(at);
        assert_eq!(store.get(&hash).unwrap().unwrap(), a);
    }
    // A flipped byte elsewhere never disturbs the other blocks.
    flip(loc.offset + HEADER_LEN as u64 + 100);
    assert!(store.get(&hash).is_err());
    assert_eq!(store.get(&others[0].block_hash()).unwrap().unwrap(), others[0]);
    assert_eq!(store.get(&others[1].block_hash()).unwrap().unwrap(), others[1]);
}

#[test]
fn an_absurd_index_length_is_refused_without_allocating() {
    let dir = TempDir::new("absurd");
    let store = BlockStore::open(dir.path()).unwrap();
    let b = synth(5);
    store.put(&b).unwrap();
    // Overwrite the index entry: file 0, offset 0, length u32::MAX - 1.
    let blocks: redb::TableDefinition<[u8; 32], [u8; 20]> = redb::TableDefinition::new("blocks");
    let tx = store.database().begin_write().unwrap();
    {
        let mut t = tx.open_table(blocks).unwrap();
        let mut v = [0u8; 20];
        v[12..16].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
        v[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        t.insert(b.block_hash().to_byte_array(), v).unwrap();
    }
    tx.commit().unwrap();
    let err = store.get(&b.block_hash()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("over the limit"), "{err}");
}

#[test]
fn lost_acknowledged_data_is_an_error_not_a_repair() {
    let dir = TempDir::new("lost");
    {
        let store = BlockStore::open(dir.path()).unwrap();
        for i in 0..5 {
            store.put(&synth(i)).unwrap();
        }
    }
    let file0 = dir.path().join(data_file_name(0));
    let len = std::fs::metadata(&file0).unwrap().len();
    OpenOptions::new().write(true).open(&file0).unwrap().set_len(len - 1).unwrap();
    let err = BlockStore::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::DataMissing { have, need, .. } if have == len - 1 && need == len), "{err}");
}

#[test]
fn block_files_without_an_index_are_refused() {
    let dir = TempDir::new("noindex");
    {
        let store = BlockStore::open_with(dir.path(), StoreOptions::default()).unwrap();
        store.put(&synth(1)).unwrap();
    }
    std::fs::remove_file(dir.path().join("index.redb")).unwrap();
    let err = BlockStore::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::IndexMissing(_)), "{err}");
    // Nothing was deleted or created.
    assert!(dir.path().join(data_file_name(0)).exists());
    assert!(!dir.path().join("index.redb").exists());
}

#[test]
fn a_second_open_of_the_same_store_is_refused() {
    let dir = TempDir::new("twice");
    let _store = BlockStore::open(dir.path()).unwrap();
    let err = BlockStore::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
}
