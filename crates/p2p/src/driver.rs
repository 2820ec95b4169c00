//! The thin mio loop for one outbound peer: it connects, moves bytes between
//! the socket and the [`Peer`], keeps the clock, and hands `headers` to the
//! [`HeaderChain`]. Every protocol decision is the state machine's; the only
//! policy here is header sync: ask with a locator once connected, ask again
//! after a full batch of 2,000 or when an announcement does not connect.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::headers::{HeaderChain, HeaderError};
use crate::peer::{MAX_SEND_QUEUE, Peer, PeerConfig, PeerError, PeerEvent};
use crate::wire::MAX_HEADERS_RESULTS;

const PEER: Token = Token(0);
/// Core's `MAX_NUM_UNCONNECTING_HEADERS_MSGS`: announcements that do not
/// connect, each answered with a `getheaders`, before the peer is dropped
/// (so a peer cannot keep us asking forever).
pub const MAX_UNCONNECTING_HEADERS_MSGS: u32 = 10;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// How the driver connects.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Give up when the TCP connection is not up within this.
    pub connect_timeout: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions { connect_timeout: Duration::from_secs(10) }
    }
}

/// Why the connection ended or a run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    #[error("{context}: {source}")]
    Io { context: &'static str, source: io::Error },
    #[error("no TCP connection to {addr} within {waited:?}")]
    ConnectTimeout { addr: SocketAddr, waited: Duration },
    #[error("the peer closed the connection")]
    Closed,
    #[error("disconnecting: {0}")]
    Peer(#[from] PeerError),
    #[error("disconnecting: the peer sent an invalid header ({0})")]
    BadHeader(HeaderError),
    #[error("{0} headers messages in a row did not connect to our chain")]
    Unconnecting(u32),
    #[error("{0} bytes queued for the peer: it is not reading")]
    SendQueueFull(usize),
    #[error("the condition was not met by the deadline")]
    Deadline,
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> DriverError {
    move |source| DriverError::Io { context, source }
}

/// What the driver has done, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// `getheaders` sent.
    pub getheaders_sent: u32,
    /// `headers` messages received.
    pub headers_messages: u32,
    /// Headers newly stored.
    pub headers_stored: u32,
    /// `inv` messages announcing blocks.
    pub block_invs: u32,
}

/// One outbound peer syncing headers into a chain.
#[derive(Debug)]
pub struct Driver {
    poll: Poll,
    stream: TcpStream,
    addr: SocketAddr,
    peer: Peer,
    chain: HeaderChain,
    queue: Vec<u8>,
    connected: bool,
    started: Instant,
    opts: DriverOptions,
    stats: DriverStats,
    unconnecting: u32,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Driver {
    /// Starts a non-blocking connection to `addr`; the handshake runs in
    /// [`Driver::run_until`].
    ///
    /// # Errors
    /// [`DriverError::Io`] when the socket cannot be created or registered.
    pub fn connect(addr: SocketAddr, chain: HeaderChain, opts: DriverOptions) -> Result<Driver, DriverError> {
        let poll = Poll::new().map_err(io_err("creating the poller"))?;
        let mut stream = TcpStream::connect(addr).map_err(io_err("connecting"))?;
        poll.registry()
            .register(&mut stream, PEER, Interest::READABLE | Interest::WRITABLE)
            .map_err(io_err("registering the socket"))?;
        let now = Instant::now();
        let time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        // The version nonce only has to differ from other connections' of
        // this process (self-connection detection).
        let nonce = (time.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32) ^ 0x6b69_6c6e;
        let mut config =
            PeerConfig::new(chain.params().network, chain.best_height() as i32, time.as_secs() as i64, nonce);
        config.remote = Some(addr);
        let (peer, first) = Peer::new(config, now);
        Ok(Driver {
            poll,
            stream,
            addr,
            peer,
            chain,
            queue: first,
            connected: false,
            started: now,
            opts,
            stats: DriverStats::default(),
            unconnecting: 0,
        })
    }

    pub fn chain(&self) -> &HeaderChain {
        &self.chain
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    fn request_headers(&mut self) -> Result<(), DriverError> {
        self.stats.getheaders_sent += 1;
        Ok(self.peer.request_headers(&self.chain.locator())?)
    }

    /// Runs the connection until `done(chain)` holds or `deadline` passes.
    /// The connection stays up between runs.
    ///
    /// # Errors
    /// [`DriverError::Deadline`] if `done` never held; any other variant
    /// means the connection is finished (drop the driver).
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&HeaderChain) -> bool,
    ) -> Result<(), DriverError> {
        let mut events = Events::with_capacity(16);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if done(&self.chain) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DriverError::Deadline);
            }
            if !self.connected && now.saturating_duration_since(self.started) >= self.opts.connect_timeout {
                return Err(DriverError::ConnectTimeout { addr: self.addr, waited: self.opts.connect_timeout });
            }
            if self.connected {
                self.peer.poll_tick(now)?;
            }
            self.collect_outgoing()?;
            let interest = if self.queue.is_empty() && self.connected {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            self.poll.registry().reregister(&mut self.stream, PEER, interest).map_err(io_err("reregistering"))?;
            let wake = deadline.min(self.peer.next_deadline()).min(self.started + self.opts.connect_timeout);
            let timeout = wake.saturating_duration_since(now).max(Duration::from_millis(1));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(io_err("polling")(e));
            }
            for event in events.iter() {
                if !self.connected {
                    if let Some(e) = self.stream.take_error().map_err(io_err("connecting"))? {
                        return Err(io_err("connecting")(e));
                    }
                    match self.stream.peer_addr() {
                        Ok(_) => self.connected = true,
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                        Err(e) => return Err(io_err("connecting")(e)),
                    }
                    log::debug!("connected to {}", self.addr);
                }
                if event.is_readable() || event.is_read_closed() {
                    self.read(&mut buf)?;
                }
                if event.is_writable() {
                    self.write()?;
                }
            }
        }
    }

    /// Reads until the socket would block, feeding the state machine.
    fn read(&mut self, buf: &mut [u8]) -> Result<(), DriverError> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(DriverError::Closed),
                Ok(n) => {
                    let events = self.peer.receive(&buf[..n], Instant::now())?;
                    for event in events {
                        self.on_event(event)?;
                    }
                    self.collect_outgoing()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("reading")(e)),
            }
        }
    }

    /// Writes until the queue is empty or the socket would block.
    fn write(&mut self) -> Result<(), DriverError> {
        while !self.queue.is_empty() {
            match self.stream.write(&self.queue) {
                Ok(0) => return Err(DriverError::Closed),
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("writing")(e)),
            }
        }
        Ok(())
    }

    fn collect_outgoing(&mut self) -> Result<(), DriverError> {
        let more = self.peer.take_outgoing();
        self.queue.extend_from_slice(&more);
        if self.queue.len() > MAX_SEND_QUEUE {
            return Err(DriverError::SendQueueFull(self.queue.len()));
        }
        if self.connected && !self.queue.is_empty() {
            self.write()?;
        }
        Ok(())
    }

    fn on_event(&mut self, event: PeerEvent) -> Result<(), DriverError> {
        match event {
            PeerEvent::Version { version, user_agent, start_height, .. } => {
                log::info!("peer {}: version {version} {user_agent} height {start_height}", self.addr);
            }
            PeerEvent::HandshakeDone => self.request_headers()?,
            PeerEvent::Headers(headers) => {
                self.stats.headers_messages += 1;
                let now = unix_now();
                if let Some(first) = headers.first()
                    && self.chain.contains(&crate::headers::from_bitcoin_hash(&first.prev_blockhash))
                {
                    self.unconnecting = 0;
                }
                let full = headers.len() as u64 == MAX_HEADERS_RESULTS;
                for (i, h) in headers.iter().enumerate() {
                    match self.chain.accept_bitcoin(h, now) {
                        Ok(a) => self.stats.headers_stored += u32::from(!a.known),
                        // An announcement that does not connect: we missed
                        // something, so ask from our locator (as Core does).
                        Err(HeaderError::PrevNotFound { .. }) if i == 0 => {
                            self.unconnecting += 1;
                            if self.unconnecting > MAX_UNCONNECTING_HEADERS_MSGS {
                                return Err(DriverError::Unconnecting(self.unconnecting));
                            }
                            return self.request_headers();
                        }
                        Err(e) => return Err(DriverError::BadHeader(e)),
                    }
                }
                log::debug!(
                    "{} headers, best {} at {}",
                    headers.len(),
                    self.chain.best_hash(),
                    self.chain.best_height()
                );
                if full {
                    self.request_headers()?;
                }
            }
            PeerEvent::BlocksAnnounced(hashes) => {
                self.stats.block_invs += 1;
                if hashes.iter().any(|h| !self.chain.contains(h)) {
                    self.request_headers()?;
                }
            }
            PeerEvent::Pong { rtt } => log::trace!("peer {}: ping {rtt:?}", self.addr),
        }
        Ok(())
    }
}
