//! `kiln mine`: start the miner with validated options, print a status line
//! every few seconds, stop after `--duration`, on SIGTERM/SIGINT, or when the
//! miner ends, and print a final summary in every one of those cases.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kiln_miner::Miner;

use crate::AnyResult;
use crate::options::MineOptions;

pub fn run(o: MineOptions) -> AnyResult<ExitCode> {
    // A signal only sets a flag (all a handler may safely do); the loop below
    // sees it within 200 ms and stops the miner as --duration would.
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&signalled))?;
    }
    let solo = matches!(o.miner.source, kiln_miner::JobSource::Solo(_));
    let miner = Miner::start(o.miner)?;
    let started = Instant::now();
    let mut last_status = started;
    let stats = miner.stats();
    while miner.is_running() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if o.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if signalled.load(Ordering::Acquire) {
            log::info!("signal received; stopping");
            break;
        }
        if last_status.elapsed() >= o.status_interval {
            last_status = Instant::now();
            let s = stats.snapshot();
            let per: Vec<String> =
                s.scanners.iter().map(|sc| format!("{} {:.2} MH/s", sc.name, sc.hashrate / 1e6)).collect();
            // Solo: blocks found / accepted / rejected by the node; a pool:
            // shares accepted / rejected.
            let counts = if solo {
                format!("blocks {} A {} R {}", s.blocks, s.blocks_accepted, s.blocks_rejected)
            } else {
                format!("A {} R {}", s.accepted, s.rejected)
            };
            log::info!(
                "{} | {:.2} MH/s (1m {:.2}) | {counts} S {} HW {} lost {} | diff {} | {} ({})",
                per.join(", "),
                s.hashrate / 1e6,
                s.hashrate_1m / 1e6,
                s.stale,
                s.hw_errors,
                s.lost,
                s.difficulty,
                s.pool,
                s.pool_state
            );
        }
    }
    // Hash rates before the scanners stop; share counts after the source
    // has stopped (answers to the last shares included).
    let rates = stats.snapshot();
    let failure = miner.failure();
    miner.stop();
    let s = stats.snapshot();
    let ms = |m: Option<f64>| m.map_or_else(|| "-".to_string(), |v| format!("{v:.2} ms"));
    if solo {
        log::info!(
            "blocks: found {}, accepted {}, rejected {}; median template→hashing {} ({} samples), found→submitted {} ({})",
            s.blocks,
            s.blocks_accepted,
            s.blocks_rejected,
            ms(s.job_switch_ms_median),
            s.job_switch_samples,
            ms(s.submit_ms_median),
            s.submit_samples
        );
    }
    log::info!(
        "summary: {:.1} s, accepted {}, rejected {}, stale {}, hardware errors {}, lost {}, {:.2} MH/s (1m {:.2})",
        started.elapsed().as_secs_f64(),
        s.accepted,
        s.rejected,
        s.stale,
        s.hw_errors,
        s.lost,
        rates.hashrate / 1e6,
        rates.hashrate_1m / 1e6
    );
    if let Some(why) = failure {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
