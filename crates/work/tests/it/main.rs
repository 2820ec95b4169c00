//! kiln-work integration tests: real mainnet headers through kiln's header, target and hash types.

mod headers;
