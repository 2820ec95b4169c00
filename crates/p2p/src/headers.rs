//! A header chain with full header validation, as Core's `AcceptBlockHeader`
//! does it: proof of work against the header's own nBits and the network's
//! pow limit (`high-hash`), a known parent (`prev-blk-not-found`), then the
//! contextual checks: nBits equal to the required next work (`bad-diffbits`),
//! time after the median of the last 11 (`time-too-old`), at most two hours
//! ahead of the caller's clock (`time-too-new`), BIP94's timewarp rule on
//! testnet4 (`time-timewarp-attack`) and the version floors of BIP34/66/65
//! (`bad-version(0x…)`).
//!
//! Every valid header is kept, forks included; the tip is the one with the
//! most cumulative work (first seen wins a tie, as in Core). Proof of work is
//! hashed with kiln's own sha256d (`kiln_hash` through `kiln_work::Header`).
//! Retarget arithmetic is done here on 64-bit limbs: the factors are small
//! (a timespan below 2^23) so a five-limb product is exact.

use std::collections::HashMap;

use bitcoin::{Network, Work};
use kiln_work::{BlockHash, CompactTarget, Header, Target};

/// Core's `MAX_FUTURE_BLOCK_TIME`: two hours.
pub const MAX_FUTURE_BLOCK_TIME: u64 = 2 * 60 * 60;
/// Core's `MAX_TIMEWARP` (BIP94): a period's first block may be at most ten
/// minutes earlier than its parent.
pub const MAX_TIMEWARP: u32 = 600;
/// Blocks whose times give the median time past.
const MEDIAN_TIME_SPAN: usize = 11;

/// Consensus parameters a header chain needs.
#[derive(Clone, Debug)]
pub struct ChainParams {
    pub network: Network,
    pub genesis: Header,
    /// The easiest target allowed (Core's `powLimit`, full precision).
    pub pow_limit: Target,
    pub bip34_height: u32,
    pub bip66_height: u32,
    pub bip65_height: u32,
    /// Blocks per difficulty period (2016).
    pub interval: u32,
    /// Seconds a period should last (two weeks).
    pub target_timespan: u64,
    /// Seconds between blocks (ten minutes).
    pub target_spacing: u64,
    /// testnet3/testnet4: a block more than twice the spacing after its
    /// parent may use the pow limit (`fPowAllowMinDifficultyBlocks`).
    pub allow_min_difficulty: bool,
    /// regtest: difficulty never changes (`fPowNoRetargeting`).
    pub no_retargeting: bool,
    /// testnet4: BIP94 (retarget from the period's first nBits; timewarp rule).
    pub enforce_bip94: bool,
    /// Core's `nMinimumChainWork`: a peer's headers are not stored until
    /// their chain has at least this much work (and more than our tip's),
    /// so a peer cannot fill our memory with cheap low-difficulty headers
    /// (see [`crate::sync`]). Zero on regtest; tests may lower it.
    pub min_chain_work: Work,
}

/// A chain-work constant written as Core's `uint256{"…"}` big-endian hex.
fn work_hex(hex: &str) -> Work {
    let mut be = [0u8; 32];
    let digits = hex.as_bytes();
    let off = 64 - digits.len();
    for (i, d) in digits.iter().enumerate() {
        let v = (*d as char).to_digit(16).expect("constant is hex") as u8;
        let n = off + i;
        be[n / 2] |= if n.is_multiple_of(2) { v << 4 } else { v };
    }
    Work::from_be_bytes(be)
}

