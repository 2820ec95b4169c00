//! Block building on real data: mainnet block 866342 re-expressed as the
//! getblocktemplate Core would have offered (`tests/data/gbt`).

mod mainnet;
