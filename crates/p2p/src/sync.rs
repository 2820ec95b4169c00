//! Header sync over several peers, without I/O: which peer to ask, what to
//! store, whom to drop. The caller feeds handshakes, `headers`, block
//! announcements, disconnections and the time; it gets [`Action`]s back.
//!
//! # Low-work header defence (Core's headers presync, simplified)
//!
//! A peer's headers are stored only when their chain would have more work
//! than `max(our tip's work, nMinimumChainWork)` (the *threshold*). A batch
//! below it starts a per-peer **presync**: each header is checked for
//! continuity, proof of work against its own nBits and a permitted
//! difficulty transition, and only the last hash, the height, the
//! accumulated work and one hash every [`COMMITMENT_PERIOD`] heights are
//! kept — nothing is stored in the chain. Once the accumulated work passes
//! the threshold, the same headers are asked again from the fork point
//! (**redownload**) and stored with full validation; each must match the
//! hash remembered at its height, and the last the presync's tip, or the
//! peer is dropped. So a peer feeding a long cheap fork costs us a few
//! bytes per hundred headers, never the headers themselves.
//!
//! Simplifications against Core: commitments are full hashes every 100
//! heights rather than salted one-bit hashes (about 0.3 byte per header;
//! a lying peer gets at most 99 headers stored before it is caught, and they
//! count against the hard cap below); Core's 144-block margin below the tip
//! is not applied, so a rival branch is stored only once it has more work
//! than our tip (an equal-work rival tip is ignored until extended); a
//! presync is bounded by time as Core does (at most six headers per second
//! since the fork point's timestamp, plus two hours) and, since full hashes
//! cost more than Core's bits, by [`MAX_COMMITMENTS`] per peer.
//!
//! # Hard cap
//!
//! Headers stored off the best chain (forks, what a reorg displaced) are
//! capped at [`SyncConfig::max_off_best`] (10,000 by default, 1.2 MB): a
//! peer whose header would go over is disconnected with a reason. This is a
//! backstop; presync already keeps cheap forks out.
//!
//! # Several peers
//!
//! One *sync peer* at a time gets `getheaders` for the initial sync (as Core
//! does at first); other peers' announcements are still processed. Each peer
//! has at most one `getheaders` in flight. A sync peer that leaves a request
//! unanswered for [`SyncConfig::stall_timeout`] is dropped as stalled and
//! the next ready peer takes over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bitcoin::Work;
use kiln_work::{BlockHash, CompactTarget, Header};

use crate::headers::{HeaderChain, HeaderError, from_bitcoin, permitted_transition, work_of};
use crate::wire::MAX_HEADERS_RESULTS;

/// A peer, as the caller names it.
pub type PeerId = u64;

/// Heights between two remembered presync hashes.
pub const COMMITMENT_PERIOD: u32 = 100;
/// Presync hashes kept per peer at most (3.2 MB, ten million headers: twice
/// testnet3's height). The time bound alone would allow billions of headers
/// on a network with minimum-difficulty blocks, so memory is bounded here.
pub const MAX_COMMITMENTS: usize = 100_000;
/// Core's `MAX_NUM_UNCONNECTING_HEADERS_MSGS`.
pub const MAX_UNCONNECTING_HEADERS_MSGS: u32 = 10;

/// Sync policy knobs.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// A sync peer silent this long on a `getheaders` is dropped (Core: a
    /// headers sync timeout of the order of minutes; two here).
    pub stall_timeout: Duration,
    /// Headers stored off the best chain before a peer adding more is dropped.
    pub max_off_best: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { stall_timeout: Duration::from_secs(120), max_off_best: 10_000 }
    }
}

/// Why a peer must be disconnected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncError {
    #[error("invalid header ({0})")]
    BadHeader(HeaderError),
    #[error("{0} headers messages in a row did not connect to our chain")]
    Unconnecting(u32),
    #[error("non-continuous headers sequence at {hash}")]
    NonContinuous { hash: BlockHash },
    #[error("presync: nBits {bits:#010x} at height {height} is not a permitted difficulty transition")]
    BadTransition { height: u32, bits: u32 },
    #[error("presync: chain longer than time or memory allows (height {height})")]
    PresyncTooLong { height: u32 },
    #[error("redownload: header at height {height} is {got}, presync saw {expected}")]
    CommitmentMismatch { height: u32, got: BlockHash, expected: BlockHash },
    #[error("{stored} headers stored off the best chain: cap reached")]
    TooManyForkHeaders { stored: usize },
    #[error("no answer to getheaders within {0:?}")]
    Stalled(Duration),
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `getheaders` with this locator to the peer.
    GetHeaders { peer: PeerId, locator: Vec<BlockHash> },
    /// Disconnect the peer, saying why.
    Disconnect { peer: PeerId, reason: SyncError },
}

