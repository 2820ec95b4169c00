//! The solo job source: a thin mio loop around Bitcoin Core's JSON-RPC.
//!
//! It asks the node for block templates (`getblocktemplate` with the segwit
//! rule), keeps a long poll open so a new tip reaches the scanners at once,
//! refreshes the template every [`SoloOptions::refresh`] (fees, `curtime`,
//! and on test networks the min-difficulty `bits`), turns each template
//! into an engine job ([`kiln_gbt::Template::job`]), and turns each solution
//! back into a whole block that is checked again ([`kiln_gbt::Template::check`])
//! before `submitblock`. Every call is its own HTTP connection, so a long
//! poll never holds up a submission; all of them share one poll.
//!
//! Everything that decides lives in `kiln-gbt`; this loop moves bytes,
//! watches deadlines and backs off while the node is away.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::consensus::serialize;
use bitcoin::{Network, ScriptBuf};
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{Value, json};

use kiln_gbt::http::{ResponseReader, encode_post};
use kiln_gbt::rpc::{decode, request_body};
use kiln_gbt::template::EXTRANONCE1_SIZE;
use kiln_gbt::{Auth, Dialect, Endpoint, RpcError, Template};

use super::{seed, xorshift};
use crate::engine::{Solution, SourceEvent};
use crate::stats::{PoolStatus, Stats};

const WAKE: Token = Token(0);
/// Largest answer read from the node (a full mainnet template is ~10 MB).
const MAX_RESPONSE: usize = 64 << 20;
/// Templates whose blocks are still accepted from the engine (its
/// `RECENT_JOBS`).
const KEEP_TEMPLATES: usize = 8;
/// Blocks kept for a node that is away, sent again when it is back (if
/// their parent is still the tip).
const MAX_RESUBMIT: usize = 4;
/// How long a stopping source waits for the node's answers to blocks it sent.
const DRAIN: Duration = Duration::from_secs(3);

/// What `kiln mine --solo` was asked to do.
#[derive(Clone, Debug)]
pub struct SoloConfig {
    pub endpoint: Endpoint,
    pub auth: Auth,
    /// The payout address as given; checked against the node's chain.
    pub address: String,
    /// Written into each coinbase scriptSig after the extranonce (≤ 40 bytes).
    pub tag: Vec<u8>,
    pub dialect: Dialect,
    /// BIP23: propose each new template's block (unsolved) to the node and
    /// mine it only if the node has no objection.
    pub proposal: bool,
    pub opts: SoloOptions,
}

