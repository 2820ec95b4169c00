//! kiln-miner integration tests: the engine, the Stratum session and client
//! against the loopback test pool (TCP and TLS), hostile pools and API
//! clients, GPU mining through the miner, solo mining against a real
//! bitcoind.

mod gpu;
mod hostile;
mod logcap;
mod solo;
mod stratum;
mod tls;