impl ChainParams {
    /// Core's parameters for `network` (heights as in kiln-validate's params).
    pub fn for_network(network: Network) -> ChainParams {
        let genesis_bytes = bitcoin::consensus::serialize(&bitcoin::constants::genesis_block(network).header);
        let genesis = Header::parse(&genesis_bytes).expect("genesis header is 80 bytes");
        let limit = |top: [u8; 4], rest: u8| {
            let mut be = [rest; 32];
            be[..4].copy_from_slice(&top);
            be.reverse();
            Target::from_le_bytes(be)
        };
        let main_limit = limit([0, 0, 0, 0], 0xff);
        let base = ChainParams {
            network,
            genesis,
            pow_limit: main_limit,
            bip34_height: 227_931,
            bip66_height: 363_725,
            bip65_height: 388_381,
            interval: 2016,
            target_timespan: 14 * 24 * 60 * 60,
            target_spacing: 600,
            allow_min_difficulty: false,
            no_retargeting: false,
            enforce_bip94: false,
            // nMinimumChainWork of each network: Bitcoin Core's
            // src/kernel/chainparams.cpp, the source our test bitcoind is
            // built from (the crate libbitcoinkernel-sys 0.4.1; checked there).
            min_chain_work: work_hex("1128750f82f4c366153a3a030"),
        };
        match network {
            Network::Testnet => ChainParams {
                bip34_height: 21_111,
                bip66_height: 330_776,
                bip65_height: 581_885,
                allow_min_difficulty: true,
                min_chain_work: work_hex("17dde1c649f3708d14b6"),
                ..base
            },
            Network::Testnet4 => ChainParams {
                bip34_height: 1,
                bip66_height: 1,
                bip65_height: 1,
                allow_min_difficulty: true,
                enforce_bip94: true,
                min_chain_work: work_hex("9a0fe15d0177d086304"),
                ..base
            },
            Network::Signet => ChainParams {
                pow_limit: limit([0x00, 0x00, 0x03, 0x77], 0).with_byte_be(4, 0xae),
                bip34_height: 1,
                bip66_height: 1,
                bip65_height: 1,
                min_chain_work: work_hex("b463ea0a4b8"),
                ..base
            },
            Network::Regtest => ChainParams {
                pow_limit: limit([0x7f, 0xff, 0xff, 0xff], 0xff),
                bip34_height: 1,
                bip66_height: 1,
                bip65_height: 1,
                allow_min_difficulty: true,
                no_retargeting: true,
                min_chain_work: Work::from_le_bytes([0; 32]),
                ..base
            },
            Network::Bitcoin => base,
        }
    }
}

/// Sets one big-endian byte of a target (used only to spell constants).
trait WithByte {
    fn with_byte_be(self, index: usize, value: u8) -> Self;
}

impl WithByte for Target {
    fn with_byte_be(self, index: usize, value: u8) -> Target {
        let mut le = self.to_le_bytes();
        le[31 - index] = value;
        Target::from_le_bytes(le)
    }
}

/// Why a header was refused; [`HeaderError::reject_reason`] gives Core's name.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("high-hash: header {hash} does not meet its nBits {bits:#010x} (or nBits is above the pow limit)")]
    HighHash { hash: BlockHash, bits: u32 },
    #[error("prev-blk-not-found: parent {prev} of header {hash} is unknown")]
    PrevNotFound { hash: BlockHash, prev: BlockHash },
    #[error("bad-diffbits: nBits {got:#010x} at height {height}, required {expected:#010x}")]
    BadDiffBits { height: u32, got: u32, expected: u32 },
    #[error("time-too-old: time {time} at height {height} is not after the median time past {mtp}")]
    TimeTooOld { height: u32, time: u32, mtp: u32 },
    #[error("time-too-new: time {time} is more than two hours after now ({now})")]
    TimeTooNew { time: u32, now: u64 },
    #[error("time-timewarp-attack: time {time} is more than {MAX_TIMEWARP} s before its parent's {prev_time}")]
    TimeWarp { time: u32, prev_time: u32 },
    #[error("bad-version({version:#010x}): version too old at height {height}")]
    BadVersion { version: i32, height: u32 },
    #[error("bad-prevblk: header {hash} builds on {prev}, a block found invalid")]
    InvalidParent { hash: BlockHash, prev: BlockHash },
}

