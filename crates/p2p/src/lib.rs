//! Bitcoin P2P for kiln, without I/O at its core: [`wire`] frames v1
//! messages with Core's limits checked before anything is allocated,
//! [`peer`] is one peer's state machine (bytes and time in, events and bytes
//! out), [`headers`] is a header chain with full header validation,
//! [`sync`] decides header sync over several peers (sync peer, stalls,
//! Core-style presync against low-work headers, a cap on fork headers),
//! [`transport`] carries the frames as v1 bytes or BIP324 v2 packets,
//! [`blocks`] schedules block downloads over several peers (moving window,
//! stall detection), and [`node`] is the thin mio loop over outbound and
//! inbound peers that checks, stores, serves and relays blocks.

pub mod blocks;
pub mod headers;
pub mod node;
pub mod peer;
pub mod sync;
pub mod transport;
pub mod wire;

pub use headers::{Accepted, ChainParams, HeaderChain, HeaderError};
pub use peer::{Peer, PeerConfig, PeerError, PeerEvent};
pub use sync::{Action, PeerId, Sync, SyncConfig, SyncError};
pub use wire::{Decoder, WireError};
