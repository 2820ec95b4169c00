//! kiln-validate integration tests: real mainnet blocks, BIP/Core/Wycheproof vectors.

mod batch;
mod core_diff;
mod rules;
mod validate;
mod vectors;
