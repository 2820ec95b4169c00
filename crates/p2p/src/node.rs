//! The thin mio loop for several outbound peers: it connects to each
//! configured address, moves bytes between sockets and their [`Peer`]s,
//! keeps the clock, and carries out what [`Sync`] decides. A peer that
//! misbehaves is disconnected alone (its reason logged and kept); a
//! configured address whose connection ends is dialled again after a
//! back-off that doubles from [`NodeOptions::reconnect_min`] up to
//! [`NodeOptions::reconnect_max`] and resets once a handshake succeeds.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::headers::HeaderChain;
use crate::peer::{MAX_SEND_QUEUE, Peer, PeerConfig, PeerEvent};
use crate::sync::{Action, PeerId, Sync, SyncConfig};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// The loop wakes at least this often, so a caller's stop condition (a
/// signal flag, a status line) is seen promptly.
const MAX_POLL: Duration = Duration::from_millis(200);

/// How the node connects.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// A TCP connection not up within this is abandoned (and retried).
    pub connect_timeout: Duration,
    /// First wait before dialling a lost peer again.
    pub reconnect_min: Duration,
    /// Longest wait between attempts.
    pub reconnect_max: Duration,
    pub sync: SyncConfig,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            sync: SyncConfig::default(),
        }
    }
}

/// One configured address and, when up, its connection.
#[derive(Debug)]
struct Slot {
    addr: SocketAddr,
    conn: Option<Conn>,
    backoff: Duration,
    retry_at: Instant,
    info: PeerInfo,
}

#[derive(Debug)]
struct Conn {
    id: PeerId,
    stream: TcpStream,
    peer: Peer,
    queue: Vec<u8>,
    connected: bool,
    started: Instant,
    start_height: i32,
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

/// Several outbound peers syncing headers (see the module docs).
#[derive(Debug)]
pub struct NodeDriver {
    poll: Poll,
    slots: Vec<Slot>,
    sync: Sync,
    opts: NodeOptions,
    next_id: PeerId,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl NodeDriver {
    /// A node that will connect to every address in `addrs` (in
    /// [`NodeDriver::run_until`]).
    ///
    /// # Errors
    /// When the poller cannot be created.
    pub fn new(addrs: &[SocketAddr], chain: HeaderChain, opts: NodeOptions) -> io::Result<NodeDriver> {
        let now = Instant::now();
        let slots = addrs
            .iter()
            .map(|&addr| Slot {
                addr,
                conn: None,
                backoff: opts.reconnect_min,
                retry_at: now,
                info: PeerInfo::default(),
            })
            .collect();
        Ok(NodeDriver { poll: Poll::new()?, slots, sync: Sync::new(chain, opts.sync.clone()), opts, next_id: 1 })
    }

    pub fn sync(&self) -> &Sync {
        &self.sync
    }

    pub fn chain(&self) -> &HeaderChain {
        self.sync.chain()
    }

    /// Each configured address with what is known about it.
    pub fn peers(&self) -> Vec<(SocketAddr, PeerInfo)> {
        self.slots.iter().map(|s| (s.addr, s.info.clone())).collect()
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
            self.flush_and_register();
            let mut wake = deadline.min(now + MAX_POLL);
            if let Some(t) = self.sync.next_deadline() {
                wake = wake.min(t);
            }
            for s in &self.slots {
                match &s.conn {
                    Some(c) if c.connected => wake = wake.min(c.peer.next_deadline()),
                    Some(c) => wake = wake.min(c.started + self.opts.connect_timeout),
                    None => wake = wake.min(s.retry_at),
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
                let i = event.token().0;
                if let Err(why) =
                    self.on_socket(i, event.is_readable() || event.is_read_closed(), event.is_writable(), &mut buf)
                {
                    self.drop_conn(i, why, Instant::now());
                }
            }
        }
    }

    /// Starts connections whose back-off is over.
    fn dial(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.conn.is_some() || now < slot.retry_at {
                continue;
            }
            match TcpStream::connect(slot.addr) {
                Ok(mut stream) => {
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
                    {
                        self.failed(i, format!("registering the socket: {e}"), now);
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    let time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                    // Differs between connections of this process (self-connection detection).
                    let nonce = (time.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32) ^ id.rotate_left(17);
                    let chain = self.sync.chain();
                    let mut config = PeerConfig::new(
                        chain.params().network,
                        chain.best_height() as i32,
                        time.as_secs() as i64,
                        nonce,
                    );
                    config.remote = Some(slot.addr);
                    let (peer, first) = Peer::new(config, now);
                    let slot = &mut self.slots[i];
                    slot.conn =
                        Some(Conn { id, stream, peer, queue: first, connected: false, started: now, start_height: 0 });
                }
                Err(e) => self.failed(i, format!("connecting: {e}"), now),
            }
        }
    }

    /// Connect timeouts and each peer's own timers.
    fn timers(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let Some(c) = self.slots[i].conn.as_mut() else { continue };
            let why = if !c.connected {
                (now.saturating_duration_since(c.started) >= self.opts.connect_timeout)
                    .then(|| format!("no TCP connection within {:?}", self.opts.connect_timeout))
            } else {
                c.peer.poll_tick(now).err().map(|e| e.to_string())
            };
            if let Some(why) = why {
                self.drop_conn(i, why, now);
            }
        }
    }

