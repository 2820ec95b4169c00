//! Counters shared by the engine, the job sources, the status line and the
//! monitoring endpoint. They sit below both the engine and the sources and
//! know no protocol. Writers use atomics; readers take snapshots.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Everything counted while mining.
#[derive(Default)]
pub struct Stats {
    found: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    stale: AtomicU64,
    duplicates: AtomicU64,
    hw_errors: AtomicU64,
    lost: AtomicU64,
    blocks: AtomicU64,
    blocks_accepted: AtomicU64,
    blocks_rejected: AtomicU64,
    /// Accepted shares weighted by difficulty (for the implied hash rate).
    accepted_diff_milli: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    started: Option<Instant>,
    scanners: Vec<String>,
    /// (time, hashes per scanner) samples over the last minute.
    samples: VecDeque<(Instant, Vec<u64>)>,
    rejects: BTreeMap<String, u64>,
    pool: String,
    pool_state: String,
    difficulty: f64,
    pools: Vec<PoolStatus>,
    /// Jobs the source handed over, not yet on every scanner: (id, when).
    jobs_in_flight: VecDeque<(String, Instant)>,
    /// Job received → every scanner on it, newest last.
    switch_latencies: VecDeque<Duration>,
    /// Solution found → sent to the pool or node, newest last.
    submit_latencies: VecDeque<Duration>,
}

/// Latency samples kept for the medians.
const LATENCY_SAMPLES: usize = 256;

fn push_sample(ring: &mut VecDeque<Duration>, d: Duration) {
    if ring.len() == LATENCY_SAMPLES {
        ring.pop_front();
    }
    ring.push_back(d);
}

/// Median in milliseconds, `None` without samples.
fn median_ms(ring: &VecDeque<Duration>) -> Option<f64> {
    let mut v: Vec<f64> = ring.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 })
}

/// One configured pool, as shown by the API.
#[derive(Clone, Debug, Serialize)]
pub struct PoolStatus {
    pub url: String,
    pub user: String,
    pub priority: usize,
    pub connects: u64,
    pub failures: u64,
    pub active: bool,
}

/// A point-in-time copy of the counters.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub uptime_s: f64,
    pub found: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub stale: u64,
    pub duplicates: u64,
    pub hw_errors: u64,
    pub lost: u64,
    /// Solutions that met the network target (sent as blocks when solo).
    pub blocks: u64,
    /// Blocks the node accepted (`submitblock` answered null).
    pub blocks_accepted: u64,
    /// Blocks the node refused; the reasons are in `rejected_by_reason`.
    pub blocks_rejected: u64,
    pub difficulty: f64,
    pub pool: String,
    pub pool_state: String,
    /// Hash rate implied by accepted shares (difficulty × 2^32 / time).
    pub accepted_hashrate: f64,
    pub scanners: Vec<ScannerStatus>,
    pub hashrate: f64,
    pub hashrate_1m: f64,
    pub pools: Vec<PoolStatus>,
    /// Median time from a job's arrival (a notify, a template answer) to
    /// every scanner hashing it, over the last 256 jobs.
    pub job_switch_ms_median: Option<f64>,
    pub job_switch_samples: usize,
    /// Median time from a solution's discovery to its submission.
    pub submit_ms_median: Option<f64>,
    pub submit_samples: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScannerStatus {
    pub name: String,
    pub hashes: u64,
    /// Over the last few seconds.
    pub hashrate: f64,
    /// Over the last minute.
    pub hashrate_1m: f64,
}

