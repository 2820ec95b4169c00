//! Test-only helpers shared by kiln's crates: the real data in the
//! repository's `tests/data` (see its README for provenance), the real
//! blocks and their mutations, and a loopback Stratum test pool that checks
//! every share independently with `sha2`.

pub mod blocks;
pub mod data;
pub mod pool;
