//! The node: a thin mio loop over outbound and inbound peers that carries
//! out the sans-I/O decisions of [`Sync`] (headers) and [`BlockDownload`]
//! (blocks), checks and stores blocks, serves what it stores and relays new
//! blocks.
//!
//! # What a block goes through
//!
//! A block (from `block`, from a `cmpctblock` completed by `blocktxn`, or
//! handed in with [`NodeDriver::submit_block`]) has its header accepted into
//! the header chain first (full header validation), then
//! [`kiln_validate::rules::check_block_rules`]: every rule that needs no
//! UTXO set, with the height and median time past from the header chain.
//! A block failing a rule that a peer could have caused by altering it in
//! transit (merkle root, CVE-2012-2459 duplicate, witness commitment) only
//! costs that peer its connection; any other failure marks the block
//! invalid in the header chain as well, so the best chain moves off it.
//! An invalid block is recorded in the store too, so a restart does not
//! fetch it again. A valid block is queued; once per loop turn the queued blocks are
//! stored with one fsync and one commit (`kiln-store`'s `put_batch`), which
//! also records the new *block tip* (the most-work chain whose blocks are
//! all stored). Nothing is announced before that commit. When the tip
//! moves, it is announced to every peer the way it asked: `cmpctblock` to high-bandwidth BIP152 peers,
//! `headers` to BIP130 peers, `inv` to the rest.
//!
//! # Serving
//!
//! `getheaders` is answered from the block tip's chain (never with headers
//! whose blocks kiln does not hold), `getdata` for blocks from the store —
//! witness blocks as stored, without re-encoding — one block at a time
//! while less than [`SEND_TARGET`] is waiting to be sent, `getblocktxn` for
//! recent blocks. Unknown items get `notfound`.
//!
//! # Transport
//!
//! Every connection has a [`Transport`] under its [`Peer`]: outbound ones
//! offer BIP324 v2 and, when the peer closes during the v2 handshake, are
//! dialled again at once with v1 (Core's fallback); inbound ones are v1 or
//! v2 as the peer's first bytes say.
//!
//! # Bounds
//!
//! Inbound peers are capped ([`NodeOptions::max_inbound`]); per peer, the
//! receive buffer is one message (≤ 4 MB, checked from its header), the send
//! queue [`MAX_SEND_QUEUE`], the queued `getdata` items 50,000, and a
//! compact block waiting for its transactions one at a time with at most
//! [`MAX_COMPACT_TXS`] slots. Configured peers whose connection ends are
//! dialled again after a back-off doubling from
//! [`NodeOptions::reconnect_min`] to [`NodeOptions::reconnect_max`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_compact_blocks::{BlockTxn, CmpctBlock, GetBlockTxn, SendCmpct};
use bitcoin::{Block, Transaction};
use kiln_store::{BlockStore, StoreError};
use kiln_validate::rules::{self, Context, Precomputed};
use kiln_work::BlockHash;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::blocks::{BlockDownload, DownloadConfig};
use crate::headers::{HeaderChain, from_bitcoin, from_bitcoin_hash, to_bitcoin, to_bitcoin_hash};
use crate::peer::{MAX_SEND_QUEUE, Peer, PeerConfig, PeerEvent, SEND_TARGET};
use crate::sync::{Action, PeerId, Sync, SyncConfig};
use crate::transport::Transport;
use crate::wire::{MAX_HEADERS_RESULTS, MAX_INV_SZ};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// The loop wakes at least this often, so a caller's stop condition (a
/// signal flag, a status line) is seen promptly.
const MAX_POLL: Duration = Duration::from_millis(200);
const LISTENER: Token = Token(0);
/// Core's `MAX_BLOCKS_TO_ANNOUNCE`: more new blocks than this are announced
/// by `inv` rather than `headers`.
pub const MAX_BLOCKS_TO_ANNOUNCE: u32 = 8;
/// Core's `MAX_CMPCTBLOCK_DEPTH`: deeper blocks are sent whole when asked
/// for as compact blocks.
pub const MAX_CMPCTBLOCK_DEPTH: u32 = 5;
/// Core's `MAX_BLOCKTXN_DEPTH`: deeper blocks are sent whole on `getblocktxn`.
pub const MAX_BLOCKTXN_DEPTH: u32 = 10;
/// Checked blocks held for one commit at most (the commit happens sooner,
/// at the end of each loop turn).
const MAX_PENDING_BYTES: usize = 32 << 20;
/// The most transactions a compact block may claim: a block's weight
/// limit over the smallest transaction's weight (Core's bound).
pub const MAX_COMPACT_TXS: usize = 4_000_000 / 40;

/// How the node connects and serves.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// A TCP connection not up within this is abandoned (and retried).
    pub connect_timeout: Duration,
    /// First wait before dialling a lost peer again.
    pub reconnect_min: Duration,
    /// Longest wait between attempts.
    pub reconnect_max: Duration,
    pub sync: SyncConfig,
    pub download: DownloadConfig,
    /// Where to accept inbound peers (loopback unless told otherwise).
    pub listen: Option<SocketAddr>,
    /// Inbound connections accepted at most (further ones are closed at once).
    pub max_inbound: usize,
    /// Offer BIP324 v2 to outbound peers (falling back to v1 for a peer
    /// that closes during the v2 handshake) and accept it inbound.
    pub v2: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            sync: SyncConfig::default(),
            download: DownloadConfig::default(),
            listen: None,
            max_inbound: 117,
            v2: true,
        }
    }
}

/// Why the node could not start or a block was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("listening on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("block store: {0}")]
    Store(#[from] StoreError),
    #[error("block store belongs to another network (its genesis is missing)")]
    WrongNetwork,
}

/// Why a block was not taken.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockReject {
    #[error("header refused: {0}")]
    Header(String),
    #[error("header refused, more than two hours ahead of our clock: {0}")]
    TimeTooNew(String),
    #[error("parent {0} unknown")]
    Orphan(BlockHash),
    #[error("block {0} was already found invalid")]
    KnownInvalid(BlockHash),
    #[error("block {hash} altered in transit ({rules})")]
    Mutated { hash: BlockHash, rules: String },
    #[error("block {hash} invalid ({rules})")]
    Invalid { hash: BlockHash, rules: String },
    #[error("storing block {hash}: {reason}")]
    Store { hash: BlockHash, reason: String },
    #[error("block {0} was not requested and has less work than our tip")]
    Unrequested(BlockHash),
}

/// One configured address and, when up, its connection's token.
#[derive(Debug)]
struct Slot {
    addr: SocketAddr,
    conn: Option<usize>,
    backoff: Duration,
    retry_at: Instant,
    info: PeerInfo,
    /// The next dial uses v1, once: the last v2 attempt was closed before
    /// the peer sent a byte (Core's fallback for a v1-only peer); always
    /// true when v2 is off.
    v1_only: bool,
}

