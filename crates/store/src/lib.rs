//! kiln's block store (issue 14): blocks appended to `blkNNNNN.dat` files,
//! an index in [redb](https://www.redb.org), crash-safe by one ordering rule.
//!
//! # Layout
//!
//! A store is a directory holding `index.redb` and `blk00000.dat`,
//! `blk00001.dat`, … Each block is one record (see [`record`]: magic,
//! length, block hash, SHA-256 of the payload, then the consensus
//! serialization). A file is closed for appending once the next record would
//! take it past [`StoreOptions::max_file_size`] (128 MiB by default; a single
//! block larger than that still gets a file of its own).
//!
//! The index has two tables: `blocks` (block hash → file, offset, length,
//! height if known) and `meta` (`write_pos`: the data file being appended
//! to and the end of its last indexed record; `tip`: the best block's hash
//! and height).
//!
//! # Crash safety
//!
//! "Acknowledged" means [`BlockStore::put`] (or [`BlockStore::put_tip`])
//! returned `Ok`. A `put`:
//!
//! 1. writes the record at the committed write position (possibly in a
//!    freshly created next file, whose directory entry is fsynced too),
//! 2. fsyncs the data file (`fdatasync`),
//! 3. then commits, in **one** redb transaction with immediate durability,
//!    the index entry, the new write position and (for `put_tip`) the tip.
//!
//! So every block the index knows is on disk before the index knows it, the
//! tip never names a block the index lacks, and whatever a crash leaves
//! after the committed write position was never acknowledged. The rule on
//! [`BlockStore::open`] is exact: **the committed `write_pos` is the
//! truth**. The current data file is truncated to its committed end (a crash
//! between steps 1 and 3, or a torn write), and any data file numbered above
//! the current one is deleted (a rotation whose first record was never
//! committed). A current file *shorter* than its committed end means the
//! filesystem lost acknowledged data: that is an error
//! ([`StoreError::DataMissing`]), never silently repaired. Data files without
//! an index are refused ([`StoreError::IndexMissing`]) rather than deleted.
//!
//! Reads go only through the index, so an orphan tail is never returned, and
//! every record read is checked (magic, length, block hash, payload
//! checksum, a full decode whose hash must match) before a block is handed
//! out: a flipped byte is a [`StoreError::Corrupt`] naming the block, not a
//! panic or a wrong block. Lengths above [`record::MAX_BLOCK_LEN`] are
//! refused before anything is allocated for them.
//!
//! After an fsync or commit error the store refuses further writes
//! ([`StoreError::Poisoned`]) until it is reopened: the outcome of that commit
//! is unknown, and reopening reconciles the files with what redb committed.
//!
//! # Why redb
//!
//! redb is pure Rust (no C/C++ toolchain, nothing like RocksDB's build),
//! ACID with copy-on-write B-trees and a checksummed commit, so a crash
//! leaves the last committed transaction, with no write-ahead log to replay
//! and no background threads or compaction competing with validation; it is
//! a single file with a stable (versioned, upgrade-checked) format, takes a
//! file lock so two kilns cannot open one store, and is actively maintained.
//! fjall (an LSM tree) would write faster but brings background compaction
//! and journal recovery, which a block index (few, large, append-ordered
//! writes) does not need.
//!
//! # The UTXO set later
//!
//! The UTXO set will be another table in the same `index.redb` (outpoint →
//! coin). Connecting a block can then commit its spent/created coins, the
//! block's undo data location and the new tip in the same transaction as
//! they belong together, so the chain state is always one consistent
//! snapshot; [`BlockStore::database`] exposes the database for that.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

pub use record::Location;
use record::{HEADER_LEN, MAX_BLOCK_LEN};

const BLOCKS: TableDefinition<[u8; 32], [u8; 20]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Validated headers (hash → 80-byte header and 4-byte height), so a
/// restarted node has its header chain back without asking peers again.
const HEADERS: TableDefinition<[u8; 32], [u8; 84]> = TableDefinition::new("headers");
/// Blocks found invalid (hash → nothing), so a restart does not fetch and
/// check them again.
const INVALID: TableDefinition<[u8; 32], ()> = TableDefinition::new("invalid");
const WRITE_POS: &str = "write_pos";
const TIP: &str = "tip";
const INDEX_FILE: &str = "index.redb";

