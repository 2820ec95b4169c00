//! The monitoring endpoint: read-only HTTP on a loopback address by default,
//! serving JSON (`/summary`, `/scanners`, `/pools`) and Prometheus text
//! (`/metrics`). It has no endpoint that changes anything.
//!
//! Clients are not trusted to be quick: each connection gets its own short-
//! lived thread, a whole request must arrive within [`REQUEST_DEADLINE`] (a
//! client sending a byte a second is cut off), at most [`MAX_CONNECTIONS`]
//! are served at once (more are answered `503` at once), and the accepting
//! thread, the only one the miner waits for, never reads from a client, so
//! the API cannot hold up the miner's exit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once; more are turned away with `503`.
pub const MAX_CONNECTIONS: usize = 16;
/// A request must be complete this long after the connection was accepted.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Longest request head read.
const MAX_REQUEST: usize = 8192;

use crate::stats::Stats;

/// Binds `addr` and serves until `stop`; returns the thread and the bound address.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(JoinHandle<()>, SocketAddr)> {
    if !addr.ip().is_loopback() {
        log::warn!("API bound to non-loopback address {addr}: anyone who can reach it can read miner statistics");
    }
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let handle = std::thread::Builder::new().name("kiln-api".into()).spawn(move || {
        let active = Arc::new(AtomicUsize::new(0));
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                        // Best effort: a few bytes into an empty socket buffer do not block.
                        let _ = s.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        continue;
                    }
                    active.fetch_add(1, Ordering::AcqRel);
                    let (stats, active2) = (Arc::clone(&stats), Arc::clone(&active));
                    let spawned = std::thread::Builder::new().name("kiln-api-conn".into()).spawn(move || {
                        if let Err(e) = handle(s, &stats) {
                            log::debug!("API request failed: {e}");
                        }
                        active2.fetch_sub(1, Ordering::AcqRel);
                    });
                    if let Err(e) = spawned {
                        active.fetch_sub(1, Ordering::AcqRel);
                        log::warn!("API: cannot start a connection thread: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(25)),
                Err(e) => {
                    log::warn!("API accept: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    })?;
    Ok((handle, bound))
}

fn handle(mut s: TcpStream, stats: &Stats) -> std::io::Result<()> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    s.set_nonblocking(false)?;
    s.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
        // Each read waits at most until the deadline for the whole request.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return respond(&mut s, "408 Request Timeout", "text/plain", "request too slow\n", false);
        }
        s.set_read_timeout(Some(left))?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                break (req.method.unwrap_or("").to_string(), req.path.unwrap_or("").to_string());
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => continue,
            _ => return respond(&mut s, "400 Bad Request", "text/plain", "bad request\n", true),
        }
    };
    if method != "GET" && method != "HEAD" {
        return respond(&mut s, "405 Method Not Allowed", "text/plain", "read-only: GET only\n", true);
    }
    // HEAD: the same headers as GET, no body.
    let body = method == "GET";
    let snap = stats.snapshot();
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    match path.split('?').next().unwrap_or("") {
        "/" | "/summary" => {
            let mut v = serde_json::to_value(&snap).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("scanners");
                o.remove("pools");
            }
            respond(&mut s, "200 OK", "application/json", &json(v), body)
        }
        "/scanners" => respond(
            &mut s,
            "200 OK",
            "application/json",
            &json(serde_json::to_value(&snap.scanners).unwrap_or_default()),
            body,
        ),
        "/pools" => respond(
            &mut s,
            "200 OK",
            "application/json",
            &json(serde_json::to_value(&snap.pools).unwrap_or_default()),
            body,
        ),
        "/metrics" => respond(&mut s, "200 OK", "text/plain; version=0.0.4", &prometheus(&snap), body),
        _ => respond(
            &mut s,
            "404 Not Found",
            "text/plain",
            "not found: try /summary, /scanners, /pools, /metrics\n",
            body,
        ),
    }
}

/// Writes a whole response; `with_body` false (HEAD) sends the headers only,
/// Content-Length included, as HTTP requires.
fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str, with_body: bool) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if with_body {
        out.push_str(body);
    }
    s.write_all(out.as_bytes())
}

/// Prometheus text exposition of a snapshot.
pub fn prometheus(s: &crate::stats::Snapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP kiln_{name} {help}\n# TYPE kiln_{name} {kind}\n"));
        for (labels, v) in lines {
            out.push_str(&format!("kiln_{name}{labels} {v}\n"));
        }
    };
    metric("shares_accepted_total", "counter", "Shares the pool accepted.", vec![(String::new(), s.accepted as f64)]);
    metric(
        "shares_rejected_total",
        "counter",
        "Shares the pool rejected, by reason.",
        s.rejected_by_reason.iter().map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n as f64)).collect(),
    );
    metric(
        "shares_stale_total",
        "counter",
        "Shares dropped as stale before submission.",
        vec![(String::new(), s.stale as f64)],
    );
    metric(
        "hardware_errors_total",
        "counter",
        "Kernel candidates that failed the CPU re-check.",
        vec![(String::new(), s.hw_errors as f64)],
    );
    metric("shares_lost_total", "counter", "Shares that could not be submitted.", vec![(String::new(), s.lost as f64)]);
    metric(
        "blocks_found_total",
        "counter",
        "Shares that met the network target.",
        vec![(String::new(), s.blocks as f64)],
    );
    metric("pool_difficulty", "gauge", "Current share difficulty.", vec![(String::new(), s.difficulty)]);
    metric(
        "hashrate_hashes_per_second",
        "gauge",
        "Hash rate per scanner over the last seconds.",
        s.scanners.iter().map(|sc| (format!("{{scanner=\"{}\"}}", sc.name), sc.hashrate)).collect(),
    );
    metric(
        "hashes_total",
        "counter",
        "Nonces hashed per scanner.",
        s.scanners.iter().map(|sc| (format!("{{scanner=\"{}\"}}", sc.name), sc.hashes as f64)).collect(),
    );
    out
}