    fn flush_and_register(&mut self) {
        for i in 0..self.slots.len() {
            let Some(c) = self.slots[i].conn.as_mut() else { continue };
            let more = c.peer.take_outgoing();
            c.queue.extend_from_slice(&more);
            let result = if c.queue.len() > MAX_SEND_QUEUE {
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
                    .reregister(&mut c.stream, Token(i), interest)
                    .map_err(|e| format!("reregistering: {e}"))
            });
            if let Err(why) = result {
                self.drop_conn(i, why, Instant::now());
            }
        }
    }

    /// A readiness event on slot `i`'s socket; an error means disconnect.
    fn on_socket(&mut self, i: usize, readable: bool, writable: bool, buf: &mut [u8]) -> Result<(), String> {
        let Some(c) = self.slots.get_mut(i).and_then(|s| s.conn.as_mut()) else { return Ok(()) };
        if !c.connected {
            if let Some(e) = c.stream.take_error().map_err(|e| format!("connecting: {e}"))? {
                return Err(format!("connecting: {e}"));
            }
            match c.stream.peer_addr() {
                Ok(_) => c.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connecting: {e}")),
            }
            self.slots[i].info.connected = true;
            self.slots[i].info.connections += 1;
            log::debug!("connected to {}", self.slots[i].addr);
        }
        if readable {
            loop {
                let c = self.slots[i].conn.as_mut().expect("checked above");
                let n = match c.stream.read(buf) {
                    Ok(0) => return Err("the peer closed the connection".into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("reading: {e}")),
                };
                let now = Instant::now();
                let events = c.peer.receive(&buf[..n], now).map_err(|e| e.to_string())?;
                for event in events {
                    self.on_event(i, event, now);
                    if self.slots[i].conn.is_none() {
                        return Ok(()); // the sync dropped it
                    }
                }
            }
        }
        if writable && let Some(c) = self.slots[i].conn.as_mut() {
            write_queue(c)?;
        }
        Ok(())
    }

    fn on_event(&mut self, i: usize, event: PeerEvent, now: Instant) {
        let slot = &mut self.slots[i];
        let Some(c) = slot.conn.as_mut() else { return };
        let id = c.id;
        let actions = match event {
            PeerEvent::Version { version, user_agent, start_height, .. } => {
                log::info!("peer {}: version {version} {user_agent} height {start_height}", slot.addr);
                c.start_height = start_height;
                slot.info.start_height = Some(start_height);
                slot.info.user_agent = Some(user_agent);
                Vec::new()
            }
            PeerEvent::HandshakeDone => {
                slot.info.ready = true;
                slot.backoff = self.opts.reconnect_min;
                let h = c.start_height;
                self.sync.peer_ready(id, h, now)
            }
            PeerEvent::Headers(headers) => self.sync.headers(id, &headers, now, unix_now()),
            PeerEvent::BlocksAnnounced(hashes) => self.sync.blocks_announced(id, &hashes, now),
            PeerEvent::Pong { rtt } => {
                log::trace!("peer {}: ping {rtt:?}", slot.addr);
                Vec::new()
            }
        };
        self.apply(actions, now);
    }

    /// Carries out the sync's decisions.
    fn apply(&mut self, actions: Vec<Action>, now: Instant) {
        for action in actions {
            match action {
                Action::GetHeaders { peer, locator } => {
                    let Some(i) = self.slot_of(peer) else { continue };
                    let c = self.slots[i].conn.as_mut().expect("slot_of checks");
                    if let Err(e) = c.peer.request_headers(&locator) {
                        self.drop_conn(i, e.to_string(), now);
                    }
                }
                Action::Disconnect { peer, reason } => {
                    if let Some(i) = self.slot_of(peer) {
                        self.drop_conn(i, reason.to_string(), now);
                    }
                }
            }
        }
    }

    fn slot_of(&self, peer: PeerId) -> Option<usize> {
        self.slots.iter().position(|s| s.conn.as_ref().is_some_and(|c| c.id == peer))
    }

    /// Ends slot `i`'s connection, saying why, and schedules a new one.
    fn drop_conn(&mut self, i: usize, why: String, now: Instant) {
        let Some(mut c) = self.slots[i].conn.take() else { return };
        let _ = self.poll.registry().deregister(&mut c.stream);
        let slot = &mut self.slots[i];
        log::warn!("peer {}: disconnected: {why}", slot.addr);
        slot.info.connected = false;
        slot.info.ready = false;
        self.failed(i, why, now);
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
