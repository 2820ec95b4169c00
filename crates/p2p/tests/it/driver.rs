//! The driver against a scripted peer on 127.0.0.1 serving the 10,237 real
//! mainnet headers: a sync in six `getheaders` rounds (five full batches of
//! 2,000, then 236), and disconnection with a reason when the peer sends a
//! header with a broken proof of work or an oversized message.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bitcoin::Network;
use bitcoin::p2p::message::NetworkMessage;
use kiln_p2p::driver::{Driver, DriverError, DriverOptions};
use kiln_p2p::wire::{self, Decoder, WireError};
use kiln_p2p::{HeaderChain, HeaderError, PeerError};

const TIP: &str = "000000004f74d42205b9d7ae1cb5c1591e723894a71358fce73b7e0919628161";

#[derive(Clone, Copy, PartialEq)]
enum Misbehave {
    Nothing,
    /// Header 4,500's nonce is changed in the batch that carries it.
    BadHeader,
    /// After the handshake, a header claiming a 5 MB payload.
    Oversized,
    /// Every answer is headers 5..10, which never connect to genesis.
    Unconnecting,
}

/// A mainnet "node" that knows the first 10,237 headers and answers
/// `getheaders` as Core does (at most 2,000 after the first known locator hash).
fn scripted_peer(mode: Misbehave) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (chain, index) = crate::mainnet_chain();
        let magic = wire::magic(Network::Bitcoin);
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut d = Decoder::new(magic);
        let mut buf = [0u8; 4096];
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            d.feed(&buf[..n]);
            while let Ok(Some(m)) = d.next_message() {
                let mut reply = Vec::new();
                let mut send = |m: NetworkMessage| reply.extend(wire::encode_message(magic, m));
                match m {
                    NetworkMessage::Version(_) => {
                        send(crate::scripted_version(addr));
                        send(NetworkMessage::WtxidRelay);
                        send(NetworkMessage::Verack);
                    }
                    NetworkMessage::Verack if mode == Misbehave::Oversized => {
                        let mut f = magic.to_bytes().to_vec();
                        f.extend_from_slice(b"block\0\0\0\0\0\0\0");
                        f.extend_from_slice(&5_000_000u32.to_le_bytes());
                        f.extend_from_slice(&[0; 4]);
                        reply.extend(f);
                    }
                    NetworkMessage::GetHeaders(_) if mode == Misbehave::Unconnecting => {
                        send(NetworkMessage::Headers(chain[5..10].to_vec()));
                    }
                    NetworkMessage::GetHeaders(gh) => {
                        send(NetworkMessage::Headers(crate::headers_for(
                            &chain,
                            &index,
                            &gh,
                            mode == Misbehave::BadHeader,
                        )));
                    }
                    NetworkMessage::Ping(n) => send(NetworkMessage::Pong(n)),
                    _ => {}
                }
                if s.write_all(&reply).is_err() {
                    return;
                }
            }
        }
    });
    (addr, handle)
}

#[test]
fn syncs_real_mainnet_headers_in_batches_of_2000() {
    let (addr, peer) = scripted_peer(Misbehave::Nothing);
    let mut d = Driver::connect(addr, HeaderChain::new(Network::Bitcoin), DriverOptions::default()).unwrap();
    let t0 = Instant::now();
    d.run_until(t0 + Duration::from_secs(60), |c| c.best_hash().to_string() == TIP).unwrap();
    assert_eq!(d.chain().best_height(), 10_236);
    let stats = d.stats();
    assert_eq!((stats.getheaders_sent, stats.headers_messages, stats.headers_stored), (6, 6, 10_236));
    drop(d);
    peer.join().unwrap();
}

#[test]
fn disconnects_with_a_reason() {
    let (addr, peer) = scripted_peer(Misbehave::BadHeader);
    let mut d = Driver::connect(addr, HeaderChain::new(Network::Bitcoin), DriverOptions::default()).unwrap();
    let e = d.run_until(Instant::now() + Duration::from_secs(60), |_| false).unwrap_err();
    assert!(matches!(e, DriverError::BadHeader(HeaderError::HighHash { .. })), "{e}");
    assert!(e.to_string().contains("high-hash"), "{e}");
    // Everything before the bad header was kept.
    assert_eq!(d.chain().best_height(), 4499);
    drop(d);
    peer.join().unwrap();

    let (addr, peer) = scripted_peer(Misbehave::Oversized);
    let mut d = Driver::connect(addr, HeaderChain::new(Network::Bitcoin), DriverOptions::default()).unwrap();
    let e = d.run_until(Instant::now() + Duration::from_secs(60), |_| false).unwrap_err();
    assert!(matches!(e, DriverError::Peer(PeerError::Wire(WireError::Oversized { len: 5_000_000, .. }))), "{e}");
    drop(d);
    peer.join().unwrap();

    let (addr, peer) = scripted_peer(Misbehave::Unconnecting);
    let mut d = Driver::connect(addr, HeaderChain::new(Network::Bitcoin), DriverOptions::default()).unwrap();
    let e = d.run_until(Instant::now() + Duration::from_secs(60), |_| false).unwrap_err();
    assert!(matches!(e, DriverError::Unconnecting(11)), "{e}");
    assert_eq!(d.stats().getheaders_sent, 11);
    drop(d);
    peer.join().unwrap();

    // Nobody listening: an error, not a hang.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let opts = DriverOptions { connect_timeout: Duration::from_secs(2) };
    let t0 = Instant::now();
    match Driver::connect(closed, HeaderChain::new(Network::Bitcoin), opts) {
        Ok(mut d) => {
            let e = d.run_until(t0 + Duration::from_secs(10), |_| false).unwrap_err();
            assert!(
                matches!(e, DriverError::Io { .. } | DriverError::ConnectTimeout { .. } | DriverError::Closed),
                "{e}"
            );
        }
        Err(e) => assert!(matches!(e, DriverError::Io { .. }), "{e}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
}
