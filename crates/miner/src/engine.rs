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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use kiln_scan::{ScanEvent, Scanner};
use kiln_work::{BlockHash, Job, Target, Work};

use crate::stats::Stats;

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
    seen: HashSet<SolutionKey>,
}

impl Engine {
    /// `wake` is called after each solution is queued (the source's mio `Waker`).
    pub fn new(
        scanners: Vec<Box<dyn Scanner>>,
        stats: Arc<Stats>,
        solutions: Sender<Solution>,
        wake: Box<dyn Fn() + Send>,
    ) -> Self {
        stats.set_scanners(scanners.iter().map(|s| s.label()).collect());
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
            seen: HashSet::new(),
        }
    }

    /// Runs until `SourceEvent::Shutdown` or both channels close.
    pub fn run(mut self, net: Receiver<SourceEvent>, scans: Receiver<ScanEvent>) {
        let tick = crossbeam_channel::tick(Duration::from_millis(500));
        loop {
            crossbeam_channel::select! {
                recv(net) -> ev => match ev {
                    Ok(SourceEvent::Shutdown) | Err(_) => break,
                    Ok(ev) => { self.on_net(ev); }
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

    fn update_rates(&self) {
        let hashes: Vec<u64> = self.scanners.iter().map(|s| s.hashes()).collect();
        self.stats.record_hashes(&hashes);
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
                self.start_job(Arc::new(job));
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
        self.works.retain(|_, w| w.generation == self.generation);
        let mut epochs = Vec::with_capacity(self.scanners.len());
        for i in 0..self.scanners.len() {
            let epoch = match self.make_work(&job, i) {
                Some(w) => self.scanners[i].set_work(w),
                None => self.scanners[i].clear_work(),
            };
            epochs.push(epoch);
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
    /// then rolled version bits when the pool allows them.
    fn make_work(&mut self, job: &Arc<Job>, scanner: usize) -> Option<Work> {
        let bits = 8 * job.extranonce2_size.min(8) as u32;
        let en2_space: u64 = if bits >= 64 { u64::MAX } else { 1u64 << bits };
        let slot = self.next_slot;
        let (en2_value, roll) = (slot % en2_space, slot / en2_space);
        let rolls_available = if job.version_mask == 0 { 1 } else { 1u64 << job.version_mask.count_ones().min(16) };
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
        self.works.insert(
            id,
            WorkInfo { job: Arc::clone(job), extranonce2, version, header, scanner, generation: self.generation },
        );
        Some(Work::new(id, header, job.share_target))
    }

    /// Handles one scanner event.
    pub fn on_scan(&mut self, ev: ScanEvent) {
        match ev {
            ScanEvent::HardwareError { scanner, .. } => {
                self.stats.hw_error();
                log::warn!("{scanner}: hardware error (a candidate failed the CPU re-check); not submitted");
            }
            ScanEvent::Exhausted { work_id, .. } => {
                let Some(info) = self.works.get(&work_id) else { return };
                let (scanner, job) = (info.scanner, Arc::clone(&info.job));
                if self.job.as_ref().is_some_and(|j| Arc::ptr_eq(j, &job)) {
                    match self.make_work(&job, scanner) {
                        Some(w) => {
                            self.scanners[scanner].set_work(w);
                        }
                        None => {
                            self.scanners[scanner].clear_work();
                        }
                    }
                }
            }
            ScanEvent::Found { work_id, nonce, hash, scanner } => {
                let Some(info) = self.works.get(&work_id) else {
                    self.stats.stale();
                    return;
                };
                if info.generation != self.generation {
                    self.stats.stale();
                    log::debug!("{scanner}: share for a job the pool replaced; dropped");
                    return;
                }
                // Scanners already re-checked the hash against the full share
                // target; check once more here, where the share is formed.
                if !info.job.share_target.is_met_by(&hash) {
                    self.stats.hw_error();
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
                if !self.seen.insert(key) {
                    self.stats.duplicate();
                    return;
                }
                let is_block = job.network_target().is_some_and(|t: Target| t.is_met_by(&hash));
                if is_block {
                    log::info!("*** BLOCK SOLVED *** {scanner} found {hash} for job {}", job.job_id);
                    self.stats.block();
                }
                self.stats.found();
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
                };
                if self.solutions.send(solution).is_ok() {
                    (self.wake)();
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
