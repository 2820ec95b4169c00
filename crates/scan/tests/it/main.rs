//! kiln-scan integration tests: every hashing kernel against the scalar
//! reference and real headers, the CPU scanner, and the wgpu scanner
//! (lavapipe in CI).

mod gpu;
mod kernels;
mod scanner;
