//! A GPU scanner thread: keeps two dispatches in flight so the GPU never
//! waits for the host, re-checks every candidate on the CPU, and adapts the
//! dispatch size so that the GPU work queued at any moment (every dispatch in
//! flight together) takes about `switch_budget`: a work switch waits for at
//! most that much old work, whatever the GPU.
//!
//! Same contract as the CPU scanner: [`GpuScanner::set_work`] bumps an epoch;
//! the thread picks it up between dispatches, drops the results of dispatches
//! still in flight for older work, and only then acknowledges the epoch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::kernel::{Kernel, ONE_NONCE_OVERFLOW, Slot, split_overflowed};
use crate::slot::WorkSlot;
use crate::{ScanEvent, candidate_event};
use kiln_work::Work;

/// Dispatches queued at once.
const IN_FLIGHT: usize = 2;

/// How the dispatch size is chosen.
#[derive(Clone, Debug)]
pub struct GpuScannerOptions {
    /// GPU time queued ahead at most (all dispatches in flight together): the
    /// bound on a job switch. Each dispatch autotunes toward
    /// `switch_budget / IN_FLIGHT`.
    pub switch_budget: Duration,
    /// Fixed dispatch size of 2^N nonces instead of autotuning
    /// (`--gpu-intensity N`, 10..=32).
    pub intensity: Option<u32>,
}

impl Default for GpuScannerOptions {
    fn default() -> Self {
        GpuScannerOptions { switch_budget: Duration::from_millis(20), intensity: None }
    }
}

struct Shared {
    slot: WorkSlot,
    seen_epoch: AtomicU64,
    stop: AtomicBool,
    hashes: AtomicU64,
    batch: AtomicU64,
    error: Mutex<Option<String>>,
}

