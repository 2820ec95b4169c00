//! Scanners: the things that try nonces. Every scanner takes [`Work`] and
//! reports [`ScanEvent`]s; a found share has already been re-hashed on the
//! portable path and compared with the full 256-bit target.

pub mod bench;
pub mod cpu;
pub mod gpu;
pub mod selfcheck;
mod slot;

use kiln_work::{BlockHash, Work};

/// What a scanner reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEvent {
    /// A nonce whose full hash meets the work's target (checked on the CPU).
    Found { work_id: u64, nonce: u32, hash: BlockHash, scanner: String },
    /// A kernel reported a candidate whose hash does not pass even the cheap
    /// top-word test: the kernel (or the hardware) is wrong. Never submitted.
    HardwareError { work_id: u64, nonce: u32, scanner: String },
    /// The scanner finished its slice of this work's nonce range.
    Exhausted { work_id: u64, scanner: String },
}

/// The verdict on one kernel candidate after the portable re-hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// The full hash meets the full 256-bit target.
    Share(BlockHash),
    /// Only the top-word test passed: expected when the target's top word is
    /// not zero (easy pool targets).
    NearMiss,
    /// Not even the top-word test holds: the kernel or the hardware is wrong.
    HardwareError,
}

/// Re-checks a kernel candidate on the portable path.
pub fn recheck(work: &Work, nonce: u32) -> Recheck {
    let hash = work.hash(nonce);
    let top = u32::from_le_bytes(hash.0[28..32].try_into().expect("4 bytes"));
    if top > work.params.target_hi {
        Recheck::HardwareError
    } else if work.target.is_met_by(&hash) {
        Recheck::Share(hash)
    } else {
        Recheck::NearMiss
    }
}

/// Turns one kernel candidate into the event to report, if any.
pub(crate) fn candidate_event(work: &Work, nonce: u32, scanner: &str) -> Option<ScanEvent> {
    match recheck(work, nonce) {
        Recheck::Share(hash) => Some(ScanEvent::Found { work_id: work.id, nonce, hash, scanner: scanner.to_string() }),
        Recheck::NearMiss => None,
        Recheck::HardwareError => {
            Some(ScanEvent::HardwareError { work_id: work.id, nonce, scanner: scanner.to_string() })
        }
    }
}

/// Which kind of hardware a scanner drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScannerKind {
    Cpu,
    Gpu,
    /// Anything else (test doubles, future devices).
    Other,
}

/// What a scanner is, for monitoring (the dashboard, cgminer's `devs`):
/// facts fixed at start. The dispatch size, which changes, is
/// [`Scanner::dispatch_size`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannerInfo {
    pub kind: ScannerKind,
    /// The CPU kernel (`avx2`, `sha-ni`, ...) or the GPU's graphics API (`Vulkan`, ...).
    pub backend: String,
    /// The GPU adapter and its driver; empty for the CPU.
    pub device: String,
    /// Hashing threads (a GPU scanner is one thread driving the device).
    pub threads: usize,
}

/// What the engine needs from any scanner, CPU or GPU.
pub trait Scanner: Send {
    /// A short name for logs and stats (`cpu/avx512`, `gpu0`).
    fn label(&self) -> String;
    /// What this scanner is. The default suits scanners that are neither
    /// CPU nor GPU (test doubles): only the label is known.
    fn info(&self) -> ScannerInfo {
        ScannerInfo { kind: ScannerKind::Other, backend: String::new(), device: self.label(), threads: 1 }
    }
    /// Nonces per dispatch right now, for scanners that dispatch (GPUs
    /// autotune it); `None` for the others.
    fn dispatch_size(&self) -> Option<u64> {
        None
    }
    /// Replaces the current work; returns the epoch to wait for.
    fn set_work(&self, work: Work) -> u64;
    /// Stops hashing; returns the epoch to wait for.
    fn clear_work(&self) -> u64;
    /// True once nothing from work older than `epoch` can be reported.
    fn switched_to(&self, epoch: u64) -> bool;
    /// Nonces hashed so far.
    fn hashes(&self) -> u64;
}

impl Scanner for cpu::CpuScanner {
    fn label(&self) -> String {
        format!("cpu/{}x{}", self.backend().name(), self.threads())
    }
    fn info(&self) -> ScannerInfo {
        ScannerInfo {
            kind: ScannerKind::Cpu,
            backend: self.backend().name().to_string(),
            device: String::new(),
            threads: self.threads(),
        }
    }
    fn set_work(&self, work: Work) -> u64 {
        cpu::CpuScanner::set_work(self, work)
    }
    fn clear_work(&self) -> u64 {
        cpu::CpuScanner::clear_work(self)
    }
    fn switched_to(&self, epoch: u64) -> bool {
        self.all_switched_to(epoch)
    }
    fn hashes(&self) -> u64 {
        cpu::CpuScanner::hashes(self)
    }
}

impl Scanner for gpu::GpuScanner {
    fn label(&self) -> String {
        self.name().to_string()
    }
    fn info(&self) -> ScannerInfo {
        let d = self.adapter();
        ScannerInfo {
            kind: ScannerKind::Gpu,
            backend: d.backend.clone(),
            device: format!("{} ({})", d.name, d.driver),
            threads: 1,
        }
    }
    fn dispatch_size(&self) -> Option<u64> {
        Some(self.batch()).filter(|&n| n > 0)
    }
    fn set_work(&self, work: Work) -> u64 {
        gpu::GpuScanner::set_work(self, work)
    }
    fn clear_work(&self) -> u64 {
        gpu::GpuScanner::clear_work(self)
    }
    fn switched_to(&self, epoch: u64) -> bool {
        self.all_switched_to(epoch)
    }
    fn hashes(&self) -> u64 {
        gpu::GpuScanner::hashes(self)
    }
}
