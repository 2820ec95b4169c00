//! The coordinator between a job source and the scanners.
//!
//! Jobs come in from a job source (a Stratum pool today; a node's block
//! template later); each scanner gets its own slice of the job's search space
//! (its own extranonce2, then rolled version bits), so no two scanners ever
//! hash the same header. Scanner events come back: every hit has already been
//! re-hashed on the CPU against the full target; the engine drops what is
//! stale (the source said clean_jobs since) or a duplicate, flags block
//! solutions, and hands the rest back as [`Solution`]s. The engine speaks no
//! protocol: the source turns a solution into a share or into a whole block.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use kiln_scan::{ScanEvent, Scanner, ScannerKind};
use kiln_work::{BlockHash, Difficulty, Job, Target, Work};

use crate::stats::{ScannerFacts, Stats};

/// A scanner's facts for the stats, in words (the stats know no scan types).
fn facts(s: &dyn Scanner) -> ScannerFacts {
    let info = s.info();
    let kind = match info.kind {
        ScannerKind::Cpu => "cpu",
        ScannerKind::Gpu => "gpu",
        ScannerKind::Other => "other",
    };
    ScannerFacts {
        name: s.label(),
        kind: kind.into(),
        backend: info.backend,
        device: info.device,
        threads: info.threads,
        dispatch_size: s.dispatch_size(),
    }
}

/// The most shares per second one scanner may find, on average. A pool's
/// difficulty can be anything down to `1e-308` (every nonce a share); kiln
/// then mines to a harder target of its own, the *share floor*: never easier
/// than this many shares per second at the scanner's measured hash rate. A
/// hash meeting the floor also meets the pool's easier target, so every share
/// kiln submits is still valid for the pool; kiln only submits fewer of them.
/// 50 per second per scanner is far above what any pool wants (vardiff aims
/// at one every few seconds) and far below what floods a pool or kiln.
pub const MAX_SHARES_PER_SECOND: f64 = 50.0;

/// The hash rate assumed for a scanner before it has been measured (about
/// 4.3 GH/s, above any CPU and most GPUs): at start the floor errs on the
/// hard side, and is eased on the first measurement, half a second later.
pub const ASSUMED_HASHRATE: f64 = 4_294_967_296.0;

/// How many of the newest jobs keep their work after a notify without
/// clean_jobs: a late share of one of them is still sent; older ones are
/// forgotten (and their shares counted stale), so a pool that never sets
/// clean_jobs cannot make the engine keep every job it ever sent.
pub const RECENT_JOBS: u64 = 8;

/// Solutions waiting for the job source; beyond this they are counted lost
/// rather than queued without bound (see `Miner::start`).
pub const SOLUTION_QUEUE: usize = 1024;

/// Source events taken in one go before the engine acts: jobs among them are
/// coalesced into one switch to the newest.
const MAX_BATCH: usize = 65_536;

/// What a job source tells the engine.
#[derive(Clone, Debug)]
pub enum SourceEvent {
    /// A new job (its share target already fixed).
    Job(Job),
    /// The source's extranonce1 is (now) this, e.g. after a reconnect.
    Subscribed { extranonce1: Vec<u8> },
    /// The connection is gone; scanners keep mining the current job.
    Disconnected,
    /// Stop everything.
    Shutdown,
}

/// What the engine knows about one unit of work it handed out.
struct WorkInfo {
    job: Arc<Job>,
    extranonce2: Vec<u8>,
    version: u32,
    /// The header handed out (nonce field zero).
    header: [u8; 80],
    scanner: usize,
    generation: u64,
    /// The target the scanner was given: the job's share target, or the
    /// harder share floor.
    target: Target,
    /// Which job (in arrival order) the work belongs to.
    job_seq: u64,
}

/// A header that meets its job's share target: found by a scanner, re-hashed
/// on the CPU, not stale and not a duplicate. The job source turns it into
/// what its protocol submits (a Stratum share, a block).
#[derive(Clone, Debug)]
pub struct Solution {
    /// The unit of work it was found in.
    pub work_id: u64,
    /// The job as the source gave it (with the extranonce1 in force).
    pub job: Arc<Job>,
    pub extranonce2: Vec<u8>,
    /// The header's full version (rolled bits included).
    pub version: u32,
    pub ntime: u32,
    pub nonce: u32,
    /// The whole 80-byte header, nonce included.
    pub header: [u8; 80],
    pub hash: BlockHash,
    /// The hash also meets the network target: a block.
    pub is_block: bool,
    /// When the engine received it from the scanner (for the found-to-
    /// submitted latency).
    pub found_at: Instant,
    /// The scanner that found it (its position in the engine's list), so
    /// the source's answer can be credited to it.
    pub scanner: usize,
}

