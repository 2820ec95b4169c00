//! The several-peer driver against scripted peers on 127.0.0.1 serving the
//! real mainnet headers (minimum chain work lowered to zero so they are
//! stored): a silent sync peer is dropped as stalled and another finishes
//! the sync; a peer sending a bad header is dropped alone; a peer that
//! hangs up is dialled again with back-off.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bitcoin::Network;
use bitcoin::p2p::message::NetworkMessage;
use kiln_p2p::node::{NodeDriver, NodeOptions};
use kiln_p2p::wire::{self, Decoder};
use kiln_p2p::{ChainParams, HeaderChain, SyncConfig};

const TIP: &str = "000000004f74d42205b9d7ae1cb5c1591e723894a71358fce73b7e0919628161";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Serve,
    /// Handshakes, answers pings, never answers getheaders.
    Silent,
    /// Header 4,500's nonce is changed.
    BadHeader,
    /// Hangs up right after the handshake.
    HangUp,
}

/// A scripted mainnet peer accepting up to `conns` connections one after
/// another; `delay` before answering `version`. Returns the address and
/// the count of connections accepted.
fn scripted(mode: Mode, delay: Duration, conns: u32) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&accepted);
    thread::spawn(move || {
        let (chain, index) = crate::mainnet_chain();
        let magic = wire::magic(Network::Bitcoin);
        for _ in 0..conns {
            let Ok((mut s, _)) = listener.accept() else { return };
            count.fetch_add(1, Ordering::SeqCst);
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut d = Decoder::new(magic);
            let mut buf = [0u8; 4096];
            'conn: loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                d.feed(&buf[..n]);
                while let Ok(Some(m)) = d.next_message() {
                    let mut reply = Vec::new();
                    let mut send = |m: NetworkMessage| reply.extend(wire::encode_message(magic, m));
                    match m {
                        NetworkMessage::Version(_) => {
                            thread::sleep(delay);
                            send(crate::scripted_version(addr));
                            send(NetworkMessage::Verack);
                        }
                        NetworkMessage::Verack if mode == Mode::HangUp => break 'conn,
                        NetworkMessage::GetHeaders(_) if mode == Mode::Silent => {}
                        NetworkMessage::GetHeaders(gh) => {
                            send(NetworkMessage::Headers(crate::headers_for(
                                &chain,
                                &index,
                                &gh,
                                mode == Mode::BadHeader,
                            )));
                        }
                        NetworkMessage::Ping(n) => send(NetworkMessage::Pong(n)),
                        _ => {}
                    }
                    if s.write_all(&reply).is_err() {
                        break 'conn;
                    }
                }
            }
        }
    });
    (addr, accepted)
}

fn mainnet_no_min_work() -> HeaderChain {
    let mut p = ChainParams::for_network(Network::Bitcoin);
    p.min_chain_work = bitcoin::Work::from_le_bytes([0; 32]);
    HeaderChain::with_params(p)
}

#[test]
fn stalled_sync_peer_is_replaced_and_a_bad_peer_dropped_alone() {
    // The silent peer answers first (the others 1.5 s and 3 s later, a wide
    // margin on a loaded machine), so it becomes the sync peer.
    let (silent, _) = scripted(Mode::Silent, Duration::ZERO, 1);
    let (bad, _) = scripted(Mode::BadHeader, Duration::from_millis(1500), 1);
    let (good, _) = scripted(Mode::Serve, Duration::from_millis(3000), 1);
    let opts = NodeOptions {
        sync: SyncConfig { stall_timeout: Duration::from_secs(1), ..SyncConfig::default() },
        reconnect_min: Duration::from_secs(30),
        // The scripted peers speak v1 only and accept a set number of connections.
        v2: false,
        ..NodeOptions::default()
    };
    let mut n = NodeDriver::new(&[silent, bad, good], mainnet_no_min_work(), opts).unwrap();
    let t0 = Instant::now();
    let done = n.run_until(t0 + Duration::from_secs(30), |n| n.chain().best_hash().to_string() == TIP).unwrap();
    let peers = n.peers();
    assert!(done, "kiln at {}; {peers:?}", n.chain().best_height());
    assert_eq!(n.chain().best_height(), 10_236);
    assert_eq!(n.sync().stats().stalls, 1);
    let reason = |a: SocketAddr| peers.iter().find(|p| p.0 == a).unwrap().1.last_error.clone().unwrap_or_default();
    assert!(reason(silent).contains("no answer to getheaders"), "{peers:?}");
    // The bad peer took over from the silent one and was dropped at header 4,500.
    assert!(reason(bad).contains("high-hash"), "{peers:?}");
    assert!(reason(good).is_empty(), "{peers:?}");
    assert!(t0.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_peer_that_hangs_up_is_dialled_again_with_back_off() {
    let (addr, accepted) = scripted(Mode::HangUp, Duration::ZERO, 3);
    let opts = NodeOptions {
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_millis(400),
        v2: false,
        ..NodeOptions::default()
    };
    let mut n = NodeDriver::new(&[addr], mainnet_no_min_work(), opts).unwrap();
    let done = n.run_until(Instant::now() + Duration::from_secs(10), |_| accepted.load(Ordering::SeqCst) >= 3).unwrap();
    assert!(done, "{:?}", n.peers());
    let (_, info) = &n.peers()[0];
    assert!(info.connections >= 2, "{info:?}");
    assert!(info.last_error.as_deref().unwrap_or("").contains("closed"), "{info:?}");
}

/// kiln told to connect to its own listening address notices its own
/// `version` nonce on the inbound side and drops the connection.
#[test]
fn a_connection_to_ourselves_is_dropped() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = kiln_testkit::TempDir::new("self-connect");
    let store = kiln_store::BlockStore::open(dir.path()).unwrap();
    let opts = NodeOptions { listen: Some(addr), reconnect_min: Duration::from_secs(30), ..NodeOptions::default() };
    let mut n = NodeDriver::with_store(&[addr], HeaderChain::new(Network::Regtest), store, opts).unwrap();
    let dropped = n
        .run_until(Instant::now() + Duration::from_secs(10), |n| {
            n.peers()[0].1.last_error.as_deref().is_some_and(|e| !e.is_empty())
        })
        .unwrap();
    assert!(dropped, "{:?} {:?}", n.peers(), n.connections());
    assert!(n.connections().iter().all(|c| !c.ready), "{:?}", n.connections());
    assert!(n.stats().disconnects >= 1);
    // Without the nonce check both ends would finish the handshake and the
    // loop would run to its deadline with no error.
    assert!(!n.peers()[0].1.ready);
}
