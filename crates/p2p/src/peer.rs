//! One peer's protocol state machine with no I/O: bytes and the time in,
//! events and bytes out.
//!
//! The caller (the mio [`node`](crate::node), or a test) owns the socket
//! and the clock; this type owns every protocol decision: the version
//! handshake in BIP339/BIP155 order (`wtxidrelay` and `sendaddrv2` between
//! the peer's `version` and our `verack`), `sendheaders` once connected,
//! answering pings, sending its own and noticing when they go unanswered,
//! the handshake deadline, and asking for headers. Every error means
//! "disconnect", and names why.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use bitcoin::Network;
use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use kiln_work::BlockHash;

use crate::headers::to_bitcoin_hash;
use crate::wire::{self, Decoder, MAX_LOCATOR_SZ, WireError};

/// The protocol version kiln speaks (wtxidrelay, BIP339).
pub const PROTOCOL_VERSION: u32 = 70016;
/// Core's `MIN_PEER_PROTO_VERSION`: older peers are refused.
pub const MIN_PEER_PROTO_VERSION: u32 = 31800;
/// The first version that understands `sendheaders` (BIP130).
pub const SENDHEADERS_VERSION: u32 = 70012;
/// Core's `MAX_SUBVERSION_LENGTH`: the peer's user agent is cut to this.
pub const MAX_SUBVERSION_LENGTH: usize = 256;
/// Bytes handed to the decoder at a time, so its buffer stays bounded by one
/// allowed message plus this, whatever size the caller passes in.
const RECV_CHUNK: usize = 64 * 1024;
/// Unsent bytes allowed before the peer is considered not to be reading:
/// one largest block (4 MB) on top of the 1 MB [`SEND_TARGET`] that
/// `getdata` answers stop at, and some room for announcements.
pub const MAX_SEND_QUEUE: usize = 6 << 20;
/// Requested blocks are only sent while fewer unsent bytes than this are
/// queued (Core pauses `getdata` processing the same way), so a peer asking
/// for 50,000 blocks costs one block of memory at a time.
pub const SEND_TARGET: usize = 1 << 20;
/// Pings accepted per [`PING_FLOOD_WINDOW`] before the peer is dropped:
/// a well-behaved peer pings every two minutes.
pub const MAX_PINGS_PER_WINDOW: u32 = 100;
pub const PING_FLOOD_WINDOW: Duration = Duration::from_secs(10);

/// How a peer connection is set up.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub network: Network,
    /// Our best height, announced in `version`.
    pub our_height: i32,
    /// Unix time for `version`'s timestamp (the state machine reads no clock).
    pub unix_time: i64,
    /// `version`'s nonce: a peer echoing it is ourselves. Also seeds ping nonces.
    pub nonce: u64,
    /// What we serve: `NETWORK | WITNESS` when blocks are stored, else `NONE`.
    pub services: ServiceFlags,
    /// Ask for transactions (`version`'s relay flag): kiln has no mempool yet.
    pub relay: bool,
    pub user_agent: String,
    /// The peer's address, as `version` reports it to them.
    pub remote: Option<SocketAddr>,
    /// Core's 60 s: version and verack must both arrive within this.
    pub handshake_timeout: Duration,
    /// Core's two minutes between our pings.
    pub ping_interval: Duration,
    /// Core's twenty minutes for an answer to a ping.
    pub ping_timeout: Duration,
}

impl PeerConfig {
    pub fn new(network: Network, our_height: i32, unix_time: i64, nonce: u64) -> PeerConfig {
        PeerConfig {
            network,
            our_height,
            unix_time,
            nonce,
            services: ServiceFlags::NONE,
            relay: false,
            user_agent: format!("/kiln:{}/", env!("CARGO_PKG_VERSION")),
            remote: None,
            handshake_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(20 * 60),
        }
    }
}

/// What the peer told us or delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// Their `version` arrived (the handshake is not finished yet).
    Version { version: u32, services: ServiceFlags, start_height: i32, user_agent: String, nonce: u64 },
    /// `version` and `verack` both ways: requests may be made now.
    HandshakeDone,
    /// A `headers` message (at most 2,000, checked before decoding).
    Headers(Vec<bitcoin::block::Header>),
    /// Block hashes announced by `inv` (a peer that did not honour
    /// `sendheaders`, or announces that way anyway).
    BlocksAnnounced(Vec<BlockHash>),
    /// Our ping was answered.
    Pong { rtt: Duration },
    /// `getheaders`: the peer's locator (newest first) and stop hash (zero
    /// for "as many as allowed").
    GetHeaders { locator: Vec<BlockHash>, stop: BlockHash },
    /// `getdata` (at most 50,000 entries, checked before decoding).
    GetData(Vec<Inventory>),
    /// `notfound`: requested items the peer does not have.
    NotFound(Vec<Inventory>),
    /// A whole block.
    Block(Box<bitcoin::Block>),
    /// A BIP152 compact block.
    CompactBlock(Box<HeaderAndShortIds>),
    /// A BIP152 request for some of a block's transactions.
    GetBlockTxn(BlockTransactionsRequest),
    /// A BIP152 answer to our `getblocktxn`.
    BlockTxn(BlockTransactions),
    /// `sendcmpct` version 2: whether the peer wants new blocks pushed as
    /// `cmpctblock` (high-bandwidth) or announced first.
    SendCompact { high_bandwidth: bool },
}