/// Timing of the solo source.
#[derive(Clone, Debug)]
pub struct SoloOptions {
    pub connect_timeout: Duration,
    /// An ordinary call must be answered within this.
    pub call_timeout: Duration,
    /// A long poll is re-issued after this long without an answer.
    pub longpoll_timeout: Duration,
    /// A fresh template this often, long poll or not.
    pub refresh: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for SoloOptions {
    fn default() -> Self {
        SoloOptions {
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(60),
            longpoll_timeout: Duration::from_secs(600),
            refresh: Duration::from_secs(30),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Why solo mining cannot go on (or start): these need the user.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SoloError {
    #[error("{endpoint}: {source}")]
    Rpc { endpoint: String, source: RpcError },
    #[error(transparent)]
    Address(#[from] kiln_gbt::chain::AddressError),
    #[error("the node reports chain '{0}', which kiln does not know")]
    UnknownChain(String),
}

/// One blocking call, for the check before mining starts.
///
/// # Errors
/// Any [`RpcError`].
pub fn call_blocking(
    endpoint: &Endpoint,
    auth: &Auth,
    dialect: Dialect,
    method: &str,
    params: &Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    let addr = resolve(endpoint)?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| RpcError::Io(e.to_string()))?;
    s.set_read_timeout(Some(timeout)).and_then(|()| s.set_write_timeout(Some(timeout))).map_err(io_err)?;
    let body = request_body(dialect, 1, method, params);
    s.write_all(&encode_post(&endpoint.host_header(), &endpoint.path, &auth.header()?, &body)).map_err(io_err)?;
    let deadline = Instant::now() + timeout;
    let mut reader = ResponseReader::new(MAX_RESPONSE);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if Instant::now() > deadline {
            return Err(RpcError::Timeout(timeout.as_secs()));
        }
        let resp = match s.read(&mut buf) {
            Ok(0) => reader.finish(),
            Ok(n) => match reader.feed(&buf[..n]) {
                Ok(Some(r)) => Ok(r),
                Ok(None) => continue,
                Err(e) => Err(e),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(RpcError::Timeout(timeout.as_secs()));
            }
            Err(e) => return Err(io_err(e)),
        };
        return decode(&resp.map_err(|e| RpcError::BadResponse(e.to_string()))?);
    }
}

fn io_err(e: io::Error) -> RpcError {
    RpcError::Io(e.to_string())
}

fn resolve(endpoint: &Endpoint) -> Result<SocketAddr, RpcError> {
    (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| RpcError::Io(format!("resolving {}: {e}", endpoint.host)))?
        .next()
        .ok_or_else(|| RpcError::Io(format!("{} has no address", endpoint.host)))
}

/// Asks the node which chain it runs and checks the payout address against
/// it. Returns the network and the payout script.
///
/// # Errors
/// See [`SoloError`].
pub fn probe(cfg: &SoloConfig, timeout: Duration) -> Result<(Network, ScriptBuf), SoloError> {
    let info = call_blocking(&cfg.endpoint, &cfg.auth, cfg.dialect, "getblockchaininfo", &json!([]), timeout)
        .map_err(|source| SoloError::Rpc { endpoint: cfg.endpoint.to_string(), source })?;
    chain_and_payout(&info, &cfg.address)
}

fn chain_and_payout(info: &Value, address: &str) -> Result<(Network, ScriptBuf), SoloError> {
    let chain = info.get("chain").and_then(Value::as_str).unwrap_or("");
    let network = kiln_gbt::chain::network_of_chain(chain).ok_or_else(|| SoloError::UnknownChain(chain.into()))?;
    Ok((network, kiln_gbt::chain::payout_script(address, network)?))
}

/// What a call in flight is for.
#[derive(Debug)]
enum Purpose {
    ChainInfo,
    Template,
    LongPoll,
    Proposal,
    Submit { block_hash: String, height: u32, prev: [u8; 32], found_at: Instant, hex: Arc<String> },
}

struct Call {
    purpose: Purpose,
    stream: TcpStream,
    out: Vec<u8>,
    written: usize,
    reader: ResponseReader,
    deadline: Instant,
    /// The whole request has been written (a submission's latency ends here).
    sent: bool,
}

/// A template the engine may still be mining, by job id.
struct Mined {
    job_id: String,
    template: Arc<Template>,
}

/// The solo source's long-lived state.
pub struct SoloSource {
    cfg: SoloConfig,
    engine: Sender<SourceEvent>,
    solutions: Receiver<Solution>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    poll: Poll,
    waker: Arc<Waker>,
    fatal: Arc<Mutex<Option<String>>>,
    calls: HashMap<Token, Call>,
    next_token: usize,
    next_id: u64,
    network: Option<Network>,
    payout: Option<ScriptBuf>,
    extranonce1: [u8; EXTRANONCE1_SIZE],
    recent: VecDeque<Mined>,
    /// The template being mined.
    current: Option<Arc<Template>>,
    /// A new template waiting for the node's verdict on its proposal.
    proposed: Option<(Arc<Template>, Instant)>,
    template_seq: u64,
    /// A parent kiln has sent a block on (in flight or accepted): a second
    /// block on it could only lose to the first.
    solved_prev: Option<[u8; 32]>,
    next_refresh: Instant,
    /// While the node is away: when to try again, and how often it failed.
    retry_at: Option<Instant>,
    failures: u32,
    /// The node answered at least once with these credentials.
    reached: bool,
    resubmit: VecDeque<Purpose>,
    rng: u64,
}

impl SoloSource {
    /// The source and its waker (hand the waker to the engine).
    ///
    /// # Errors
    /// When the OS refuses a poll instance.
    pub fn new(
        cfg: SoloConfig,
        engine: Sender<SourceEvent>,
        solutions: Receiver<Solution>,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        stats.set_pools(vec![PoolStatus { url: cfg.endpoint.to_string(), ..PoolStatus::default() }]);
        stats.set_pool(&cfg.endpoint.to_string(), "connecting");
        let mut rng = seed();
        let extranonce1 = (xorshift(&mut rng) as u32).to_le_bytes();
        Ok(SoloSource {
            cfg,
            engine,
            solutions,
            stats,
            stop,
            poll,
            waker,
            fatal: Arc::new(Mutex::new(None)),
            calls: HashMap::new(),
            next_token: 1,
            next_id: 1,
            network: None,
            payout: None,
            extranonce1,
            recent: VecDeque::new(),
            current: None,
            proposed: None,
            template_seq: 0,
            solved_prev: None,
            next_refresh: Instant::now(),
            retry_at: None,
            failures: 0,
            reached: false,
            resubmit: VecDeque::new(),
            rng,
        })
    }

    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Set when the source stopped for a reason the user must fix.
    pub fn fatal_slot(&self) -> Arc<Mutex<Option<String>>> {
        Arc::clone(&self.fatal)
    }

    /// Runs until `stop` is set or a fatal error.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        self.start_call(Purpose::ChainInfo, "getblockchaininfo", json!([]));
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut wake_at = now + Duration::from_millis(250);
            for c in self.calls.values() {
                wake_at = wake_at.min(c.deadline);
            }
            if let Some(t) = self.retry_at {
                wake_at = wake_at.min(t);
            }
            if let Err(e) = self.poll.poll(&mut events, Some(wake_at.saturating_duration_since(now)))
                && e.kind() != io::ErrorKind::Interrupted
            {
                self.fail_fatal(format!("poll failed: {e}"));
                break;
            }
            let ready: Vec<Token> = events.iter().map(|e| e.token()).filter(|t| *t != WAKE).collect();
            for token in ready {
                self.drive(token);
            }
            self.take_solutions();
            self.on_clock();
            if self.fatal.lock().map(|f| f.is_some()).unwrap_or(true) {
                break;
            }
        }
        self.finish_submissions(&mut events);
        for (_, mut c) in self.calls.drain() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        let _ = self.engine.send(SourceEvent::Shutdown);
    }

    /// On the way out: blocks already sent get their answer read (for at
    /// most [`DRAIN`]), so the summary counts what the node accepted.
    fn finish_submissions(&mut self, events: &mut Events) {
        let until = Instant::now() + DRAIN;
        self.calls.retain(|_, c| matches!(c.purpose, Purpose::Submit { .. }));
        while !self.calls.is_empty() && Instant::now() < until {
            if self.poll.poll(events, Some(until.saturating_duration_since(Instant::now()))).is_err() {
                break;
            }
            let ready: Vec<Token> = events.iter().map(|e| e.token()).filter(|t| *t != WAKE).collect();
            for token in ready {
                self.drive(token);
            }
            // A failed submission is not retried now.
            self.resubmit.clear();
            self.calls.retain(|_, c| matches!(c.purpose, Purpose::Submit { .. }));
        }
    }

    fn fail_fatal(&mut self, why: String) {
        log::error!("solo mining stopped: {why}");
        self.stats.set_pool(&self.cfg.endpoint.to_string(), "stopped");
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(why);
        }
    }

