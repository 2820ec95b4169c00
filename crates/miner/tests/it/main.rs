//! kiln-miner integration tests: the engine, the Stratum session and client
//! against the loopback test pool (TCP and TLS), GPU mining through the miner.

mod gpu;
mod stratum;
mod tls;
