//! Bitcoin P2P for kiln, without I/O at its core: [`wire`] frames v1
//! messages with Core's limits checked before anything is allocated,
//! [`peer`] is one peer's state machine (bytes and time in, events and bytes
//! out), [`headers`] is a header chain with full header validation, and
//! [`driver`] is the thin mio loop that moves bytes for one outbound peer.

pub mod driver;
pub mod headers;
pub mod peer;
pub mod sync;
pub mod wire;

pub use headers::{Accepted, ChainParams, HeaderChain, HeaderError};
pub use peer::{Peer, PeerConfig, PeerError, PeerEvent};
pub use sync::{Action, PeerId, Sync, SyncConfig, SyncError};
pub use wire::{Decoder, WireError};
