//! What the two read-only monitoring servers (HTTP in [`crate::api`],
//! cgminer's protocol in [`crate::cgminer`]) share, written once so that both
//! keep the same protections:
//!
//! - a warning when bound off loopback (anyone who can reach it can read);
//! - an accepting thread that never reads from a client, so no client can
//!   hold up the miner's exit (it is the only thread the miner joins);
//! - at most [`MAX_CONNECTIONS`] served at once, each on its own short-lived
//!   thread; more are answered at once (or closed) without being read;
//! - a whole request must arrive within [`REQUEST_DEADLINE`] of the accept
//!   (a client sending a byte a second is cut off), and it is size-capped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once, per server; more are turned away.
pub const MAX_CONNECTIONS: usize = 16;
/// A request must be complete this long after the connection was accepted.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Binds `addr` and serves each connection with `handle` on its own thread
/// until `stop`; returns the accepting thread and the bound address.
/// `label` names the server in logs, `thread` its threads; `busy` is written
/// (best effort) to a connection turned away for the cap, then it is closed.
///
/// # Errors
/// When the address cannot be bound.
pub(crate) fn serve<H>(
    label: &'static str,
    thread: &'static str,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    busy: &'static [u8],
    handle: H,
) -> std::io::Result<(JoinHandle<()>, SocketAddr)>
where
    H: Fn(TcpStream) -> std::io::Result<()> + Send + Sync + 'static,
{
    if !addr.ip().is_loopback() {
        log::warn!("{label} bound to non-loopback address {addr}: anyone who can reach it can read miner statistics");
    }
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let handle = Arc::new(handle);
    let accepting = std::thread::Builder::new().name(format!("kiln-{thread}")).spawn(move || {
        let active = Arc::new(AtomicUsize::new(0));
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                        // Best effort: a few bytes into an empty socket buffer do not block.
                        let _ = s.write_all(busy);
                        continue;
                    }
                    active.fetch_add(1, Ordering::AcqRel);
                    let (handle, active2) = (Arc::clone(&handle), Arc::clone(&active));
                    let spawned = std::thread::Builder::new().name(format!("kiln-{thread}-conn")).spawn(move || {
                        if let Err(e) = handle(s) {
                            log::debug!("{label} request failed: {e}");
                        }
                        active2.fetch_sub(1, Ordering::AcqRel);
                    });
                    if let Err(e) = spawned {
                        active.fetch_sub(1, Ordering::AcqRel);
                        log::warn!("{label}: cannot start a connection thread: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(25)),
                Err(e) => {
                    log::warn!("{label} accept: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    })?;
    Ok((accepting, bound))
}

/// How reading a request ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// `complete` said so.
    Complete,
    /// Some bytes came, then nothing for the quiet time: a client that sent
    /// its whole request and waits (cgminer reads one packet the same way).
    Quiet,
    /// The client closed its side (it may still read the reply).
    Closed,
    /// More than the cap arrived before the request was complete.
    TooLarge,
    /// The deadline passed first.
    TooSlow,
}

/// Reads one request from `s` until `complete(bytes so far)`, the client's
/// end of stream, `max` bytes, [`REQUEST_DEADLINE`] after `accepted`, or
/// (with `quiet`) that long without a byte after the first one. Sets the
/// socket blocking with a write timeout of [`REQUEST_DEADLINE`] for the
/// reply.
///
/// # Errors
/// Socket errors other than timeouts.
pub(crate) fn read_request(
    s: &mut TcpStream,
    accepted: Instant,
    max: usize,
    quiet: Option<Duration>,
    mut complete: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<(Vec<u8>, End)> {
    let deadline = accepted + REQUEST_DEADLINE;
    s.set_nonblocking(false)?;
    s.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        // Each read waits at most until the deadline for the whole request,
        // or the quiet time once something came.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok((buf, End::TooSlow));
        }
        let wait = match quiet {
            Some(q) if !buf.is_empty() => left.min(q),
            _ => left,
        };
        s.set_read_timeout(Some(wait))?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if quiet.is_some_and(|q| wait == q) && !buf.is_empty() {
                    return Ok((buf, End::Quiet));
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((buf, End::Closed));
        }
        buf.extend_from_slice(&chunk[..n]);
        if complete(&buf) {
            return Ok((buf, End::Complete));
        }
        if buf.len() >= max {
            return Ok((buf, End::TooLarge));
        }
    }
}

/// Ends a connection after the reply: closes the writing side, then reads
/// (and drops) what the client still sends, briefly and boundedly, so the
/// close is not a reset that could destroy the reply before the client read
/// it (a request cut off for size leaves unread bytes behind).
pub(crate) fn linger_close(s: &mut TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let until = Instant::now() + Duration::from_millis(200);
    let mut chunk = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 1 << 20 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}
