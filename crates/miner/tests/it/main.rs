//! kiln-miner integration tests: the engine, the Stratum session and client
//! against the loopback test pool (TCP and TLS), hostile pools and API
//! clients, GPU mining through the miner, solo mining against a real
//! bitcoind, the dashboard in headless Chromium, the cgminer API with a
//! client written from cgminer's documentation.

mod cgminer;
mod dashboard;
mod gpu;
mod hostile;
mod logcap;
mod solo;
mod stratum;
mod tls;
