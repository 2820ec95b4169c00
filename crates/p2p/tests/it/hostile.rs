//! The peer state machine fed bytes by hand: the handshake in BIP339/BIP155
//! order, pings both ways, timeouts from the time passed in, and hostile
//! input (wrong magic, bad checksum, oversized lengths, 2,001 headers,
//! protocol-order violations, random payloads) giving errors, not panics.

use std::time::{Duration, Instant};

use bitcoin::Network;
use bitcoin::consensus::encode;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Address, ServiceFlags};
use kiln_p2p::wire::{self, Decoder, WireError};
use kiln_p2p::{Peer, PeerConfig, PeerError, PeerEvent};
use kiln_testkit::data::Rng;
use kiln_work::BlockHash;

const NET: Network = Network::Regtest;

fn decode_all(bytes: &[u8]) -> Vec<NetworkMessage> {
    let mut d = Decoder::new(wire::magic(NET));
    d.feed(bytes);
    let mut out = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        out.push(m);
    }
    assert_eq!(d.buffered(), 0);
    out
}

fn msg(m: NetworkMessage) -> Vec<u8> {
    wire::encode_message(wire::magic(NET), m)
}

fn frame(magic: [u8; 4], command: &str, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_vec();
    let mut cmd = [0u8; 12];
    cmd[..command.len()].copy_from_slice(command.as_bytes());
    v.extend_from_slice(&cmd);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&sha256d::Hash::hash(payload).to_byte_array()[..4]);
    v.extend_from_slice(payload);
    v
}

fn their_version(version: u32, nonce: u64) -> NetworkMessage {
    let addr = "127.0.0.1:18444".parse().unwrap();
    let mut v = VersionMessage::new(
        ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        1_700_000_000,
        Address::new(&addr, ServiceFlags::NONE),
        Address::new(&addr, ServiceFlags::NONE),
        nonce,
        "/Satoshi:28.0.0/\u{7}bell".into(),
        42,
    );
    v.version = version;
    NetworkMessage::Version(v)
}

fn config() -> PeerConfig {
    PeerConfig::new(NET, 7, 1_700_000_000, 0x1234_5678)
}

/// A peer past the handshake, its outgoing queue emptied.
fn ready(now: Instant) -> Peer {
    let (mut p, _) = Peer::new(config(), now);
    p.receive(&msg(their_version(70016, 99)), now).unwrap();
    p.receive(&msg(NetworkMessage::Verack), now).unwrap();
    p.take_outgoing();
    p
}

