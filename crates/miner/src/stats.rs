//! Counters shared by the engine, the job sources, the status line and the
//! monitoring endpoints. They sit below both the engine and the sources and
//! know no protocol. Writers use atomics where they are hot; readers take
//! snapshots.
//!
//! Besides the counters: the hash-rate history (one bucket per
//! [`BUCKET_SECS`] seconds, the last [`HISTORY_BUCKETS`] kept, for the
//! dashboard's chart) and the last [`MAX_EVENTS`] pool events (connects,
//! failures, failovers), both bounded, so a miner that runs for months uses
//! the same memory as one that runs for minutes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

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
    rejected_diff_milli: AtomicU64,
    stale_diff_milli: AtomicU64,
    /// Jobs received from the source (cgminer's "Getworks").
    jobs: AtomicU64,
    /// The best share difficulty found, as `f64` bits: for non-negative
    /// floats the bit patterns order as the numbers do, so `fetch_max` works.
    best_share_bits: AtomicU64,
    inner: Mutex<Inner>,
}

/// Seconds per hash-rate history bucket.
pub const BUCKET_SECS: u64 = 10;
/// History buckets kept: an hour.
pub const HISTORY_BUCKETS: usize = 360;
/// Pool events kept.
pub const MAX_EVENTS: usize = 50;

#[derive(Default)]
struct Inner {
    started: Option<Instant>,
    started_unix: f64,
    scanners: Vec<ScannerFacts>,
    /// Per scanner, in the order of `scanners`.
    counts: Vec<ScannerCounts>,
    /// (time, hashes per scanner) samples over the last minute.
    samples: VecDeque<(Instant, Vec<u64>)>,
    /// The history bucket being filled: when it opened and the counters then.
    open_bucket: Option<(Instant, Vec<u64>)>,
    history: VecDeque<Bucket>,
    events: VecDeque<PoolEvent>,
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
    last_job_unix: f64,
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

/// Per-scanner share counters.
#[derive(Clone, Copy, Debug, Default)]
struct ScannerCounts {
    found: u64,
    accepted: u64,
    rejected: u64,
    hw_errors: u64,
    difficulty_accepted: f64,
    last_share_unix: f64,
}

/// What a scanner is, as the engine described it at start (no protocol in
/// it: the monitoring endpoints dress it up their own way).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScannerFacts {
    pub name: String,
    /// `cpu`, `gpu` or `other`.
    pub kind: String,
    /// The CPU kernel or the GPU's graphics API.
    pub backend: String,
    /// The GPU adapter and driver; empty for the CPU.
    pub device: String,
    pub threads: usize,
    /// Nonces per dispatch (GPUs, autotuned), updated as it changes.
    pub dispatch_size: Option<u64>,
}

impl ScannerFacts {
    /// Facts known only by name (the scanner said nothing else).
    pub fn named(name: impl Into<String>) -> Self {
        ScannerFacts { name: name.into(), kind: "other".into(), threads: 1, ..Default::default() }
    }
}

/// One configured pool, as shown by the API. Never holds the password.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PoolStatus {
    pub url: String,
    pub user: String,
    pub priority: usize,
    pub connects: u64,
    pub failures: u64,
    pub active: bool,
    /// Shares answered and jobs received while this pool was the active one.
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    pub jobs: u64,
    pub difficulty_accepted: f64,
    pub difficulty_rejected: f64,
    /// Unix time of the last accepted share (0: none).
    pub last_share_unix: f64,
}

/// One pool event for the failover history.
#[derive(Clone, Debug, Serialize)]
pub struct PoolEvent {
    /// Unix time, seconds.
    pub unix_s: f64,
    /// Seconds since the miner started.
    pub uptime_s: f64,
    pub text: String,
}

/// One hash-rate history bucket (about [`BUCKET_SECS`] long).
#[derive(Clone, Debug, Serialize)]
pub struct Bucket {
    /// Seconds since start at the bucket's end.
    pub end_s: f64,
    /// The bucket's actual length in seconds.
    pub secs: f64,
    /// Hashes per second per scanner, in the order of the scanners.
    pub hashrate: Vec<f64>,
    pub total: f64,
}

