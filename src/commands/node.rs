//! `kiln node`: a peer of the Bitcoin network (headers, then blocks checked
//! and stored in `--datadir`, served to inbound peers, new blocks relayed),
//! with a status line every few seconds and the read-only API, until
//! `--duration` or SIGINT/SIGTERM, then a summary naming the best header,
//! the block tip and the tip hash (on stdout, for scripts).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_miner::api::{Page, serve_routes};
use kiln_p2p::HeaderChain;
use kiln_p2p::node::{NodeDriver, NodeOptions};
use kiln_p2p::wire::default_port;
use kiln_store::BlockStore;
use serde_json::json;

use crate::AnyResult;
use crate::cli::NodeArgs;
use crate::options::parse_listen;

/// What the API serves, refreshed by the node's loop (the API threads never
/// touch the node itself).
#[derive(Default)]
struct Snapshot {
    peers: String,
    chain: String,
    metrics: String,
}

fn usage(msg: impl std::fmt::Display) -> AnyResult<ExitCode> {
    eprintln!("kiln: {msg}");
    Ok(ExitCode::from(2))
}

/// `~/.kiln/CHAIN`: one directory per network, named as Core names them
/// (`main` for mainnet, which Core keeps at the top).
fn default_datadir(chain: bitcoin::Network) -> Option<PathBuf> {
    let name = kiln_gbt::chain::chain_dir(chain).unwrap_or("main");
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kiln").join(name))
}

pub fn run(a: NodeArgs) -> AnyResult<ExitCode> {
    let mut peers = a.connect.clone();
    peers.extend(a.addnode.iter().copied());
    // `--listen` with no value: 127.0.0.1 and the chain's usual port.
    let listen = match a.listen.as_deref() {
        Some("") => Some(std::net::SocketAddr::from(([127, 0, 0, 1], default_port(a.chain)))),
        Some(s) => match parse_listen("--listen", s) {
            Ok(addr) => Some(addr),
            Err(e) => return usage(e),
        },
        None => None,
    };
    if let (Some(addr), true) = (listen, a.headers_only) {
        return usage(format!("--listen {addr} needs blocks to serve: drop --headers-only"));
    }
    if peers.is_empty() && listen.is_none() {
        return usage(
            "no --connect/--addnode peer and no --listen: nothing to talk to (there is no peer discovery yet)",
        );
    }
    let api = match a.api.as_deref().map(|s| parse_listen("--api", s)).transpose() {
        Ok(api) => api,
        Err(e) => return usage(e),
    };
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
    {
        log::warn!("listening on {addr}: peers beyond this machine can connect");
    }
    let opts =
        NodeOptions { listen, max_inbound: a.maxconnections.saturating_sub(peers.len()), ..NodeOptions::default() };
    let chain = HeaderChain::new(a.chain);
    let mut node = if a.headers_only {
        NodeDriver::new(&peers, chain, opts)?
    } else {
        let Some(dir) = a.datadir.clone().or_else(|| default_datadir(a.chain)) else {
            return usage("no --datadir and no HOME to put ~/.kiln in");
        };
        let store = match BlockStore::open(&dir) {
            Ok(s) => s,
            Err(e) => return usage(format!("opening the block store in {}: {e}", dir.display())),
        };
        log::info!("block store {}", dir.display());
        NodeDriver::with_store(&peers, chain, store, opts)?
    };
    let (tip, height) = node.block_tip();
    log::info!(
        "headers {} (best {}), blocks to height {height} ({tip}){}",
        node.chain().len(),
        node.chain().best_height(),
        node.listen_addr().map(|a| format!(", listening on {a}")).unwrap_or_default()
    );
    // A signal only sets a flag; the driver's loop wakes at least every
    // 200 ms and sees it.
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&signalled))?;
    }
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let api_stop = Arc::new(AtomicBool::new(false));
    let api_thread = match api {
        Some(addr) => {
            let snap = Arc::clone(&snapshot);
            let (thread, bound) = serve_routes(
                "node API",
                "node-api",
                addr,
                Arc::clone(&api_stop),
                "not found: try /peers, /chain, /metrics\n",
                move |path| page(&snap, path),
            )
            .map_err(|e| format!("--api {addr}: {e}"))?;
            log::info!("read-only API on http://{bound}/ (/peers, /chain, /metrics)");
            Some(thread)
        }
        None => None,
    };

    let started = Instant::now();
    let end = a.duration.map(|d| started + Duration::from_secs(d));
    let interval = Duration::from_secs(a.status_interval);
    let mut last = Progress::of(&node, started);
    let mut last_snapshot = Instant::now() - Duration::from_secs(1);
    let refresh = |n: &NodeDriver, at: &mut Instant| {
        if at.elapsed() >= Duration::from_millis(500) {
            *at = Instant::now();
            let mut s = snapshot.lock().unwrap_or_else(|e| e.into_inner());
            *s = snapshot_of(n, started);
        }
    };
    loop {
        let next_status = last.at + interval;
        let until = end.map_or(next_status, |e| e.min(next_status));
        node.run_until(until, |n| {
            if api_thread.is_some() {
                refresh(n, &mut last_snapshot);
            }
            signalled.load(Ordering::Acquire)
        })?;
        if signalled.load(Ordering::Acquire) {
            log::info!("signal received; stopping");
            break;
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if now >= next_status {
            log::info!("{}", status(&node, &last, now));
            last = Progress::of(&node, now);
        }
    }
    api_stop.store(true, Ordering::Release);
    if let Some(t) = api_thread {
        let _ = t.join();
    }
    let c = node.chain();
    let s = node.sync().stats();
    let (tip, blocks) = node.block_tip();
    println!(
        "summary: {:.1} s, peers {}/{}, headers stored {}, best height {} tip {}, blocks {} tip {}, blocks stored {}, served {}",
        started.elapsed().as_secs_f64(),
        node.sync().ready_peers(),
        peers.len(),
        s.headers_stored,
        c.best_height(),
        c.best_hash(),
        blocks,
        tip,
        node.stats().blocks_stored,
        node.stats().blocks_served,
    );
    Ok(ExitCode::SUCCESS)
}