impl HeaderError {
    /// Bitcoin Core's reject reason for this violation.
    pub fn reject_reason(&self) -> String {
        match self {
            HeaderError::HighHash { .. } => "high-hash".into(),
            HeaderError::PrevNotFound { .. } => "prev-blk-not-found".into(),
            HeaderError::BadDiffBits { .. } => "bad-diffbits".into(),
            HeaderError::TimeTooOld { .. } => "time-too-old".into(),
            HeaderError::TimeTooNew { .. } => "time-too-new".into(),
            HeaderError::TimeWarp { .. } => "time-timewarp-attack".into(),
            HeaderError::BadVersion { version, .. } => format!("bad-version(0x{:08x})", *version as u32),
            HeaderError::InvalidParent { .. } => "bad-prevblk".into(),
        }
    }
}

/// One stored header and what was learnt checking it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub header: Header,
    pub hash: BlockHash,
    pub height: u32,
    /// Cumulative work from genesis to this header inclusive.
    pub chainwork: Work,
    /// Index of the parent in the chain's storage (genesis points to itself).
    parent: usize,
    /// The block (or an ancestor) failed validation: never the best tip again.
    invalid: bool,
}

/// What [`HeaderChain::accept`] did with a valid header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub hash: BlockHash,
    pub height: u32,
    /// The header was already stored; nothing changed.
    pub known: bool,
    /// The header became the new best tip.
    pub new_tip: bool,
}

/// Every valid header seen, by hash, with the most-work chain indexed by height.
#[derive(Debug)]
pub struct HeaderChain {
    params: ChainParams,
    entries: Vec<Entry>,
    by_hash: HashMap<BlockHash, usize>,
    /// The best chain: `active[h]` is the storage index of its header at height `h`.
    active: Vec<usize>,
}

impl HeaderChain {
    /// A chain holding only `network`'s genesis header.
    pub fn new(network: Network) -> HeaderChain {
        HeaderChain::with_params(ChainParams::for_network(network))
    }

    pub fn with_params(params: ChainParams) -> HeaderChain {
        let genesis = params.genesis;
        let hash = genesis.block_hash();
        let work = work_of(genesis.bits);
        let entry = Entry { header: genesis, hash, height: 0, chainwork: work, parent: 0, invalid: false };
        HeaderChain { params, entries: vec![entry], by_hash: HashMap::from([(hash, 0)]), active: vec![0] }
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Headers stored, forks included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: the genesis header is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn get(&self, hash: &BlockHash) -> Option<&Entry> {
        self.by_hash.get(hash).map(|&i| &self.entries[i])
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    pub fn tip(&self) -> &Entry {
        &self.entries[*self.active.last().expect("genesis is always active")]
    }

    pub fn best_hash(&self) -> BlockHash {
        self.tip().hash
    }

    pub fn best_height(&self) -> u32 {
        self.tip().height
    }

    /// The best chain's header at `height`.
    pub fn at_height(&self, height: u32) -> Option<&Entry> {
        self.active.get(height as usize).map(|&i| &self.entries[i])
    }

    /// Core's block locator for the best tip: the last ten hashes one by one,
    /// then doubling steps back, always ending with genesis — so a peer on
    /// any fork finds a common ancestor in O(log n) hashes.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.active.len() - 1;
        let mut step = 1usize;
        loop {
            out.push(self.entries[self.active[height]].hash);
            if height == 0 {
                return out;
            }
            height = height.saturating_sub(step);
            if out.len() > 10 {
                step *= 2;
            }
        }
    }

    /// The ancestor of `hash` at `height` (itself at its own height), `None`
    /// when `hash` is unknown or `height` is above it.
    pub fn ancestor_of(&self, hash: &BlockHash, height: u32) -> Option<&Entry> {
        let &i = self.by_hash.get(hash)?;
        if height > self.entries[i].height {
            return None;
        }
        Some(&self.entries[self.ancestor(i, height)])
    }

    /// Whether `ancestor` is `hash` itself or one of its ancestors (false
    /// when either is unknown).
    pub fn is_ancestor(&self, ancestor: &BlockHash, hash: &BlockHash) -> bool {
        self.get(ancestor).is_some_and(|a| self.ancestor_of(hash, a.height).is_some_and(|e| e.hash == *ancestor))
    }

    /// Whether `hash` is on the best chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.by_hash.get(hash).is_some_and(|&i| self.active.get(self.entries[i].height as usize) == Some(&i))
    }

