//! The network side: Stratum V1 ([`stratum`]) driven by a mio loop
//! ([`client`]), and the read-only monitoring endpoint ([`api`]).

pub mod api;
pub mod client;
pub mod stratum;