#[test]
fn handshake_in_bip339_order_then_pings_and_getheaders() {
    let t0 = Instant::now();
    let (mut p, first) = Peer::new(config(), t0);
    let sent = decode_all(&first);
    let [NetworkMessage::Version(v)] = &sent[..] else { panic!("{sent:?}") };
    assert_eq!(
        (v.version, v.services, v.relay, v.start_height, v.nonce),
        (70016, ServiceFlags::NONE, false, 7, 0x1234_5678)
    );

    let ev = p.receive(&msg(their_version(70016, 99)), t0).unwrap();
    assert!(
        matches!(&ev[..], [PeerEvent::Version { version: 70016, start_height: 42, user_agent, .. }] if user_agent == "/Satoshi:28.0.0/?bell")
    );
    assert_eq!(
        decode_all(&p.take_outgoing()),
        [NetworkMessage::WtxidRelay, NetworkMessage::SendAddrV2, NetworkMessage::Verack]
    );
    assert!(!p.is_ready());
    assert_eq!(p.request_headers(&[BlockHash::default()]), Err(PeerError::NotReady));
    // Feature negotiation and unrelated messages before verack are fine.
    let ev = p
        .receive(
            &[msg(NetworkMessage::WtxidRelay), msg(NetworkMessage::SendAddrV2), msg(NetworkMessage::FeeFilter(1000))]
                .concat(),
            t0,
        )
        .unwrap();
    assert!(ev.is_empty());

    let ev = p.receive(&msg(NetworkMessage::Verack), t0).unwrap();
    assert_eq!(ev, [PeerEvent::HandshakeDone]);
    assert_eq!(decode_all(&p.take_outgoing()), [NetworkMessage::SendHeaders]);

    // Our ping goes out at once after the handshake, the next after two minutes.
    p.poll_tick(t0).unwrap();
    let [NetworkMessage::Ping(nonce)] = decode_all(&p.take_outgoing())[..] else { panic!() };
    let ev = p.receive(&msg(NetworkMessage::Pong(nonce ^ 1)), t0).unwrap();
    assert!(ev.is_empty(), "a wrong nonce is not an answer");
    let ev = p.receive(&msg(NetworkMessage::Pong(nonce)), t0 + Duration::from_millis(30)).unwrap();
    assert_eq!(ev, [PeerEvent::Pong { rtt: Duration::from_millis(30) }]);
    p.poll_tick(t0 + Duration::from_secs(60)).unwrap();
    assert!(!p.wants_write());
    p.poll_tick(t0 + Duration::from_secs(120)).unwrap();
    let [NetworkMessage::Ping(n2)] = decode_all(&p.take_outgoing())[..] else { panic!() };
    assert_ne!(n2, nonce);

    // Their pings are answered.
    p.receive(&msg(NetworkMessage::Ping(77)), t0).unwrap();
    assert_eq!(decode_all(&p.take_outgoing()), [NetworkMessage::Pong(77)]);

    let locator = [BlockHash([1; 32]), BlockHash([2; 32])];
    p.request_headers(&locator).unwrap();
    let [NetworkMessage::GetHeaders(gh)] = &decode_all(&p.take_outgoing())[..] else { panic!() };
    assert_eq!(gh.version, 70016);
    assert_eq!(gh.locator_hashes.iter().map(|h| h.to_byte_array()).collect::<Vec<_>>(), [[1; 32], [2; 32]]);
    assert_eq!(gh.stop_hash.to_byte_array(), [0; 32]);

    let genesis = bitcoin::constants::genesis_block(NET).header;
    let ev = p.receive(&msg(NetworkMessage::Headers(vec![genesis; 2])), t0).unwrap();
    assert_eq!(ev, [PeerEvent::Headers(vec![genesis; 2])]);
    let inv = NetworkMessage::Inv(vec![bitcoin::p2p::message_blockdata::Inventory::Block(genesis.block_hash())]);
    let ev = p.receive(&msg(inv), t0).unwrap();
    assert!(matches!(&ev[..], [PeerEvent::BlocksAnnounced(h)] if h.len() == 1));
    // Ignored for now, but decoded and bounded.
    p.receive(
        &[msg(NetworkMessage::FeeFilter(1)), msg(NetworkMessage::Addr(vec![])), msg(NetworkMessage::SendHeaders)]
            .concat(),
        t0,
    )
    .unwrap();
    assert!(p.peer_wants_headers);
}

