//! The monitoring endpoint: read-only HTTP on a loopback address by default,
//! serving the dashboard (`/`: one embedded page), JSON (`/summary`,
//! `/scanners`, `/pools`, `/events`, `/history`) and Prometheus text
//! (`/metrics`). It has no endpoint that changes anything (GET and HEAD
//! only).
//!
//! Clients are not trusted to be quick (see [`crate::serve`], shared with
//! the cgminer API): each connection gets its own short-lived thread, a whole
//! request must arrive within [`REQUEST_DEADLINE`], at most
//! [`MAX_CONNECTIONS`] are served at once (more are answered `503` at once),
//! and the accepting thread never reads from a client, so the API cannot
//! hold up the miner's exit.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::serve::{End, read_request};
pub use crate::serve::{MAX_CONNECTIONS, REQUEST_DEADLINE};
use crate::stats::Stats;

/// Longest request head read.
const MAX_REQUEST: usize = 8192;

/// The dashboard: one self-contained page (inline CSS and JS, no external
/// resources, so it works offline and needs no CDN) that polls the JSON
/// endpoints below.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// A page: its content type and body.
pub type Page = (&'static str, String);

/// Binds `addr` and serves until `stop`; returns the thread and the bound address.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(JoinHandle<()>, SocketAddr)> {
    serve_routes(
        "API",
        "api",
        addr,
        stop,
        "not found: try / (dashboard), /summary, /scanners, /pools, /events, /history, /metrics\n",
        move |path| miner_page(path, &stats),
    )
}

/// A read-only HTTP server (GET and HEAD) with the protections of
/// [`crate::serve`]: `route` maps a path (query removed) to a page, `None`
/// is a 404 answered with `not_found`. What `kiln node`'s API is built on too.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve_routes<R>(
    label: &'static str,
    thread: &'static str,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    not_found: &'static str,
    route: R,
) -> std::io::Result<(JoinHandle<()>, SocketAddr)>
where
    R: Fn(&str) -> Option<Page> + Send + Sync + 'static,
{
    crate::serve::serve(
        label,
        thread,
        addr,
        stop,
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        move |s| handle(s, &route, not_found),
    )
}

fn miner_page(path: &str, stats: &Stats) -> Option<Page> {
    let json = |v: serde_json::Value| ("application/json", serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    Some(match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", DASHBOARD.to_string()),
        "/summary" => {
            let mut v = serde_json::to_value(stats.snapshot()).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("scanners");
                o.remove("pools");
                o.remove("events");
            }
            json(v)
        }
        "/scanners" => json(serde_json::to_value(stats.snapshot().scanners).unwrap_or_default()),
        "/pools" => json(serde_json::to_value(stats.snapshot().pools).unwrap_or_default()),
        "/events" => json(serde_json::to_value(stats.snapshot().events).unwrap_or_default()),
        "/history" => json(serde_json::to_value(stats.history()).unwrap_or_default()),
        "/metrics" => ("text/plain; version=0.0.4", prometheus(&stats.snapshot())),
        _ => return None,
    })
}

fn handle(mut s: TcpStream, route: &dyn Fn(&str) -> Option<Page>, not_found: &str) -> std::io::Result<()> {
    let accepted = Instant::now();
    let parse = |buf: &[u8]| {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {
                Ok(Some((req.method.unwrap_or("").to_string(), req.path.unwrap_or("").to_string())))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(e),
        }
    };
    // Complete, or hopeless: either way, stop reading.
    let (buf, end) = read_request(&mut s, accepted, MAX_REQUEST, None, |b| !matches!(parse(b), Ok(None)))?;
    let (method, path) = match (end, parse(&buf)) {
        (End::TooSlow, _) => {
            return respond(&mut s, "408 Request Timeout", "text/plain", "request too slow\n", false);
        }
        (_, Ok(Some(req))) => req,
        (End::Closed, Ok(None)) => return Ok(()),
        _ => return respond(&mut s, "400 Bad Request", "text/plain", "bad request\n", true),
    };
    if method != "GET" && method != "HEAD" {
        return respond(&mut s, "405 Method Not Allowed", "text/plain", "read-only: GET only\n", true);
    }
    // HEAD: the same headers as GET, no body.
    let body = method == "GET";
    match route(path.split('?').next().unwrap_or("")) {
        Some((ctype, page)) => respond(&mut s, "200 OK", ctype, &page, body),
        None => respond(&mut s, "404 Not Found", "text/plain", not_found, body),
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
    metric(
        "blocks_accepted_total",
        "counter",
        "Blocks the node accepted (solo mining).",
        vec![(String::new(), s.blocks_accepted as f64)],
    );
    metric(
        "blocks_rejected_total",
        "counter",
        "Blocks the node refused (solo mining; reasons in /summary).",
        vec![(String::new(), s.blocks_rejected as f64)],
    );
    if let Some(ms) = s.job_switch_ms_median {
        metric(
            "job_switch_ms_median",
            "gauge",
            "Median ms from a job's arrival to every scanner hashing it (last 256 jobs).",
            vec![(String::new(), ms)],
        );
    }
    metric("pool_difficulty", "gauge", "Current share difficulty.", vec![(String::new(), s.difficulty)]);
    metric(
        "best_share_difficulty",
        "gauge",
        "Highest share difficulty found (DIFF1 / hash).",
        vec![(String::new(), s.best_share)],
    );
    metric("jobs_total", "counter", "Jobs received from the source.", vec![(String::new(), s.jobs as f64)]);
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