fn page(snapshot: &Mutex<Snapshot>, path: &str) -> Option<Page> {
    let s = snapshot.lock().unwrap_or_else(|e| e.into_inner());
    Some(match path {
        "/peers" => ("application/json", s.peers.clone()),
        "/chain" | "/" => ("application/json", s.chain.clone()),
        "/metrics" => ("text/plain; version=0.0.4", s.metrics.clone()),
        _ => return None,
    })
}

fn snapshot_of(n: &NodeDriver, started: Instant) -> Snapshot {
    let c = n.chain();
    let (tip, blocks) = n.block_tip();
    let sync = n.sync().stats();
    let dl = n.download().stats();
    let st = n.stats();
    let conns = n.connections();
    let chain = json!({
        "network": c.params().network.to_string(),
        "headers": c.len(),
        "best_header_height": c.best_height(),
        "best_header": c.best_hash().to_string(),
        "block_height": blocks,
        "block_tip": tip.to_string(),
        "presyncing": n.sync().presyncing(),
        "blocks_in_flight": n.download().in_flight(),
        "uptime_s": started.elapsed().as_secs(),
        "headers_stored": sync.headers_stored,
        "blocks_stored": st.blocks_stored,
        "blocks_invalid": st.blocks_invalid,
        "blocks_mutated": st.blocks_mutated,
        "blocks_served": st.blocks_served,
        "compact_blocks_received": st.compact_received,
        "compact_blocks_sent": st.compact_sent,
        "announcements": st.announcements,
        "download_stalls": dl.stalls,
    });
    let inbound = conns.iter().filter(|p| p.inbound).count();
    let mut m = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: f64| {
        m.push_str(&format!("# HELP kiln_node_{name} {help}\n# TYPE kiln_node_{name} {kind}\nkiln_node_{name} {v}\n"));
    };
    metric("headers", "gauge", "Headers in the header chain, forks included.", c.len() as f64);
    metric("best_header_height", "gauge", "Height of the most-work header.", f64::from(c.best_height()));
    metric("block_height", "gauge", "Height of the block tip (blocks stored and checked).", f64::from(blocks));
    metric("peers_outbound", "gauge", "Outbound connections.", (conns.len() - inbound) as f64);
    metric("peers_inbound", "gauge", "Inbound connections.", inbound as f64);
    metric("blocks_stored_total", "counter", "Blocks checked and stored.", st.blocks_stored as f64);
    metric("blocks_invalid_total", "counter", "Blocks found invalid.", st.blocks_invalid as f64);
    metric("blocks_served_total", "counter", "Blocks sent in answer to getdata.", st.blocks_served as f64);
    metric("announcements_total", "counter", "New-tip announcements sent to peers.", st.announcements as f64);
    metric("disconnects_total", "counter", "Peers disconnected, for any reason.", st.disconnects as f64);
    metric("blocks_in_flight", "gauge", "Blocks requested and not yet received.", n.download().in_flight() as f64);
    Snapshot {
        peers: serde_json::to_string_pretty(&conns).unwrap_or_default() + "\n",
        chain: serde_json::to_string_pretty(&chain).unwrap_or_default() + "\n",
        metrics: m,
    }
}

/// Where the node stood at a status line.
struct Progress {
    at: Instant,
    headers: u32,
    blocks: u32,
}

impl Progress {
    fn of(n: &NodeDriver, at: Instant) -> Progress {
        Progress { at, headers: n.chain().best_height(), blocks: n.block_tip().1 }
    }
}

/// `peers 1 out, 2 in | headers 2,000 | blocks 1,234 000000… | 1,234 headers/s, 500 blocks/s | ETA 2 s`.
fn status(node: &NodeDriver, last: &Progress, now: Instant) -> String {
    let c = node.chain();
    let height = c.best_height();
    let (tip, blocks) = node.block_tip();
    let secs = now.saturating_duration_since(last.at).as_secs_f64().max(1e-3);
    let header_rate = f64::from(height.saturating_sub(last.headers)) / secs;
    let block_rate = f64::from(blocks.saturating_sub(last.blocks)) / secs;
    let conns = node.connections();
    let inbound = conns.iter().filter(|p| p.inbound && p.ready).count();
    let outbound = conns.iter().filter(|p| !p.inbound && p.ready).count();
    let mut line = format!(
        "peers {outbound} out, {inbound} in | headers {height} | blocks {blocks} {tip} | {header_rate:.0} headers/s, {block_rate:.0} blocks/s"
    );
    if node.sync().presyncing() {
        line.push_str(&format!(" | presync ({} headers checked)", node.sync().stats().presync_headers));
    }
    let target = node.sync().best_announced_height().map_or(height, |h| h.max(0) as u32).max(height);
    if node.store().is_some() && blocks < target && block_rate > 0.0 {
        line.push_str(&format!(" | ETA {:.0} s to {target}", f64::from(target - blocks) / block_rate));
    } else if node.store().is_none() && height < target && header_rate > 0.0 {
        line.push_str(&format!(" | ETA {:.0} s to {target}", f64::from(target - height) / header_rate));
    }
    line
}