#[test]
fn timeouts_come_from_the_time_passed_in() {
    let t0 = Instant::now();
    let (mut p, _) = Peer::new(config(), t0);
    p.poll_tick(t0 + Duration::from_secs(59)).unwrap();
    assert_eq!(p.next_deadline(), t0 + Duration::from_secs(60));
    assert!(matches!(p.poll_tick(t0 + Duration::from_secs(60)), Err(PeerError::HandshakeTimeout(_))));

    let mut p = ready(t0);
    p.poll_tick(t0).unwrap();
    assert!(p.wants_write());
    p.poll_tick(t0 + Duration::from_secs(19 * 60)).unwrap();
    assert!(matches!(p.poll_tick(t0 + Duration::from_secs(20 * 60)), Err(PeerError::PingTimeout(_))));
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    let t0 = Instant::now();
    let magic = wire::magic(NET).to_bytes();

    let mut p = ready(t0);
    let wrong = frame(wire::magic(Network::Bitcoin).to_bytes(), "ping", 8, &[0; 8]);
    assert!(matches!(p.receive(&wrong, t0), Err(PeerError::Wire(WireError::WrongMagic { .. }))));

    let mut p = ready(t0);
    let mut bad = frame(magic, "ping", 8, &[0; 8]);
    bad[30] ^= 0xff;
    assert!(matches!(p.receive(&bad, t0), Err(PeerError::Wire(WireError::BadChecksum { .. }))));

    // A header claiming 4 GB: refused from the 24 header bytes alone.
    let mut p = ready(t0);
    let huge = frame(magic, "block", u32::MAX, &[]);
    assert!(matches!(p.receive(&huge[..24], t0), Err(PeerError::Wire(WireError::Oversized { len: u32::MAX, .. }))));
    // An allowed but large claim: only what arrived is held.
    let mut p = ready(t0);
    let mut big = frame(magic, "block", 4_000_000, &[]);
    big.extend_from_slice(&[0; 100]);
    assert!(p.receive(&big, t0).unwrap().is_empty());
    assert_eq!(p.buffered(), 124);

    // 2,001 headers (a real-looking payload): refused before decoding.
    let mut p = ready(t0);
    let genesis = bitcoin::constants::genesis_block(NET).header;
    let mut payload = encode::serialize(&encode::VarInt(2001));
    for _ in 0..2001 {
        payload.extend_from_slice(&encode::serialize(&genesis));
        payload.push(0);
    }
    let f = frame(magic, "headers", payload.len() as u32, &payload);
    let e = p.receive(&f, t0).unwrap_err();
    assert!(matches!(e, PeerError::Wire(WireError::TooManyEntries { count: 2001, max: 2000, .. })), "{e}");
    // 2,000 are fine.
    let mut p = ready(t0);
    payload.splice(0..3, encode::serialize(&encode::VarInt(2000)));
    payload.truncate(payload.len() - 81);
    let f = frame(magic, "headers", payload.len() as u32, &payload);
    assert!(matches!(&p.receive(&f, t0).unwrap()[..], [PeerEvent::Headers(h)] if h.len() == 2000));

    // Protocol order.
    let (mut p, _) = Peer::new(config(), t0);
    assert!(matches!(p.receive(&msg(NetworkMessage::Verack), t0), Err(PeerError::BeforeVersion { .. })));
    let (mut p, _) = Peer::new(config(), t0);
    assert_eq!(p.receive(&msg(their_version(70016, 0x1234_5678)), t0), Err(PeerError::SelfConnection));
    let (mut p, _) = Peer::new(config(), t0);
    assert_eq!(p.receive(&msg(their_version(209, 5)), t0), Err(PeerError::ObsoleteVersion { version: 209 }));
    let mut p = ready(t0);
    assert!(matches!(p.receive(&msg(NetworkMessage::WtxidRelay), t0), Err(PeerError::LateNegotiation { .. })));
    // An older peer gets no wtxidrelay and (below 70012) no sendheaders.
    let (mut p, _) = Peer::new(config(), t0);
    p.receive(&msg(their_version(70001, 5)), t0).unwrap();
    assert_eq!(decode_all(&p.take_outgoing()), [NetworkMessage::SendAddrV2, NetworkMessage::Verack]);
    p.receive(&msg(NetworkMessage::Verack), t0).unwrap();
    assert!(!p.wants_write());

    // Random payloads under every command the peer decodes: errors or
    // events, never a panic.
    let mut rng = Rng(0x5eed);
    for command in [
        "version",
        "verack",
        "ping",
        "pong",
        "headers",
        "inv",
        "getdata",
        "getheaders",
        "addr",
        "addrv2",
        "sendcmpct",
        "feefilter",
        "block",
        "tx",
        "junk",
    ] {
        for _ in 0..200 {
            let mut p = ready(t0);
            let len = (rng.next_u32() % 300) as usize;
            let mut payload = vec![0u8; len];
            rng.fill(&mut payload);
            let _ = p.receive(&frame(magic, command, len as u32, &payload), t0);
        }
    }
}