    /// Whether `hash` (or an ancestor) was marked invalid.
    pub fn is_invalid(&self, hash: &BlockHash) -> bool {
        self.get(hash).is_some_and(|e| e.invalid)
    }

    /// The block `hash` failed validation: it and its descendants can never
    /// be the best tip, and no header building on them is accepted (Core's
    /// `InvalidBlockFound` and `bad-prevblk`). When it was on the best
    /// chain, the most-work valid header becomes the tip. Genesis cannot be
    /// marked. Returns whether the best tip changed.
    pub fn mark_invalid(&mut self, hash: &BlockHash) -> bool {
        let Some(&i) = self.by_hash.get(hash) else { return false };
        if i == 0 || self.entries[i].invalid {
            return false;
        }
        self.entries[i].invalid = true;
        // Parents are stored before their children: one pass marks every
        // descendant.
        for j in i + 1..self.entries.len() {
            let p = self.entries[j].parent;
            if self.entries[p].invalid {
                self.entries[j].invalid = true;
            }
        }
        if !self.tip().invalid {
            return false;
        }
        let best = (0..self.entries.len())
            .filter(|&j| !self.entries[j].invalid)
            .max_by(|&a, &b| self.entries[a].chainwork.cmp(&self.entries[b].chainwork).then(b.cmp(&a)))
            .unwrap_or(0);
        self.set_tip(best);
        true
    }

    /// Headers stored that are not on the best chain (forks, and what a
    /// reorg displaced): what the hard cap in [`crate::sync`] bounds.
    pub fn off_best_len(&self) -> usize {
        self.entries.len() - self.active.len()
    }

    /// The cumulative work `header` would have if stored: `None` when its
    /// parent is unknown. No validation.
    pub fn chainwork_of_child(&self, header: &Header) -> Option<Work> {
        self.get(&header.prev_blockhash).map(|p| p.chainwork + work_of(header.bits))
    }

    /// Proof of work alone (Core's `CheckProofOfWork`): what headers not yet
    /// stored (presync) can be checked for without their ancestors.
    ///
    /// # Errors
    /// [`HeaderError::HighHash`].
    pub fn check_proof_of_work(&self, header: &Header) -> Result<(), HeaderError> {
        self.check_pow(header, header.block_hash())
    }

    /// Checks `header` and stores it if valid. `now` is the caller's Unix
    /// time (the chain reads no clock, so tests can set it).
    ///
    /// # Errors
    /// A [`HeaderError`] carrying Core's reject reason; the chain is unchanged.
    pub fn accept(&mut self, header: &Header, now: u64) -> Result<Accepted, HeaderError> {
        let hash = header.block_hash();
        if let Some(&i) = self.by_hash.get(&hash) {
            let e = &self.entries[i];
            return Ok(Accepted { hash, height: e.height, known: true, new_tip: false });
        }
        self.check_pow(header, hash)?;
        let Some(&parent) = self.by_hash.get(&header.prev_blockhash) else {
            return Err(HeaderError::PrevNotFound { hash, prev: header.prev_blockhash });
        };
        if self.entries[parent].invalid {
            return Err(HeaderError::InvalidParent { hash, prev: header.prev_blockhash });
        }
        self.check_contextual_at(header, parent, now)?;
        let p = &self.entries[parent];
        let entry = Entry {
            header: *header,
            hash,
            height: p.height + 1,
            chainwork: p.chainwork + work_of(header.bits),
            parent,
            invalid: false,
        };
        let height = entry.height;
        let idx = self.entries.len();
        let more_work = entry.chainwork > self.tip().chainwork;
        self.entries.push(entry);
        self.by_hash.insert(hash, idx);
        if more_work {
            self.set_tip(idx);
        }
        Ok(Accepted { hash, height, known: false, new_tip: more_work })
    }

