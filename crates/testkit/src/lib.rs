//! Test-only helpers shared by kiln's crates.
//!
//! - [`data`]: the real files in the repository's `tests/data` (see its README
//!   for provenance); [`blocks`]: the real blocks with their spent outputs,
//!   read independently of kiln-validate, and mutations of them.
//! - [`pool`]: a loopback Stratum pool that re-hashes every share with `sha2`
//!   and misbehaves on request.
//! - [`node`]: a real Bitcoin Core `bitcoind -regtest` on 127.0.0.1 with its
//!   own datadir and free ports, stopped on drop even when a test fails
//!   ([`Node`], [`require_node!`]); [`rpc`]: a small blocking JSON-RPC client;
//!   [`regtest`]: keys, addresses, funding, signing (Core for P2PKH/P2WPKH/
//!   P2SH-P2WPKH, rust-bitcoin for P2TR), block building, `submitblock` and
//!   spent-output lookups. [`tmp`]: scratch directories removed on drop.
//!
//! Finding `bitcoind`: `$BITCOIND`, else `bitcoind` on `$PATH`. With neither,
//! node tests skip (printing "skipped: no bitcoind (set BITCOIND)") unless
//! `KILN_REQUIRE_BITCOIND=1`, which makes them fail. `scripts/bitcoind`
//! prints (and if needed builds) a usable binary; `scripts/test` uses it.

pub mod blocks;
pub mod data;
pub mod node;
pub mod pool;
pub mod regtest;
pub mod rpc;
pub mod tmp;

pub use bitcoin;
pub use node::{Auth, Node, NodeError, NodeOptions};
pub use rpc::{JsonRpcVersion, RpcClient, RpcError};
pub use serde_json;
pub use tmp::TempDir;