/// Everything that can go wrong, each naming what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("index database: {0}")]
    Db(#[from] redb::Error),
    #[error("{0} holds block files but no {INDEX_FILE}; refusing to treat it as empty")]
    IndexMissing(PathBuf),
    #[error("{path} is {have} bytes but the index covers {need}: acknowledged data is missing")]
    DataMissing { path: PathBuf, have: u64, need: u64 },
    #[error("block {hash} at {path}:{offset} is corrupt: {reason}")]
    Corrupt { hash: BlockHash, path: PathBuf, offset: u64, reason: String },
    #[error("block {hash} is {len} bytes, over the {MAX_BLOCK_LEN}-byte limit")]
    TooLarge { hash: BlockHash, len: usize },
    #[error("block {0} is not in the store")]
    UnknownBlock(BlockHash),
    #[error("index metadata {key:?} is malformed")]
    BadMeta { key: &'static str },
    #[error("an earlier fsync or commit failed; reopen the store")]
    Poisoned,
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { op, path: path.to_path_buf(), source }
}

/// Tunables; the defaults are for a real chain.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A data file takes no record that would end past this size, unless it
    /// is empty. Default 128 MiB (Core's block files are 128 MiB too).
    pub max_file_size: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_file_size: 128 << 20 }
    }
}

struct Writer {
    file_no: u32,
    /// The committed end of `file_no`: where the next record goes.
    end: u64,
    file: File,
    poisoned: bool,
}

/// The block store. Reads take `&self` and may run from several threads;
/// writes are serialized internally.
pub struct BlockStore {
    dir: PathBuf,
    db: Database,
    opts: StoreOptions,
    writer: Mutex<Writer>,
}

/// `blkNNNNN.dat` for file number `n`.
pub fn data_file_name(n: u32) -> String {
    format!("blk{n:05}.dat")
}

fn parse_data_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("blk")?.strip_suffix(".dat")?;
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

fn encode_pos(file: u32, end: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&file.to_le_bytes());
    b[4..12].copy_from_slice(&end.to_le_bytes());
    b
}

