//! The Stratum job source: a thin mio loop around [`Session`]. The session decides
//! what to say; this loop only moves bytes, keeps a write queue, watches the
//! clock (connect timeout, handshake timeout, stalls), and chooses which pool
//! to talk to (priority order, failover, exponential back-off with jitter,
//! return to the primary).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use kiln_stratum::{Event, Session, SessionConfig, Share, sanitize};

use crate::engine::{Solution, SourceEvent};
use crate::stats::{PoolStatus, Stats};

const WAKE: Token = Token(0);
const CONN: Token = Token(1);
/// Shares kept while disconnected; older ones beyond this are counted lost.
const MAX_QUEUED: usize = 4096;
/// Bytes read from the pool in one turn of the loop. The rest waits for the
/// next turn, so a pool sending without pause cannot grow a buffer without
/// bound or keep the loop from checking its clock and the stop flag.
const MAX_READ_TURN: usize = 1 << 20;
/// A `client.reconnect` wait up to this long is waited out where kiln is;
/// a longer one (up to `max_redirect_wait`) is spent on a backup pool.
const REDIRECT_WAIT_IN_PLACE: Duration = Duration::from_secs(5);
/// Bytes kiln may have queued for a pool that is not taking them (beyond
/// what the kernel's socket buffer holds). Shares and answers are small; a
/// pool that lets this much pile up is not reading, and is left.
pub const MAX_WRITE_QUEUE: usize = 1 << 20;

/// A pool address: `stratum+tcp://host:port` or `stratum+ssl://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl FromStr for PoolUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("stratum+tcp://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("stratum+ssl://").or_else(|| s.strip_prefix("stratum+tls://")) {
            (true, r)
        } else if s.contains("://") {
            return Err(format!("unsupported scheme in '{s}' (use stratum+tcp:// or stratum+ssl://)"));
        } else {
            (false, s)
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("'{s}' has no port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("'{s}' has no host"));
        }
        let port = port.parse().map_err(|_| format!("'{port}' is not a port number"))?;
        Ok(PoolUrl { tls, host: host.to_string(), port })
    }
}

impl std::fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "stratum+ssl" } else { "stratum+tcp" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// One pool to mine on. Its `Debug` form hides the password.
#[derive(Clone)]
pub struct PoolConfig {
    pub url: PoolUrl,
    pub user: String,
    /// Sent to the pool only; never logged.
    pub pass: String,
}

impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("pass", &"<hidden>")
            .finish()
    }
}

/// Timing and protocol choices of the client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Subscribe and authorize must be answered within this.
    pub handshake_timeout: Duration,
    /// Reconnect when the pool sends nothing for this long, or takes nothing
    /// kiln sends for this long.
    pub stall_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Consecutive failures before moving to the next pool.
    pub failover_after: u32,
    /// A session that ends sooner than this after connecting (or before the
    /// pool sent any job) counts as a failure: a pool that authorizes and
    /// then drops, again and again, is as unusable as one that refuses, and
    /// must not keep kiln from its backups or from backing off.
    pub min_session: Duration,
    /// The longest `client.reconnect` wait kiln honours; with a backup pool
    /// configured, a wait of more than a few seconds is spent mining there.
    pub max_redirect_wait: Duration,
    /// While on a backup pool, try the primary again this often.
    pub primary_retry: Duration,
    pub version_rolling: Option<u32>,
    pub suggest_difficulty: Option<f64>,
    /// Trust anchors for stratum+ssl; `None` uses the Mozilla roots (webpki-roots).
    pub tls_roots: Option<Arc<rustls::RootCertStore>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(180),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            failover_after: 3,
            min_session: Duration::from_secs(10),
            max_redirect_wait: Duration::from_secs(60),
            primary_retry: Duration::from_secs(300),
            version_rolling: Some(kiln_stratum::session::BIP320_MASK),
            suggest_difficulty: None,
            tls_roots: None,
        }
    }
}

/// The byte pipe under a session: plain TCP or TLS over TCP.
enum Transport {
    Plain { stream: TcpStream, wbuf: Vec<u8> },
    Tls { stream: TcpStream, conn: Box<rustls::ClientConnection> },
}