    fn in_flight(&self, f: impl Fn(&Purpose) -> bool) -> bool {
        self.calls.values().any(|c| f(&c.purpose))
    }

    /// Deadlines, the refresh timer and the retry timer.
    fn on_clock(&mut self) {
        let now = Instant::now();
        let expired: Vec<Token> = self.calls.iter().filter(|(_, c)| c.deadline <= now).map(|(t, _)| *t).collect();
        for t in expired {
            if let Some(mut c) = self.calls.remove(&t) {
                let _ = self.poll.registry().deregister(&mut c.stream);
                if matches!(c.purpose, Purpose::LongPoll) {
                    // Core answers a long poll when something changes; after
                    // this long, ask again rather than trust a silent socket.
                    log::debug!("long poll unanswered for {:?}; asking again", self.cfg.opts.longpoll_timeout);
                    self.long_poll();
                } else {
                    let secs = self.cfg.opts.call_timeout.as_secs();
                    self.on_error(c.purpose, RpcError::Timeout(secs));
                }
            }
        }
        if let Some(t) = self.retry_at
            && now >= t
        {
            self.retry_at = None;
            if self.network.is_none() || !self.reached {
                self.start_call(Purpose::ChainInfo, "getblockchaininfo", json!([]));
            } else {
                self.request_template();
            }
        }
        if self.retry_at.is_none() && self.network.is_some() && now >= self.next_refresh {
            self.request_template();
        }
    }

    fn request_template(&mut self) {
        self.next_refresh = Instant::now() + self.cfg.opts.refresh;
        if !self.in_flight(|p| matches!(p, Purpose::Template)) {
            self.start_call(Purpose::Template, "getblocktemplate", json!([{"rules": ["segwit"]}]));
        }
    }