impl BlockStore {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<BlockStore, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens the store, applying the crash rule described in the crate
    /// docs: the committed write position is the truth.
    pub fn open_with(dir: impl AsRef<Path>, opts: StoreOptions) -> Result<BlockStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let index_path = dir.join(INDEX_FILE);
        let existed = index_path.exists();
        // Opening the database takes its file lock before any data file is
        // touched, so a second process cannot truncate our files.
        let db = Database::create(&index_path).map_err(db_err)?;
        let mut data_files = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_data_file_name) {
                data_files.push(n);
            }
        }
        if !existed && !data_files.is_empty() {
            drop(db);
            let _ = fs::remove_file(&index_path);
            return Err(StoreError::IndexMissing(dir));
        }
        let (file_no, end) = {
            let tx = db.begin_write().map_err(db_err)?;
            let pos = {
                tx.open_table(BLOCKS).map_err(db_err)?;
                tx.open_table(HEADERS).map_err(db_err)?;
                tx.open_table(INVALID).map_err(db_err)?;
                let meta = tx.open_table(META).map_err(db_err)?;
                match meta.get(WRITE_POS).map_err(db_err)? {
                    None => (0, 0),
                    Some(v) => {
                        let b: [u8; 12] = v.value().try_into().map_err(|_| StoreError::BadMeta { key: WRITE_POS })?;
                        (
                            u32::from_le_bytes(b[0..4].try_into().unwrap()),
                            u64::from_le_bytes(b[4..12].try_into().unwrap()),
                        )
                    }
                }
            };
            tx.commit().map_err(db_err)?;
            pos
        };
        let mut changed = false;
        for &n in data_files.iter().filter(|&&n| n > file_no) {
            let p = dir.join(data_file_name(n));
            fs::remove_file(&p).map_err(io_err("remove uncommitted", &p))?;
            changed = true;
        }
        let path = dir.join(data_file_name(file_no));
        let file = OpenOptions::new().read(true).write(true).create(end == 0).truncate(false).open(&path).map_err(
            |source| {
                if source.kind() == io::ErrorKind::NotFound {
                    StoreError::DataMissing { path: path.clone(), have: 0, need: end }
                } else {
                    io_err("open", &path)(source)
                }
            },
        )?;
        let have = file.metadata().map_err(io_err("stat", &path))?.len();
        if have < end {
            return Err(StoreError::DataMissing { path, have, need: end });
        }
        if have > end {
            file.set_len(end).map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("fsync", &path))?;
        }
        if changed || !data_files.contains(&file_no) {
            sync_dir(&dir)?;
        }
        Ok(BlockStore { dir, db, opts, writer: Mutex::new(Writer { file_no, end, file, poisoned: false }) })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index database, for tables that must commit together with it
    /// (the UTXO set). Do not write the `blocks` or `meta` tables.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Stores `block` with no height and leaves the tip alone. Returns once
    /// the block is durable (acknowledged). Storing a block already present
    /// writes nothing.
    pub fn put(&self, block: &Block) -> Result<BlockHash, StoreError> {
        self.put_batch(&[block], None)?;
        Ok(block.block_hash())
    }

    /// Stores `block` at `height` and makes it the tip, in the same
    /// transaction as its index entry.
    pub fn put_tip(&self, block: &Block, height: u32) -> Result<BlockHash, StoreError> {
        let hash = block.block_hash();
        self.put_batch(&[block], Some((hash, height)))?;
        Ok(hash)
    }

    /// Stores several blocks with **one** data fsync and **one** index
    /// commit (what makes a node's download fast: per-block fsyncs cost
    /// more than the blocks), and, when `tip` is given, makes that block
    /// (one of these or one already stored) the tip in the same
    /// transaction. All or nothing: until it returns `Ok`, none of them is
    /// acknowledged. Blocks already stored, or repeated, are written once.
    ///
    /// # Errors
    /// I/O and database errors (the store is then poisoned, as for `put`),
    /// a block over the size limit, or a `tip` that is not stored.
    pub fn put_batch(&self, blocks: &[&Block], tip: Option<(BlockHash, u32)>) -> Result<(), StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if w.poisoned {
            return Err(StoreError::Poisoned);
        }
        // Serialize and check sizes before anything is written; blocks
        // already indexed (one read transaction for the batch) or repeated
        // are skipped.
        let mut records: Vec<([u8; 32], Vec<u8>)> = Vec::with_capacity(blocks.len());
        let mut seen = std::collections::HashSet::with_capacity(blocks.len());
        let read = self.db.begin_read().map_err(db_err)?;
        let indexed = read.open_table(BLOCKS).map_err(db_err)?;
        for block in blocks {
            let hash = block.block_hash();
            let key = hash.to_byte_array();
            if !seen.insert(key) || indexed.get(key).map_err(db_err)?.is_some() {
                continue;
            }
            let payload = bitcoin::consensus::serialize(*block);
            if payload.len() > MAX_BLOCK_LEN as usize {
                return Err(StoreError::TooLarge { hash, len: payload.len() });
            }
            records.push((key, payload));
        }
        drop((indexed, read));
        // Append at the committed write position, rotating as needed; every
        // file written is fsynced before the index learns of any record.
        let (mut file_no, mut end) = (w.file_no, w.end);
        let mut rotated: Option<File> = None;
        let mut entries: Vec<([u8; 32], Location)> = Vec::with_capacity(records.len());
        for (key, payload) in &records {
            let record_len = (HEADER_LEN + payload.len()) as u64;
            if end > 0 && end + record_len > self.opts.max_file_size {
                // The file being left must be durable before we move on.
                let (old, old_path) = (rotated.as_ref().unwrap_or(&w.file), self.dir.join(data_file_name(file_no)));
                if let Err(e) = old.sync_data() {
                    w.poisoned = true;
                    return Err(io_err("fsync", &old_path)(e));
                }
                file_no += 1;
                end = 0;
                let path = self.dir.join(data_file_name(file_no));
                // Created empty: an earlier failed rotation may have left one.
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(io_err("create", &path))?;
                sync_dir(&self.dir)?;
                rotated = Some(f);
            }
            let path = self.dir.join(data_file_name(file_no));
            let file = rotated.as_ref().unwrap_or(&w.file);
            let header = record::header(key, payload);
            file.write_all_at(&header, end)
                .and_then(|()| file.write_all_at(payload, end + HEADER_LEN as u64))
                .map_err(io_err("write", &path))?;
            let loc = Location { file: file_no, offset: end, len: payload.len() as u32, height: None };
            end = loc.end();
            entries.push((*key, loc));
        }
        if !entries.is_empty() {
            let path = self.dir.join(data_file_name(file_no));
            if let Err(e) = rotated.as_ref().unwrap_or(&w.file).sync_data() {
                w.poisoned = true;
                return Err(io_err("fsync", &path)(e));
            }
        }
        if entries.is_empty() && tip.is_none() {
            return Ok(());
        }
        let commit = (|| {
            let tx = self.db.begin_write().map_err(db_err)?;
            {
                let mut table = tx.open_table(BLOCKS).map_err(db_err)?;
                for (key, loc) in &entries {
                    table.insert(*key, loc.encode()).map_err(db_err)?;
                }
                let mut meta = tx.open_table(META).map_err(db_err)?;
                if !entries.is_empty() {
                    meta.insert(WRITE_POS, &encode_pos(file_no, end)[..]).map_err(db_err)?;
                }
                if let Some((hash, height)) = tip {
                    let key = hash.to_byte_array();
                    let mut loc = match table.get(key).map_err(db_err)? {
                        Some(v) => Location::decode(&v.value()),
                        None => return Err(StoreError::UnknownBlock(hash)),
                    };
                    loc.height = Some(height);
                    table.insert(key, loc.encode()).map_err(db_err)?;
                    meta.insert(TIP, &encode_tip(&key, height)[..]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })();
        match commit {
            Ok(()) => {}
            // Nothing was committed and nothing is poisoned: the records
            // past the committed end are overwritten by the next write.
            Err(e @ StoreError::UnknownBlock(_)) => return Err(e),
            Err(e) => {
                w.poisoned = true;
                return Err(e);
            }
        }
        if let Some(f) = rotated {
            w.file = f;
        }
        w.file_no = file_no;
        w.end = end;
        Ok(())
    }

    /// Makes a stored block the tip (a reorg to a block already stored),
    /// recording its height in the index too.
    pub fn set_tip(&self, hash: &BlockHash, height: u32) -> Result<(), StoreError> {
        let key = hash.to_byte_array();
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut blocks = tx.open_table(BLOCKS).map_err(db_err)?;
            let mut loc = match blocks.get(key).map_err(db_err)? {
                Some(v) => Location::decode(&v.value()),
                None => return Err(StoreError::UnknownBlock(*hash)),
            };
            loc.height = Some(height);
            blocks.insert(key, loc.encode()).map_err(db_err)?;
            let mut meta = tx.open_table(META).map_err(db_err)?;
            meta.insert(TIP, &encode_tip(&key, height)[..]).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// The best block's hash and height, if one was set.
    pub fn tip(&self) -> Result<Option<(BlockHash, u32)>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        let Some(v) = meta.get(TIP).map_err(db_err)? else {
            return Ok(None);
        };
        let b: [u8; 36] = v.value().try_into().map_err(|_| StoreError::BadMeta { key: TIP })?;
        Ok(Some((
            BlockHash::from_byte_array(b[0..32].try_into().unwrap()),
            u32::from_le_bytes(b[32..36].try_into().unwrap()),
        )))
    }

    /// Where a block is stored, if it is.
    pub fn location(&self, hash: &BlockHash) -> Result<Option<Location>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let blocks = tx.open_table(BLOCKS).map_err(db_err)?;
        Ok(blocks.get(hash.to_byte_array()).map_err(db_err)?.map(|v| Location::decode(&v.value())))
    }

    /// Whether a block is stored.
    pub fn contains(&self, hash: &BlockHash) -> Result<bool, StoreError> {
        Ok(self.location(hash)?.is_some())
    }

    /// How many blocks are stored.
    pub fn len(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let blocks = tx.open_table(BLOCKS).map_err(db_err)?;
        blocks.len().map_err(db_err)
    }

    /// The hash of every stored block (in no particular order): what a
    /// restarted node needs not download again.
    pub fn hashes(&self) -> Result<Vec<BlockHash>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let blocks = tx.open_table(BLOCKS).map_err(db_err)?;
        let mut out = Vec::with_capacity(blocks.len().map_err(db_err)? as usize);
        for item in blocks.iter().map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            out.push(BlockHash::from_byte_array(k.value()));
        }
        Ok(out)
    }

    /// Records validated headers with their heights, durably, in one
    /// transaction. Headers already recorded are overwritten (same bytes).
    pub fn put_headers(&self, headers: &[(bitcoin::block::Header, u32)]) -> Result<(), StoreError> {
        if headers.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(HEADERS).map_err(db_err)?;
            for (h, height) in headers {
                let mut v = [0u8; 84];
                v[..80].copy_from_slice(&bitcoin::consensus::serialize(h));
                v[80..].copy_from_slice(&height.to_le_bytes());
                table.insert(h.block_hash().to_byte_array(), v).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Every recorded header, lowest height first (parents before
    /// children), each checked to hash to its key.
    pub fn headers(&self) -> Result<Vec<(bitcoin::block::Header, u32)>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(HEADERS).map_err(db_err)?;
        let mut out = Vec::with_capacity(table.len().map_err(db_err)? as usize);
        for item in table.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let v = v.value();
            let header: bitcoin::block::Header =
                bitcoin::consensus::deserialize(&v[..80]).map_err(|_| StoreError::BadMeta { key: "headers" })?;
            if header.block_hash().to_byte_array() != k.value() {
                return Err(StoreError::BadMeta { key: "headers" });
            }
            out.push((header, u32::from_le_bytes(v[80..].try_into().expect("4 bytes"))));
        }
        out.sort_by_key(|&(_, height)| height);
        Ok(out)
    }

    /// Records, durably, that a block was found invalid.
    pub fn mark_invalid(&self, hash: &BlockHash) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(INVALID).map_err(db_err)?.insert(hash.to_byte_array(), ()).map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Every block recorded as invalid.
    pub fn invalid_blocks(&self) -> Result<Vec<BlockHash>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(INVALID).map_err(db_err)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(db_err)? {
            out.push(BlockHash::from_byte_array(item.map_err(db_err)?.0.value()));
        }
        Ok(out)
    }

    /// Whether no block is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// A block's consensus serialization, checked against its record header
    /// (magic, length, hash, checksum) but not decoded: what a peer's
    /// `getdata` is answered with.
    pub fn get_raw(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_record(hash)?.map(|(payload, _)| payload))
    }

    fn read_record(&self, hash: &BlockHash) -> Result<Option<(Vec<u8>, Location)>, StoreError> {
        let Some(loc) = self.location(hash)? else {
            return Ok(None);
        };
        let path = self.dir.join(data_file_name(loc.file));
        let corrupt =
            |reason: String| StoreError::Corrupt { hash: *hash, path: path.clone(), offset: loc.offset, reason };
        if loc.len > MAX_BLOCK_LEN {
            return Err(corrupt(format!("index length {} over the limit", loc.len)));
        }
        let file = File::open(&path).map_err(io_err("open", &path))?;
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        if loc.end() > size {
            return Err(corrupt(format!("record ends at {} but the file has {size} bytes", loc.end())));
        }
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, loc.offset).map_err(io_err("read", &path))?;
        let mut payload = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut payload, loc.offset + HEADER_LEN as u64).map_err(io_err("read", &path))?;
        record::check(&header, &payload, &hash.to_byte_array()).map_err(|f| corrupt(f.to_string()))?;
        Ok(Some((payload, loc)))
    }

    /// A stored block, fully checked: record header, payload checksum, a
    /// complete decode, and the decoded block's hash.
    pub fn get(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let Some((payload, loc)) = self.read_record(hash)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| -> Result<Option<Block>, StoreError> {
            Err(StoreError::Corrupt {
                hash: *hash,
                path: self.dir.join(data_file_name(loc.file)),
                offset: loc.offset,
                reason,
            })
        };
        let block: Block = match bitcoin::consensus::deserialize(&payload) {
            Ok(b) => b,
            Err(e) => return corrupt(format!("undecodable: {e}")),
        };
        if block.block_hash() != *hash {
            return corrupt(format!("decodes to block {}", block.block_hash()));
        }
        Ok(Some(block))
    }
}

fn encode_tip(hash: &[u8; 32], height: u32) -> [u8; 36] {
    let mut b = [0u8; 36];
    b[0..32].copy_from_slice(hash);
    b[32..36].copy_from_slice(&height.to_le_bytes());
    b
}