/// Why the peer must be disconnected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("ping not answered within {0:?}")]
    PingTimeout(Duration),
    #[error("peer protocol version {version} is below {MIN_PEER_PROTO_VERSION}")]
    ObsoleteVersion { version: u32 },
    #[error("connected to ourselves (our version nonce came back)")]
    SelfConnection,
    #[error("'{command}' before the peer's version")]
    BeforeVersion { command: String },
    #[error("'{command}' after verack (BIP339/BIP155 say it must come before)")]
    LateNegotiation { command: String },
    #[error("request made before the handshake finished")]
    NotReady,
    #[error("{bytes} bytes waiting to be sent: the peer is not reading")]
    SendQueueFull { bytes: usize },
    #[error("ping flood: more than {MAX_PINGS_PER_WINDOW} pings in {PING_FLOOD_WINDOW:?}")]
    PingFlood,
}

/// Where the handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Our version is sent; theirs has not come.
    AwaitVersion,
    /// Their version came and we answered verack; theirs has not come.
    AwaitVerack,
    Ready,
}

/// One peer's protocol state (see the module docs).
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    magic: Magic,
    decoder: Decoder,
    out: Vec<u8>,
    state: State,
    started: Instant,
    their_version: u32,
    /// The peer asked for headers announcements (BIP130).
    pub peer_wants_headers: bool,
    ping_sent: Option<(u64, Instant)>,
    next_ping: Option<Instant>,
    ping_seed: u64,
    /// The peer connected to us: our `version` waits for theirs.
    inbound: bool,
    their_services: ServiceFlags,
    /// Start of the current ping-flood window and pings received in it.
    ping_window: (Instant, u32),
}

impl Peer {
    /// A peer we are connecting to (outbound): our `version` is the first
    /// thing to send, returned here.
    pub fn new(config: PeerConfig, now: Instant) -> (Peer, Vec<u8>) {
        let mut peer = Peer::blank(config, now, false);
        peer.send_version();
        let first = peer.take_outgoing();
        (peer, first)
    }

    /// A peer that connected to us (inbound): nothing is sent until its
    /// `version` arrives, then ours, as Core does.
    pub fn inbound(config: PeerConfig, now: Instant) -> Peer {
        Peer::blank(config, now, true)
    }

    fn blank(config: PeerConfig, now: Instant, inbound: bool) -> Peer {
        let magic = wire::magic(config.network);
        Peer {
            magic,
            decoder: Decoder::new(magic),
            out: Vec::new(),
            state: State::AwaitVersion,
            started: now,
            their_version: 0,
            peer_wants_headers: false,
            ping_sent: None,
            next_ping: None,
            ping_seed: config.nonce ^ 0x9e37_79b9_7f4a_7c15,
            inbound,
            their_services: ServiceFlags::NONE,
            ping_window: (now, 0),
            config,
        }
    }

    fn send_version(&mut self) {
        let peer = self;
        let unspecified = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let mut v = VersionMessage::new(
            peer.config.services,
            peer.config.unix_time,
            Address::new(&peer.config.remote.unwrap_or(unspecified), ServiceFlags::NONE),
            Address::new(&unspecified, peer.config.services),
            peer.config.nonce,
            peer.config.user_agent.clone(),
            peer.config.our_height,
        );
        v.version = PROTOCOL_VERSION;
        v.relay = peer.config.relay;
        peer.send(NetworkMessage::Version(v));
    }

    /// Queues an already-serialized payload under `command` (a stored block
    /// as it is on disk).
    ///
    /// # Errors
    /// [`PeerError::SendQueueFull`] when the peer is not reading.
    pub fn send_raw(&mut self, command: &str, payload: &[u8]) -> Result<(), PeerError> {
        self.out.extend_from_slice(&wire::encode_raw(self.magic, command, payload));
        self.check_queue()
    }

    /// Whether the peer connected to us.
    pub fn is_inbound(&self) -> bool {
        self.inbound
    }

    /// The services the peer's `version` announced.
    pub fn their_services(&self) -> ServiceFlags {
        self.their_services
    }

