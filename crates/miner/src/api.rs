//! The monitoring endpoint: read-only HTTP on a loopback address by default,
//! serving JSON (`/summary`, `/scanners`, `/pools`) and Prometheus text
//! (`/metrics`). It has no endpoint that changes anything.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

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
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((s, _)) => {
                    if let Err(e) = handle(s, &stats) {
                        log::debug!("API request failed: {e}");
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
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
        let n = s.read(&mut chunk)?;
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
            Ok(httparse::Status::Partial) if buf.len() < 8192 => continue,
            _ => return respond(&mut s, "400 Bad Request", "text/plain", "bad request\n"),
        }
    };
    if method != "GET" && method != "HEAD" {
        return respond(&mut s, "405 Method Not Allowed", "text/plain", "read-only: GET only\n");
    }
    let snap = stats.snapshot();
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    match path.split('?').next().unwrap_or("") {
        "/" | "/summary" => {
            let mut v = serde_json::to_value(&snap).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("scanners");
                o.remove("pools");
            }
            respond(&mut s, "200 OK", "application/json", &json(v))
        }
        "/scanners" => respond(
            &mut s,
            "200 OK",
            "application/json",
            &json(serde_json::to_value(&snap.scanners).unwrap_or_default()),
        ),
        "/pools" => {
            respond(&mut s, "200 OK", "application/json", &json(serde_json::to_value(&snap.pools).unwrap_or_default()))
        }
        "/metrics" => respond(&mut s, "200 OK", "text/plain; version=0.0.4", &prometheus(&snap)),
        _ => respond(&mut s, "404 Not Found", "text/plain", "not found: try /summary, /scanners, /pools, /metrics\n"),
    }
}

fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
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
