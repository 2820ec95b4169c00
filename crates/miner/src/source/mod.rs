//! Job sources: each turns what a pool or node says into [`crate::SourceEvent`]s
//! for the engine, and turns the engine's [`crate::Solution`]s into what its
//! protocol submits.

pub mod solo;
pub mod stratum;

/// A seed for back-off jitter: different per process and per start, so many
/// miners that lost the same pool or node do not retry in lockstep.
pub(crate) fn seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)) | 1
}

/// xorshift64: plenty for jitter, nothing else.
pub(crate) fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}