    /// Accepts a rust-bitcoin header (as a `headers` message carries it).
    ///
    /// # Errors
    /// As [`HeaderChain::accept`].
    pub fn accept_bitcoin(&mut self, header: &bitcoin::block::Header, now: u64) -> Result<Accepted, HeaderError> {
        self.accept(&from_bitcoin(header), now)
    }

    /// The contextual checks alone (Core's `ContextualCheckBlockHeader`),
    /// for a header whose parent is known: what would be refused besides
    /// proof of work.
    ///
    /// # Errors
    /// [`HeaderError::PrevNotFound`] or a contextual violation.
    pub fn check_contextual(&self, header: &Header, now: u64) -> Result<(), HeaderError> {
        let Some(&parent) = self.by_hash.get(&header.prev_blockhash) else {
            return Err(HeaderError::PrevNotFound { hash: header.block_hash(), prev: header.prev_blockhash });
        };
        self.check_contextual_at(header, parent, now)
    }

    /// The nBits a child of `prev` with time `time` must carry (Core's
    /// `GetNextWorkRequired`), `None` when `prev` is unknown.
    pub fn next_work_required(&self, prev: &BlockHash, time: u32) -> Option<CompactTarget> {
        self.by_hash.get(prev).map(|&p| self.required_bits(p, time))
    }

    /// Median of the last eleven times ending at `idx` (Core's `GetMedianTimePast`).
    pub fn median_time_past(&self, hash: &BlockHash) -> Option<u32> {
        self.by_hash.get(hash).map(|&i| self.mtp(i))
    }

    fn check_pow(&self, header: &Header, hash: BlockHash) -> Result<(), HeaderError> {
        let ok = match header.bits.to_target() {
            Ok(target) => target <= self.params.pow_limit && target.is_met_by(&hash),
            Err(_) => false,
        };
        if ok { Ok(()) } else { Err(HeaderError::HighHash { hash, bits: header.bits.0 }) }
    }