/// A branch being measured before anything of it is stored.
#[derive(Clone, Debug)]
struct Presync {
    fork: BlockHash,
    fork_time: u32,
    last_hash: BlockHash,
    last_bits: CompactTarget,
    height: u32,
    work: Work,
    commitments: Vec<BlockHash>,
}

/// A branch whose work was proven, being fetched again and stored.
#[derive(Clone, Debug)]
struct Redownload {
    last_hash: BlockHash,
    fork_height: u32,
    target_height: u32,
    target_hash: BlockHash,
    commitments: Vec<BlockHash>,
}

#[derive(Debug, Default)]
struct PeerState {
    ready: bool,
    start_height: i32,
    in_flight: Option<Instant>,
    /// Became ready while the sync peer was busy: asked for headers once
    /// the sync peer answers (so every peer is asked once).
    pending_tall: bool,
    unconnecting: u32,
    presync: Option<Presync>,
    redownload: Option<Redownload>,
}

/// What sync has done, for status lines and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub getheaders_sent: u64,
    pub headers_messages: u64,
    pub headers_stored: u64,
    /// Headers checked in presync and not stored.
    pub presync_headers: u64,
    pub stalls: u64,
}

/// The header chain and every peer's sync state (see the module docs).
#[derive(Debug)]
pub struct Sync {
    chain: HeaderChain,
    config: SyncConfig,
    peers: BTreeMap<PeerId, PeerState>,
    sync_peer: Option<PeerId>,
    stats: SyncStats,
}

impl Sync {
    pub fn new(chain: HeaderChain, config: SyncConfig) -> Sync {
        Sync { chain, config, peers: BTreeMap::new(), sync_peer: None, stats: SyncStats::default() }
    }

    pub fn chain(&self) -> &HeaderChain {
        &self.chain
    }

    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    pub fn sync_peer(&self) -> Option<PeerId> {
        self.sync_peer
    }

    /// Peers whose handshake is done.
    pub fn ready_peers(&self) -> usize {
        self.peers.values().filter(|p| p.ready).count()
    }

    /// The highest start height a ready peer announced in `version`.
    pub fn best_announced_height(&self) -> Option<i32> {
        self.peers.values().filter(|p| p.ready).map(|p| p.start_height).max()
    }

    /// True while some peer is in presync or redownload.
    pub fn presyncing(&self) -> bool {
        self.peers.values().any(|p| p.presync.is_some() || p.redownload.is_some())
    }

    /// Work a branch must beat to be stored.
    fn threshold(&self) -> Work {
        self.chain.tip().chainwork.max(self.chain.params().min_chain_work)
    }

    /// The peer's handshake finished; it announced `start_height`.
    pub fn peer_ready(&mut self, peer: PeerId, start_height: i32, now: Instant) -> Vec<Action> {
        let st = self.peers.entry(peer).or_default();
        st.ready = true;
        st.start_height = start_height;
        let mut out = Vec::new();
        let sync_idle = self.sync_peer.and_then(|id| self.peers.get(&id)).is_none_or(|p| p.in_flight.is_none());
        if self.sync_peer.is_none() {
            self.sync_peer = Some(peer);
            self.ask(peer, None, now, &mut out);
        } else if sync_idle {
            // The sync peer has nothing in flight: ask this one too, once
            // (as Core does outside its initial sync), so we learn what it
            // holds (the block download asks only peers known to hold a
            // block) and whether it is ahead.
            self.ask(peer, None, now, &mut out);
        } else if let Some(st) = self.peers.get_mut(&peer) {
            // Asked once the sync peer answers.
            st.pending_tall = true;
        }
        out
    }

