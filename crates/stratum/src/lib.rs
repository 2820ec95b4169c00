//! Stratum V1: framing ([`codec`]), message types ([`messages`]) and the
//! client state machine ([`session`]).

pub mod codec;
pub mod messages;
pub mod session;

pub use messages::{PrevHash, RejectReason};
pub use session::{Event, Session, SessionConfig, Share};
