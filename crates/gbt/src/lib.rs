//! Solo mining against Bitcoin Core, without I/O.
//!
//! ```text
//! http (bytes ⇄ responses) ─▶ rpc (JSON-RPC envelope, errors, auth)
//!   ─▶ template (getblocktemplate ─▶ Job for the engine;
//!                solved Job ─▶ Block ─▶ re-check ─▶ submitblock)
//! chain: the node's network, the payout address, cookie paths
//! ```
//!
//! The mio loop that moves the bytes lives in `kiln-miner`'s solo source;
//! everything that decides lives here and is tested without a socket.

pub mod chain;
pub mod http;
pub mod rpc;
pub mod template;

pub use rpc::{Auth, Dialect, Endpoint, RpcError};
pub use template::{CheckError, Template, TemplateError};