/// The hash-rate history, oldest bucket first.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    pub bucket_secs: u64,
    pub capacity: usize,
    pub uptime_s: f64,
    pub scanners: Vec<String>,
    pub buckets: Vec<Bucket>,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
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
    /// Sum of the difficulties of accepted, rejected and stale shares (a
    /// stale share dropped before its job was known counts 0).
    pub difficulty_accepted: f64,
    pub difficulty_rejected: f64,
    pub difficulty_stale: f64,
    /// The highest share difficulty found (DIFF1 / hash); 0 before the first.
    pub best_share: f64,
    /// Jobs received from the source.
    pub jobs: u64,
    /// Unix time of the last job (0: none yet).
    pub last_job_unix: f64,
    /// Unix time the miner started.
    pub started_unix: f64,
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
    /// The last pool events, oldest first.
    pub events: Vec<PoolEvent>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScannerStatus {
    pub name: String,
    #[serde(flatten)]
    pub facts: ScannerFacts,
    pub hashes: u64,
    /// Over the last few seconds.
    pub hashrate: f64,
    /// Over the last minute.
    pub hashrate_1m: f64,
    /// Since start.
    pub hashrate_avg: f64,
    /// Solutions this scanner found, and the pool's answers to them.
    pub found: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub hw_errors: u64,
    pub difficulty_accepted: f64,
    /// Unix time of its last accepted share (0: none).
    pub last_share_unix: f64,
}

