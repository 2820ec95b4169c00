//! kiln-validate integration tests: real mainnet blocks, BIP/Core/Wycheproof vectors.

mod batch;
mod rules;
mod validate;
mod vectors;