    /// The peer is gone (disconnected for any reason); another takes over
    /// as sync peer if it was the one.
    pub fn peer_gone(&mut self, peer: PeerId, now: Instant) -> Vec<Action> {
        self.peers.remove(&peer);
        let mut out = Vec::new();
        if self.sync_peer == Some(peer) {
            self.sync_peer = None;
            if let Some(next) = self.peers.iter().find(|(_, p)| p.ready).map(|(&id, _)| id) {
                self.sync_peer = Some(next);
                self.ask(next, None, now, &mut out);
            }
        }
        out
    }

    /// Timers: a sync peer silent on its request too long is dropped.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(id) = self.sync_peer
            && let Some(since) = self.peers.get(&id).and_then(|p| p.in_flight)
            && now.saturating_duration_since(since) >= self.config.stall_timeout
        {
            self.stats.stalls += 1;
            out.push(Action::Disconnect { peer: id, reason: SyncError::Stalled(self.config.stall_timeout) });
            out.extend(self.peer_gone(id, now));
        }
        out
    }

    /// When [`Sync::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let id = self.sync_peer?;
        self.peers.get(&id)?.in_flight.map(|t| t + self.config.stall_timeout)
    }

    /// Blocks announced by `inv`: ask the peer for headers if any is new.
    pub fn blocks_announced(&mut self, peer: PeerId, hashes: &[BlockHash], now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if hashes.iter().any(|h| !self.chain.contains(h)) {
            self.ask(peer, None, now, &mut out);
        }
        out
    }

    /// Sends `getheaders` unless one is already in flight to this peer;
    /// `from` overrides the locator (presync and redownload continue from
    /// their own last hash).
    fn ask(&mut self, peer: PeerId, from: Option<BlockHash>, now: Instant, out: &mut Vec<Action>) {
        let Some(st) = self.peers.get_mut(&peer) else { return };
        if !st.ready || st.in_flight.is_some() {
            return;
        }
        st.in_flight = Some(now);
        self.stats.getheaders_sent += 1;
        let locator = match from {
            Some(h) => vec![h, self.chain.params().genesis.block_hash()],
            None => {
                // From the tip's parent, as Core does, so the answer is
                // never empty: it shows the peer has our tip, which is what
                // block download needs to know before asking it for blocks.
                let mut l = self.chain.locator();
                if l.len() > 1 {
                    l.remove(0);
                }
                l
            }
        };
        out.push(Action::GetHeaders { peer, locator });
    }

    /// A `headers` message from `peer`. `unix_now` is the caller's clock
    /// for the time-too-new rule and the presync length bound.
    pub fn headers(
        &mut self,
        peer: PeerId,
        headers: &[bitcoin::block::Header],
        now: Instant,
        unix_now: u64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(st) = self.peers.get_mut(&peer) else { return out };
        st.in_flight = None;
        self.stats.headers_messages += 1;
        let headers: Vec<Header> = headers.iter().map(from_bitcoin).collect();
        match self.process(peer, &headers, now, unix_now, &mut out) {
            Ok(()) => {}
            // Core does not punish a header too far in the future (our clock
            // may be the one that is wrong): it is refused, the peer stays.
            Err(SyncError::BadHeader(e @ HeaderError::TimeTooNew { .. })) => {
                log::info!("peer {peer}: header refused, not stored: {e}");
                return out;
            }
            Err(reason) => {
                out.push(Action::Disconnect { peer, reason });
                return out;
            }
        }
        // The sync peer is done for now: peers that announced more when they
        // connected are asked once (a branch mined while we were away).
        if self.sync_peer == Some(peer) && self.peers.get(&peer).is_some_and(|p| p.in_flight.is_none()) {
            let tall: Vec<PeerId> = self
                .peers
                .iter_mut()
                .filter(|(_, p)| p.pending_tall)
                .map(|(&id, p)| {
                    p.pending_tall = false;
                    id
                })
                .collect();
            for id in tall {
                self.ask(id, None, now, &mut out);
            }
        }
        out
    }

    fn process(
        &mut self,
        peer: PeerId,
        headers: &[Header],
        now: Instant,
        unix_now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), SyncError> {
        let full = headers.len() as u64 == MAX_HEADERS_RESULTS;
        // Proof of work of every header, then continuity, in Core's order
        // (`CheckHeadersPoW`, then `CheckHeadersAreContinuous`): both cheap,
        // and they make presync's accounting sound.
        for h in headers {
            self.chain.check_proof_of_work(h).map_err(SyncError::BadHeader)?;
        }
        let hashes: Vec<BlockHash> = headers.iter().map(Header::block_hash).collect();
        for (i, h) in headers.iter().enumerate().skip(1) {
            if h.prev_blockhash != hashes[i - 1] {
                return Err(SyncError::NonContinuous { hash: hashes[i] });
            }
        }
        let Some(first) = headers.first() else { return Ok(()) };
        let st = self.peers.get_mut(&peer).expect("caller checked");
        if st.redownload.is_some() {
            return self.redownload(peer, headers, &hashes, full, now, unix_now, out);
        }
        if let Some(ps) = &st.presync
            && ps.last_hash == first.prev_blockhash
        {
            return self.presync(peer, headers, &hashes, full, now, unix_now, out);
        }
        st.presync = None;
        if !self.chain.contains(&first.prev_blockhash) {
            st.unconnecting += 1;
            if st.unconnecting > MAX_UNCONNECTING_HEADERS_MSGS {
                return Err(SyncError::Unconnecting(st.unconnecting));
            }
            self.ask(peer, None, now, out);
            return Ok(());
        }
        st.unconnecting = 0;
        // Skip what we already have; the rest forks from (or extends) the
        // last known one.
        let known = hashes.iter().take_while(|h| self.chain.contains(h)).count();
        let last_known = hashes.last().copied();
        let (headers, hashes) = (&headers[known..], &hashes[known..]);
        let Some(first) = headers.first() else {
            if full {
                self.ask(peer, last_known, now, out);
            }
            return Ok(());
        };
        let parent = self.chain.get(&first.prev_blockhash).expect("checked above");
        let mut end_work = parent.chainwork;
        for h in headers {
            end_work = end_work + work_of(h.bits);
        }
        if end_work > self.threshold() {
            self.store(headers, unix_now)?;
            if full {
                self.ask(peer, None, now, out);
            }
            return Ok(());
        }
        // Below the threshold: measure it without storing.
        let (parent_hash, parent_height, parent_time, parent_bits, parent_work) =
            (parent.hash, parent.height, parent.header.time, parent.header.bits, parent.chainwork);
        let st = self.peers.get_mut(&peer).expect("caller checked");
        st.presync = Some(Presync {
            fork: parent_hash,
            fork_time: parent_time,
            last_hash: parent_hash,
            last_bits: parent_bits,
            height: parent_height,
            work: parent_work,
            commitments: Vec::new(),
        });
        log::debug!("peer {peer}: headers below the work threshold from height {parent_height}: presync");
        self.presync(peer, headers, hashes, full, now, unix_now, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn presync(
        &mut self,
        peer: PeerId,
        headers: &[Header],
        hashes: &[BlockHash],
        full: bool,
        now: Instant,
        unix_now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), SyncError> {
        let threshold = self.threshold();
        let st = self.peers.get_mut(&peer).expect("caller checked");
        let mut ps = st.presync.take().expect("caller checked");
        let max_height = {
            let fork_height = self.chain.get(&ps.fork).map_or(0, |e| e.height);
            let secs = unix_now.saturating_sub(u64::from(ps.fork_time)) + crate::headers::MAX_FUTURE_BLOCK_TIME;
            u64::from(fork_height).saturating_add(secs.saturating_mul(6)).min(u64::from(u32::MAX)) as u32
        };
        for (h, &hash) in headers.iter().zip(hashes) {
            self.chain.check_proof_of_work(h).map_err(SyncError::BadHeader)?;
            let height = ps.height + 1;
            if !permitted_transition(self.chain.params(), height, ps.last_bits, h.bits) {
                return Err(SyncError::BadTransition { height, bits: h.bits.0 });
            }
            if height > max_height || ps.commitments.len() >= MAX_COMMITMENTS {
                return Err(SyncError::PresyncTooLong { height });
            }
            ps.height = height;
            ps.last_hash = hash;
            ps.last_bits = h.bits;
            ps.work = ps.work + work_of(h.bits);
            self.stats.presync_headers += 1;
            if height.is_multiple_of(COMMITMENT_PERIOD) {
                ps.commitments.push(hash);
            }
            if ps.work > threshold {
                // Proven: fetch it again from the fork point and store it.
                let fork_height = self.chain.get(&ps.fork).map_or(0, |e| e.height);
                log::info!(
                    "peer {peer}: presync reached the work threshold at height {height}; redownloading from {fork_height}"
                );
                st.redownload = Some(Redownload {
                    last_hash: ps.fork,
                    fork_height,
                    target_height: height,
                    target_hash: hash,
                    commitments: ps.commitments,
                });
                let from = ps.fork;
                self.ask(peer, Some(from), now, out);
                return Ok(());
            }
        }
        if full {
            let from = ps.last_hash;
            st.presync = Some(ps);
            self.ask(peer, Some(from), now, out);
        } else {
            log::info!("peer {peer}: its chain ends at height {} below the work threshold; nothing stored", ps.height);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn redownload(
        &mut self,
        peer: PeerId,
        headers: &[Header],
        hashes: &[BlockHash],
        full: bool,
        now: Instant,
        unix_now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), SyncError> {
        let st = self.peers.get_mut(&peer).expect("caller checked");
        let mut rd = st.redownload.take().expect("caller checked");
        if headers[0].prev_blockhash != rd.last_hash {
            return Err(SyncError::NonContinuous { hash: hashes[0] });
        }
        for (i, (h, &hash)) in headers.iter().zip(hashes).enumerate() {
            let height = self.chain.get(&h.prev_blockhash).map_or(0, |e| e.height) + 1;
            let expected = if height == rd.target_height {
                Some(rd.target_hash)
            } else if height.is_multiple_of(COMMITMENT_PERIOD) {
                let i = (height / COMMITMENT_PERIOD) as usize - (rd.fork_height / COMMITMENT_PERIOD) as usize - 1;
                rd.commitments.get(i).copied()
            } else {
                None
            };
            if let Some(expected) = expected
                && expected != hash
            {
                return Err(SyncError::CommitmentMismatch { height, got: hash, expected });
            }
            self.store(std::slice::from_ref(h), unix_now)?;
            rd.last_hash = hash;
            if height == rd.target_height {
                log::info!("peer {peer}: redownload done at height {height}");
                // Normal sync from here: the branch is now our best chain,
                // and the rest of the message extends it.
                self.store(&headers[i + 1..], unix_now)?;
                if full {
                    self.ask(peer, None, now, out);
                }
                return Ok(());
            }
        }
        let from = rd.last_hash;
        let st = self.peers.get_mut(&peer).expect("caller checked");
        if full {
            st.redownload = Some(rd);
            self.ask(peer, Some(from), now, out);
        } else {
            log::info!("peer {peer}: redownload ended short of the presync tip");
        }
        Ok(())
    }

    /// A header that came with a block (`cmpctblock`, or a block pushed to
    /// us) rather than in a `headers` message: validated and stored with the
    /// off-best cap, as any other.
    ///
    /// # Errors
    /// [`SyncError::BadHeader`] or [`SyncError::TooManyForkHeaders`].
    pub fn accept_header(&mut self, header: &Header, unix_now: u64) -> Result<(), SyncError> {
        self.store(std::slice::from_ref(header), unix_now)
    }

    /// A block failed validation: see [`HeaderChain::mark_invalid`].
    pub fn mark_invalid(&mut self, hash: &BlockHash) -> bool {
        self.chain.mark_invalid(hash)
    }

    /// Stores validated headers, with the off-best cap.
    fn store(&mut self, headers: &[Header], unix_now: u64) -> Result<(), SyncError> {
        for h in headers {
            let becomes_tip = self.chain.chainwork_of_child(h).is_some_and(|w| w > self.chain.tip().chainwork);
            if !becomes_tip && !self.chain.contains(&h.block_hash()) {
                let stored = self.chain.off_best_len();
                if stored >= self.config.max_off_best {
                    return Err(SyncError::TooManyForkHeaders { stored });
                }
            }
            let a = self.chain.accept(h, unix_now).map_err(SyncError::BadHeader)?;
            self.stats.headers_stored += u64::from(!a.known);
        }
        Ok(())
    }
}