    /// Queues any message (the caller decides what the protocol allows;
    /// requests before the handshake are refused by the typed methods).
    ///
    /// # Errors
    /// [`PeerError::SendQueueFull`] when the peer is not reading.
    pub fn send_message(&mut self, message: NetworkMessage) -> Result<(), PeerError> {
        self.send(message);
        self.check_queue()
    }

    /// True once version and verack went both ways.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// The peer's protocol version (0 before its `version`).
    pub fn their_version(&self) -> u32 {
        self.their_version
    }

    /// Bytes to write to the socket (the queue is emptied).
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Received bytes waiting for the rest of their message: never more than
    /// what actually arrived, whatever length a header claims.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// True when there is something to write.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Feeds received bytes; returns what they meant.
    ///
    /// # Errors
    /// A [`PeerError`]: disconnect (events of messages before the bad one are lost).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Result<Vec<PeerEvent>, PeerError> {
        let mut events = Vec::new();
        for chunk in bytes.chunks(RECV_CHUNK) {
            self.decoder.feed(chunk);
            while let Some(message) = self.decoder.next_message()? {
                self.handle(message, now, &mut events)?;
            }
        }
        self.check_queue()?;
        Ok(events)
    }

    /// Timers: the handshake deadline, our pings and their deadline.
    ///
    /// # Errors
    /// [`PeerError::HandshakeTimeout`], [`PeerError::PingTimeout`].
    pub fn poll_tick(&mut self, now: Instant) -> Result<(), PeerError> {
        if self.state != State::Ready {
            if now.saturating_duration_since(self.started) >= self.config.handshake_timeout {
                return Err(PeerError::HandshakeTimeout(self.config.handshake_timeout));
            }
            return Ok(());
        }
        if let Some((_, sent)) = self.ping_sent {
            if now.saturating_duration_since(sent) >= self.config.ping_timeout {
                return Err(PeerError::PingTimeout(self.config.ping_timeout));
            }
        } else if self.next_ping.is_some_and(|t| now >= t) {
            let nonce = self.next_ping_nonce();
            self.ping_sent = Some((nonce, now));
            self.next_ping = Some(now + self.config.ping_interval);
            self.send(NetworkMessage::Ping(nonce));
        }
        self.check_queue()
    }

    /// When [`Peer::poll_tick`] next has something to do.
    pub fn next_deadline(&self) -> Instant {
        match (self.state, self.ping_sent, self.next_ping) {
            (State::Ready, Some((_, sent)), _) => sent + self.config.ping_timeout,
            (State::Ready, None, Some(t)) => t,
            (State::Ready, None, None) => self.started + self.config.ping_interval,
            _ => self.started + self.config.handshake_timeout,
        }
    }

    /// Asks for the headers after the first locator hash the peer knows.
    ///
    /// # Errors
    /// [`PeerError::NotReady`] before the handshake finished.
    pub fn request_headers(&mut self, locator: &[BlockHash]) -> Result<(), PeerError> {
        if self.state != State::Ready {
            return Err(PeerError::NotReady);
        }
        // A locator never needs more than Core accepts: keep the newest
        // hashes and genesis.
        let max = MAX_LOCATOR_SZ as usize;
        let mut hashes: Vec<bitcoin::BlockHash> = locator.iter().take(max).map(to_bitcoin_hash).collect();
        if locator.len() > max
            && let Some(last) = locator.last()
        {
            hashes[max - 1] = to_bitcoin_hash(last);
        }
        let mut msg = GetHeadersMessage::new(hashes, to_bitcoin_hash(&BlockHash::default()));
        msg.version = PROTOCOL_VERSION;
        self.send(NetworkMessage::GetHeaders(msg));
        self.check_queue()
    }

    fn handle(&mut self, message: NetworkMessage, now: Instant, events: &mut Vec<PeerEvent>) -> Result<(), PeerError> {
        match (self.state, message) {
            (State::AwaitVersion, NetworkMessage::Version(v)) => {
                if v.nonce == self.config.nonce && v.nonce != 0 {
                    return Err(PeerError::SelfConnection);
                }
                if v.version < MIN_PEER_PROTO_VERSION {
                    return Err(PeerError::ObsoleteVersion { version: v.version });
                }
                self.their_version = v.version;
                self.their_services = v.services;
                if self.inbound {
                    self.send_version();
                }
                if v.version >= PROTOCOL_VERSION {
                    self.send(NetworkMessage::WtxidRelay);
                }
                self.send(NetworkMessage::SendAddrV2);
                self.send(NetworkMessage::Verack);
                self.state = State::AwaitVerack;
                events.push(PeerEvent::Version {
                    nonce: v.nonce,
                    version: v.version,
                    services: v.services,
                    start_height: v.start_height,
                    user_agent: clean_user_agent(&v.user_agent),
                });
            }
            (State::AwaitVersion, other) => {
                return Err(PeerError::BeforeVersion { command: other.cmd().to_string() });
            }
            (State::AwaitVerack, NetworkMessage::Verack) => {
                self.state = State::Ready;
                if self.their_version >= SENDHEADERS_VERSION {
                    self.send(NetworkMessage::SendHeaders);
                }
                self.next_ping = Some(now);
                events.push(PeerEvent::HandshakeDone);
            }
            (State::AwaitVerack, NetworkMessage::WtxidRelay | NetworkMessage::SendAddrV2) => {
                // Feature negotiation in its proper place; nothing we use yet.
            }
            (State::AwaitVerack, other) => {
                // Core ignores anything else before verack.
                log::debug!("ignoring '{}' before verack", other.cmd());
            }
            (State::Ready, m @ (NetworkMessage::WtxidRelay | NetworkMessage::SendAddrV2)) => {
                return Err(PeerError::LateNegotiation { command: m.cmd().to_string() });
            }
            (State::Ready, NetworkMessage::Ping(nonce)) => {
                let (start, count) = &mut self.ping_window;
                if now.saturating_duration_since(*start) >= PING_FLOOD_WINDOW {
                    *start = now;
                    *count = 0;
                }
                *count += 1;
                if *count > MAX_PINGS_PER_WINDOW {
                    return Err(PeerError::PingFlood);
                }
                self.send(NetworkMessage::Pong(nonce))
            }
            (State::Ready, NetworkMessage::Pong(nonce)) => {
                if let Some((expected, sent)) = self.ping_sent
                    && expected == nonce
                {
                    self.ping_sent = None;
                    events.push(PeerEvent::Pong { rtt: now.saturating_duration_since(sent) });
                }
            }
            (State::Ready, NetworkMessage::Headers(headers)) => events.push(PeerEvent::Headers(headers)),
            (State::Ready, NetworkMessage::SendHeaders) => self.peer_wants_headers = true,
            (State::Ready, NetworkMessage::Inv(inv)) => {
                let blocks: Vec<BlockHash> = inv
                    .iter()
                    .filter_map(|i| match i {
                        Inventory::Block(h) | Inventory::WitnessBlock(h) => Some(crate::headers::from_bitcoin_hash(h)),
                        _ => None,
                    })
                    .collect();
                if !blocks.is_empty() {
                    events.push(PeerEvent::BlocksAnnounced(blocks));
                }
            }
            (State::Ready, NetworkMessage::GetHeaders(m)) => events.push(PeerEvent::GetHeaders {
                locator: m.locator_hashes.iter().map(crate::headers::from_bitcoin_hash).collect(),
                stop: crate::headers::from_bitcoin_hash(&m.stop_hash),
            }),
            (State::Ready, NetworkMessage::GetData(inv)) => events.push(PeerEvent::GetData(inv)),
            (State::Ready, NetworkMessage::NotFound(inv)) => events.push(PeerEvent::NotFound(inv)),
            (State::Ready, NetworkMessage::Block(b)) => events.push(PeerEvent::Block(Box::new(b))),
            (State::Ready, NetworkMessage::CmpctBlock(c)) => {
                events.push(PeerEvent::CompactBlock(Box::new(c.compact_block)))
            }
            (State::Ready, NetworkMessage::GetBlockTxn(g)) => events.push(PeerEvent::GetBlockTxn(g.txs_request)),
            (State::Ready, NetworkMessage::BlockTxn(b)) => events.push(PeerEvent::BlockTxn(b.transactions)),
            (State::Ready, NetworkMessage::SendCmpct(sc)) if sc.version == 2 => {
                events.push(PeerEvent::SendCompact { high_bandwidth: sc.send_compact })
            }
            (State::Ready, other) => {
                // sendcmpct, feefilter, addr, addrv2, getheaders, a second
                // version, unknown commands: bounded by the decoder, unused yet.
                log::trace!("ignoring '{}'", other.cmd());
            }
        }
        Ok(())
    }

    fn send(&mut self, message: NetworkMessage) {
        self.out.extend_from_slice(&wire::encode_message(self.magic, message));
    }

    fn check_queue(&self) -> Result<(), PeerError> {
        if self.out.len() > MAX_SEND_QUEUE {
            return Err(PeerError::SendQueueFull { bytes: self.out.len() });
        }
        Ok(())
    }

    /// xorshift64: ping nonces only need to differ from one another.
    fn next_ping_nonce(&mut self) -> u64 {
        let mut x = self.ping_seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.ping_seed = x;
        x
    }
}

/// The peer's user agent, cut to Core's length and made safe to log.
fn clean_user_agent(s: &str) -> String {
    s.chars().take(MAX_SUBVERSION_LENGTH).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}