impl Stats {
    pub fn new() -> Self {
        let s = Stats::default();
        s.lock().started = Some(Instant::now());
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_scanners(&self, names: Vec<String>) {
        self.lock().scanners = names;
    }
    pub fn set_pools(&self, pools: Vec<PoolStatus>) {
        self.lock().pools = pools;
    }
    pub fn pool_event(&self, index: usize, connected: bool, failed: bool) {
        let mut g = self.lock();
        for (i, p) in g.pools.iter_mut().enumerate() {
            p.active = i == index && connected;
            if i == index {
                p.connects += connected as u64;
                p.failures += failed as u64;
            }
        }
    }
    pub fn set_pool(&self, url: &str, state: &str) {
        let mut g = self.lock();
        g.pool = url.to_string();
        g.pool_state = state.to_string();
    }
    pub fn set_difficulty(&self, d: f64) {
        self.lock().difficulty = d;
    }
    pub fn found(&self) {
        self.found.fetch_add(1, Ordering::Relaxed);
    }
    pub fn accepted(&self, difficulty: f64) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.accepted_diff_milli.fetch_add((difficulty * 1000.0) as u64, Ordering::Relaxed);
    }
    /// A rejected share or block, counted under the source's name for why.
    pub fn rejected(&self, reason: &str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        *self.lock().rejects.entry(reason.to_string()).or_insert(0) += 1;
    }
    pub fn stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    pub fn hw_error(&self) {
        self.hw_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn lost(&self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
    }
    pub fn block(&self) {
        self.blocks.fetch_add(1, Ordering::Relaxed);
    }
    pub fn block_accepted(&self) {
        self.blocks_accepted.fetch_add(1, Ordering::Relaxed);
    }
    /// A block the node refused, counted with the node's reason.
    pub fn block_rejected(&self, reason: &str) {
        self.blocks_rejected.fetch_add(1, Ordering::Relaxed);
        *self.lock().rejects.entry(reason.to_string()).or_insert(0) += 1;
    }

    /// A source received job `id` now (latency measurement starts).
    pub fn job_received(&self, id: &str, at: Instant) {
        let mut g = self.lock();
        if g.jobs_in_flight.len() >= 16 {
            g.jobs_in_flight.pop_front();
        }
        g.jobs_in_flight.push_back((id.to_string(), at));
    }

    /// Every scanner is on job `id` (the engine's side of [`Stats::job_received`]).
    pub fn job_switched(&self, id: &str) {
        let mut g = self.lock();
        if let Some(i) = g.jobs_in_flight.iter().position(|(j, _)| j == id) {
            let (_, at) = g.jobs_in_flight.remove(i).expect("index from position");
            push_sample(&mut g.switch_latencies, at.elapsed());
            g.jobs_in_flight.drain(..i); // older ones were coalesced away
        }
    }

    /// A solution found at `found_at` was just sent.
    pub fn submitted(&self, found_at: Instant) {
        push_sample(&mut self.lock().submit_latencies, found_at.elapsed());
    }

    /// Records each scanner's hash counter (called twice a second).
    pub fn record_hashes(&self, hashes: &[u64]) {
        let mut g = self.lock();
        let now = Instant::now();
        g.samples.push_back((now, hashes.to_vec()));
        while g.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(61)) {
            g.samples.pop_front();
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        let uptime = g.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let rate_over = |window: Duration, i: usize| -> f64 {
            let Some((t1, h1)) = g.samples.back() else { return 0.0 };
            let from = g.samples.iter().find(|(t, _)| t1.duration_since(*t) <= window).unwrap_or(&g.samples[0]);
            let dt = t1.duration_since(from.0).as_secs_f64();
            if dt <= 0.0 {
                0.0
            } else {
                (h1.get(i).copied().unwrap_or(0) - from.1.get(i).copied().unwrap_or(0)) as f64 / dt
            }
        };
        let scanners: Vec<ScannerStatus> = g
            .scanners
            .iter()
            .enumerate()
            .map(|(i, name)| ScannerStatus {
                name: name.clone(),
                hashes: g.samples.back().and_then(|(_, h)| h.get(i).copied()).unwrap_or(0),
                hashrate: rate_over(Duration::from_secs(5), i),
                hashrate_1m: rate_over(Duration::from_secs(60), i),
            })
            .collect();
        let accepted_diff = self.accepted_diff_milli.load(Ordering::Relaxed) as f64 / 1000.0;
        Snapshot {
            uptime_s: uptime,
            found: self.found.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            rejected_by_reason: g.rejects.clone(),
            stale: self.stale.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            hw_errors: self.hw_errors.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
            blocks_accepted: self.blocks_accepted.load(Ordering::Relaxed),
            blocks_rejected: self.blocks_rejected.load(Ordering::Relaxed),
            difficulty: g.difficulty,
            pool: g.pool.clone(),
            pool_state: g.pool_state.clone(),
            accepted_hashrate: if uptime > 0.0 { accepted_diff * 4_294_967_296.0 / uptime } else { 0.0 },
            hashrate: scanners.iter().map(|s| s.hashrate).sum(),
            hashrate_1m: scanners.iter().map(|s| s.hashrate_1m).sum(),
            scanners,
            pools: g.pools.clone(),
            job_switch_ms_median: median_ms(&g.switch_latencies),
            job_switch_samples: g.switch_latencies.len(),
            submit_ms_median: median_ms(&g.submit_latencies),
            submit_samples: g.submit_latencies.len(),
        }
    }
}
