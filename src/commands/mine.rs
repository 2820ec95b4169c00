//! `kiln mine`: start the miner with validated options, print a status line
//! every few seconds, stop after `--duration` or when the miner ends.

use std::process::ExitCode;
use std::time::Instant;

use kiln_miner::Miner;

use crate::AnyResult;
use crate::options::MineOptions;

pub fn run(o: MineOptions) -> AnyResult<ExitCode> {
    let miner = Miner::start(o.miner)?;
    let started = Instant::now();
    let mut last_status = started;
    let stats = miner.stats();
    while miner.is_running() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if o.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if last_status.elapsed() >= o.status_interval {
            last_status = Instant::now();
            let s = stats.snapshot();
            let per: Vec<String> =
                s.scanners.iter().map(|sc| format!("{} {:.2} MH/s", sc.name, sc.hashrate / 1e6)).collect();
            log::info!(
                "{} | {:.2} MH/s (1m {:.2}) | A {} R {} S {} HW {} lost {} | diff {} | {} ({})",
                per.join(", "),
                s.hashrate / 1e6,
                s.hashrate_1m / 1e6,
                s.accepted,
                s.rejected,
                s.stale,
                s.hw_errors,
                s.lost,
                s.difficulty,
                s.pool,
                s.pool_state
            );
        }
    }
    miner.stop();
    Ok(ExitCode::SUCCESS)
}