/// A compact block waiting for the transactions we asked for.
#[derive(Debug)]
struct PartialBlock {
    header: bitcoin::block::Header,
    txs: Vec<Option<Transaction>>,
}

#[derive(Debug)]
struct Conn {
    id: PeerId,
    addr: SocketAddr,
    slot: Option<usize>,
    stream: TcpStream,
    peer: Peer,
    /// Our `version` nonce on this connection.
    nonce: u64,
    /// Bytes received so far (a v2 attempt that got none fell back to v1).
    received: u64,
    transport: Transport,
    queue: Vec<u8>,
    connected: bool,
    started: Instant,
    start_height: i32,
    user_agent: String,
    ready: bool,
    /// The newest block we know the peer has (it told us, or we told it).
    best_known: Option<BlockHash>,
    /// BIP152 version 2 negotiated: the peer understands compact blocks.
    provides_compact: bool,
    /// The peer asked for new blocks as `cmpctblock` straight away.
    high_bandwidth: bool,
    getdata: VecDeque<Inventory>,
    partial: Option<PartialBlock>,
    blocks_received: u64,
    blocks_sent: u64,
}

/// What is known about one configured address, for status lines and tests.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    pub connected: bool,
    pub ready: bool,
    /// Connections made (TCP up).
    pub connections: u32,
    /// The height the peer announced in its last `version`.
    pub start_height: Option<i32>,
    pub user_agent: Option<String>,
    /// Why the last connection ended.
    pub last_error: Option<String>,
}

/// One live connection, for `/peers` and status lines.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnInfo {
    pub id: PeerId,
    pub addr: SocketAddr,
    pub inbound: bool,
    /// "v1", "v2" (BIP324), or a v2 handshake under way.
    pub transport: &'static str,
    pub ready: bool,
    pub user_agent: String,
    pub start_height: i32,
    pub best_known: Option<String>,
    pub high_bandwidth: bool,
    pub blocks_received: u64,
    pub blocks_sent: u64,
}

/// Counters of the block side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeStats {
    pub blocks_stored: u64,
    pub blocks_invalid: u64,
    pub blocks_mutated: u64,
    pub blocks_served: u64,
    pub compact_received: u64,
    pub compact_sent: u64,
    pub announcements: u64,
    pub inbound_accepted: u64,
    pub inbound_refused: u64,
    pub disconnects: u64,
}

/// The node (see the module docs).
pub struct NodeDriver {
    poll: Poll,
    listener: Option<TcpListener>,
    slots: Vec<Slot>,
    conns: HashMap<usize, Conn>,
    next_token: usize,
    sync: Sync,
    download: BlockDownload,
    store: Option<BlockStore>,
    /// Blocks committed to the store.
    stored: HashSet<BlockHash>,
    /// Checked blocks waiting to be committed together (one fsync and one
    /// commit per loop turn, not per block); nothing about them is
    /// announced before the commit.
    pending: Vec<Block>,
    pending_set: HashSet<BlockHash>,
    pending_bytes: usize,
    /// A block commit failed: the store refuses writes until reopened, so
    /// nothing more is downloaded (rather than fetched again forever).
    store_failed: bool,
    block_tip: (BlockHash, u32),
    opts: NodeOptions,
    next_id: PeerId,
    stats: NodeStats,
    nonce_seed: u64,
    /// Version nonces of our outbound connections (an inbound peer echoing
    /// one is ourselves).
    our_nonces: HashSet<u64>,
}

