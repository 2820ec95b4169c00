//! Scanners: the things that try nonces. Every scanner takes [`Work`] and
//! reports [`ScanEvent`]s; a found share has already been re-hashed on the
//! portable path and compared with the full 256-bit target.

pub mod cpu;
pub mod gpu;
pub mod selfcheck;

use crate::work::{BlockHash, Work};

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

/// Re-checks a kernel candidate: `Ok(Some(hash))` if it meets the full target,
/// `Ok(None)` if it only passed the top-word test (a near miss, expected for
/// easy top words), `Err(())` if it fails even that (a hardware error).
pub fn recheck(work: &Work, nonce: u32) -> Result<Option<BlockHash>, ()> {
    let hash = BlockHash(crate::sha256::sha256d_header(&work.header_with_nonce(nonce)));
    let top = u32::from_le_bytes(hash.0[28..32].try_into().unwrap());
    if top > work.params.target_hi {
        return Err(());
    }
    Ok(work.target.is_met_by(&hash).then_some(hash))
}

/// Turns one kernel candidate into the event to report, if any.
pub(crate) fn candidate_event(work: &Work, nonce: u32, scanner: &str) -> Option<ScanEvent> {
    match recheck(work, nonce) {
        Ok(Some(hash)) => Some(ScanEvent::Found { work_id: work.id, nonce, hash, scanner: scanner.to_string() }),
        Ok(None) => None,
        Err(()) => Some(ScanEvent::HardwareError { work_id: work.id, nonce, scanner: scanner.to_string() }),
    }
}
