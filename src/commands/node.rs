//! `kiln node`: header sync from the `--connect` peers with a status line
//! every few seconds, until `--duration` or SIGINT/SIGTERM, then a summary
//! naming the best height and tip (on stdout, for scripts).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_p2p::HeaderChain;
use kiln_p2p::node::{NodeDriver, NodeOptions};

use crate::AnyResult;
use crate::cli::NodeArgs;

pub fn run(a: NodeArgs) -> AnyResult<ExitCode> {
    if a.connect.is_empty() {
        eprintln!("kiln: no --connect peer given (there is no peer discovery yet)");
        return Ok(ExitCode::from(2));
    }
    if let Some(dir) = &a.datadir {
        log::info!("--datadir {} is not used yet: headers are kept in memory", dir.display());
    }
    // A signal only sets a flag; the driver's loop wakes at least every
    // 200 ms and sees it.
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&signalled))?;
    }
    let mut node = NodeDriver::new(&a.connect, HeaderChain::new(a.chain), NodeOptions::default())?;
    let started = Instant::now();
    let end = a.duration.map(|d| started + Duration::from_secs(d));
    let interval = Duration::from_secs(a.status_interval);
    let mut last = (started, node.chain().best_height());
    loop {
        let next_status = last.0 + interval;
        let until = end.map_or(next_status, |e| e.min(next_status));
        node.run_until(until, |_| signalled.load(Ordering::Acquire))?;
        if signalled.load(Ordering::Acquire) {
            log::info!("signal received; stopping");
            break;
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if now >= next_status {
            log::info!("{}", status(&node, last, now));
            last = (now, node.chain().best_height());
        }
    }
    let c = node.chain();
    let s = node.sync().stats();
    println!(
        "summary: {:.1} s, peers {}/{}, headers stored {}, best height {} tip {}",
        started.elapsed().as_secs_f64(),
        node.sync().ready_peers(),
        a.connect.len(),
        s.headers_stored,
        c.best_height(),
        c.best_hash()
    );
    Ok(ExitCode::SUCCESS)
}

/// `peers 2/3 | headers 123,456 | best 123,455 000000… | 1,234 headers/s | ETA 2m 10s`.
fn status(node: &NodeDriver, (then, then_height): (Instant, u32), now: Instant) -> String {
    let c = node.chain();
    let height = c.best_height();
    let secs = now.saturating_duration_since(then).as_secs_f64().max(1e-3);
    let rate = f64::from(height.saturating_sub(then_height)) / secs;
    let mut line = format!(
        "peers {}/{} | headers {} | best {} {} | {:.0} headers/s",
        node.sync().ready_peers(),
        node.peers().len(),
        c.len(),
        height,
        c.best_hash(),
        rate
    );
    if node.sync().presyncing() {
        line.push_str(&format!(" | presync ({} headers checked)", node.sync().stats().presync_headers));
    }
    if let Some(target) = node.sync().best_announced_height()
        && target > height as i32
        && rate > 0.0
    {
        let eta = f64::from(target - height as i32) / rate;
        line.push_str(&format!(" | ETA {:.0} s to {target}", eta));
    }
    line
}