impl std::fmt::Debug for NodeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDriver")
            .field("peers", &self.conns.len())
            .field("best_header", &self.sync.chain().best_height())
            .field("block_tip", &self.block_tip)
            .finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl NodeDriver {
    /// A headers-only node (no block store) that will connect to every
    /// address in `addrs` (in [`NodeDriver::run_until`]).
    ///
    /// # Errors
    /// When the poller cannot be created or the listener not bound.
    pub fn new(addrs: &[SocketAddr], chain: HeaderChain, opts: NodeOptions) -> Result<NodeDriver, NodeError> {
        Self::build(addrs, chain, None, opts)
    }

    /// A full node over `store`: the header chain is restored from the
    /// store's headers (re-validated) and the block tip from its tip;
    /// missing blocks of the best chain are downloaded.
    ///
    /// # Errors
    /// A store error, stored headers that no longer validate, a store from
    /// another network, or the listener not bound.
    pub fn with_store(
        addrs: &[SocketAddr],
        mut chain: HeaderChain,
        store: BlockStore,
        opts: NodeOptions,
    ) -> Result<NodeDriver, NodeError> {
        let genesis_hash = chain.params().genesis.block_hash();
        // Stored headers were valid when stored: the future-time rule is not
        // applied again (a clock behind at boot must not stop the node), and
        // one that no longer connects (a lost write) is skipped, not fatal.
        let mut skipped = 0u64;
        for (h, _) in store.headers()? {
            if let Err(e) = chain.accept_bitcoin(&h, u64::from(u32::MAX)) {
                skipped += 1;
                log::debug!("stored header {} skipped: {e}", h.block_hash());
            }
        }
        if skipped > 0 {
            log::warn!("{skipped} stored headers no longer fit the chain and were skipped");
        }
        for hash in store.invalid_blocks()? {
            chain.mark_invalid(&from_bitcoin_hash(&hash));
        }
        if store.is_empty()? {
            let genesis = bitcoin::blockdata::constants::genesis_block(chain.params().network);
            store.put_tip(&genesis, 0)?;
        } else if !store.contains(&to_bitcoin_hash(&genesis_hash))? {
            return Err(NodeError::WrongNetwork);
        }
        NodeDriver::build(addrs, chain, Some(store), opts)
    }

    fn build(
        addrs: &[SocketAddr],
        chain: HeaderChain,
        store: Option<BlockStore>,
        opts: NodeOptions,
    ) -> Result<NodeDriver, NodeError> {
        let now = Instant::now();
        let slots = addrs
            .iter()
            .map(|&addr| Slot {
                addr,
                conn: None,
                backoff: opts.reconnect_min,
                retry_at: now,
                info: PeerInfo::default(),
                v1_only: !opts.v2,
            })
            .collect();
        let poll = Poll::new()?;
        let listener = match opts.listen {
            Some(addr) => {
                let mut l = TcpListener::bind(addr).map_err(|source| NodeError::Listen { addr, source })?;
                poll.registry().register(&mut l, LISTENER, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
        let genesis = chain.params().genesis.block_hash();
        let mut stored = HashSet::new();
        let mut block_tip = (genesis, 0);
        if let Some(store) = &store {
            stored = store.hashes()?.iter().map(from_bitcoin_hash).collect();
            if let Some((hash, height)) = store.tip()? {
                let hash = from_bitcoin_hash(&hash);
                if chain.contains(&hash) {
                    block_tip = (hash, height);
                }
            }
        }
        let time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut node = NodeDriver {
            poll,
            listener,
            slots,
            conns: HashMap::new(),
            next_token: 1,
            sync: Sync::new(chain, opts.sync.clone()),
            download: BlockDownload::new(opts.download.clone()),
            store,
            stored,
            pending: Vec::new(),
            pending_set: HashSet::new(),
            pending_bytes: 0,
            store_failed: false,
            block_tip,
            opts,
            next_id: 1,
            stats: NodeStats::default(),
            nonce_seed: (time.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32),
            our_nonces: HashSet::new(),
        };
        node.advance_tip();
        Ok(node)
    }

    pub fn sync(&self) -> &Sync {
        &self.sync
    }

    pub fn chain(&self) -> &HeaderChain {
        self.sync.chain()
    }

    pub fn download(&self) -> &BlockDownload {
        &self.download
    }

    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    pub fn store(&self) -> Option<&BlockStore> {
        self.store.as_ref()
    }

    /// The most-work chain whose blocks are all stored and checked: its tip
    /// hash and height (genesis for a headers-only node).
    pub fn block_tip(&self) -> (BlockHash, u32) {
        self.block_tip
    }

    /// The address inbound peers connect to, when listening.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Each configured address with what is known about it.
    pub fn peers(&self) -> Vec<(SocketAddr, PeerInfo)> {
        self.slots.iter().map(|s| (s.addr, s.info.clone())).collect()
    }

    /// Every live connection, outbound and inbound.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let mut v: Vec<ConnInfo> = self
            .conns
            .values()
            .map(|c| ConnInfo {
                id: c.id,
                addr: c.addr,
                inbound: c.slot.is_none(),
                transport: c.transport.kind(),
                ready: c.ready,
                user_agent: c.user_agent.clone(),
                start_height: c.start_height,
                best_known: c.best_known.map(|h| h.to_string()),
                high_bandwidth: c.high_bandwidth,
                blocks_received: c.blocks_received,
                blocks_sent: c.blocks_sent,
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Runs until `done(self)` holds (true returned) or `deadline` passes
    /// (false). Connections stay up between runs.
    ///
    /// # Errors
    /// Only when polling itself fails; peer failures are handled here.
    pub fn run_until(&mut self, deadline: Instant, mut done: impl FnMut(&NodeDriver) -> bool) -> io::Result<bool> {
        let mut events = Events::with_capacity(64);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            self.flush_blocks();
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.dial(now);
            self.timers(now);
            let actions = self.sync.tick(now);
            self.apply(actions, now);
            for (peer, why) in self.download.tick(now) {
                if let Some(t) = self.token_of(peer) {
                    self.drop_conn(t, why.to_string(), now);
                }
            }
            self.request_blocks(now);
            self.serve_getdata();
            self.flush_and_register();
            let mut wake = deadline.min(now + MAX_POLL);
            for t in [self.sync.next_deadline(), self.download.next_deadline()].into_iter().flatten() {
                wake = wake.min(t);
            }
            for c in self.conns.values() {
                wake =
                    wake.min(if c.connected { c.peer.next_deadline() } else { c.started + self.opts.connect_timeout });
            }
            for s in &self.slots {
                if s.conn.is_none() {
                    wake = wake.min(s.retry_at);
                }
            }
            let timeout = wake.saturating_duration_since(now).max(Duration::from_millis(1));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                if event.token() == LISTENER {
                    self.accept_inbound(Instant::now());
                    continue;
                }
                let t = event.token().0;
                if let Err(why) =
                    self.on_socket(t, event.is_readable() || event.is_read_closed(), event.is_writable(), &mut buf)
                {
                    self.drop_conn(t, why, Instant::now());
                }
            }
        }
    }

    /// Takes a block from outside the network (kiln's own miner, a test):
    /// checked like any other and, when it extends the best chain, pushed to
    /// every peer at once.
    ///
    /// # Errors
    /// Why the block was not taken.
    pub fn submit_block(&mut self, block: Block) -> Result<(), BlockReject> {
        let now = Instant::now();
        let hash = from_bitcoin_hash(&block.block_hash());
        self.process_block(None, block, now)?;
        self.flush_blocks();
        if self.stored.contains(&hash) {
            Ok(())
        } else {
            Err(BlockReject::Store { hash, reason: "the commit failed (see the log)".into() })
        }
    }

    fn our_config(&mut self, remote: SocketAddr) -> PeerConfig {
        let time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.nonce_seed =
            self.nonce_seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let nonce = self.nonce_seed ^ (self.nonce_seed >> 29);
        let network = self.sync.chain().params().network;
        let mut config = PeerConfig::new(network, self.block_tip.1 as i32, time.as_secs() as i64, nonce);
        if self.store.is_some() {
            config.services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
        }
        if self.opts.v2 {
            config.services |= ServiceFlags::P2P_V2;
        }
        config.remote = Some(remote);
        config
    }

    #[allow(clippy::too_many_arguments)]
    fn new_conn(
        &mut self,
        stream: TcpStream,
        addr: SocketAddr,
        slot: Option<usize>,
        peer: Peer,
        nonce: u64,
        transport: Transport,
        first: Vec<u8>,
        connected: bool,
        now: Instant,
    ) -> Option<usize> {
        let token = self.next_token;
        self.next_token += 1;
        let mut stream = stream;
        if let Err(e) =
            self.poll.registry().register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("peer {addr}: registering the socket: {e}");
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(
            token,
            Conn {
                id,
                addr,
                slot,
                stream,
                nonce,
                received: 0,
                peer,
                transport,
                queue: first,
                connected,
                started: now,
                start_height: 0,
                user_agent: String::new(),
                ready: false,
                best_known: None,
                provides_compact: false,
                high_bandwidth: false,
                getdata: VecDeque::new(),
                partial: None,
                blocks_received: 0,
                blocks_sent: 0,
            },
        );
        Some(token)
    }

    /// Accepts every waiting inbound connection, up to the cap.
    fn accept_inbound(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else { return };
            let (stream, addr) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accepting a peer: {e}");
                    return;
                }
            };
            let inbound = self.conns.values().filter(|c| c.slot.is_none()).count();
            if inbound >= self.opts.max_inbound {
                self.stats.inbound_refused += 1;
                log::info!("peer {addr}: refused, {inbound} inbound peers already (--maxconnections)");
                drop(stream);
                continue;
            }
            self.stats.inbound_accepted += 1;
            log::debug!("peer {addr}: inbound connection");
            let config = self.our_config(addr);
            let (network, nonce) = (config.network, config.nonce);
            let peer = Peer::inbound(config, now);
            let transport = if self.opts.v2 { Transport::inbound(network) } else { Transport::V1 };
            self.new_conn(stream, addr, None, peer, nonce, transport, Vec::new(), true, now);
        }
    }

    /// Starts connections whose back-off is over.
    fn dial(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.conn.is_some() || now < slot.retry_at {
                continue;
            }
            let addr = slot.addr;
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    let config = self.our_config(addr);
                    self.our_nonces.insert(config.nonce);
                    let (network, nonce) = (config.network, config.nonce);
                    let (peer, version) = Peer::new(config, now);
                    // A v1 retry is used once; the next dial offers v2 again.
                    let v1 = std::mem::replace(&mut self.slots[i].v1_only, !self.opts.v2);
                    let v2 = if v1 { None } else { Transport::outbound_v2(network).ok() };
                    let (transport, first) = match v2 {
                        // Our key first; the version waits for the handshake.
                        Some(mut t) => {
                            let _ = t.send(version);
                            let key = t.take_outgoing();
                            (t, key)
                        }
                        None => (Transport::V1, version),
                    };
                    match self.new_conn(stream, addr, Some(i), peer, nonce, transport, first, false, now) {
                        Some(t) => self.slots[i].conn = Some(t),
                        None => self.failed(i, "registering the socket failed".into(), now),
                    }
                }
                Err(e) => self.failed(i, format!("connecting: {e}"), now),
            }
        }
    }

    /// Connect timeouts and each peer's own timers.
    fn timers(&mut self, now: Instant) {
        let tokens: Vec<usize> = self.conns.keys().copied().collect();
        for t in tokens {
            let Some(c) = self.conns.get_mut(&t) else { continue };
            let why = if !c.connected {
                (now.saturating_duration_since(c.started) >= self.opts.connect_timeout)
                    .then(|| format!("no TCP connection within {:?}", self.opts.connect_timeout))
            } else {
                c.peer.poll_tick(now).err().map(|e| e.to_string())
            };
            if let Some(why) = why {
                self.drop_conn(t, why, now);
            }
        }
    }

    fn flush_and_register(&mut self) {
        let tokens: Vec<usize> = self.conns.keys().copied().collect();
        for t in tokens {
            let Some(c) = self.conns.get_mut(&t) else { continue };
            let result = if let Err(e) = pump(c) {
                Err(e)
            } else if c.queue.len() > MAX_SEND_QUEUE {
                Err(format!("{} bytes queued for the peer: it is not reading", c.queue.len()))
            } else if c.connected {
                write_queue(c)
            } else {
                Ok(())
            };
            let result = result.and_then(|()| {
                let interest = if c.queue.is_empty() && c.connected {
                    Interest::READABLE
                } else {
                    Interest::READABLE | Interest::WRITABLE
                };
                self.poll
                    .registry()
                    .reregister(&mut c.stream, Token(t), interest)
                    .map_err(|e| format!("reregistering: {e}"))
            });
            if let Err(why) = result {
                self.drop_conn(t, why, Instant::now());
            }
        }
    }

    /// A readiness event on connection `t`'s socket; an error means disconnect.
    fn on_socket(&mut self, t: usize, readable: bool, writable: bool, buf: &mut [u8]) -> Result<(), String> {
        let Some(c) = self.conns.get_mut(&t) else { return Ok(()) };
        if !c.connected {
            if let Some(e) = c.stream.take_error().map_err(|e| format!("connecting: {e}"))? {
                return Err(format!("connecting: {e}"));
            }
            match c.stream.peer_addr() {
                Ok(_) => c.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connecting: {e}")),
            }
            if let Some(i) = c.slot {
                self.slots[i].info.connected = true;
                self.slots[i].info.connections += 1;
                log::debug!("connected to {}", self.slots[i].addr);
            }
        }
        if readable {
            loop {
                let Some(c) = self.conns.get_mut(&t) else { return Ok(()) };
                let n = match c.stream.read(buf) {
                    Ok(0) => return Err("the peer closed the connection".into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("reading: {e}")),
                };
                let now = Instant::now();
                c.received += n as u64;
                let plain = c.transport.receive(&buf[..n]).map_err(|e| e.to_string())?;
                let events = c.peer.receive(&plain, now).map_err(|e| e.to_string())?;
                for event in events {
                    self.on_event(t, event, now);
                    if !self.conns.contains_key(&t) {
                        return Ok(()); // dropped while handling
                    }
                }
            }
        }
        if writable && let Some(c) = self.conns.get_mut(&t) {
            write_queue(c)?;
        }
        Ok(())
    }

    fn on_event(&mut self, t: usize, event: PeerEvent, now: Instant) {
        let Some(c) = self.conns.get_mut(&t) else { return };
        let id = c.id;
        let addr = c.addr;
        match event {
            PeerEvent::Version { nonce, .. } if c.slot.is_none() && self.our_nonces.contains(&nonce) => {
                self.drop_conn(t, "connected to ourselves (our own version nonce came back)".into(), now);
            }
            PeerEvent::Version { version, user_agent, start_height, .. } => {
                log::info!("peer {addr}: version {version} {user_agent} height {start_height}");
                c.start_height = start_height;
                c.user_agent = user_agent.clone();
                if let Some(i) = c.slot {
                    self.slots[i].info.start_height = Some(start_height);
                    self.slots[i].info.user_agent = Some(user_agent);
                }
            }
            PeerEvent::HandshakeDone => {
                c.ready = true;
                self.our_nonces.remove(&c.nonce);
                let services = c.peer.their_services();
                let outbound = c.slot.is_some();
                let h = c.start_height;
                if self.store.is_some() {
                    // BIP152 version 2; ask outbound peers to push new blocks.
                    let msg = NetworkMessage::SendCmpct(SendCmpct { send_compact: outbound, version: 2 });
                    if let Err(e) = c.peer.send_message(msg) {
                        self.drop_conn(t, e.to_string(), now);
                        return;
                    }
                    if services.has(ServiceFlags::NETWORK) && services.has(ServiceFlags::WITNESS) {
                        self.download.peer_ready(id);
                    }
                }
                if let Some(i) = c.slot {
                    let slot = &mut self.slots[i];
                    slot.info.ready = true;
                    slot.backoff = self.opts.reconnect_min;
                }
                let actions = self.sync.peer_ready(id, h, now);
                self.apply(actions, now);
            }
            PeerEvent::Headers(headers) => {
                // Only headers new to the chain are written (one commit per
                // message): known ones repeated by a peer cost nothing.
                let chain = self.sync.chain();
                let new: Vec<bitcoin::block::Header> =
                    headers.iter().filter(|h| !chain.contains(&from_bitcoin_hash(&h.block_hash()))).copied().collect();
                let actions = self.sync.headers(id, &headers, now, unix_now());
                let disconnecting = actions.iter().any(|a| matches!(a, Action::Disconnect { peer, .. } if *peer == id));
                if let Some(last) = headers.last().map(|h| from_bitcoin_hash(&h.block_hash()))
                    && self.sync.chain().contains(&last)
                    && let Some(c) = self.conns.get_mut(&t)
                {
                    c.best_known = Some(last);
                    self.download.peer_has(id, last, self.sync.chain());
                }
                self.persist_headers(&new);
                self.apply(actions, now);
                if !disconnecting {
                    // A reorg onto stored blocks; new downloads follow at
                    // the loop's next turn.
                    self.advance_tip();
                }
            }
            PeerEvent::BlocksAnnounced(hashes) => {
                let actions = self.sync.blocks_announced(id, &hashes, now);
                self.apply(actions, now);
            }
            PeerEvent::Pong { rtt } => log::trace!("peer {addr}: ping {rtt:?}"),
            PeerEvent::GetHeaders { locator, stop } => self.serve_headers(t, &locator, &stop),
            PeerEvent::GetData(inv) => {
                if c.getdata.len() + inv.len() > MAX_INV_SZ as usize {
                    self.drop_conn(t, format!("more than {MAX_INV_SZ} getdata items queued"), now);
                    return;
                }
                c.getdata.extend(inv);
            }
            PeerEvent::NotFound(inv) => {
                let blocks: Vec<BlockHash> = inv.iter().filter_map(block_hash_of).collect();
                self.download.not_found(id, &blocks);
            }
            PeerEvent::Block(block) => {
                c.blocks_received += 1;
                if let Err(e) = self.process_block(Some(t), *block, now) {
                    log::debug!("peer {addr}: block not taken: {e}");
                }
            }
            PeerEvent::CompactBlock(cb) => self.on_compact_block(t, *cb, now),
            PeerEvent::BlockTxn(bt) => self.on_block_txn(t, bt, now),
            PeerEvent::GetBlockTxn(req) => self.serve_block_txn(t, req, now),
            PeerEvent::SendCompact { high_bandwidth } => {
                c.provides_compact = true;
                c.high_bandwidth = high_bandwidth;
            }
        }
    }

    /// Carries out the sync's decisions.
    fn apply(&mut self, actions: Vec<Action>, now: Instant) {
        for action in actions {
            match action {
                Action::GetHeaders { peer, locator } => {
                    let Some(t) = self.token_of(peer) else { continue };
                    let c = self.conns.get_mut(&t).expect("token_of checks");
                    if let Err(e) = c.peer.request_headers(&locator) {
                        self.drop_conn(t, e.to_string(), now);
                    }
                }
                Action::Disconnect { peer, reason } => {
                    if let Some(t) = self.token_of(peer) {
                        self.drop_conn(t, reason.to_string(), now);
                    }
                }
            }
        }
    }

    fn token_of(&self, peer: PeerId) -> Option<usize> {
        self.conns.iter().find(|(_, c)| c.id == peer).map(|(&t, _)| t)
    }

    /// Records headers that made it into the chain, so a restart has them.
    fn persist_headers(&mut self, headers: &[bitcoin::block::Header]) {
        let Some(store) = &self.store else { return };
        if headers.is_empty() {
            return;
        }
        let chain = self.sync.chain();
        let keep: Vec<(bitcoin::block::Header, u32)> = headers
            .iter()
            .filter_map(|h| chain.get(&from_bitcoin_hash(&h.block_hash())).map(|e| (*h, e.height)))
            .collect();
        if let Err(e) = store.put_headers(&keep) {
            log::error!("recording {} headers: {e}", keep.len());
        }
    }

    /// Hands out block requests to peers with room.
    fn request_blocks(&mut self, now: Instant) {
        if self.store.is_none() || self.store_failed {
            return;
        }
        // Start at the fork point of the block tip and the best chain.
        let chain = self.sync.chain();
        let base = fork_height(chain, &self.block_tip);
        let (stored, pending) = (&self.stored, &self.pending_set);
        let plan = self.download.schedule(chain, base, |h| stored.contains(h) || pending.contains(h), now);
        for (peer, hashes) in plan {
            let Some(t) = self.token_of(peer) else { continue };
            let c = self.conns.get_mut(&t).expect("token_of checks");
            let inv = hashes.iter().map(|h| Inventory::WitnessBlock(to_bitcoin_hash(h))).collect();
            if let Err(e) = c.peer.send_message(NetworkMessage::GetData(inv)) {
                self.drop_conn(t, e.to_string(), now);
            }
        }
    }

    /// Checks a block, stores it and moves the block tip (see the module
    /// docs). `from` is the connection it came from (`None`: submitted).
    fn process_block(&mut self, from: Option<usize>, block: Block, now: Instant) -> Result<(), BlockReject> {
        let hash = from_bitcoin_hash(&block.block_hash());
        let peer = from.and_then(|t| self.conns.get(&t)).map(|c| c.id);
        // A submitted block is wanted; a peer's, when we asked for it.
        let requested = peer.is_none_or(|p| self.download.received(p, &hash));
        if let Some(c) = from.and_then(|t| self.conns.get_mut(&t)) {
            c.best_known = Some(hash);
        }
        if self.stored.contains(&hash) || self.pending_set.contains(&hash) {
            return Ok(());
        }
        // Core's rule for blocks nobody asked for (pushed, or a compact
        // block): processed only with at least our tip's work, so a peer
        // cannot fill the store with stale branches.
        let chain = self.sync.chain();
        let work =
            chain.get(&hash).map(|e| e.chainwork).or_else(|| chain.chainwork_of_child(&from_bitcoin(&block.header)));
        if !requested && work.is_some_and(|w| w < chain.tip().chainwork) {
            log::debug!("block {hash}: not requested and less work than our tip; ignored");
            return Err(BlockReject::Unrequested(hash));
        }
        let result = self.check(&block, hash);
        if result.is_ok() {
            self.pending_bytes += block.total_size();
            self.pending_set.insert(hash);
            self.pending.push(block);
            if self.pending_bytes >= MAX_PENDING_BYTES {
                self.flush_blocks();
            }
        }
        if let Some(p) = peer {
            self.download.peer_has(p, hash, self.sync.chain());
        }
        match &result {
            Ok(()) => {}
            Err(BlockReject::Orphan(_)) => {
                // A block we cannot place yet: ask its sender for headers.
                if let Some(p) = peer {
                    let actions = self.sync.blocks_announced(p, &[hash], now);
                    self.apply(actions, now);
                }
            }
            Err(e @ BlockReject::Store { .. }) => log::error!("{e}"),
            // Perhaps our clock is wrong: Core does not punish this either.
            Err(e @ BlockReject::TimeTooNew(_)) => log::info!("{e}"),
            Err(e) => {
                if let Some(t) = from {
                    self.drop_conn(t, e.to_string(), now);
                } else {
                    log::warn!("submitted block refused: {e}");
                }
            }
        }
        // The block waits in `pending`: the loop's next turn commits it,
        // moves the tip and hands out the requests it freed.
        result
    }

    /// Header into the chain, then every rule that needs no UTXO set.
    fn check(&mut self, block: &Block, hash: BlockHash) -> Result<(), BlockReject> {
        let header = from_bitcoin(&block.header);
        if !self.sync.chain().contains(&hash) {
            if !self.sync.chain().contains(&header.prev_blockhash) {
                return Err(BlockReject::Orphan(header.prev_blockhash));
            }
            self.sync.accept_header(&header, unix_now()).map_err(|e| match e {
                crate::sync::SyncError::BadHeader(h @ crate::HeaderError::TimeTooNew { .. }) => {
                    BlockReject::TimeTooNew(h.to_string())
                }
                other => BlockReject::Header(other.to_string()),
            })?;
            self.persist_headers(std::slice::from_ref(&block.header));
        }
        let chain = self.sync.chain();
        if chain.is_invalid(&hash) {
            return Err(BlockReject::KnownInvalid(hash));
        }
        let entry = chain.get(&hash).expect("accepted above");
        let ctx = Context {
            network: chain.params().network.into(),
            height: entry.height,
            median_time_past: chain.median_time_past(&header.prev_blockhash),
            mtp_of_height: None,
        };
        let report = rules::check_block_rules(block, &ctx, Precomputed::default())
            .map_err(|e| BlockReject::Invalid { hash, rules: format!("{e:?}") })?;
        if !report.is_valid() {
            let names: Vec<&str> = report.violations.iter().map(|v| v.rule).collect();
            let rules = names.join(", ");
            if names.iter().any(|r| rules::is_mutation(r)) {
                self.stats.blocks_mutated += 1;
                return Err(BlockReject::Mutated { hash, rules });
            }
            self.stats.blocks_invalid += 1;
            log::warn!("block {hash} at height {} is invalid: {rules}", entry.height);
            self.sync.mark_invalid(&hash);
            if let Some(store) = &self.store
                && let Err(e) = store.mark_invalid(&to_bitcoin_hash(&hash))
            {
                log::error!("recording block {hash} as invalid: {e}");
            }
            return Err(BlockReject::Invalid { hash, rules });
        }
        if self.store.is_none() {
            return Err(BlockReject::Store { hash, reason: "no block store (--headers-only)".into() });
        }
        Ok(())
    }

    /// Commits the checked blocks waiting in `pending` in one batch, with
    /// the block tip they make, then announces the new tip. A failed commit
    /// acknowledges nothing: the blocks are asked for again.
    fn flush_blocks(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let blocks = std::mem::take(&mut self.pending);
        let hashes: Vec<BlockHash> = self.pending_set.drain().collect();
        self.pending_bytes = 0;
        let Some(store) = &self.store else { return };
        self.stored.extend(hashes.iter().copied());
        let new = self.tip_candidate();
        let tip = (new != self.block_tip).then(|| (to_bitcoin_hash(&new.0), new.1));
        let refs: Vec<&Block> = blocks.iter().collect();
        if let Err(e) = store.put_batch(&refs, tip) {
            for h in &hashes {
                self.stored.remove(h);
            }
            if !self.store_failed {
                log::error!(
                    "storing {} blocks: {e}; block download stops (restart kiln once the disk is fixed)",
                    blocks.len()
                );
            }
            self.store_failed = true;
            return;
        }
        self.stats.blocks_stored += blocks.len() as u64;
        if new != self.block_tip {
            let old = self.block_tip;
            self.block_tip = new;
            log::debug!("block tip {} at height {}", new.0, new.1);
            self.announce(old);
        }
    }

    /// The highest block of the best chain whose blocks are all stored.
    fn tip_candidate(&self) -> (BlockHash, u32) {
        let chain = self.sync.chain();
        let mut height = fork_height(chain, &self.block_tip);
        while let Some(e) = chain.at_height(height + 1) {
            if !self.stored.contains(&e.hash) {
                break;
            }
            height += 1;
        }
        let Some(candidate) = chain.at_height(height) else { return self.block_tip };
        // Keep a stored, valid tip until the stored part of a heavier branch
        // has more work (Core keeps its tip until it can connect the new
        // branch): headers alone never rewind what kiln serves.
        if let Some(old) = chain.get(&self.block_tip.0)
            && !chain.is_invalid(&old.hash)
            && candidate.chainwork < old.chainwork
        {
            return self.block_tip;
        }
        (candidate.hash, height)
    }

    /// Moves the block tip onto stored blocks (a reorg to a branch already
    /// held, a restart), commits it, and announces it when it moved.
    fn advance_tip(&mut self) {
        let Some(store) = &self.store else { return };
        let new = self.tip_candidate();
        if new == self.block_tip {
            return;
        }
        if let Err(e) = store.set_tip(&to_bitcoin_hash(&new.0), new.1) {
            log::error!("recording the block tip {} at {}: {e}", new.0, new.1);
            return;
        }
        let old = self.block_tip;
        self.block_tip = new;
        log::debug!("block tip {} at height {}", new.0, new.1);
        self.announce(old);
    }

    /// Tells every peer about the new block tip, the way it asked.
    fn announce(&mut self, old: (BlockHash, u32)) {
        let (tip, tip_height) = self.block_tip;
        let single_step =
            tip_height == old.1 + 1 && self.sync.chain().get(&tip).is_some_and(|e| e.header.prev_blockhash == old.0);
        let mut compact: Option<NetworkMessage> = None;
        let tokens: Vec<usize> = self.conns.keys().copied().collect();
        for t in tokens {
            let chain = self.sync.chain();
            let Some(c) = self.conns.get(&t) else { continue };
            if !c.ready {
                continue;
            }
            // Already has it (it sent it, or a descendant).
            if c.best_known.is_some_and(|k| chain.is_ancestor(&tip, &k)) {
                continue;
            }
            let known = c.best_known.and_then(|k| chain.get(&k).map(|e| (k, e.height)));
            let message = if c.high_bandwidth && single_step {
                if compact.is_none() {
                    compact =
                        self.compact_of(&tip).map(|cb| NetworkMessage::CmpctBlock(CmpctBlock { compact_block: cb }));
                }
                compact.clone()
            } else {
                None
            };
            let message = message.or_else(|| {
                // Headers from what the peer has, when that is close below.
                let from = known
                    .filter(|&(k, kh)| {
                        kh < tip_height && tip_height - kh <= MAX_BLOCKS_TO_ANNOUNCE && chain.is_ancestor(&k, &tip)
                    })
                    .map(|(_, kh)| kh)
                    .or_else(|| single_step.then_some(old.1));
                match from {
                    Some(from) if c.peer.peer_wants_headers => {
                        let headers = (from + 1..=tip_height)
                            .filter_map(|h| chain.ancestor_of(&tip, h).map(|e| to_bitcoin(&e.header)))
                            .collect();
                        Some(NetworkMessage::Headers(headers))
                    }
                    _ => Some(NetworkMessage::Inv(vec![Inventory::Block(to_bitcoin_hash(&tip))])),
                }
            });
            let Some(message) = message else { continue };
            if matches!(message, NetworkMessage::CmpctBlock(_)) {
                self.stats.compact_sent += 1;
            }
            self.stats.announcements += 1;
            let c = self.conns.get_mut(&t).expect("present");
            c.best_known = Some(tip);
            if let Err(e) = c.peer.send_message(message) {
                self.drop_conn(t, e.to_string(), Instant::now());
            }
        }
    }

    fn compact_of(&self, hash: &BlockHash) -> Option<HeaderAndShortIds> {
        let block = self.store.as_ref()?.get(&to_bitcoin_hash(hash)).ok()??;
        Some(compact_block(&block, self.nonce_seed))
    }

    /// `getheaders`: up to 2,000 headers of the block tip's chain after the
    /// first locator hash on it.
    fn serve_headers(&mut self, t: usize, locator: &[BlockHash], stop: &BlockHash) {
        if self.store.is_none() {
            return;
        }
        let chain = self.sync.chain();
        let (tip, tip_height) = self.block_tip;
        let fork =
            locator.iter().find(|h| chain.is_ancestor(h, &tip)).and_then(|h| chain.get(h)).map(|e| (e.hash, e.height));
        let from = fork.map_or(0, |(_, h)| h);
        let end = tip_height.min(from.saturating_add(MAX_HEADERS_RESULTS as u32));
        let mut headers = Vec::new();
        for h in from + 1..=end {
            let Some(e) = chain.ancestor_of(&tip, h) else { break };
            headers.push(to_bitcoin(&e.header));
            if e.hash == *stop {
                break;
            }
        }
        let Some(c) = self.conns.get_mut(&t) else { return };
        if let Some((hash, _)) = fork {
            // The peer has the fork point; keep a better one we know.
            let better = c.best_known.and_then(|k| chain.get(&k)).is_some_and(|k| k.height > from);
            if !better {
                c.best_known = Some(hash);
            }
            self.download.peer_has(c.id, hash, chain);
        }
        if let Err(e) = c.peer.send_message(NetworkMessage::Headers(headers)) {
            self.drop_conn(t, e.to_string(), Instant::now());
        }
    }

    /// Answers queued `getdata` items while the peer's send queue is short.
    fn serve_getdata(&mut self) {
        let Some(store) = &self.store else { return };
        let tokens: Vec<usize> = self.conns.keys().copied().collect();
        let mut failures = Vec::new();
        for t in tokens {
            let Some(c) = self.conns.get_mut(&t) else { continue };
            let mut not_found = Vec::new();
            let mut failure = None;
            while c.queue.len() < SEND_TARGET
                && let Some(item) = c.getdata.pop_front()
            {
                let Some(hash) = block_hash_of(&item) else {
                    not_found.push(item);
                    continue;
                };
                let height = self.sync.chain().get(&hash).map(|e| e.height);
                let bhash = to_bitcoin_hash(&hash);
                let sent = match item {
                    Inventory::CompactBlock(_)
                        if height.is_some_and(|h| self.block_tip.1.saturating_sub(h) < MAX_CMPCTBLOCK_DEPTH) =>
                    {
                        store.get(&bhash).map(|b| {
                            b.map(|b| {
                                self.stats.compact_sent += 1;
                                let cb = compact_block(&b, self.nonce_seed);
                                c.peer.send_message(NetworkMessage::CmpctBlock(CmpctBlock { compact_block: cb }))
                            })
                        })
                    }
                    // Witness blocks, and compact ones too deep to be worth
                    // it, straight from disk.
                    Inventory::WitnessBlock(_) | Inventory::CompactBlock(_) => {
                        store.get_raw(&bhash).map(|raw| raw.map(|raw| c.peer.send_raw("block", &raw)))
                    }
                    _ => store.get(&bhash).map(|b| {
                        b.map(|mut b| {
                            // MSG_BLOCK: the block without witness data.
                            for tx in &mut b.txdata {
                                for input in &mut tx.input {
                                    input.witness.clear();
                                }
                            }
                            c.peer.send_message(NetworkMessage::Block(b))
                        })
                    }),
                };
                match sent {
                    Ok(Some(Ok(()))) => {
                        c.blocks_sent += 1;
                        self.stats.blocks_served += 1;
                    }
                    Ok(Some(Err(e))) => {
                        failure = Some(e.to_string());
                        break;
                    }
                    Ok(None) => not_found.push(item),
                    Err(e) => {
                        log::error!("serving block {hash}: {e}");
                        not_found.push(item);
                    }
                }
                // Move what was framed to the socket queue so SEND_TARGET sees it.
                if let Err(e) = pump(c) {
                    failure = Some(e);
                    break;
                }
            }
            if failure.is_none()
                && !not_found.is_empty()
                && let Err(e) = c.peer.send_message(NetworkMessage::NotFound(not_found))
            {
                failure = Some(e.to_string());
            }
            if let Some(why) = failure {
                failures.push((t, why));
            }
        }
        for (t, why) in failures {
            self.drop_conn(t, why, Instant::now());
        }
    }

    /// A compact block: header first, then every transaction not prefilled
    /// is asked for (kiln keeps no mempool to find them in).
    fn on_compact_block(&mut self, t: usize, cb: HeaderAndShortIds, now: Instant) {
        self.stats.compact_received += 1;
        let hash = from_bitcoin_hash(&cb.header.block_hash());
        let Some(c) = self.conns.get_mut(&t) else { return };
        c.best_known = Some(hash);
        if self.stored.contains(&hash) || self.pending_set.contains(&hash) || self.store.is_none() {
            return;
        }
        // Core's order: a compact block for a header with less work than our
        // tip is ignored before its header is stored or anything allocated,
        // so it cannot feed the off-best header cap or hold memory.
        let header = from_bitcoin(&cb.header);
        let chain = self.sync.chain();
        let id = c.id;
        match chain.get(&hash).map(|e| e.chainwork).or_else(|| chain.chainwork_of_child(&header)) {
            None => {
                let actions = self.sync.blocks_announced(id, &[hash], now);
                self.apply(actions, now);
                return;
            }
            Some(work) if work < chain.tip().chainwork => {
                log::debug!("compact block {hash}: less work than our tip; ignored");
                return;
            }
            Some(_) => {}
        }
        let count = cb.short_ids.len() + cb.prefilled_txs.len();
        if count == 0 || count > MAX_COMPACT_TXS {
            self.drop_conn(t, format!("cmpctblock with {count} transactions"), now);
            return;
        }
        let mut txs: Vec<Option<Transaction>> = vec![None; count];
        let mut index = 0usize;
        for (i, p) in cb.prefilled_txs.iter().enumerate() {
            index = if i == 0 { usize::from(p.idx) } else { index + 1 + usize::from(p.idx) };
            match txs.get_mut(index) {
                Some(slot) => *slot = Some(p.tx.clone()),
                None => {
                    self.drop_conn(t, format!("cmpctblock prefilled index {index} out of range"), now);
                    return;
                }
            }
        }
        // The header goes in before we ask for anything: a bad one ends it here.
        if !self.sync.chain().contains(&hash) {
            if let Err(e) = self.sync.accept_header(&header, unix_now()) {
                self.drop_conn(t, format!("cmpctblock header: {e}"), now);
                return;
            }
            self.persist_headers(std::slice::from_ref(&cb.header));
        }
        let missing: Vec<u64> = txs.iter().enumerate().filter(|(_, tx)| tx.is_none()).map(|(i, _)| i as u64).collect();
        let partial = PartialBlock { header: cb.header, txs };
        if missing.is_empty() {
            self.complete_partial(t, partial, now);
            return;
        }
        let Some(c) = self.conns.get_mut(&t) else { return };
        c.partial = Some(partial);
        let req = BlockTransactionsRequest { block_hash: cb.header.block_hash(), indexes: missing };
        if let Err(e) = c.peer.send_message(NetworkMessage::GetBlockTxn(GetBlockTxn { txs_request: req })) {
            self.drop_conn(t, e.to_string(), now);
        }
    }

    fn on_block_txn(&mut self, t: usize, bt: BlockTransactions, now: Instant) {
        let Some(c) = self.conns.get_mut(&t) else { return };
        let Some(mut partial) = c.partial.take_if(|p| p.header.block_hash() == bt.block_hash) else {
            log::debug!("peer {}: blocktxn for a block we did not ask about", c.addr);
            return;
        };
        let mut given = bt.transactions.into_iter();
        for slot in partial.txs.iter_mut().filter(|s| s.is_none()) {
            match given.next() {
                Some(tx) => *slot = Some(tx),
                None => {
                    self.drop_conn(t, "blocktxn carries fewer transactions than asked".into(), now);
                    return;
                }
            }
        }
        if given.next().is_some() {
            self.drop_conn(t, "blocktxn carries more transactions than asked".into(), now);
            return;
        }
        self.complete_partial(t, partial, now);
    }

    fn complete_partial(&mut self, t: usize, partial: PartialBlock, now: Instant) {
        let block = Block { header: partial.header, txdata: partial.txs.into_iter().flatten().collect() };
        if let Some(c) = self.conns.get_mut(&t) {
            c.blocks_received += 1;
        }
        if let Err(e) = self.process_block(Some(t), block, now) {
            log::debug!("compact block not taken: {e}");
        }
    }

    /// `getblocktxn`: the transactions asked for, or the whole block when it
    /// is deep (Core's rule).
    fn serve_block_txn(&mut self, t: usize, req: BlockTransactionsRequest, now: Instant) {
        let Some(store) = &self.store else { return };
        let hash = from_bitcoin_hash(&req.block_hash);
        let Some(height) = self.sync.chain().get(&hash).map(|e| e.height) else { return };
        let block = match store.get(&req.block_hash) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                log::error!("serving block {hash}: {e}");
                return;
            }
        };
        let message = if self.block_tip.1.saturating_sub(height) >= MAX_BLOCKTXN_DEPTH {
            NetworkMessage::Block(block)
        } else {
            match BlockTransactions::from_request(&req, &block) {
                Ok(txs) => NetworkMessage::BlockTxn(BlockTxn { transactions: txs }),
                Err(e) => {
                    self.drop_conn(t, format!("getblocktxn index out of range: {e}"), now);
                    return;
                }
            }
        };
        let Some(c) = self.conns.get_mut(&t) else { return };
        if let Err(e) = c.peer.send_message(message) {
            self.drop_conn(t, e.to_string(), now);
        }
    }

    /// Ends connection `t`, saying why; a configured peer is dialled again later.
    fn drop_conn(&mut self, t: usize, why: String, now: Instant) {
        let Some(mut c) = self.conns.remove(&t) else { return };
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.our_nonces.remove(&c.nonce);
        self.stats.disconnects += 1;
        log::warn!("peer {}: disconnected: {why}", c.addr);
        if let Some(i) = c.slot {
            let slot = &mut self.slots[i];
            slot.conn = None;
            slot.info.connected = false;
            slot.info.ready = false;
            // Core's rule: only a v2 attempt that got no byte back (a v1-only
            // peer closing on our key) is retried with v1, and only once.
            let v2_failed = c.connected && c.transport.v2_pending() && c.received == 0;
            self.failed(i, why, now);
            if v2_failed {
                // Probably a v1-only peer: dial it again at once, with v1.
                log::info!("peer {}: the v2 handshake failed; trying v1", c.addr);
                let slot = &mut self.slots[i];
                slot.v1_only = true;
                slot.retry_at = now;
            }
        }
        self.download.peer_gone(c.id);
        let actions = self.sync.peer_gone(c.id, now);
        self.apply(actions, now);
    }

    fn failed(&mut self, i: usize, why: String, now: Instant) {
        let slot = &mut self.slots[i];
        slot.info.last_error = Some(why);
        slot.retry_at = now + slot.backoff;
        slot.backoff = (slot.backoff * 2).min(self.opts.reconnect_max);
    }
}

