//! kiln-p2p's integration tests: the header chain on real mainnet headers and
//! mined regtest headers, the peer state machine against hostile bytes, and
//! the driver against a real `bitcoind -regtest`.

mod driver;
mod headers;
mod hostile;
mod multi;
mod node;
mod sync;
