//! kiln-p2p's integration tests: the header chain on real mainnet headers and
//! mined regtest headers, the peer state machine against hostile bytes, the
//! BIP324 transport, the block download scheduler, the node against
//! scripted loopback peers, and the node against real `bitcoind -regtest`
//! processes (sync, serving, relay, reorg, hostile peers, v1 fallback).

mod blocks;
mod headers;
mod hostile;
mod multi;
mod node;
mod sync;
mod transport;

use std::collections::HashMap;

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;

/// The real mainnet headers a scripted peer serves, and their positions.
pub fn mainnet_chain() -> (Vec<Header>, HashMap<BlockHash, usize>) {
    let chain: Vec<Header> =
        kiln_testkit::data::mainnet_headers().iter().map(|b| bitcoin::consensus::deserialize(b).unwrap()).collect();
    let index = chain.iter().enumerate().map(|(i, h)| (h.block_hash(), i)).collect();
    (chain, index)
}

/// What an honest peer answers to `getheaders` (up to 2,000 headers after
/// the first locator hash it knows), with header 4,500's nonce flipped
/// when `corrupt` (a peer serving a header without proof of work).
pub fn headers_for(
    chain: &[Header],
    index: &HashMap<BlockHash, usize>,
    gh: &GetHeadersMessage,
    corrupt: bool,
) -> Vec<Header> {
    let from = gh.locator_hashes.iter().find_map(|h| index.get(h)).map_or(0, |i| i + 1);
    let mut batch = chain[from.min(chain.len())..(from + 2000).min(chain.len())].to_vec();
    if corrupt && (from..from + batch.len()).contains(&4500) {
        batch[4500 - from].nonce ^= 1;
    }
    batch
}

/// A scripted mainnet peer's `version` (70016, NODE_NETWORK, height 10,236).
pub fn scripted_version(addr: std::net::SocketAddr) -> bitcoin::p2p::message::NetworkMessage {
    use bitcoin::p2p::{Address, ServiceFlags, message_network::VersionMessage};
    let a = Address::new(&addr, ServiceFlags::NONE);
    let mut v = VersionMessage::new(ServiceFlags::NETWORK, 0, a.clone(), a, 1, "/scripted/".into(), 10236);
    v.version = 70016;
    bitcoin::p2p::message::NetworkMessage::Version(v)
}
