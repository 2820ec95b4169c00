//! Stratum V1: framing ([`codec`]), message types ([`messages`]), the
//! client state machine ([`session`]) and making the pool's text safe to log
//! ([`text`]).

pub mod codec;
pub mod messages;
pub mod session;
pub mod text;

pub use messages::{PrevHash, RejectReason};
pub use session::{Event, Session, SessionConfig, Share};
pub use text::sanitize;