/// What identifies a solution for duplicate filtering.
type SolutionKey = (String, Vec<u8>, Vec<u8>, u32, u32, u32);

/// The engine's state.
pub struct Engine {
    scanners: Vec<Box<dyn Scanner>>,
    stats: Arc<Stats>,
    solutions: Sender<Solution>,
    wake: Box<dyn Fn() + Send>,
    works: HashMap<u64, WorkInfo>,
    next_work_id: u64,
    /// Bumped on clean_jobs: work of older generations is stale.
    generation: u64,
    job: Option<Arc<Job>>,
    /// Next slice of the current job's search space.
    next_slot: u64,
    /// Solutions sent, with the job (arrival order) each belongs to.
    seen: HashMap<SolutionKey, u64>,
    /// Counts jobs as they arrive.
    job_seq: u64,
    /// See [`MAX_SHARES_PER_SECOND`]; `None` turns the floor off.
    share_rate_cap: Option<f64>,
    /// Measured hash rate per scanner (hashes per second).
    rates: Vec<Option<f64>>,
    /// The last hash-counter sample per scanner.
    samples: Vec<(Instant, u64)>,
    /// The work each scanner is on.
    current: Vec<Option<u64>>,
}

impl Engine {
    /// `wake` is called after each solution is queued (the source's mio `Waker`).
    pub fn new(
        scanners: Vec<Box<dyn Scanner>>,
        stats: Arc<Stats>,
        solutions: Sender<Solution>,
        wake: Box<dyn Fn() + Send>,
    ) -> Self {
        stats.set_scanners(scanners.iter().map(|s| facts(s.as_ref())).collect());
        let n = scanners.len();
        let samples = scanners.iter().map(|s| (Instant::now(), s.hashes())).collect();
        Engine {
            scanners,
            stats,
            solutions,
            wake,
            works: HashMap::new(),
            next_work_id: 1,
            generation: 0,
            job: None,
            next_slot: 0,
            seen: HashMap::new(),
            job_seq: 0,
            share_rate_cap: Some(MAX_SHARES_PER_SECOND),
            rates: vec![None; n],
            samples,
            current: vec![None; n],
        }
    }

    /// Sets (or with `None` removes) the share floor's rate; the default is
    /// [`MAX_SHARES_PER_SECOND`]. Tests that want every nonce to be a share
    /// turn it off.
    pub fn set_share_rate_cap(&mut self, cap: Option<f64>) {
        self.share_rate_cap = cap.filter(|c| c.is_finite() && *c > 0.0);
    }

    /// The target for `scanner`'s work on `job`: the pool's share target, or
    /// the share floor when that is harder (see [`MAX_SHARES_PER_SECOND`]).
    fn work_target(&self, job: &Job, scanner: usize) -> Target {
        let Some(cap) = self.share_rate_cap else { return job.share_target };
        let rate = self.rates.get(scanner).copied().flatten().unwrap_or(ASSUMED_HASHRATE);
        // A target of difficulty d is met by one hash in d·2^32 on average.
        match Target::from_difficulty(Difficulty(rate / (cap * 4_294_967_296.0))) {
            Ok(floor) => job.share_target.min(floor),
            Err(_) => job.share_target,
        }
    }

