//! kiln: a Bitcoin mining and validation engine.
//!
//! Data flows one way: the network side (Stratum, getblocktemplate) turns pool
//! or node messages into jobs; the engine turns jobs into [`work::Work`] for the
//! scanners ([`scan::cpu`], [`scan::gpu`]); scanners report candidates that are
//! re-hashed on the CPU before anything is submitted. The validation side
//! checks whole blocks and their signatures.
//!
//! - [`sha256`]: compression, midstate, sha256d and the SIMD/SHA-NI scan kernels.
//! - [`work`]: headers, targets, difficulty, merkle roots, work units.
//! - [`scan`]: the CPU and GPU scanners.
//! - [`bench`]: the measurement behind `kiln bench`.

pub mod bench;
pub mod engine;
#[macro_use]
pub mod log;
pub mod net;
pub mod scan;
pub mod sha256;
pub mod validate;
pub mod work;