    fn long_poll(&mut self) {
        let Some(id) = self.current.as_ref().and_then(|t| t.longpollid.clone()) else { return };
        if !self.in_flight(|p| matches!(p, Purpose::LongPoll)) {
            self.start_call(Purpose::LongPoll, "getblocktemplate", json!([{"rules": ["segwit"], "longpollid": id}]));
        }
    }

    /// Opens a connection for one call. Failing to even start one counts as
    /// the node being away.
    fn start_call(&mut self, purpose: Purpose, method: &str, params: Value) {
        let auth = match self.cfg.auth.header() {
            Ok(a) => a,
            Err(e) => return self.on_error(purpose, e),
        };
        let addr = match resolve(&self.cfg.endpoint) {
            Ok(a) => a,
            Err(e) => return self.on_error(purpose, e),
        };
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => return self.on_error(purpose, io_err(e)),
        };
        let _ = stream.set_nodelay(true);
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            return self.on_error(purpose, io_err(e));
        }
        let id = self.next_id;
        self.next_id += 1;
        let body = request_body(self.cfg.dialect, id, method, &params);
        let out = encode_post(&self.cfg.endpoint.host_header(), &self.cfg.endpoint.path, &auth, &body);
        let timeout = match purpose {
            Purpose::LongPoll => self.cfg.opts.longpoll_timeout,
            _ => self.cfg.opts.call_timeout,
        };
        let call = Call {
            purpose,
            stream,
            out,
            written: 0,
            reader: ResponseReader::new(MAX_RESPONSE),
            deadline: Instant::now() + timeout,
            sent: false,
        };
        self.calls.insert(token, call);
        // The socket may already be writable; mio reports edges only.
        self.drive(token);
    }

    /// Moves bytes for one call; finishes it when its answer is complete.
    fn drive(&mut self, token: Token) {
        let Some(c) = self.calls.get_mut(&token) else { return };
        let mut result: Option<Result<Value, RpcError>> = None;
        while c.written < c.out.len() {
            match c.stream.write(&c.out[c.written..]) {
                Ok(0) => {
                    result = Some(Err(RpcError::Io("connection closed while sending".into())));
                    break;
                }
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break, // connect in progress
                Err(e) => {
                    result = Some(Err(io_err(e)));
                    break;
                }
            }
        }
        if !c.sent && c.written == c.out.len() {
            c.sent = true;
            if let Purpose::Submit { found_at, .. } = &c.purpose {
                self.stats.submitted(*found_at);
            }
        }
        if result.is_none() {
            let mut buf = [0u8; 64 * 1024];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        result =
                            Some(c.reader.finish().map_err(|e| RpcError::Io(e.to_string())).and_then(|r| decode(&r)));
                        break;
                    }
                    Ok(n) => match c.reader.feed(&buf[..n]) {
                        Ok(Some(r)) => {
                            result = Some(decode(&r));
                            break;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            result = Some(Err(RpcError::BadResponse(e.to_string())));
                            break;
                        }
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                    Err(e) => {
                        result = Some(Err(io_err(e)));
                        break;
                    }
                }
            }
        }
        let Some(result) = result else { return };
        let Some(mut c) = self.calls.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut c.stream);
        match result {
            Ok(v) => self.on_answer(c.purpose, v),
            Err(e) => self.on_error(c.purpose, e),
        }
    }

    fn on_answer(&mut self, purpose: Purpose, v: Value) {
        let received = Instant::now();
        if !self.reached || self.retry_at.is_some() || self.failures > 0 {
            self.stats.pool_event(0, true, false);
            if self.reached {
                log::info!("{}: the node answers again", self.cfg.endpoint);
                self.stats.set_pool(&self.cfg.endpoint.to_string(), "connected");
            }
        }
        self.reached = true;
        self.failures = 0;
        match purpose {
            Purpose::ChainInfo => match chain_and_payout(&v, &self.cfg.address) {
                Ok((network, payout)) => {
                    if v.get("initialblockdownload").and_then(Value::as_bool) == Some(true) {
                        log::warn!("the node is in initial block download; templates may be refused until it is done");
                    }
                    if self.network.is_none() {
                        log::info!("solo mining on {} ({network}) to {}", self.cfg.endpoint, self.cfg.address);
                    }
                    self.network = Some(network);
                    self.payout = Some(payout);
                    self.stats.set_pool(&self.cfg.endpoint.to_string(), "connected");
                    self.request_template();
                }
                Err(e) => self.fail_fatal(e.to_string()),
            },
            Purpose::Template | Purpose::LongPoll => {
                let was_longpoll = matches!(purpose, Purpose::LongPoll);
                match Template::from_json(&v) {
                    Ok(t) => self.on_template(t, received),
                    Err(e) => {
                        log::error!("refusing the node's template: {e}");
                        self.retry_later();
                    }
                }
                if was_longpoll || !self.in_flight(|p| matches!(p, Purpose::LongPoll)) {
                    self.long_poll();
                }
            }
            Purpose::Proposal => {
                let Some((t, at)) = self.proposed.take() else { return };
                if v.is_null() {
                    log::debug!("the node accepts the proposed block for height {}", t.height);
                    self.mine(t, at);
                } else {
                    log::error!(
                        "the node rejects kiln's block for height {} (proposal): {}; not mining it",
                        t.height,
                        v.as_str().unwrap_or("?")
                    );
                    self.retry_later();
                }
            }
            Purpose::Submit { block_hash, height, prev, .. } => match v.as_str() {
                None if v.is_null() => {
                    log::info!("block {block_hash} at height {height} accepted by the node");
                    self.stats.block_accepted();
                    // The tip moved: new work at once, not when the long poll says so.
                    self.request_template();
                }
                Some(reason) => {
                    let reason = kiln_stratum::sanitize(reason);
                    log::warn!("block {block_hash} at height {height} rejected by the node: {reason}");
                    self.stats.block_rejected(&reason);
                    if self.solved_prev == Some(prev) {
                        self.solved_prev = None; // the parent is open again
                    }
                }
                None => log::warn!("block {block_hash}: unexpected submitblock answer {v}"),
            },
        }
    }

    fn on_error(&mut self, purpose: Purpose, e: RpcError) {
        let fatal = match &e {
            // A restarted node writes a new cookie; one that answered before
            // with a cookie may simply have restarted.
            RpcError::Unauthorized => !(self.reached && matches!(self.cfg.auth, Auth::Cookie(_))),
            RpcError::Forbidden => true,
            _ => false,
        };
        if fatal {
            return self.fail_fatal(format!("{}: {e}", self.cfg.endpoint));
        }
        match purpose {
            Purpose::Submit { block_hash, height, prev, found_at, hex } => {
                log::warn!("block {block_hash} at height {height} not delivered: {e}");
                if e.is_transient() || matches!(e, RpcError::Unauthorized) {
                    if self.resubmit.len() >= MAX_RESUBMIT {
                        self.resubmit.pop_front();
                        self.stats.lost(1);
                    }
                    self.resubmit.push_back(Purpose::Submit { block_hash, height, prev, found_at, hex });
                } else {
                    self.stats.block_rejected("rpc-error");
                }
                self.node_away(&e);
            }
            Purpose::Proposal => {
                self.proposed = None;
                log::warn!("proposal failed: {e}");
                self.node_away(&e);
            }
            Purpose::LongPoll if !e.is_transient() => {
                log::warn!("long poll failed: {e}");
                self.retry_later();
            }
            _ => {
                if e.is_not_ready() {
                    log::warn!("the node is not ready for mining: {e}; waiting");
                }
                self.node_away(&e);
            }
        }
    }

    /// The node is unreachable or not ready: keep the scanners on what they
    /// have, tell the stats, and try again after a back-off.
    fn node_away(&mut self, e: &RpcError) {
        if self.failures == 0 {
            log::warn!("{}: {e}; retrying", self.cfg.endpoint);
            let _ = self.engine.send(SourceEvent::Disconnected);
        } else {
            log::debug!("{}: {e}", self.cfg.endpoint);
        }
        self.stats.pool_event(0, false, self.failures == 0);
        self.stats.set_pool(&self.cfg.endpoint.to_string(), "node unreachable");
        self.retry_later();
    }

    fn retry_later(&mut self) {
        self.failures += 1;
        let base = self.cfg.opts.backoff_base.as_secs_f64() * 2f64.powi(self.failures.min(16) as i32 - 1);
        let capped = base.min(self.cfg.opts.backoff_max.as_secs_f64());
        let jitter = 0.75 + (xorshift(&mut self.rng) % 500) as f64 / 1000.0;
        let wait = Duration::from_secs_f64(capped * jitter);
        let at = Instant::now() + wait;
        self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
    }

    /// A template arrived: mine it if it differs from the current one.
    fn on_template(&mut self, t: Template, received: Instant) {
        self.retry_at = None;
        let same = self.current.as_ref().is_some_and(|c| {
            c.prev_hash == t.prev_hash
                && c.txids == t.txids
                && c.coinbase_value == t.coinbase_value
                && c.bits == t.bits
                && c.curtime == t.curtime
        });
        if same {
            return;
        }
        let t = Arc::new(t);
        self.resend_kept(&t);
        if self.cfg.proposal {
            let Some(block) = self.unsolved_block(&t) else { return };
            self.proposed = Some((Arc::clone(&t), received));
            self.start_call(Purpose::Proposal, "getblocktemplate", Template::proposal_params(&block));
        } else {
            self.mine(t, received);
        }
    }

    /// The template's block with extranonce2 zero and nonce zero.
    fn unsolved_block(&mut self, t: &Template) -> Option<bitcoin::Block> {
        let payout = self.payout.clone()?;
        let job = t.job("proposal".into(), &payout, &self.cfg.tag, self.extranonce1, false).ok()?;
        let en2 = vec![0u8; job.extranonce2_size];
        let header = job.header(&en2, job.ntime, job.version);
        t.assemble(&job, &en2, &header).ok()
    }

    /// Hands the template to the engine as a job.
    fn mine(&mut self, t: Arc<Template>, received: Instant) {
        let Some(payout) = self.payout.clone() else { return };
        self.template_seq += 1;
        let job_id = format!("{:x}", self.template_seq);
        let new_tip = self.current.as_ref().is_none_or(|c| c.prev_hash != t.prev_hash);
        let job = match t.job(job_id.clone(), &payout, &self.cfg.tag, self.extranonce1, new_tip) {
            Ok(j) => j,
            Err(e) => {
                log::error!("cannot build a coinbase for this template: {e}");
                return self.retry_later();
            }
        };
        if new_tip {
            log::info!(
                "new template: height {}, {} transactions, {} sat fees, prev {}",
                t.height,
                t.transactions.len(),
                t.fees,
                t.prev_hash_hex()
            );
        } else {
            log::debug!("template refresh: height {}, {} transactions", t.height, t.transactions.len());
        }
        self.stats.set_difficulty(t.target.difficulty().0);
        self.stats.job_received(&job_id, received);
        self.recent.push_back(Mined { job_id, template: Arc::clone(&t) });
        while self.recent.len() > KEEP_TEMPLATES {
            self.recent.pop_front();
        }
        self.current = Some(t);
        let _ = self.engine.send(SourceEvent::Job(job));
    }

    /// Blocks kept while the node was away go out now if they still extend the tip.
    fn resend_kept(&mut self, t: &Template) {
        for p in std::mem::take(&mut self.resubmit) {
            if let Purpose::Submit { prev, ref hex, .. } = p {
                if prev == t.prev_hash {
                    let params = json!([hex.as_str()]);
                    self.start_call(p, "submitblock", params);
                } else {
                    self.stats.stale();
                }
            }
        }
    }

    /// Solutions from the engine: each a block, checked, then submitted.
    fn take_solutions(&mut self) {
        while let Ok(s) = self.solutions.try_recv() {
            if !s.is_block {
                continue; // cannot happen: a solo job's share target is the block target
            }
            let Some(m) = self.recent.iter().find(|m| m.job_id == s.job.job_id) else {
                self.stats.stale();
                continue;
            };
            let t = Arc::clone(&m.template);
            let tip = self.current.as_ref().map(|c| c.prev_hash);
            if tip != Some(t.prev_hash) || self.solved_prev == Some(t.prev_hash) {
                // The node has moved on (or kiln already extended this
                // parent): a block here could only be an orphan.
                self.stats.stale();
                log::debug!("block {} on an old tip; not submitted", s.hash);
                continue;
            }
            let Some(network) = self.network else { continue };
            let block = match t.assemble(&s.job, &s.extranonce2, &s.header) {
                Ok(b) => b,
                Err(e) => {
                    self.stats.hw_error();
                    log::error!("cannot assemble the block for {}: {e}", s.hash);
                    continue;
                }
            };
            if let Err(e) = t.check(&block, network.into()) {
                self.stats.hw_error();
                log::error!("block {} fails kiln's own check ({e}); not submitted", s.hash);
                continue;
            }
            let hex = Arc::new(hex::encode(serialize(&block)));
            let params = json!([hex.as_str()]);
            let purpose = Purpose::Submit {
                block_hash: s.hash.to_string(),
                height: t.height,
                prev: t.prev_hash,
                found_at: s.found_at,
                hex,
            };
            self.solved_prev = Some(t.prev_hash);
            self.start_call(purpose, "submitblock", params);
        }
    }
}