/// The height where `tip`'s chain meets the best chain.
fn fork_height(chain: &HeaderChain, tip: &(BlockHash, u32)) -> u32 {
    let mut h = tip.1.min(chain.best_height());
    while h > 0 {
        let ours = chain.ancestor_of(&tip.0, h).map(|e| e.hash);
        if ours.is_some() && ours == chain.at_height(h).map(|e| e.hash) {
            break;
        }
        h -= 1;
    }
    h
}

fn block_hash_of(item: &Inventory) -> Option<BlockHash> {
    match item {
        Inventory::Block(h) | Inventory::WitnessBlock(h) | Inventory::CompactBlock(h) => Some(from_bitcoin_hash(h)),
        _ => None,
    }
}

/// `block` as a BIP152 version 2 compact block (coinbase prefilled). BIP152
/// asks for a different nonce per block: ours mixes a per-process seed with
/// the block hash.
fn compact_block(block: &Block, seed: u64) -> HeaderAndShortIds {
    let hash = from_bitcoin_hash(&block.block_hash()).0;
    let nonce = seed ^ u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"));
    HeaderAndShortIds::from_block(block, nonce, 2, &[]).expect("version 2 with no prefill cannot fail")
}

/// Moves what the peer state machine wrote through the transport (framed
/// or encrypted) into the socket queue.
fn pump(c: &mut Conn) -> Result<(), String> {
    let frames = c.peer.take_outgoing();
    let plain = c.transport.send(frames).map_err(|e| e.to_string())?;
    c.queue.extend_from_slice(&plain);
    let sealed = c.transport.take_outgoing();
    c.queue.extend_from_slice(&sealed);
    Ok(())
}

/// Writes until the queue is empty or the socket would block.
fn write_queue(c: &mut Conn) -> Result<(), String> {
    while !c.queue.is_empty() {
        match c.stream.write(&c.queue) {
            Ok(0) => return Err("the peer closed the connection".into()),
            Ok(n) => {
                c.queue.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("writing: {e}")),
        }
    }
    Ok(())
}
