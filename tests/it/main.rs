//! kiln's integration tests: one binary, one module per area, real data from
//! tests/data (see its README for provenance).

mod batch;
mod cli;
mod data;
mod gpu;
mod headers;
mod kernels;
mod pool;
mod scanner;
mod stratum;
mod tls;
mod validate;
mod vectors;
