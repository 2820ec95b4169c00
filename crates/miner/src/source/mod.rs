//! Job sources: each turns what a pool or node says into [`crate::SourceEvent`]s
//! for the engine, and turns the engine's [`crate::Solution`]s into what its
//! protocol submits.

pub mod solo;
pub mod stratum;