    fn check_contextual_at(&self, header: &Header, parent: usize, now: u64) -> Result<(), HeaderError> {
        let p = &self.entries[parent];
        let height = p.height + 1;
        let expected = self.required_bits(parent, header.time);
        if header.bits != expected {
            return Err(HeaderError::BadDiffBits { height, got: header.bits.0, expected: expected.0 });
        }
        let mtp = self.mtp(parent);
        if header.time <= mtp {
            return Err(HeaderError::TimeTooOld { height, time: header.time, mtp });
        }
        if self.params.enforce_bip94
            && height.is_multiple_of(self.params.interval)
            && header.time < p.header.time.saturating_sub(MAX_TIMEWARP)
        {
            return Err(HeaderError::TimeWarp { time: header.time, prev_time: p.header.time });
        }
        if u64::from(header.time) > now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
            return Err(HeaderError::TimeTooNew { time: header.time, now });
        }
        let v = header.version;
        let pr = &self.params;
        if (v < 2 && height >= pr.bip34_height)
            || (v < 3 && height >= pr.bip66_height)
            || (v < 4 && height >= pr.bip65_height)
        {
            return Err(HeaderError::BadVersion { version: v, height });
        }
        Ok(())
    }

    fn mtp(&self, mut idx: usize) -> u32 {
        let mut times = [0u32; MEDIAN_TIME_SPAN];
        let mut n = 0;
        loop {
            times[n] = self.entries[idx].header.time;
            n += 1;
            if n == MEDIAN_TIME_SPAN || self.entries[idx].height == 0 {
                break;
            }
            idx = self.entries[idx].parent;
        }
        let times = &mut times[..n];
        times.sort_unstable();
        times[n / 2]
    }

    /// The storage index of the ancestor of `idx` at `height` (≤ its height).
    fn ancestor(&self, mut idx: usize, height: u32) -> usize {
        loop {
            let e = &self.entries[idx];
            if e.height == height {
                return idx;
            }
            // Once on the best chain, its height index answers directly.
            if self.active.get(e.height as usize) == Some(&idx) {
                return self.active[height as usize];
            }
            idx = e.parent;
        }
    }

    /// Core's `GetNextWorkRequired` for a child of `last` timed `time`.
    fn required_bits(&self, last: usize, time: u32) -> CompactTarget {
        let pr = &self.params;
        let limit_bits = compact_of(&pr.pow_limit);
        let l = &self.entries[last];
        let height = l.height + 1;
        if !height.is_multiple_of(pr.interval) {
            if pr.allow_min_difficulty {
                // Twenty minutes without a block: a minimum-difficulty block is allowed.
                if u64::from(time) > u64::from(l.header.time) + 2 * pr.target_spacing {
                    return limit_bits;
                }
                // Otherwise the last block that was not such a min-difficulty block.
                let mut i = last;
                loop {
                    let e = &self.entries[i];
                    if e.height == 0 || e.height.is_multiple_of(pr.interval) || e.header.bits != limit_bits {
                        return e.header.bits;
                    }
                    i = e.parent;
                }
            }
            return l.header.bits;
        }
        if pr.no_retargeting {
            return l.header.bits;
        }
        let first = &self.entries[self.ancestor(last, l.height + 1 - pr.interval)];
        let span = i64::from(l.header.time) - i64::from(first.header.time);
        let span = span.clamp((pr.target_timespan / 4) as i64, (pr.target_timespan * 4) as i64) as u64;
        // BIP94 retargets from the period's first block, so a run of
        // min-difficulty blocks at its end cannot drag the difficulty down.
        let base = if pr.enforce_bip94 { first.header.bits } else { l.header.bits };
        let base = base.to_target().unwrap_or(pr.pow_limit);
        let new = mul_div(&base, span, pr.target_timespan);
        match new {
            Some(t) if t <= pr.pow_limit => compact_of(&t),
            _ => limit_bits,
        }
    }

    /// Makes `idx` the best tip, re-indexing the best chain back to the fork point.
    fn set_tip(&mut self, idx: usize) {
        let height = self.entries[idx].height as usize;
        self.active.truncate(height + 1);
        self.active.resize(height + 1, usize::MAX);
        let mut i = idx;
        loop {
            let h = self.entries[i].height as usize;
            if self.active[h] == i {
                break;
            }
            self.active[h] = i;
            if h == 0 {
                break;
            }
            i = self.entries[i].parent;
        }
    }
}

/// A rust-bitcoin header as kiln's (same 80 bytes).
pub fn from_bitcoin(header: &bitcoin::block::Header) -> Header {
    let bytes = bitcoin::consensus::serialize(header);
    Header::parse(&bytes).expect("a header serializes to 80 bytes")
}

/// kiln's header as rust-bitcoin's (what a `headers` message carries).
pub fn to_bitcoin(header: &Header) -> bitcoin::block::Header {
    bitcoin::consensus::deserialize(&header.serialize()).expect("80 bytes are a header")
}

/// kiln's block hash as rust-bitcoin's (same internal byte order).
pub fn to_bitcoin_hash(hash: &BlockHash) -> bitcoin::BlockHash {
    use bitcoin::hashes::Hash;
    bitcoin::BlockHash::from_byte_array(hash.0)
}

/// kiln's block hash from rust-bitcoin's.
pub fn from_bitcoin_hash(hash: &bitcoin::BlockHash) -> BlockHash {
    use bitcoin::hashes::Hash;
    BlockHash(hash.to_byte_array())
}

/// Core's `PermittedDifficultyTransition`: whether nBits `new` may follow
/// `old` at `height` without knowing the timestamps of the period. Used in
/// presync, where ancestors are not stored: between retargets nBits must not
/// change, at a retarget it may move at most four-fold; networks allowing
/// minimum-difficulty blocks (testnet, regtest) allow anything.
pub fn permitted_transition(params: &ChainParams, height: u32, old: CompactTarget, new: CompactTarget) -> bool {
    if params.allow_min_difficulty {
        return true;
    }
    if !height.is_multiple_of(params.interval) {
        return old == new;
    }
    let (Ok(old_t), Ok(new_t)) = (old.to_target(), new.to_target()) else { return false };
    let largest = mul_div(&old_t, 4, 1).filter(|t| *t <= params.pow_limit).unwrap_or(params.pow_limit);
    let smallest = mul_div(&old_t, 1, 4).unwrap_or(old_t);
    // Compare after the compact round trip, as Core does.
    let round = |t: &Target| compact_of(t).to_target().unwrap_or(*t);
    new_t <= round(&largest) && new_t >= round(&smallest)
}