impl Stats {
    pub fn new() -> Self {
        let s = Stats::default();
        let mut g = s.lock();
        g.started = Some(Instant::now());
        g.started_unix = unix_now();
        drop(g);
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scanners, in the order of every per-scanner list that follows.
    pub fn set_scanners(&self, scanners: Vec<ScannerFacts>) {
        let mut g = self.lock();
        g.counts = vec![ScannerCounts::default(); scanners.len()];
        g.scanners = scanners;
    }
    /// Each scanner's current dispatch size (GPUs retune theirs).
    pub fn set_dispatch_sizes(&self, sizes: &[Option<u64>]) {
        let mut g = self.lock();
        for (f, s) in g.scanners.iter_mut().zip(sizes) {
            f.dispatch_size = *s;
        }
    }
    pub fn set_pools(&self, pools: Vec<PoolStatus>) {
        self.lock().pools = pools;
    }
    /// A pool connected (authorized) or failed; both go to the event history.
    pub fn pool_event(&self, index: usize, connected: bool, failed: bool) {
        let mut g = self.lock();
        let mut text = None;
        for (i, p) in g.pools.iter_mut().enumerate() {
            p.active = i == index && connected;
            if i == index {
                p.connects += connected as u64;
                p.failures += failed as u64;
                if connected {
                    text = Some(format!("connected to pool {i} ({})", p.url));
                } else if failed {
                    text = Some(format!("pool {i} ({}) failed", p.url));
                }
            }
        }
        if let Some(t) = text {
            push_event(&mut g, t);
        }
    }
    /// Anything else worth a line in the pool history ("failing over to …").
    pub fn note(&self, text: impl Into<String>) {
        push_event(&mut self.lock(), text.into());
    }
    pub fn set_pool(&self, url: &str, state: &str) {
        let mut g = self.lock();
        g.pool = url.to_string();
        g.pool_state = state.to_string();
    }
    pub fn set_difficulty(&self, d: f64) {
        self.lock().difficulty = d;
    }
    /// A job arrived from the source (credited to the active pool).
    pub fn job(&self) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        let mut g = self.lock();
        g.last_job_unix = unix_now();
        if let Some(p) = g.pools.iter_mut().find(|p| p.active) {
            p.jobs += 1;
        }
    }
    pub fn found(&self) {
        self.found.fetch_add(1, Ordering::Relaxed);
    }
    /// A solution found by scanner `scanner` whose hash has share difficulty
    /// `difficulty` (DIFF1 / hash): counted, and kept when it is the best.
    pub fn found_by(&self, scanner: usize, difficulty: f64) {
        self.found();
        if difficulty.is_finite() && difficulty > 0.0 {
            self.best_share_bits.fetch_max(difficulty.to_bits(), Ordering::Relaxed);
        }
        if let Some(c) = self.lock().counts.get_mut(scanner) {
            c.found += 1;
        }
    }
    pub fn accepted(&self, difficulty: f64) {
        self.answered(None, difficulty, None);
    }
    /// A rejected share or block, counted under the source's name for why.
    pub fn rejected(&self, reason: &str) {
        self.answered(None, 0.0, Some(reason));
    }
    /// The source's answer to a share of `difficulty` found by `scanner`
    /// (`None`: unknown): accepted, or rejected for `reject_reason`.
    pub fn answered(&self, scanner: Option<usize>, difficulty: f64, reject_reason: Option<&str>) {
        let milli = (difficulty.max(0.0) * 1000.0) as u64;
        let (count, diff) = match reject_reason {
            None => (&self.accepted, &self.accepted_diff_milli),
            Some(_) => (&self.rejected, &self.rejected_diff_milli),
        };
        count.fetch_add(1, Ordering::Relaxed);
        diff.fetch_add(milli, Ordering::Relaxed);
        let now = unix_now();
        let mut g = self.lock();
        if let Some(r) = reject_reason {
            *g.rejects.entry(r.to_string()).or_insert(0) += 1;
        }
        if let Some(c) = scanner.and_then(|i| g.counts.get_mut(i)) {
            if reject_reason.is_none() {
                c.accepted += 1;
                c.difficulty_accepted += difficulty;
                c.last_share_unix = now;
            } else {
                c.rejected += 1;
            }
        }
        if let Some(p) = g.pools.iter_mut().find(|p| p.active) {
            if reject_reason.is_none() {
                p.accepted += 1;
                p.difficulty_accepted += difficulty;
                p.last_share_unix = now;
            } else {
                p.rejected += 1;
                p.difficulty_rejected += difficulty;
            }
        }
    }
    pub fn stale(&self) {
        self.stale_share(0.0);
    }
    /// A stale solution of a job whose share difficulty was `difficulty`.
    pub fn stale_share(&self, difficulty: f64) {
        self.stale.fetch_add(1, Ordering::Relaxed);
        self.stale_diff_milli.fetch_add((difficulty.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
        if let Some(p) = self.lock().pools.iter_mut().find(|p| p.active) {
            p.stale += 1;
        }
    }
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    pub fn hw_error(&self) {
        self.hw_errors.fetch_add(1, Ordering::Relaxed);
    }
    /// A hardware error on a known scanner.
    pub fn hw_error_on(&self, scanner: usize) {
        self.hw_error();
        if let Some(c) = self.lock().counts.get_mut(scanner) {
            c.hw_errors += 1;
        }
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
        self.record_hashes_at(Instant::now(), hashes);
    }

    /// [`Stats::record_hashes`] at a given time (tests drive the clock).
    #[doc(hidden)]
    pub fn record_hashes_at(&self, now: Instant, hashes: &[u64]) {
        let mut g = self.lock();
        g.samples.push_back((now, hashes.to_vec()));
        while g.samples.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > Duration::from_secs(61)) {
            g.samples.pop_front();
        }
        // History: a bucket closes at the first sample in a later
        // BUCKET_SECS slot (slots counted from the start), so buckets are
        // about BUCKET_SECS long and their rates use their real length.
        let started = g.started.unwrap_or(now);
        let slot = |t: Instant| t.saturating_duration_since(started).as_secs() / BUCKET_SECS;
        match g.open_bucket.take() {
            None => g.open_bucket = Some((now, hashes.to_vec())),
            Some((t0, h0)) if slot(now) == slot(t0) => g.open_bucket = Some((t0, h0)),
            Some((t0, h0)) => {
                let secs = now.saturating_duration_since(t0).as_secs_f64();
                let hashrate: Vec<f64> = hashes
                    .iter()
                    .enumerate()
                    .map(|(i, &h)| {
                        let d = h.saturating_sub(h0.get(i).copied().unwrap_or(0));
                        if secs > 0.0 { d as f64 / secs } else { 0.0 }
                    })
                    .collect();
                let total = hashrate.iter().sum();
                let end_s = now.saturating_duration_since(started).as_secs_f64();
                if g.history.len() == HISTORY_BUCKETS {
                    g.history.pop_front();
                }
                g.history.push_back(Bucket { end_s, secs, hashrate, total });
                g.open_bucket = Some((now, hashes.to_vec()));
            }
        }
    }

    /// The hash-rate history, oldest bucket first.
    pub fn history(&self) -> History {
        let g = self.lock();
        History {
            bucket_secs: BUCKET_SECS,
            capacity: HISTORY_BUCKETS,
            uptime_s: g.started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            scanners: g.scanners.iter().map(|s| s.name.clone()).collect(),
            buckets: g.history.iter().cloned().collect(),
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
            .map(|(i, facts)| {
                let hashes = g.samples.back().and_then(|(_, h)| h.get(i).copied()).unwrap_or(0);
                let c = g.counts.get(i).copied().unwrap_or_default();
                ScannerStatus {
                    name: facts.name.clone(),
                    facts: facts.clone(),
                    hashes,
                    hashrate: rate_over(Duration::from_secs(5), i),
                    hashrate_1m: rate_over(Duration::from_secs(60), i),
                    hashrate_avg: if uptime > 0.0 { hashes as f64 / uptime } else { 0.0 },
                    found: c.found,
                    accepted: c.accepted,
                    rejected: c.rejected,
                    hw_errors: c.hw_errors,
                    difficulty_accepted: c.difficulty_accepted,
                    last_share_unix: c.last_share_unix,
                }
            })
            .collect();
        let milli = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1000.0;
        let accepted_diff = milli(&self.accepted_diff_milli);
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
            difficulty_accepted: accepted_diff,
            difficulty_rejected: milli(&self.rejected_diff_milli),
            difficulty_stale: milli(&self.stale_diff_milli),
            best_share: f64::from_bits(self.best_share_bits.load(Ordering::Relaxed)),
            jobs: self.jobs.load(Ordering::Relaxed),
            last_job_unix: g.last_job_unix,
            started_unix: g.started_unix,
            hashrate: scanners.iter().map(|s| s.hashrate).sum(),
            hashrate_1m: scanners.iter().map(|s| s.hashrate_1m).sum(),
            scanners,
            pools: g.pools.clone(),
            job_switch_ms_median: median_ms(&g.switch_latencies),
            job_switch_samples: g.switch_latencies.len(),
            submit_ms_median: median_ms(&g.submit_latencies),
            submit_samples: g.submit_latencies.len(),
            events: g.events.iter().cloned().collect(),
        }
    }
}

fn push_event(g: &mut Inner, text: String) {
    let uptime_s = g.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    if g.events.len() == MAX_EVENTS {
        g.events.pop_front();
    }
    g.events.push_back(PoolEvent { unix_s: unix_now(), uptime_s, text });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_buckets_are_ten_seconds_and_the_ring_is_bounded() {
        let s = Stats::new();
        s.set_scanners(vec![ScannerFacts::named("a"), ScannerFacts::named("b")]);
        let t0 = s.lock().started.unwrap();
        // 100 and 300 hashes per second, sampled twice a second for 2 hours.
        for k in 0..(2 * 3600 * 2) {
            let t = t0 + Duration::from_millis(500 * k);
            s.record_hashes_at(t, &[50 * k, 150 * k]);
        }
        let h = s.history();
        assert_eq!(h.buckets.len(), HISTORY_BUCKETS, "an hour of buckets, no more");
        assert_eq!(h.scanners, ["a", "b"]);
        for b in &h.buckets {
            assert!((b.secs - 10.0).abs() < 1e-9, "{b:?}");
            assert!((b.hashrate[0] - 100.0).abs() < 1e-9 && (b.hashrate[1] - 300.0).abs() < 1e-9, "{b:?}");
            assert!((b.total - 400.0).abs() < 1e-9);
        }
        // The newest bucket ends at the last 10 s boundary before 2 h.
        assert!((h.buckets.last().unwrap().end_s - 7190.0).abs() < 1e-9, "{:?}", h.buckets.last());
        assert!(h.buckets.windows(2).all(|w| (w[1].end_s - w[0].end_s - 10.0).abs() < 1e-9));
    }

    #[test]
    fn a_gap_in_sampling_makes_one_long_bucket_with_its_true_rate() {
        let s = Stats::new();
        s.set_scanners(vec![ScannerFacts::named("a")]);
        let t0 = s.lock().started.unwrap();
        s.record_hashes_at(t0, &[0]);
        s.record_hashes_at(t0 + Duration::from_secs(35), &[3500]);
        let h = s.history();
        assert_eq!(h.buckets.len(), 1);
        assert!((h.buckets[0].secs - 35.0).abs() < 1e-9);
        assert!((h.buckets[0].hashrate[0] - 100.0).abs() < 1e-9);
    }

    #[test]
    fn best_share_events_and_answers_are_counted_where_they_belong() {
        let s = Stats::new();
        s.set_scanners(vec![ScannerFacts::named("a"), ScannerFacts::named("b")]);
        s.set_pools(vec![
            PoolStatus { url: "p0".into(), ..Default::default() },
            PoolStatus { url: "p1".into(), priority: 1, ..Default::default() },
        ]);
        s.found_by(0, 3.5);
        s.found_by(1, 120.25);
        s.found_by(0, 7.0);
        s.found_by(0, f64::INFINITY);
        assert_eq!(s.snapshot().best_share, 120.25);
        s.pool_event(0, false, true);
        s.note("failing over to pool 1 (p1)");
        s.pool_event(1, true, false);
        s.job();
        s.answered(Some(1), 2.0, None);
        s.answered(Some(0), 2.0, Some("stale"));
        s.stale_share(2.0);
        let snap = s.snapshot();
        let texts: Vec<&str> = snap.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["pool 0 (p0) failed", "failing over to pool 1 (p1)", "connected to pool 1 (p1)"]);
        assert_eq!(
            (snap.pools[1].accepted, snap.pools[1].rejected, snap.pools[1].stale, snap.pools[1].jobs),
            (1, 1, 1, 1)
        );
        assert_eq!((snap.pools[0].accepted, snap.pools[0].jobs), (0, 0));
        assert_eq!((snap.scanners[1].accepted, snap.scanners[0].rejected, snap.scanners[0].found), (1, 1, 3));
        assert_eq!((snap.difficulty_accepted, snap.difficulty_rejected, snap.difficulty_stale), (2.0, 2.0, 2.0));
        assert_eq!(snap.rejected_by_reason["stale"], 1);
        for i in 0..(MAX_EVENTS + 10) {
            s.note(format!("e{i}"));
        }
        let events = s.snapshot().events;
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(events.last().unwrap().text, format!("e{}", MAX_EVENTS + 9));
    }
}