impl Transport {
    fn stream(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain { stream, .. } | Transport::Tls { stream, .. } => stream,
        }
    }

    /// Reads what is available, up to about [`MAX_READ_TURN`] bytes;
    /// `Ok(true)` at end of stream. `more` is set when it stopped at the
    /// limit and there may be more to read.
    fn read_available(&mut self, out: &mut Vec<u8>, more: &mut bool) -> io::Result<bool> {
        *more = false;
        let mut buf = [0u8; 16384];
        match self {
            Transport::Plain { stream, .. } => loop {
                if out.len() >= MAX_READ_TURN {
                    *more = true;
                    return Ok(false);
                }
                match stream.read(&mut buf) {
                    Ok(0) => return Ok(true),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            },
            Transport::Tls { stream, conn } => {
                let mut eof = false;
                let mut taken = 0usize;
                while taken < MAX_READ_TURN {
                    match conn.read_tls(stream) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => taken += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                    *more = taken >= MAX_READ_TURN;
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, tls_failure(&e)))?;
                }
                loop {
                    match conn.reader().read(&mut buf) {
                        Ok(0) => return Ok(true),
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(eof),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Queues bytes for the pool; an error when more than
    /// [`MAX_WRITE_QUEUE`] bytes would be waiting.
    fn queue(&mut self, data: &[u8]) -> io::Result<()> {
        let not_reading = |queued: usize| {
            io::Error::other(format!("the pool is not reading what kiln sends ({queued} bytes waiting)"))
        };
        match self {
            Transport::Plain { wbuf, .. } => {
                if wbuf.len() + data.len() > MAX_WRITE_QUEUE {
                    return Err(not_reading(wbuf.len() + data.len()));
                }
                wbuf.extend_from_slice(data);
                Ok(())
            }
            // rustls bounds its own buffers (64 KiB by default) and refuses
            // more: write_all then fails.
            Transport::Tls { conn, .. } => conn.writer().write_all(data).map_err(|_| not_reading(data.len())),
        }
    }

    fn wants_write(&self) -> bool {
        match self {
            Transport::Plain { wbuf, .. } => !wbuf.is_empty(),
            Transport::Tls { conn, .. } => conn.wants_write(),
        }
    }

    /// Writes as much as the socket takes now; returns how many bytes went.
    fn flush(&mut self) -> io::Result<usize> {
        let mut sent = 0;
        match self {
            Transport::Plain { stream, wbuf } => {
                while !wbuf.is_empty() {
                    match stream.write(wbuf) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            sent += n;
                            wbuf.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                Ok(sent)
            }
            Transport::Tls { stream, conn } => {
                while conn.wants_write() {
                    match conn.write_tls(stream) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                Ok(sent)
            }
        }
    }
}

/// Plain words for why a TLS connection failed, above all why the pool's
/// certificate was refused: rustls' own text names webpki internals
/// (`Other(OtherError(CaUsedAsEndEntity))`) that tell a user nothing.
fn tls_failure(e: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(c) => {
            let why = match c {
                C::UnknownIssuer => "not trusted (self-signed, or issued by an unknown authority)".to_string(),
                C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                    "not trusted (self-signed)".to_string()
                }
                C::Expired | C::ExpiredContext { .. } => "expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".to_string(),
                C::NotValidForName | C::NotValidForNameContext { .. } => "for another host name".to_string(),
                C::Revoked => "revoked".to_string(),
                C::BadSignature => "badly signed".to_string(),
                C::BadEncoding => "malformed".to_string(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => "not one for a server".to_string(),
                other => format!("refused ({other:?})"),
            };
            format!("the pool's certificate is {why}")
        }
        E::AlertReceived(a) => format!("the pool ended the TLS handshake ({a:?})"),
        E::NoCertificatesPresented => "the pool sent no certificate".to_string(),
        other => format!("TLS: {other}"),
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    Stop,
    /// Could not connect or finish the handshake.
    Failed(String),
    /// Was working, then broke.
    Dropped(String),
    AuthFailed(String),
    /// `client.reconnect`: to the same host or another configured pool's
    /// host (index `pool`), maybe another port, after a wait.
    Redirect {
        pool: usize,
        port: Option<u16>,
        wait: Duration,
    },
    ReturnToPrimary,
}

/// What survives from one connection to the next on the same pool.
#[derive(Default)]
struct Resume {
    session_id: Option<String>,
    extranonce1: Option<Vec<u8>>,
}

/// The Stratum share for an engine solution: `mining.submit` names the job,
/// the extranonces, ntime and nonce, and (BIP310) the rolled version bits,
/// `version & mask`, only when the version was rolled: a share on the job's
/// own version carries no version field, which every pool reads the same.
pub fn share_of(s: &Solution) -> Share {
    let job = &s.job;
    Share {
        job_id: job.job_id.clone(),
        extranonce1: job.extranonce1.clone(),
        extranonce2: s.extranonce2.clone(),
        ntime: s.ntime,
        nonce: s.nonce,
        version_bits: (job.version_mask != 0 && s.version != job.version).then_some(s.version & job.version_mask),
    }
}

/// How long a pool must go without dropping a working session before its
/// drop back-off starts again from the shortest wait.
const DROP_MEMORY: Duration = Duration::from_secs(600);

/// The client's long-lived state.
pub struct Client {
    pools: Vec<PoolConfig>,
    opts: ClientOptions,
    engine: Sender<SourceEvent>,
    solutions: Receiver<Solution>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    poll: Poll,
    waker: Arc<Waker>,
    /// Shares waiting for a connection, with the scanner that found each.
    queued: VecDeque<(Share, usize)>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// Creates the client and its waker (hand the waker to the engine so it
    /// can wake the loop when it queues a share).
    ///
    /// # Errors
    /// When the OS refuses a poll instance.
    pub fn new(
        pools: Vec<PoolConfig>,
        opts: ClientOptions,
        engine: Sender<SourceEvent>,
        solutions: Receiver<Solution>,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        stats.set_pools(
            pools
                .iter()
                .enumerate()
                .map(|(i, p)| PoolStatus {
                    url: p.url.to_string(),
                    user: p.user.clone(),
                    priority: i,
                    ..PoolStatus::default()
                })
                .collect(),
        );
        Ok(Client { pools, opts, engine, solutions, stats, stop, poll, waker, queued: VecDeque::new(), tls: None })
    }

    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    fn tls_config(&mut self) -> Arc<rustls::ClientConfig> {
        if let Some(c) = &self.tls {
            return Arc::clone(c);
        }
        let roots = self.opts.tls_roots.clone().unwrap_or_else(|| {
            let mut r = rustls::RootCertStore::empty();
            r.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Arc::new(r)
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let cfg = Arc::new(cfg);
        self.tls = Some(Arc::clone(&cfg));
        cfg
    }

    /// Runs until `stop` is set; reconnects and fails over on its own.
    pub fn run(mut self) {
        let mut current = 0usize;
        let mut failures = vec![0u32; self.pools.len()];
        // Drops of working sessions, per pool, and when the last one was:
        // a pool that keeps dropping sessions gets growing back-off too,
        // reset once it has gone DROP_MEMORY without a drop.
        let mut drops: Vec<(u32, Option<Instant>)> = vec![(0, None); self.pools.len()];
        let mut resume: Vec<Resume> = (0..self.pools.len()).map(|_| Resume::default()).collect();
        // Ports a pool redirected kiln to (client.reconnect), per pool.
        let mut port_override: Vec<Option<u16>> = vec![None; self.pools.len()];
        let mut backup_since: Option<Instant> = None;
        let mut probing_primary_from: Option<usize> = None;
        let mut rng = super::seed();
        while !self.stop.load(Ordering::Acquire) {
            let pool = self.pools[current].clone();
            let mut url = pool.url.clone();
            if let Some(p) = port_override[current] {
                url.port = p;
            }
            self.stats.set_pool(&url.to_string(), "connecting");
            let return_after = (current > 0).then(|| {
                let since = *backup_since.get_or_insert_with(Instant::now);
                self.opts.primary_retry.saturating_sub(since.elapsed())
            });
            let ended = self.connection(current, &url, &pool, &mut resume[current], return_after);
            let _ = self.engine.send(SourceEvent::Disconnected);
            self.stats.set_pool(&url.to_string(), "disconnected");
            let wait = match ended {
                Ended::Stop => break,
                Ended::ReturnToPrimary => {
                    log::info!("trying the primary pool {} again", self.pools[0].url);
                    self.stats.note(format!("trying the primary pool ({}) again", self.pools[0].url));
                    probing_primary_from = Some(current);
                    current = 0;
                    port_override[0] = None;
                    continue;
                }
                Ended::Redirect { pool: to, port, wait } => {
                    log::info!(
                        "pool asked to reconnect{}{} in {}s",
                        if to == current { String::new() } else { format!(" to {}", self.pools[to].url.host) },
                        port.map(|p| format!(" on port {p}")).unwrap_or_default(),
                        wait.as_secs()
                    );
                    port_override[to] = port;
                    probing_primary_from = None;
                    if wait > REDIRECT_WAIT_IN_PLACE && self.pools.len() > 1 {
                        // Mine on the next pool meanwhile. Back to the primary
                        // once the wait is over (primary_retry, shortened).
                        let now = Instant::now();
                        if to == 0 {
                            backup_since =
                                Some(now.checked_sub(self.opts.primary_retry.saturating_sub(wait)).unwrap_or(now));
                        }
                        current = (to + 1) % self.pools.len();
                        if current > 0 {
                            backup_since.get_or_insert(now);
                        }
                        log::info!("mining on pool {} ({}) meanwhile", current, self.pools[current].url);
                        continue;
                    }
                    current = to;
                    if current > 0 {
                        backup_since.get_or_insert_with(Instant::now);
                    }
                    wait
                }
                Ended::Dropped(why) => {
                    failures[current] = 0;
                    let (n, last) = &mut drops[current];
                    *n = if last.is_some_and(|t| t.elapsed() < DROP_MEMORY) { *n + 1 } else { 0 };
                    *last = Some(Instant::now());
                    let wait = self.backoff(*n, &mut rng);
                    log::warn!("{url}: {why}; reconnecting in {:.1} s", wait.as_secs_f64());
                    self.stats.note(format!("{url}: connection dropped; reconnecting"));
                    wait
                }
                Ended::Failed(why) | Ended::AuthFailed(why) => {
                    failures[current] += 1;
                    self.stats.pool_event(current, false, true);
                    // With one pool there is nothing to fail over to: count, don't
                    // promise ("failure 4 of 3" read like a bug).
                    let count = if self.pools.len() > 1 {
                        format!("failure {} of {} before failing over", failures[current], self.opts.failover_after)
                    } else {
                        format!("failure {} in a row", failures[current])
                    };
                    log::warn!("{url}: {why} ({count})");
                    port_override[current] = None;
                    if let Some(back) = probing_primary_from.take() {
                        // The primary is still down: go back to the backup at once.
                        current = back;
                        backup_since = Some(Instant::now());
                        continue;
                    }
                    if failures[current] >= self.opts.failover_after && self.pools.len() > 1 {
                        failures[current] = 0;
                        current = (current + 1) % self.pools.len();
                        backup_since = (current > 0).then(Instant::now);
                        log::warn!("failing over to pool {} ({})", current, self.pools[current].url);
                        self.stats.note(format!("failing over to pool {current} ({})", self.pools[current].url));
                        Duration::ZERO
                    } else {
                        self.backoff(failures[current], &mut rng)
                    }
                }
            };
            if current == 0 {
                backup_since = None;
            }
            probing_primary_from = None;
            self.sleep(wait);
        }
        let _ = self.engine.send(SourceEvent::Shutdown);
    }

    /// Exponential back-off with ±50 % jitter, so many workers that lost the
    /// same pool do not all come back in the same second.
    fn backoff(&self, attempt: u32, rng: &mut u64) -> Duration {
        let base = self.opts.backoff_base.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
        let capped = base.min(self.opts.backoff_max.as_secs_f64());
        let jitter = 0.5 + (super::xorshift(rng) % 1000) as f64 / 1000.0;
        Duration::from_secs_f64(capped * jitter)
    }

    /// Sleeps, but wakes for `stop` and keeps collecting shares meanwhile.
    fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
            self.collect_shares();
        }
    }

    fn collect_shares(&mut self) {
        while let Ok(s) = self.solutions.try_recv() {
            self.queued.push_back((share_of(&s), s.scanner));
        }
        while self.queued.len() > MAX_QUEUED {
            self.queued.pop_front();
            self.stats.lost(1);
        }
    }

    fn connect(&mut self, url: &PoolUrl) -> Result<Transport, String> {
        let addr: SocketAddr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", url.host))?;
        let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
        self.poll.registry().register(&mut stream, CONN, Interest::WRITABLE).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + self.opts.connect_timeout;
        let mut events = Events::with_capacity(8);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = self.poll.registry().deregister(&mut stream);
                return Err(format!("connect to {addr} timed out after {:?}", self.opts.connect_timeout));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(left.min(Duration::from_millis(100))))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e.to_string());
            }
            if self.stop.load(Ordering::Acquire) {
                return Err("stopping".into());
            }
            if events.iter().any(|e| e.token() == CONN) {
                let err = match stream.take_error() {
                    Ok(Some(e)) | Err(e) => Some(e),
                    Ok(None) => None,
                };
                if let Some(e) = err {
                    let _ = self.poll.registry().deregister(&mut stream);
                    return Err(format!("connect to {addr}: {e}"));
                }
                match stream.peer_addr() {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => {
                        let _ = self.poll.registry().deregister(&mut stream);
                        return Err(format!("connect to {addr}: {e}"));
                    }
                }
            }
        }
        let _ = stream.set_nodelay(true);
        if url.tls {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| format!("bad TLS server name: {e}"))?;
            let conn = rustls::ClientConnection::new(self.tls_config(), name).map_err(|e| format!("TLS: {e}"))?;
            Ok(Transport::Tls { stream, conn: Box::new(conn) })
        } else {
            Ok(Transport::Plain { stream, wbuf: Vec::new() })
        }
    }

    /// One connection's life.
    fn connection(
        &mut self,
        index: usize,
        url: &PoolUrl,
        pool: &PoolConfig,
        resume: &mut Resume,
        return_after: Option<Duration>,
    ) -> Ended {
        let mut t = match self.connect(url) {
            Ok(t) => t,
            Err(e) if self.stop.load(Ordering::Acquire) => {
                return if e == "stopping" { Ended::Stop } else { Ended::Failed(e) };
            }
            Err(e) => return Ended::Failed(e),
        };
        // Over TLS, "connected" waits until the pool's certificate verified.
        let mut announced = false;
        let mut cfg = SessionConfig::new(&pool.user, &pool.pass);
        cfg.version_rolling = self.opts.version_rolling;
        cfg.suggest_difficulty = self.opts.suggest_difficulty;
        cfg.resume = resume.session_id.clone();
        let mut session = Session::new(cfg);
        session.start();
        let started = Instant::now();
        let mut last_rx = Instant::now();
        // When bytes last left, or the queue was last empty: a pool that takes
        // nothing for stall_timeout is stalled as much as one that sends nothing.
        let mut last_tx = Instant::now();
        let mut working = false;
        // When the pool authorized us, and whether it has sent a job since.
        let mut authorized_at: Option<Instant> = None;
        let mut got_job = false;
        // Submitted shares: their difficulty and the scanner that found them.
        let mut in_flight: HashMap<u64, (f64, usize)> = HashMap::new();
        let mut events = Events::with_capacity(64);
        // The last read stopped at MAX_READ_TURN: read again without waiting
        // (mio is edge-triggered; no new readiness event would come).
        let mut more_to_read = false;
        let ended = 'conn: loop {
            if self.stop.load(Ordering::Acquire) {
                break Ended::Stop;
            }
            if !announced && !matches!(&t, Transport::Tls { conn, .. } if conn.is_handshaking()) {
                announced = true;
                log::info!("connected to {url} as {}", pool.user);
            }
            // Shares from the engine: submit those this connection can take.
            self.collect_shares();
            if session.is_authorized() {
                let en1 = session.extranonce1().map(<[u8]>::to_vec);
                let queued = std::mem::take(&mut self.queued);
                for (s, scanner) in queued {
                    if en1.as_deref() == Some(&s.extranonce1[..]) {
                        let id = session.submit(&s);
                        in_flight.insert(id, (session.difficulty(), scanner));
                    } else {
                        // Mined for an extranonce1 this pool no longer knows.
                        self.stats.lost(1);
                        log::warn!("share for job {} lost: mined with another extranonce1", sanitize(&s.job_id));
                    }
                }
            }
            let out = session.take_output();
            if !out.is_empty()
                && let Err(e) = t.queue(&out)
            {
                break Ended::Dropped(format!("write: {e}"));
            }
            match t.flush() {
                Ok(n) if n > 0 || !t.wants_write() => last_tx = Instant::now(),
                Ok(_) => {}
                Err(e) => {
                    break if working {
                        Ended::Dropped(format!("write: {e}"))
                    } else {
                        Ended::Failed(format!("write: {e}"))
                    };
                }
            }
            if last_tx.elapsed() > self.opts.stall_timeout {
                break Ended::Dropped(format!("the pool took nothing kiln sent for {:?}", self.opts.stall_timeout));
            }
            let interest = if t.wants_write() { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if let Err(e) = self.poll.registry().reregister(t.stream(), CONN, interest) {
                break Ended::Dropped(e.to_string());
            }
            let wait = if more_to_read { Duration::ZERO } else { Duration::from_millis(100) };
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != io::ErrorKind::Interrupted
            {
                break Ended::Dropped(e.to_string());
            }
            let readable = more_to_read
                || events.iter().any(|e| e.token() == CONN && (e.is_readable() || e.is_read_closed() || e.is_error()));
            if readable {
                let mut bytes = Vec::new();
                let eof = match t.read_available(&mut bytes, &mut more_to_read) {
                    Ok(eof) => eof,
                    Err(e) => {
                        break if working {
                            Ended::Dropped(format!("read: {e}"))
                        } else {
                            Ended::Failed(format!("read: {e}"))
                        };
                    }
                };
                if !bytes.is_empty() {
                    last_rx = Instant::now();
                }
                // Only the newest job of those read together goes to the
                // engine (clean when any of them was): scanners only ever
                // want the newest, and a notify flood must not become a queue.
                let mut newest: Option<kiln_work::Job> = None;
                for ev in session.receive(&bytes) {
                    match ev {
                        Event::Subscribed { session_id, extranonce1, extranonce2_size } => {
                            log::debug!(
                                "subscribed: extranonce1 {} size {extranonce2_size}",
                                hex::encode(&extranonce1)
                            );
                            if resume.extranonce1.as_ref().is_some_and(|old| *old != extranonce1) {
                                log::info!("new extranonce1 after reconnect: work rebuilt");
                            }
                            resume.session_id = session_id;
                            resume.extranonce1 = Some(extranonce1.clone());
                            if let Some(job) = newest.take() {
                                self.stats.job_received(&job.job_id, Instant::now());
                                let _ = self.engine.send(SourceEvent::Job(job));
                            }
                            let _ = self.engine.send(SourceEvent::Subscribed { extranonce1 });
                        }
                        Event::Authorized { ok: true, .. } => {
                            working = true;
                            authorized_at = Some(Instant::now());
                            self.stats.pool_event(index, true, false);
                            self.stats.set_pool(&url.to_string(), "mining");
                        }
                        Event::Authorized { ok: false, error } => {
                            break 'conn Ended::AuthFailed(format!("authorization refused for {}: {error}", pool.user));
                        }
                        Event::VersionMask(m) => log::debug!(
                            "version rolling: {}",
                            m.map(|m| format!("mask {m:08x}")).unwrap_or_else(|| "off".into())
                        ),
                        Event::Job(mut job) => {
                            got_job = true;
                            if let Some(older) = newest.take() {
                                job.clean_jobs |= older.clean_jobs;
                            }
                            newest = Some(job);
                        }
                        Event::Difficulty(d) => log::info!("pool difficulty {d} (from the next job)"),
                        Event::Extranonce { .. } => log::info!("pool changed extranonce (from the next job)"),
                        Event::ShareResult { id, accepted, reason } => {
                            let (diff, scanner) = match in_flight.remove(&id) {
                                Some((d, s)) => (d, Some(s)),
                                None => (session.difficulty(), None),
                            };
                            if accepted {
                                self.stats.answered(scanner, diff, None);
                                log::info!("share accepted (difficulty {diff})");
                            } else {
                                let (r, msg) = reason.unwrap_or((kiln_stratum::RejectReason::Unknown, String::new()));
                                self.stats.answered(scanner, diff, Some(r.name()));
                                log::warn!("share rejected: {r:?} {msg}");
                            }
                        }
                        Event::Reconnect { host, port, wait_s } => {
                            // Credentials go only to hosts the user configured:
                            // this pool's, or another configured pool's.
                            let to = match &host {
                                None => Some(index),
                                Some(h) if h.eq_ignore_ascii_case(&url.host) => Some(index),
                                Some(h) => self.pools.iter().position(|p| p.url.host.eq_ignore_ascii_case(h)),
                            };
                            let Some(to) = to else {
                                log::warn!(
                                    "pool asked kiln to move to {}, which is not a configured pool; ignored",
                                    host.unwrap_or_default()
                                );
                                continue;
                            };
                            let wait = Duration::from_secs(wait_s).min(self.opts.max_redirect_wait);
                            break 'conn Ended::Redirect { pool: to, port, wait };
                        }
                        Event::Message(m) => log::info!("message from pool: {m}"),
                        Event::Protocol(e) => {
                            break 'conn if working {
                                Ended::Dropped(format!("protocol error: {e}"))
                            } else {
                                Ended::Failed(format!("protocol error: {e}"))
                            };
                        }
                    }
                }
                if let Some(job) = newest.take() {
                    log::debug!(
                        "job {} (clean {}), difficulty {}",
                        sanitize(&job.job_id),
                        job.clean_jobs,
                        session.difficulty()
                    );
                    self.stats.job_received(&job.job_id, Instant::now());
                    let _ = self.engine.send(SourceEvent::Job(job));
                }
                if eof {
                    break if working {
                        Ended::Dropped("connection closed by the pool".into())
                    } else {
                        Ended::Failed("connection closed during the handshake".into())
                    };
                }
            }
            if !got_job && authorized_at.is_some_and(|t| t.elapsed() > self.opts.handshake_timeout) {
                break Ended::Failed(format!("authorized, but no job within {:?}", self.opts.handshake_timeout));
            }
            if !working && started.elapsed() > self.opts.handshake_timeout {
                break Ended::Failed(format!(
                    "no answer to subscribe/authorize within {:?}",
                    self.opts.handshake_timeout
                ));
            }
            if last_rx.elapsed() > self.opts.stall_timeout {
                break Ended::Dropped(format!("pool silent for {:?}", self.opts.stall_timeout));
            }
            if working && return_after.is_some_and(|d| started.elapsed() > d) {
                break Ended::ReturnToPrimary;
            }
        };
        let _ = self.poll.registry().deregister(t.stream());
        // A session that gave no job, or lasted only moments, is a failure
        // (for failover and back-off), however well it began.
        let ended = match ended {
            Ended::Dropped(why) if !got_job => Ended::Failed(format!("{why}, before any job")),
            Ended::Dropped(why) if started.elapsed() < self.opts.min_session => {
                Ended::Failed(format!("{why}, {:.1} s after connecting", started.elapsed().as_secs_f64()))
            }
            e => e,
        };
        // Shares still unanswered: the pool may or may not have counted them.
        if !in_flight.is_empty() {
            log::warn!("{} submitted shares unanswered at disconnect", in_flight.len());
        }
        ended
    }
}
