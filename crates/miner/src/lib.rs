//! Mining: the engine between job sources and scanners, the job sources
//! themselves, the counters, and the read-only monitoring API.
//!
//! ```text
//! pool ─bytes─▶ source::stratum (mio loop + kiln_stratum::Session) ─SourceEvent─▶ engine ─Work─▶ scanners
//!                     ▲                                                              │
//!                     └──────────── Share ◀── source::stratum::share_of ◀── Solution ┘
//! node ─HTTP─▶ source::solo (mio loop + kiln_gbt) ─Job─▶ engine … Solution ─▶ Template::assemble ─▶ check ─▶ submitblock
//! ```
//!
//! - [`engine`]: jobs → disjoint work per scanner → re-checked [`engine::Solution`]s; no protocol.
//! - [`source`]: where jobs come from and where solutions go (Stratum pools; solo against Bitcoin Core).
//! - [`stats`]: counters below both the engine and the sources.
//! - [`api`]: read-only HTTP: the dashboard, JSON and Prometheus.
//! - [`cgminer`]: read-only cgminer RPC API (for tools written for cgminer).
//! - `serve`: what both servers share (deadline, size and connection caps).
//! - [`miner`]: starts and stops all of the above for `kiln mine`.

pub mod api;
pub mod cgminer;
pub mod engine;
pub mod miner;
mod serve;
pub mod source;
pub mod stats;

pub use engine::{Engine, Solution, SourceEvent};
pub use miner::{JobSource, Miner, MinerConfig, MinerError};
pub use stats::Stats;
