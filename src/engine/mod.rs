//! The coordinator between the network and the scanners.
//!
//! Jobs come in from the network; each scanner gets its own slice of the
//! job's search space (its own extranonce2, then rolled version bits), so no
//! two scanners ever hash the same header. Scanner events come back: every
//! share has already been re-hashed on the CPU against the full target; the
//! engine drops what is stale (the pool said clean_jobs since) or a
//! duplicate, flags block solutions, and hands the rest to the network.

pub mod miner;
pub mod stats;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::net::stratum::Share;
use crate::scan::{ScanEvent, Scanner};
use crate::work::{Job, Target, Work};
pub use stats::Stats;

/// What the network tells the engine.
#[derive(Clone, Debug)]
pub enum NetEvent {
    /// A new job (its share target already fixed).
    Job(Job),
    /// A (re)connection finished its subscription with this extranonce1.
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
    scanner: usize,
    generation: u64,
}

/// The engine's state.
pub struct Engine {
    scanners: Vec<Box<dyn Scanner>>,
    stats: Arc<Stats>,
    shares: Sender<Share>,
    wake: Box<dyn Fn() + Send>,
    works: HashMap<u64, WorkInfo>,
    next_work_id: u64,
    /// Bumped on clean_jobs: work of older generations is stale.
    generation: u64,
    job: Option<Arc<Job>>,
    /// Next slice of the current job's search space.
    next_slot: u64,
    seen: HashSet<Share>,
}

impl Engine {
    /// `wake` is called after each share is queued (the mio `Waker`).
    pub fn new(
        scanners: Vec<Box<dyn Scanner>>,
        stats: Arc<Stats>,
        shares: Sender<Share>,
        wake: Box<dyn Fn() + Send>,
    ) -> Self {
        stats.set_scanners(scanners.iter().map(|s| s.label()).collect());
        Engine {
            scanners,
            stats,
            shares,
            wake,
            works: HashMap::new(),
            next_work_id: 1,
            generation: 0,
            job: None,
            next_slot: 0,
            seen: HashSet::new(),
        }
    }

    /// Runs until `NetEvent::Shutdown` or both channels close.
    pub fn run(mut self, net: Receiver<NetEvent>, scans: Receiver<ScanEvent>) {
        let tick = crossbeam_channel::tick(Duration::from_millis(500));
        loop {
            crossbeam_channel::select! {
                recv(net) -> ev => match ev {
                    Ok(NetEvent::Shutdown) | Err(_) => break,
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
    pub fn on_net(&mut self, ev: NetEvent) -> Option<Duration> {
        match ev {
            NetEvent::Job(job) => {
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
            NetEvent::Subscribed { extranonce1 } => {
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
            NetEvent::Disconnected | NetEvent::Shutdown => None,
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
        self.works
            .insert(id, WorkInfo { job: Arc::clone(job), extranonce2, version, scanner, generation: self.generation });
        Some(Work::new(id, header, job.share_target))
    }

    /// Handles one scanner event.
    pub fn on_scan(&mut self, ev: ScanEvent) {
        match ev {
            ScanEvent::HardwareError { scanner, .. } => {
                self.stats.hw_error();
                crate::log_warn!("{scanner}: hardware error (a candidate failed the CPU re-check); not submitted");
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
                    crate::log_debug!("{scanner}: share for a job the pool replaced; dropped");
                    return;
                }
                // Scanners already re-checked the hash against the full share
                // target; check once more here, where the share is formed.
                if !info.job.share_target.is_met_by(&hash) {
                    self.stats.hw_error();
                    return;
                }
                let share = Share {
                    job_id: info.job.job_id.clone(),
                    extranonce1: info.job.extranonce1.clone(),
                    extranonce2: info.extranonce2.clone(),
                    ntime: info.job.ntime,
                    nonce,
                    version_bits: (info.job.version_mask != 0).then_some(info.version & info.job.version_mask),
                };
                if !self.seen.insert(share.clone()) {
                    self.stats.duplicate();
                    return;
                }
                if info.job.network_target().is_some_and(|t: Target| t.is_met_by(&hash)) {
                    crate::log_info!("*** BLOCK SOLVED *** {scanner} found {hash} for job {}", share.job_id);
                    self.stats.block();
                }
                self.stats.found();
                if self.shares.send(share).is_ok() {
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
