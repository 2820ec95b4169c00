//! The one piece every scanner shares: the current work and its epoch.
//!
//! Replacing the work bumps the epoch; a scanner compares the epoch (one
//! atomic load) between chunks or dispatches, takes the new work when it
//! changed, and sleeps on the condvar while it has nothing to do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kiln_work::Work;

pub(crate) struct WorkSlot {
    current: Mutex<(u64, Option<Arc<Work>>)>,
    changed: Condvar,
    epoch: AtomicU64,
}

impl WorkSlot {
    pub(crate) fn new() -> Self {
        WorkSlot { current: Mutex::new((0, None)), changed: Condvar::new(), epoch: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Option<Arc<Work>>)> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs new work (or none) and returns its epoch.
    pub(crate) fn replace(&self, work: Option<Arc<Work>>) -> u64 {
        let mut slot = self.lock();
        let epoch = slot.0 + 1;
        *slot = (epoch, work);
        self.epoch.store(epoch, Ordering::Release);
        self.changed.notify_all();
        epoch
    }

    /// The latest epoch, without locking.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The current epoch and work.
    pub(crate) fn current(&self) -> (u64, Option<Arc<Work>>) {
        self.lock().clone()
    }

    /// Sleeps until the epoch moves past `seen`, `stop` is set, or 50 ms pass.
    pub(crate) fn wait_change(&self, seen: u64, stop: &AtomicBool) {
        let slot = self.lock();
        if slot.0 == seen && !stop.load(Ordering::Acquire) {
            let _ = self.changed.wait_timeout(slot, Duration::from_millis(50));
        }
    }

    /// Wakes every waiter (used when stopping).
    pub(crate) fn wake_all(&self) {
        let _guard = self.lock();
        self.changed.notify_all();
    }
}