/// Expected hashes to meet nBits (Core's `GetBlockProof`); zero for an
/// invalid nBits, which never reaches storage anyway.
pub fn work_of(bits: CompactTarget) -> Work {
    match bits.to_target() {
        Ok(t) => bitcoin::Target::from_le_bytes(t.to_le_bytes()).to_work(),
        Err(_) => Work::from_le_bytes([0; 32]),
    }
}

/// `target · mul / div` exactly, `None` if the result needs more than 256 bits.
fn mul_div(target: &Target, mul: u64, div: u64) -> Option<Target> {
    let le = target.to_le_bytes();
    let limbs: [u64; 4] = core::array::from_fn(|i| u64::from_le_bytes(le[8 * i..8 * i + 8].try_into().unwrap()));
    let mut wide = [0u64; 5];
    let mut carry = 0u128;
    for i in 0..4 {
        let v = u128::from(limbs[i]) * u128::from(mul) + carry;
        wide[i] = v as u64;
        carry = v >> 64;
    }
    wide[4] = carry as u64;
    let mut rem = 0u128;
    for limb in wide.iter_mut().rev() {
        let cur = (rem << 64) | u128::from(*limb);
        *limb = (cur / u128::from(div)) as u64;
        rem = cur % u128::from(div);
    }
    if wide[4] != 0 {
        return None;
    }
    let mut out = [0u8; 32];
    for i in 0..4 {
        out[8 * i..8 * i + 8].copy_from_slice(&wide[i].to_le_bytes());
    }
    Some(Target::from_le_bytes(out))
}

