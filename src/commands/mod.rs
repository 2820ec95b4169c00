//! One module per command; each takes validated options and returns an exit code.

pub mod bench;
pub mod devices;
pub mod mine;
pub mod node;
pub mod verify;
