//! What flows through kiln: block headers, targets and difficulties, merkle
//! roots, and the work a scanner is handed. Byte-order quirks live in these
//! types so that no other module has to think about them.

pub mod header;
pub mod job;
pub mod merkle;
pub mod target;

pub use header::{BlockHash, Header, HeaderError};
pub use job::{Job, Work};
pub use target::{CompactTarget, Difficulty, Target, TargetError};