/// A thread driving one GPU.
pub struct GpuScanner {
    name: String,
    adapter: super::AdapterDesc,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl GpuScanner {
    /// Starts the thread; it idles until the first `set_work`.
    pub fn start(kernel: Kernel, opts: GpuScannerOptions, events: Sender<ScanEvent>) -> Self {
        let name = format!("gpu{}", kernel.desc.index);
        let adapter = kernel.desc.clone();
        let shared = Arc::new(Shared {
            slot: WorkSlot::new(),
            seen_epoch: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            hashes: AtomicU64::new(0),
            batch: AtomicU64::new(0),
            error: Mutex::new(None),
        });
        let sh = Arc::clone(&shared);
        let n = name.clone();
        let handle = std::thread::Builder::new()
            .name(format!("kiln-{name}"))
            .spawn(move || {
                if let Err(e) = run(&kernel, &opts, &sh, &events, &n) {
                    log::error!("{n} stopped: {e}");
                    *sh.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            })
            .expect("spawning the GPU thread");
        GpuScanner { name, adapter, shared, handle: Some(handle) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The adapter this scanner drives.
    pub fn adapter(&self) -> &super::AdapterDesc {
        &self.adapter
    }

    /// Replaces the current work; returns the new epoch.
    pub fn set_work(&self, work: Work) -> u64 {
        self.shared.slot.replace(Some(Arc::new(work)))
    }

    /// Stops hashing until the next `set_work`.
    pub fn clear_work(&self) -> u64 {
        self.shared.slot.replace(None)
    }

    /// True once the thread has moved to `epoch`: no event of older work follows.
    pub fn all_switched_to(&self, epoch: u64) -> bool {
        self.shared.seen_epoch.load(Ordering::Acquire) >= epoch
    }

    /// Nonces hashed so far (overflowed dispatches count once, when rescanned).
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }

    /// The current dispatch size in nonces.
    pub fn batch(&self) -> u64 {
        self.shared.batch.load(Ordering::Relaxed)
    }

    /// The error that stopped the thread, if it stopped.
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for GpuScanner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.slot.wake_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A dispatch in flight.
struct Flight {
    epoch: u64,
    work: Arc<Work>,
    start: u64,
    count: u64,
}

/// Dispatch sizes: whole workgroups (`granule` nonces each), and at most
/// `u32::MAX` nonces, since a dispatch's count is a u32 (2^32 would wrap to 0).
#[derive(Clone, Copy)]
struct DispatchSizes {
    granule: u64,
}

impl DispatchSizes {
    fn clamp(self, n: u64) -> u64 {
        let max = (u64::from(u32::MAX) / self.granule) * self.granule;
        ((n / self.granule) * self.granule).clamp(self.granule, max)
    }

    /// `--gpu-intensity N`: 2^N nonces (10..=32); else 2^16 to start autotuning from.
    fn initial(self, intensity: Option<u32>) -> u64 {
        self.clamp(1u64 << intensity.map_or(16, |i| i.clamp(10, 32)))
    }
}

fn run(
    k: &Kernel,
    opts: &GpuScannerOptions,
    sh: &Shared,
    events: &Sender<ScanEvent>,
    name: &str,
) -> Result<(), String> {
    let granule = k.granule() as u64;
    let sizes = DispatchSizes { granule };
    let mut batch = sizes.initial(opts.intensity);
    sh.batch.store(batch, Ordering::Relaxed);
    let mut slots: Vec<Slot> = (0..IN_FLIGHT).map(|i| k.new_slot(i)).collect();
    let mut flights: VecDeque<(usize, Flight)> = VecDeque::new();
    let mut free: Vec<usize> = (0..IN_FLIGHT).rev().collect();
    let mut current: Option<Arc<Work>> = None;
    let mut my_epoch = 0u64;
    let mut next = 0u64;
    let mut rescans: Vec<(u64, u64)> = Vec::new();
    let mut reported_exhausted = false;
    let mut last_done: Option<Instant> = None;

    loop {
        if sh.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if sh.slot.epoch() != my_epoch {
            (my_epoch, current) = sh.slot.current();
            next = current.as_ref().map_or(0, |w| w.nonce_start as u64);
            rescans.clear();
            reported_exhausted = false;
            // Results of dispatches still in flight for older work are
            // dropped when they arrive (their epoch no longer matches).
            sh.seen_epoch.store(my_epoch, Ordering::Release);
        }
        // Fill free slots with the next ranges of the current work.
        while let (Some(work), Some(&si)) = (current.as_ref(), free.last()) {
            let (start, count) = if let Some(r) = rescans.pop() {
                r
            } else if next < work.nonce_end {
                let n = batch.min(work.nonce_end - next);
                next += n;
                (next - n, n)
            } else {
                break;
            };
            free.pop();
            k.submit(&mut slots[si], &work.params, start as u32, count as u32);
            flights.push_back((si, Flight { epoch: my_epoch, work: Arc::clone(work), start, count }));
        }
        let Some((si, f)) = flights.pop_front() else {
            if let (Some(work), false) = (current.as_ref(), reported_exhausted) {
                let _ = events.send(ScanEvent::Exhausted { work_id: work.id, scanner: name.to_string() });
                reported_exhausted = true;
            }
            sh.slot.wait_change(my_epoch, &sh.stop);
            last_done = None;
            continue;
        };
        let r = k.wait(&mut slots[si]).map_err(|e| e.to_string())?;
        free.push(si);
        let now = Instant::now();
        if f.epoch != sh.seen_epoch.load(Ordering::Acquire) {
            continue; // stale: the switch was already acknowledged
        }
        if r.overflowed() {
            // More candidates than slots: split the range and scan it again.
            let halves = split_overflowed(f.start, f.count).ok_or(ONE_NONCE_OVERFLOW)?;
            rescans.extend(halves);
        } else {
            sh.hashes.fetch_add(f.count, Ordering::Relaxed);
            for &nonce in &r.nonces {
                if let Some(ev) = candidate_event(&f.work, nonce, name) {
                    let _ = events.send(ev);
                }
            }
        }
        // Autotune: with the queue kept full, the gap between completions is
        // the GPU time of one dispatch.
        if opts.intensity.is_none()
            && !r.overflowed()
            && f.count == batch
            && let Some(prev) = last_done
        {
            let took = now.duration_since(prev).as_secs_f64().max(1e-6);
            let want = opts.switch_budget.as_secs_f64() / IN_FLIGHT as f64;
            let factor = (want / took).clamp(0.5, 2.0);
            batch = sizes.clamp(((batch as f64) * factor) as u64);
            sh.batch.store(batch, Ordering::Relaxed);
        }
        last_done = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::DispatchSizes;

    #[test]
    fn every_dispatch_size_fits_a_u32_count() {
        for granule in [64u64, 256, 1024, 4096] {
            let s = DispatchSizes { granule };
            for i in 10..=32 {
                let n = s.initial(Some(i));
                assert!(n > 0 && n <= u64::from(u32::MAX) && n.is_multiple_of(granule), "intensity {i}: {n}");
            }
            assert_eq!(s.initial(Some(32)), (u64::from(u32::MAX) / granule) * granule);
            assert_eq!(s.clamp(u64::MAX / 2), s.initial(Some(32)), "autotune growth is capped the same way");
            assert_eq!(s.clamp(1), granule);
            assert_eq!(s.initial(None), 1 << 16);
        }
    }
}
