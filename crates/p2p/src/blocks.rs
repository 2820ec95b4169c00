//! Block download over several peers, without I/O: which block to ask of
//! whom, and who is stalling.
//!
//! Headers come first ([`crate::sync`]); this module walks the best header
//! chain above what is already stored and hands out requests:
//!
//! * a **moving window**: only blocks at most [`DownloadConfig::window`]
//!   heights above the lowest block still missing are requested (Core's
//!   `BLOCK_DOWNLOAD_WINDOW`, 1,024), so blocks arrive roughly in order and
//!   the ones waiting to be connected stay bounded;
//! * at most [`DownloadConfig::per_peer`] blocks in flight per peer (Core's
//!   `MAX_BLOCKS_IN_TRANSIT_PER_PEER`, 16), handed to the least loaded peer
//!   so several peers download in parallel;
//! * **stall detection**: when the window cannot move because its first
//!   block is still in flight while a peer holding later blocks sits idle,
//!   the peer holding it
//!   for longer than the stall timeout is dropped (Core's
//!   `BLOCK_STALLING_TIMEOUT`, 2 s, doubled after each stall up to 64 s and
//!   eased back as blocks arrive), and any request older than
//!   [`DownloadConfig::request_timeout`] is a dropped peer too;
//! * a `notfound` frees the blocks for another peer, and the same peer is
//!   not asked for them again.
//!
//! The caller reports what is stored (a closure: the store or a cache of
//! it); blocks that failed validation are marked invalid in the header
//! chain, which moves the best chain off them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use kiln_work::BlockHash;

use crate::headers::HeaderChain;
use crate::sync::PeerId;

/// Download policy.
#[derive(Clone, Debug)]
pub struct DownloadConfig {
    /// Blocks in flight per peer.
    pub per_peer: usize,
    /// Heights above the first missing block that may be requested.
    pub window: u32,
    /// First stall timeout; doubled after each stall.
    pub stall_timeout: Duration,
    /// The stall timeout never grows beyond this.
    pub max_stall_timeout: Duration,
    /// A request unanswered this long drops the peer, stalled window or not.
    pub request_timeout: Duration,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            per_peer: 16,
            window: 1024,
            stall_timeout: Duration::from_secs(2),
            max_stall_timeout: Duration::from_secs(64),
            request_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// Why a peer must go.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadError {
    #[error("stalling the block download window: block {hash} at height {height} requested {waited:?} ago")]
    Stalling { hash: BlockHash, height: u32, waited: Duration },
    #[error("block {hash} not delivered within {timeout:?}")]
    Timeout { hash: BlockHash, timeout: Duration },
}

#[derive(Clone, Copy, Debug)]
struct Request {
    peer: PeerId,
    since: Instant,
}

#[derive(Debug, Default)]
struct PeerState {
    in_flight: usize,
    /// Blocks this peer said it does not have (bounded: cleared when large).
    not_found: HashSet<BlockHash>,
    /// The newest block the peer showed it has (headers it sent, a block,
    /// a locator): only it and its ancestors are asked of this peer, as
    /// Core asks only a peer whose best known block leads there (a Core
    /// peer ignores `getdata` for blocks it lacks).
    best: Option<BlockHash>,
}

/// Counters for status lines and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DownloadStats {
    pub requested: u64,
    pub received: u64,
    pub unrequested: u64,
    pub not_found: u64,
    pub stalls: u64,
    pub timeouts: u64,
}

/// The download scheduler (see the module docs).
#[derive(Debug)]
pub struct BlockDownload {
    config: DownloadConfig,
    in_flight: HashMap<BlockHash, Request>,
    peers: BTreeMap<PeerId, PeerState>,
    stall_timeout: Duration,
    /// Set by [`BlockDownload::schedule`]: peers with room that hold
    /// blocks beyond the window, so the window's first block keeps them
    /// idle (Core names a staller only then).
    idle_useful: Vec<PeerId>,
    /// The first height above the stored chain, as of the last schedule.
    window_start: Option<(u32, BlockHash)>,
    stats: DownloadStats,
}

impl BlockDownload {
    pub fn new(config: DownloadConfig) -> BlockDownload {
        let stall_timeout = config.stall_timeout;
        BlockDownload {
            config,
            in_flight: HashMap::new(),
            peers: BTreeMap::new(),
            stall_timeout,
            idle_useful: Vec::new(),
            window_start: None,
            stats: DownloadStats::default(),
        }
    }

    pub fn stats(&self) -> DownloadStats {
        self.stats
    }

    /// Blocks requested and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `hash` is requested from some peer.
    pub fn is_requested(&self, hash: &BlockHash) -> bool {
        self.in_flight.contains_key(hash)
    }

