//! BIP324 v2 transport without sockets: an outbound and an inbound
//! transport complete the handshake over bytes delivered one at a time,
//! then carry v1 frames both ways unchanged (short IDs and 12-byte
//! commands alike); a flipped ciphertext byte is a decryption error; an
//! inbound v1 peer is detected from its first bytes and passed through.

use bitcoin::Network;
use bitcoin::p2p::message::NetworkMessage;
use kiln_p2p::transport::{Transport, TransportError};
use kiln_p2p::wire::{self, Decoder};

fn frames(msgs: &[NetworkMessage]) -> Vec<u8> {
    let magic = wire::magic(Network::Regtest);
    msgs.iter().flat_map(|m| wire::encode_message(magic, m.clone())).collect()
}

fn decode(bytes: &[u8]) -> Vec<NetworkMessage> {
    let mut d = Decoder::new(wire::magic(Network::Regtest));
    d.feed(bytes);
    let mut out = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        out.push(m);
    }
    out
}

/// Moves everything `from` has to send into `to`, one byte at a time;
/// returns the v1 bytes `to` produced.
fn deliver(from: &mut Transport, to: &mut Transport) -> Vec<u8> {
    let bytes = from.take_outgoing();
    let mut v1 = Vec::new();
    for b in bytes {
        v1.extend(to.receive(&[b]).unwrap());
    }
    v1
}

#[test]
fn v2_handshake_then_frames_both_ways() {
    let net = Network::Regtest;
    let mut a = Transport::outbound_v2(net).unwrap();
    let mut b = Transport::inbound(net);
    // The initiator's version is held until the handshake is done.
    let version = frames(&[NetworkMessage::Verack, NetworkMessage::SendHeaders]);
    assert!(a.send(version.clone()).unwrap().is_empty());
    assert_eq!(a.kind(), "v2-handshake");
    assert!(deliver(&mut a, &mut b).is_empty()); // a's key
    assert_eq!(b.kind(), "v2-handshake");
    assert!(deliver(&mut b, &mut a).is_empty()); // b's key, terminator, version
    assert_eq!(a.kind(), "v2");
    // a's terminator and version packet, then the held frames.
    let got = deliver(&mut a, &mut b);
    assert_eq!(b.kind(), "v2");
    assert_eq!(got, version, "v1 frames come out exactly as they went in");

    let msgs = vec![
        NetworkMessage::Ping(42),
        NetworkMessage::WtxidRelay,
        NetworkMessage::Headers(vec![bitcoin::blockdata::constants::genesis_block(net).header]),
        NetworkMessage::Block(bitcoin::blockdata::constants::genesis_block(net)),
    ];
    assert!(b.send(frames(&msgs)).unwrap().is_empty());
    let got = deliver(&mut b, &mut a);
    assert_eq!(decode(&got), msgs);

    // A flipped byte fails authentication.
    a.send(frames(&[NetworkMessage::Pong(7)])).unwrap();
    let mut sealed = a.take_outgoing();
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    assert_eq!(b.receive(&sealed), Err(TransportError::Decrypt));
}

#[test]
fn an_inbound_v1_peer_is_passed_through() {
    let net = Network::Regtest;
    let mut b = Transport::inbound(net);
    let magic = wire::magic(net);
    let a = bitcoin::p2p::Address::new(&"127.0.0.1:1".parse().unwrap(), bitcoin::p2p::ServiceFlags::NONE);
    let v = bitcoin::p2p::message_network::VersionMessage::new(
        bitcoin::p2p::ServiceFlags::NONE,
        0,
        a.clone(),
        a,
        1,
        "/v1/".into(),
        0,
    );
    let hello = wire::encode_message(magic, NetworkMessage::Version(v));
    let mut got = Vec::new();
    for chunk in hello.chunks(5) {
        got.extend(b.receive(chunk).unwrap());
    }
    assert_eq!(b.kind(), "v1");
    assert_eq!(got, hello);
    assert!(b.take_outgoing().is_empty(), "no v2 key was sent to a v1 peer");
    // From then on, bytes pass unchanged both ways.
    let ping = frames(&[NetworkMessage::Ping(1)]);
    assert_eq!(b.send(ping.clone()).unwrap(), ping);
    // A v2 initiator meeting a v1-only responder's bytes gives up clearly.
    let mut out = Transport::outbound_v2(net).unwrap();
    let _ = out.take_outgoing();
    assert!(matches!(out.receive(&hello), Err(TransportError::Handshake(_))));
}

/// Random bytes in random pieces, on fresh inbound transports and on an
/// established v2 session: an error or nothing, never a panic, and the
/// handshake gives up within its bound.
#[test]
fn random_bytes_are_errors_not_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let len = (next() % 9000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut t = Transport::inbound(Network::Regtest);
        let mut fed = 0;
        while fed < bytes.len() {
            let n = 1 + (next() % 700) as usize;
            let end = (fed + n).min(bytes.len());
            if t.receive(&bytes[fed..end]).is_err() {
                break;
            }
            fed = end;
        }
        // Past key + garbage + terminator + the extra allowance, a
        // handshake that has not finished must have failed.
        assert!(fed <= 64 + 4095 + 16 + 65_536 + 700, "round {round}: {fed} bytes taken");
    }
    // Garbage after a completed handshake: its length is refused, or the
    // packet waits for more bytes and then fails to authenticate; no frame
    // ever comes out and nothing panics.
    let net = Network::Regtest;
    let mut a = Transport::outbound_v2(net).unwrap();
    let mut b = Transport::inbound(net);
    deliver(&mut a, &mut b);
    deliver(&mut b, &mut a);
    deliver(&mut a, &mut b);
    assert_eq!((a.kind(), b.kind()), ("v2", "v2"));
    let junk: Vec<u8> = (0..5000).map(|_| next() as u8).collect();
    let r = b.receive(&junk);
    assert!(r.is_err() || r == Ok(Vec::new()), "{r:?}");
}

/// A peer trickling its handshake a byte at a time costs one key exchange
/// per read: it is cut off after MAX_HANDSHAKE_READS reads.
#[test]
fn a_trickled_handshake_is_cut_off() {
    use kiln_p2p::transport::MAX_HANDSHAKE_READS;
    let mut t = Transport::inbound(Network::Regtest);
    let key: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7).wrapping_add(1)).collect();
    t.receive(&key).unwrap();
    let mut reads = 0;
    let err = loop {
        reads += 1;
        match t.receive(&[0x55]) {
            Ok(_) => assert!(reads <= MAX_HANDSHAKE_READS as usize, "still going after {reads} reads"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, TransportError::Handshake(_)), "{err:?}");
    assert!(reads <= MAX_HANDSHAKE_READS as usize + 1);
}
