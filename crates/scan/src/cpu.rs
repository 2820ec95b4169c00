//! The CPU scanner: N OS threads, each scanning its own slice of the current
//! work's nonce range with one sha256 backend.
//!
//! Work switching is an epoch counter: [`CpuScanner::set_work`] bumps it, and
//! each thread compares it after every chunk. Chunks are sized adaptively to
//! about a quarter of a millisecond of hashing, so a switch lands within the
//! 1 ms bound whatever the backend's speed. A thread reports the events of its
//! last old chunk *before* it acknowledges the new epoch, so once
//! [`CpuScanner::all_switched_to`] holds, nothing from older work can follow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::slot::WorkSlot;
use super::{ScanEvent, candidate_event};
use kiln_hash::Backend;
use kiln_work::Work;

/// Hashing time one chunk aims at: well inside the 1 ms switch bound.
const CHUNK_TARGET: Duration = Duration::from_micros(250);

struct Shared {
    slot: WorkSlot,
    stop: AtomicBool,
    hashes: Vec<AtomicU64>,
    seen_epoch: Vec<AtomicU64>,
}

/// A pool of CPU hashing threads.
pub struct CpuScanner {
    backend: Backend,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl CpuScanner {
    /// Starts `threads` idle workers (at least one) that report to `events`.
    pub fn start(backend: Backend, threads: usize, events: Sender<ScanEvent>) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            slot: WorkSlot::new(),
            stop: AtomicBool::new(false),
            hashes: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            seen_epoch: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        });
        let handles = (0..threads)
            .map(|t| {
                let shared = Arc::clone(&shared);
                let events = events.clone();
                std::thread::Builder::new()
                    .name(format!("kiln-cpu-{t}"))
                    .spawn(move || worker(backend, t, threads, &shared, &events))
                    .expect("spawning a hashing thread")
            })
            .collect();
        CpuScanner { backend, shared, handles }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Replaces the current work; returns the new epoch. Threads switch at their
    /// next chunk boundary.
    pub fn set_work(&self, work: Work) -> u64 {
        self.shared.slot.replace(Some(Arc::new(work)))
    }

    /// Stops hashing until the next `set_work`.
    pub fn clear_work(&self) -> u64 {
        self.shared.slot.replace(None)
    }

    /// True once every thread has moved to `epoch` (or later).
    pub fn all_switched_to(&self, epoch: u64) -> bool {
        self.shared.seen_epoch.iter().all(|e| e.load(Ordering::Acquire) >= epoch)
    }

    /// Nonces hashed so far, all threads together.
    pub fn hashes(&self) -> u64 {
        self.per_thread_hashes().iter().sum()
    }

    /// Nonces hashed so far by each thread.
    pub fn per_thread_hashes(&self) -> Vec<u64> {
        self.shared.hashes.iter().map(|h| h.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for CpuScanner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.slot.wake_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The slice `t` of `threads` of a work's nonce range.
fn slice_of(work: &Work, t: usize, threads: usize) -> (u64, u64) {
    let len = work.len();
    let start = work.nonce_start as u64;
    let per = len / threads as u64;
    let extra = len % threads as u64;
    let t = t as u64;
    let s = start + t * per + t.min(extra);
    let e = s + per + u64::from(t < extra);
    (s, e)
}

fn worker(backend: Backend, t: usize, threads: usize, shared: &Shared, events: &Sender<ScanEvent>) {
    let name = format!("cpu{t}/{}", backend.name());
    let width = backend.kind().width() as u64;
    let mut chunk: u64 = width * 256;
    let mut current: Option<Arc<Work>> = None;
    let mut my_epoch = 0u64;
    let (mut next, mut end) = (0u64, 0u64);
    let mut found = Vec::new();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if shared.slot.epoch() != my_epoch {
            (my_epoch, current) = shared.slot.current();
            if let Some(w) = &current {
                (next, end) = slice_of(w, t, threads);
            }
            shared.seen_epoch[t].store(my_epoch, Ordering::Release);
        }
        let Some(work) = current.as_ref().filter(|_| next < end) else {
            // Idle: wait for new work (bounded, so `stop` is seen promptly).
            shared.slot.wait_change(my_epoch, &shared.stop);
            continue;
        };
        let n = chunk.min(end - next);
        let started = Instant::now();
        found.clear();
        backend.scan(&work.params, next as u32, n as u32, &mut found);
        let took = started.elapsed();
        shared.hashes[t].fetch_add(n, Ordering::Relaxed);
        for &nonce in &found {
            if let Some(ev) = candidate_event(work, nonce, &name) {
                let _ = events.send(ev);
            }
        }
        next += n;
        if next == end {
            let _ = events.send(ScanEvent::Exhausted { work_id: work.id, scanner: name.clone() });
        }
        // Adapt the chunk toward CHUNK_TARGET, keeping it a multiple of the width.
        if n == chunk {
            if took < CHUNK_TARGET / 2 && chunk < (1 << 24) {
                chunk *= 2;
            } else if took > CHUNK_TARGET * 2 && chunk > width {
                chunk = (chunk / 2).max(width);
            }
        }
    }
}
