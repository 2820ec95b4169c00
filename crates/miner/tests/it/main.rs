//! kiln-miner integration tests: the engine, the Stratum session and client
//! against the loopback test pool (TCP and TLS), hostile pools and API
//! clients, GPU mining through the miner.

mod gpu;
mod hostile;
mod logcap;
mod stratum;
mod tls;