    /// The current stall timeout (it adapts).
    pub fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }

    /// A peer that serves blocks finished its handshake.
    pub fn peer_ready(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// The peer has `hash` (and so its ancestors); kept when it is higher
    /// than what we knew.
    pub fn peer_has(&mut self, peer: PeerId, hash: BlockHash, chain: &HeaderChain) {
        let Some(st) = self.peers.get_mut(&peer) else { return };
        let Some(new) = chain.get(&hash) else { return };
        let higher = st.best.and_then(|b| chain.get(&b)).is_none_or(|old| new.chainwork > old.chainwork);
        if higher {
            st.best = Some(hash);
        }
    }

    /// The peer is gone: its requests go back to the pool.
    pub fn peer_gone(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.in_flight.retain(|_, r| r.peer != peer);
    }

    /// Assigns requests: for each peer, the blocks to `getdata`. `stored`
    /// says whether a block is already stored (or being processed).
    pub fn schedule(
        &mut self,
        chain: &HeaderChain,
        base_height: u32,
        stored: impl Fn(&BlockHash) -> bool,
        now: Instant,
    ) -> Vec<(PeerId, Vec<BlockHash>)> {
        let mut out: BTreeMap<PeerId, Vec<BlockHash>> = BTreeMap::new();
        self.idle_useful.clear();
        self.window_start = None;
        let best = chain.best_height();
        let mut free: usize = self.peers.values().map(|p| self.config.per_peer.saturating_sub(p.in_flight)).sum();
        let mut height = base_height + 1;
        let mut window_end = best;
        while height <= window_end.min(best) {
            let Some(entry) = chain.at_height(height) else { break };
            let hash = entry.hash;
            height += 1;
            if stored(&hash) {
                continue;
            }
            if self.window_start.is_none() {
                self.window_start = Some((height - 1, hash));
                window_end = (height - 1).saturating_add(self.config.window - 1);
            }
            if self.in_flight.contains_key(&hash) || chain.is_invalid(&hash) {
                continue;
            }
            if free == 0 {
                break;
            }
            // The least loaded peer that has not said it lacks the block.
            let per_peer = self.config.per_peer;
            let has = |p: &PeerState| p.best.is_some_and(|b| chain.is_ancestor(&hash, &b));
            let Some((&peer, st)) = self
                .peers
                .iter_mut()
                .filter(|(_, p)| p.in_flight < per_peer && !p.not_found.contains(&hash) && has(p))
                .min_by_key(|(_, p)| p.in_flight)
            else {
                continue;
            };
            st.in_flight += 1;
            free -= 1;
            self.in_flight.insert(hash, Request { peer, since: now });
            self.stats.requested += 1;
            out.entry(peer).or_default().push(hash);
        }
        // Room left with nothing to ask inside the window: peers that hold
        // blocks beyond it are kept idle by the window's first block.
        if free > 0 && height > window_end && window_end < best {
            let per_peer = self.config.per_peer;
            self.idle_useful = self
                .peers
                .iter()
                .filter(|(_, p)| p.in_flight < per_peer)
                .filter(|(_, p)| p.best.and_then(|b| chain.get(&b)).is_some_and(|e| e.height > window_end))
                .map(|(&id, _)| id)
                .collect();
        }
        out.into_iter().collect()
    }

    /// A block arrived from `peer`. Returns whether we had asked that peer
    /// for it (an unrequested block is still processed by the caller, as
    /// Core processes a new block announced by a compact block or pushed).
    pub fn received(&mut self, peer: PeerId, hash: &BlockHash) -> bool {
        let requested = match self.in_flight.get(hash) {
            Some(r) if r.peer == peer => {
                self.in_flight.remove(hash);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                }
                true
            }
            _ => false,
        };
        if requested {
            self.stats.received += 1;
            // Core eases the stall timeout back by 15 % per block.
            let eased = self.stall_timeout.mul_f64(0.85);
            self.stall_timeout = eased.max(self.config.stall_timeout);
        } else {
            self.stats.unrequested += 1;
        }
        requested
    }

    /// The peer does not have these blocks: ask someone else.
    pub fn not_found(&mut self, peer: PeerId, hashes: &[BlockHash]) {
        for hash in hashes {
            if self.in_flight.get(hash).is_some_and(|r| r.peer == peer) {
                self.in_flight.remove(hash);
                self.stats.not_found += 1;
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                    if p.not_found.len() >= 10_000 {
                        p.not_found.clear();
                    }
                    p.not_found.insert(*hash);
                }
            }
        }
    }

    /// Timers: the stalling peer and requests past their timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<(PeerId, DownloadError)> {
        let mut out: Vec<(PeerId, DownloadError)> = Vec::new();
        if let Some((height, hash)) = self.window_start
            && let Some(r) = self.in_flight.get(&hash)
        {
            let waited = now.saturating_duration_since(r.since);
            // Only a stall when another peer could be downloading beyond
            // the window (Core: the staller keeps such a peer idle).
            let other_idle = self.idle_useful.iter().any(|&id| id != r.peer);
            if waited >= self.stall_timeout && other_idle {
                self.stats.stalls += 1;
                out.push((r.peer, DownloadError::Stalling { hash, height, waited }));
                self.stall_timeout = (self.stall_timeout * 2).min(self.config.max_stall_timeout);
            }
        }
        for (hash, r) in &self.in_flight {
            if now.saturating_duration_since(r.since) >= self.config.request_timeout
                && !out.iter().any(|(p, _)| *p == r.peer)
            {
                self.stats.timeouts += 1;
                out.push((r.peer, DownloadError::Timeout { hash: *hash, timeout: self.config.request_timeout }));
            }
        }
        for (peer, _) in &out {
            self.peer_gone(*peer);
        }
        out
    }

    /// When [`BlockDownload::tick`] may next have something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let stall = if !self.idle_useful.is_empty() {
            self.window_start.and_then(|(_, h)| self.in_flight.get(&h)).map(|r| r.since + self.stall_timeout)
        } else {
            None
        };
        let oldest = self.in_flight.values().map(|r| r.since + self.config.request_timeout).min();
        match (stall, oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