/// Core's `GetCompact`: the nBits spelling of a target (rounded down).
fn compact_of(target: &Target) -> CompactTarget {
    let le = target.to_le_bytes();
    let Some(top) = le.iter().rposition(|&b| b != 0) else { return CompactTarget(0) };
    let mut size = top as u32 + 1;
    let byte = |i: i64| if i >= 0 { u32::from(le[i as usize]) } else { 0 };
    let s = i64::from(size);
    let mut mantissa = (byte(s - 1) << 16) | (byte(s - 2) << 8) | byte(s - 3);
    if mantissa & 0x0080_0000 != 0 {
        mantissa >>= 8;
        size += 1;
    }
    CompactTarget(mantissa | (size << 24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_round_trips() {
        for bits in [0x1d00ffffu32, 0x1b0404cb, 0x207fffff, 0x1e0377ae, 0x170331db, 0x03123456] {
            let t = CompactTarget(bits).to_target().unwrap();
            assert_eq!(compact_of(&t).0, bits, "{bits:#x}");
        }
        let p = ChainParams::for_network(Network::Bitcoin);
        assert_eq!(compact_of(&p.pow_limit).0, 0x1d00ffff);
        assert_eq!(compact_of(&ChainParams::for_network(Network::Regtest).pow_limit).0, 0x207fffff);
        assert_eq!(compact_of(&ChainParams::for_network(Network::Signet).pow_limit).0, 0x1e0377ae);
    }

    #[test]
    fn first_real_retarget() {
        // Mainnet block 32256: 0x1d00ffff over a period from block 30240
        // (time 1261130161) to 32255 (1262152739) gives 0x1d00d86a.
        let base = CompactTarget(0x1d00ffff).to_target().unwrap();
        let span = 1_262_152_739u64 - 1_261_130_161;
        let t = mul_div(&base, span, 14 * 24 * 3600).unwrap();
        assert_eq!(compact_of(&t).0, 0x1d00d86a);
    }

    /// A small chain with testnet's rules but regtest's easy pow limit and
    /// eight-block periods, so retargets can be mined in a test.
    fn small(bip94: bool) -> HeaderChain {
        let mut p = ChainParams::for_network(if bip94 { Network::Testnet4 } else { Network::Testnet });
        let reg = ChainParams::for_network(Network::Regtest);
        p.genesis = reg.genesis;
        p.pow_limit = reg.pow_limit;
        p.interval = 8;
        p.target_timespan = 8 * 600;
        p.bip34_height = 1;
        p.bip66_height = 1;
        p.bip65_height = 1;
        HeaderChain::with_params(p)
    }

    fn mine(chain: &mut HeaderChain, time: u32, bits: Option<u32>) -> Result<Accepted, HeaderError> {
        let prev = chain.best_hash();
        let bits = bits.map(CompactTarget).unwrap_or_else(|| chain.next_work_required(&prev, time).unwrap());
        let mut h = Header { version: 4, prev_blockhash: prev, merkle_root: [7; 32], time, bits, nonce: 0 };
        let target = bits.to_target().unwrap();
        while !target.is_met_by(&h.block_hash()) {
            h.nonce += 1;
        }
        chain.accept(&h, u64::MAX / 2)
    }

    #[test]
    fn testnet3_min_difficulty_and_walk_back() {
        let mut c = small(false);
        let t0 = c.tip().header.time;
        for i in 1..8 {
            mine(&mut c, t0 + 150 * i, None).unwrap();
        }
        // Seven blocks in 1050 s: the span is clamped to a quarter, so the
        // target drops four-fold.
        let limit = compact_of(&c.params.pow_limit).0;
        assert_eq!(c.next_work_required(&c.best_hash(), t0 + 1200).unwrap().0, 0x201fffff);
        let mut t = t0 + 1200;
        mine(&mut c, t, None).unwrap();
        t += 150;
        mine(&mut c, t, None).unwrap();
        // Twenty minutes and a second later a minimum-difficulty block is due.
        t += 1201;
        assert_eq!(c.next_work_required(&c.best_hash(), t).unwrap().0, limit);
        mine(&mut c, t, None).unwrap();
        // The next quick block walks back past it to the real difficulty.
        t += 100;
        assert_eq!(c.next_work_required(&c.best_hash(), t).unwrap().0, 0x201fffff);
        let err = mine(&mut c, t, Some(limit)).unwrap_err();
        assert_eq!(err.reject_reason(), "bad-diffbits");
        mine(&mut c, t, None).unwrap();
    }

    #[test]
    fn testnet4_bip94_retarget_base_and_timewarp() {
        for bip94 in [false, true] {
            let mut c = small(bip94);
            let t0 = c.tip().header.time;
            for i in 1..8 {
                mine(&mut c, t0 + 150 * i, None).unwrap();
            }
            let first = t0 + 1200;
            mine(&mut c, first, None).unwrap(); // height 8: 0x201fffff
            let mut t = first;
            for _ in 9..15 {
                t += 600;
                mine(&mut c, t, None).unwrap();
            }
            t += 1201; // height 15: a min-difficulty block ends the period
            mine(&mut c, t, None).unwrap();
            let limit = compact_of(&c.params.pow_limit);
            assert_eq!(c.tip().header.bits, limit);
            let span = u64::from(t - first);
            let base = if bip94 { CompactTarget(0x201fffff) } else { limit };
            let want = compact_of(&mul_div(&base.to_target().unwrap(), span, 4800).unwrap());
            let want = if want.to_target().unwrap() > c.params.pow_limit { limit } else { want };
            assert_eq!(c.next_work_required(&c.best_hash(), t + 600).unwrap(), want, "bip94={bip94}");
            // BIP94's timewarp rule: a period's first block may not be more
            // than ten minutes before its parent.
            let warped = mine(&mut c, t - 601, None);
            if bip94 {
                assert_eq!(warped.unwrap_err().reject_reason(), "time-timewarp-attack");
            } else {
                warped.unwrap();
            }
        }
    }
}