    /// Runs until `SourceEvent::Shutdown` or both channels close.
    pub fn run(mut self, net: Receiver<SourceEvent>, scans: Receiver<ScanEvent>) {
        let tick = crossbeam_channel::tick(Duration::from_millis(500));
        loop {
            crossbeam_channel::select! {
                recv(net) -> ev => match ev {
                    Ok(ev) => {
                        // Take everything already queued, so a flood of jobs
                        // costs one switch, not one per job.
                        let batch: Vec<SourceEvent> = std::iter::once(ev).chain(net.try_iter().take(MAX_BATCH)).collect();
                        if !self.on_net_batch(batch) {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                recv(scans) -> ev => match ev {
                    Ok(ev) => self.on_scan(ev),
                    Err(_) => break,
                },
                recv(tick) -> _ => self.update_rates(),
            }
        }
        for s in &self.scanners {
            s.clear_work();
        }
    }

    /// Handles events that arrived together, in order, except that runs of
    /// jobs become one switch to the newest of them (clean when any of them
    /// was). Returns false on `Shutdown`.
    pub fn on_net_batch(&mut self, events: Vec<SourceEvent>) -> bool {
        let mut pending: Option<Job> = None;
        for ev in events {
            match ev {
                SourceEvent::Shutdown => return false,
                SourceEvent::Job(mut job) => {
                    if let Some(older) = pending.take() {
                        job.clean_jobs |= older.clean_jobs;
                    }
                    pending = Some(job);
                }
                other => {
                    if let Some(job) = pending.take() {
                        self.on_net(SourceEvent::Job(job));
                    }
                    self.on_net(other);
                }
            }
        }
        if let Some(job) = pending {
            self.on_net(SourceEvent::Job(job));
        }
        true
    }

    /// Samples the scanners' hash counters: for the stats, and for each
    /// scanner's share floor, which is re-applied when it moved by more than
    /// a factor of two.
    fn update_rates(&mut self) {
        let now = Instant::now();
        let hashes: Vec<u64> = self.scanners.iter().map(|s| s.hashes()).collect();
        self.stats.record_hashes(&hashes);
        self.stats.set_dispatch_sizes(&self.scanners.iter().map(|s| s.dispatch_size()).collect::<Vec<_>>());
        for (i, &h) in hashes.iter().enumerate() {
            let (t0, h0) = self.samples[i];
            let dt = now.duration_since(t0).as_secs_f64();
            if h <= h0 || dt < 0.2 {
                continue; // idle, or too soon to tell
            }
            let rate = (h - h0) as f64 / dt;
            self.rates[i] = Some(self.rates[i].map_or(rate, |old| 0.5 * old + 0.5 * rate));
            self.samples[i] = (now, h);
            self.retarget(i);
        }
    }

    /// Gives `scanner` fresh work when its floor moved enough to matter.
    fn retarget(&mut self, scanner: usize) {
        let (Some(job), Some(id)) = (self.job.clone(), self.current[scanner]) else { return };
        let Some(info) = self.works.get(&id) else { return };
        if !Arc::ptr_eq(&info.job, &job) {
            return;
        }
        let ratio = self.work_target(&job, scanner).difficulty().0 / info.target.difficulty().0;
        if (0.5..=2.0).contains(&ratio) {
            return;
        }
        // The old work stays valid: a share it still reports is sent.
        self.give_work(&job, scanner);
    }

    /// Hands `scanner` the next slice of `job`, or stops it when there is none.
    fn give_work(&mut self, job: &Arc<Job>, scanner: usize) -> u64 {
        match self.make_work(job, scanner) {
            Some(w) => {
                self.current[scanner] = Some(w.id);
                self.scanners[scanner].set_work(w)
            }
            None => {
                self.current[scanner] = None;
                self.scanners[scanner].clear_work()
            }
        }
    }

    /// Handles one network event; returns how long the switch to new work
    /// took when a job arrived (all scanners acknowledged), for measurement.
    pub fn on_net(&mut self, ev: SourceEvent) -> Option<Duration> {
        match ev {
            SourceEvent::Job(job) => {
                let t = Instant::now();
                if job.clean_jobs {
                    // Nothing from older work may be sent from now on.
                    self.generation += 1;
                    self.seen.clear();
                }
                self.stats.set_difficulty(job.share_target.difficulty().0);
                let id = job.job_id.clone();
                self.stats.job();
                self.start_job(Arc::new(job));
                self.stats.job_switched(&id);
                Some(t.elapsed())
            }
            SourceEvent::Subscribed { extranonce1 } => {
                // After a reconnect with a different extranonce1, rebuild the
                // current job's work even though its id did not change.
                if let Some(job) = self.job.clone().filter(|j| j.extranonce1 != extranonce1) {
                    let mut j = (*job).clone();
                    j.extranonce1 = extranonce1;
                    self.generation += 1;
                    self.start_job(Arc::new(j));
                }
                None
            }
            SourceEvent::Disconnected | SourceEvent::Shutdown => None,
        }
    }

    /// Hands every scanner fresh work from `job` and waits (bounded) until
    /// they all switched. Returns when switched or after 2 s.
    fn start_job(&mut self, job: Arc<Job>) {
        self.job = Some(Arc::clone(&job));
        self.next_slot = 0;
        self.job_seq += 1;
        let keep_from = self.job_seq.saturating_sub(RECENT_JOBS - 1);
        let generation = self.generation;
        self.works.retain(|_, w| w.generation == generation && w.job_seq >= keep_from);
        self.seen.retain(|_, seq| *seq >= keep_from);
        let mut epochs = Vec::with_capacity(self.scanners.len());
        for i in 0..self.scanners.len() {
            epochs.push(self.give_work(&job, i));
        }
        // Sleep between checks rather than spin: with as many hashing threads
        // as cores, a spinning engine would steal a core from the very thread
        // it waits for, and the switch would take a scheduler time slice.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !self.scanners.iter().zip(&epochs).all(|(s, e)| s.switched_to(*e)) {
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// The next slice of the job's search space: extranonce2 values first,
    /// then rolled version bits when the pool allows them. Versions roll only
    /// once the extranonce2 space is used up, and never when the job's own
    /// version has bits inside the mask: pools rebuild a rolled version
    /// differently (BIP310 replaces the masked bits, public-pool XORs them
    /// in), and only with those bits clear do all of them agree.
    fn make_work(&mut self, job: &Arc<Job>, scanner: usize) -> Option<Work> {
        let bits = 8 * job.extranonce2_size.min(8) as u32;
        let en2_space: u64 = if bits >= 64 { u64::MAX } else { 1u64 << bits };
        let slot = self.next_slot;
        let (en2_value, roll) = (slot % en2_space, slot / en2_space);
        let rolls_available = if job.version_mask == 0 || job.version & job.version_mask != 0 {
            1
        } else {
            1u64 << job.version_mask.count_ones().min(16)
        };
        if roll >= rolls_available {
            return None; // search space exhausted: wait for the next job
        }
        self.next_slot += 1;
        let mut extranonce2 = vec![0u8; job.extranonce2_size];
        for (i, b) in en2_value.to_le_bytes().iter().enumerate().take(job.extranonce2_size) {
            extranonce2[i] = *b;
        }
        let version = if roll == 0 { job.version } else { job.rolled_version(deposit_bits(roll, job.version_mask)) };
        let id = self.next_work_id;
        self.next_work_id += 1;
        let header = job.header(&extranonce2, job.ntime, version);
        let target = self.work_target(job, scanner);
        self.works.insert(
            id,
            WorkInfo {
                job: Arc::clone(job),
                extranonce2,
                version,
                header,
                scanner,
                generation: self.generation,
                target,
                job_seq: self.job_seq,
            },
        );
        Some(Work::new(id, header, target))
    }

    /// Handles one scanner event.
    pub fn on_scan(&mut self, ev: ScanEvent) {
        match ev {
            ScanEvent::HardwareError { scanner, work_id, .. } => {
                match self.works.get(&work_id) {
                    Some(info) => self.stats.hw_error_on(info.scanner),
                    None => self.stats.hw_error(),
                }
                log::warn!("{scanner}: hardware error (a candidate failed the CPU re-check); not submitted");
            }
            ScanEvent::Exhausted { work_id, .. } => {
                let Some(info) = self.works.get(&work_id) else { return };
                let (scanner, job) = (info.scanner, Arc::clone(&info.job));
                if self.job.as_ref().is_some_and(|j| Arc::ptr_eq(j, &job)) {
                    self.give_work(&job, scanner);
                }
            }
            ScanEvent::Found { work_id, nonce, hash, scanner } => {
                let Some(info) = self.works.get(&work_id) else {
                    self.stats.stale();
                    return;
                };
                if info.generation != self.generation {
                    self.stats.stale_share(info.job.share_target.difficulty().0);
                    log::debug!("{scanner}: share for a job the pool replaced; dropped");
                    return;
                }
                // Scanners already re-checked the hash against the work's full
                // target (the share target or the harder floor); check once
                // more here, where the share is formed.
                if !info.target.is_met_by(&hash) || !info.job.share_target.is_met_by(&hash) {
                    self.stats.hw_error_on(info.scanner);
                    return;
                }
                let job = &info.job;
                let key = (
                    job.job_id.clone(),
                    job.extranonce1.clone(),
                    info.extranonce2.clone(),
                    job.ntime,
                    nonce,
                    info.version,
                );
                if self.seen.insert(key, info.job_seq).is_some() {
                    self.stats.duplicate();
                    return;
                }
                let is_block = job.network_target().is_some_and(|t: Target| t.is_met_by(&hash));
                if is_block {
                    log::info!("*** BLOCK SOLVED *** {scanner} found {hash} for job {}", job.job_id);
                    self.stats.block();
                }
                self.stats.found_by(info.scanner, Difficulty::of_hash(&hash).0);
                let mut header = info.header;
                header[76..80].copy_from_slice(&nonce.to_le_bytes());
                let solution = Solution {
                    work_id,
                    job: Arc::clone(job),
                    extranonce2: info.extranonce2.clone(),
                    version: info.version,
                    ntime: job.ntime,
                    nonce,
                    header,
                    hash,
                    is_block,
                    found_at: Instant::now(),
                    scanner: info.scanner,
                };
                match self.solutions.try_send(solution) {
                    Ok(()) => (self.wake)(),
                    Err(crossbeam_channel::TrySendError::Full(_)) => {
                        // The source is not taking solutions (it is blocked or
                        // far behind): drop rather than queue without bound.
                        self.stats.lost(1);
                        log::warn!("solution queue full ({SOLUTION_QUEUE}); share lost");
                        (self.wake)();
                    }
                    Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
                }
            }
        }
    }
}

/// Spreads the low bits of `value` over the set bits of `mask` (like x86 PDEP).
pub fn deposit_bits(mut value: u64, mask: u32) -> u32 {
    let mut out = 0u32;
    for bit in 0..32 {
        if mask & (1 << bit) != 0 {
            if value & 1 != 0 {
                out |= 1 << bit;
            }
            value >>= 1;
        }
    }
    out
}
