//! The byte stream under the protocol: v1 (plain frames) or BIP324 v2
//! (encrypted packets), without I/O.
//!
//! [`Peer`](crate::peer::Peer) speaks v1 frames and keeps every limit
//! check in one place; a [`Transport`] sits between it and the socket. On a
//! v2 connection each decrypted packet becomes the v1 frame it stands for
//! (the short message ID mapped back to its command, the checksum computed)
//! before the peer state machine sees it, and each v1 frame the peer state
//! machine writes becomes one encrypted packet (its command mapped to the
//! one-byte ID where BIP324 assigns one). So a v2 peer meets the same
//! limits, in the same order, as a v1 peer.
//!
//! # Handshake
//!
//! The `bip324` crate does the cryptography (ElligatorSwift key exchange,
//! the ChaCha20-Poly1305 packet ciphers). Its handshake states borrow the
//! received garbage, so they cannot wait in a connection between two socket
//! reads; instead a connection keeps the 32-byte seed its key was drawn
//! from and the peer's key, and each time more bytes arrive it replays the
//! (deterministic) key exchange and tries to finish: one ECDH per read
//! during a handshake that normally takes one or two reads, and at most
//! [`MAX_HANDSHAKE_READS`] of them.
//!
//! * **Outbound** ([`Transport::outbound_v2`]): our key is sent at once.
//!   A peer that closes before the handshake is done is probably v1-only:
//!   the caller dials it again with [`Transport::V1`] (as Core does).
//! * **Inbound** ([`Transport::inbound`]): the first bytes decide. A v1
//!   peer's first 16 bytes are the network magic and `version`; anything
//!   else is taken as a v2 key, and ours is sent only then.
//!
//! Bounds: the handshake buffer holds at most the 64-byte key, 4,095 bytes
//! of garbage, the terminator and [`MAX_HANDSHAKE_EXTRA`] bytes of decoy
//! and version packets; an application packet longer than a 4 MB message
//! (plus its 13-byte command header) is refused from its 3-byte length,
//! before anything of it is buffered.

use bip324::{CipherSession, GarbageResult, Handshake, PacketType, Role, VersionResult};
use bitcoin::Network;
use bitcoin::p2p::Magic;
use rand::{RngCore, SeedableRng};

use crate::wire::{self, HEADER_LEN, MAX_PROTOCOL_MESSAGE_LENGTH};

/// BIP324's one-byte message IDs (index = ID); ID 0 means "a 12-byte
/// command follows".
const SHORT_IDS: [&str; 29] = [
    "",
    "addr",
    "block",
    "blocktxn",
    "cmpctblock",
    "feefilter",
    "filteradd",
    "filterclear",
    "filterload",
    "getblocks",
    "getblocktxn",
    "getdata",
    "getheaders",
    "headers",
    "inv",
    "mempool",
    "merkleblock",
    "notfound",
    "ping",
    "pong",
    "sendcmpct",
    "tx",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "addrv2",
];
/// The v2 key is 64 bytes; BIP324 allows at most 4,095 bytes of garbage
/// after it, then a 16-byte terminator.
const KEY_LEN: usize = 64;
const MAX_GARBAGE: usize = 4095;
const TERMINATOR_LEN: usize = 16;
/// Bytes of decoy and version packets accepted after the terminator during
/// the handshake (Core sends one empty version packet: 20 bytes).
pub const MAX_HANDSHAKE_EXTRA: usize = 64 * 1024;
/// Key-exchange replays allowed per handshake: each read during the
/// handshake costs one ECDH, so a peer trickling its garbage a byte at a
/// time is cut off here (an honest handshake takes one to three reads).
pub const MAX_HANDSHAKE_READS: u32 = 64;
/// 3-byte length, 1 header byte, 16-byte tag.
const PACKET_OVERHEAD: usize = 3 + 1 + 16;
/// The largest packet contents: a 4 MB message after a 13-byte command.
const MAX_CONTENTS: usize = MAX_PROTOCOL_MESSAGE_LENGTH + 13;

/// Why the transport cannot go on: disconnect.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    #[error("v2 handshake: {0}")]
    Handshake(String),
    #[error("v2 handshake: more than {0} bytes before the version packet")]
    HandshakeTooLong(usize),
    #[error("v2 packet of {0} bytes is over the limit")]
    PacketTooBig(usize),
    #[error("v2 packet does not decrypt (tampered, or not BIP324)")]
    Decrypt,
    #[error("v2 packet carries a malformed message: {0}")]
    BadContents(&'static str),
    #[error("the peer's v1 frame header is malformed: {0}")]
    BadFrame(String),
}

/// Where a v2 connection stands.
enum V2 {
    /// Inbound: not yet sure the peer is not v1.
    Detect {
        buf: Vec<u8>,
    },
    /// Our key is sent (inbound: once the peer's first bytes ruled v1 out);
    /// waiting for theirs, then for their garbage, terminator and version.
    Handshake {
        role: Role,
        seed: [u8; 32],
        their_key: Option<[u8; 64]>,
        buf: Vec<u8>,
        held: Vec<u8>,
        replays: u32,
    },
    Ready {
        session: Box<CipherSession>,
        buf: Vec<u8>,
        packet_len: Option<usize>,
    },
}

/// One connection's transport (see the module docs).
pub enum Transport {
    /// Plain v1 frames: bytes pass through unchanged.
    V1,
    /// BIP324, or an inbound connection not yet known to be v1.
    V2(Box<V2Conn>),
}

/// A v2 connection's state (opaque).
pub struct V2Conn {
    network: Network,
    state: V2,
    /// Encrypted bytes (and handshake bytes) to write.
    out: Vec<u8>,
    /// v1 bytes of a frame not yet complete (the peer state machine writes
    /// whole frames; this is only a guard), or written before detection.
    partial: Vec<u8>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

fn secp() -> &'static bitcoin::secp256k1::Secp256k1<bitcoin::secp256k1::All> {
    static CTX: std::sync::OnceLock<bitcoin::secp256k1::Secp256k1<bitcoin::secp256k1::All>> =
        std::sync::OnceLock::new();
    CTX.get_or_init(bitcoin::secp256k1::Secp256k1::new)
}

/// Our key bytes for `seed` (deterministic: the replay relies on it).
fn key_for(
    network: Network,
    role: Role,
    seed: [u8; 32],
) -> Result<(Handshake<bip324::SentKey<'static>>, [u8; 64]), TransportError> {
    let mut rng = rand::rngs::StdRng::from_seed(seed);
    let hs = Handshake::new_with_rng(network, role, &mut rng, secp())
        .map_err(|e| TransportError::Handshake(e.to_string()))?;
    let mut key = [0u8; 64];
    let hs = hs.send_key(None, &mut key).map_err(|e| TransportError::Handshake(e.to_string()))?;
    Ok((hs, key))
}

/// Our terminator and version packet for `seed` and their key.
fn version_for(
    network: Network,
    role: Role,
    seed: [u8; 32],
    their_key: [u8; 64],
) -> Result<(Handshake<bip324::SentVersion>, Vec<u8>), TransportError> {
    let (hs, _) = key_for(network, role, seed)?;
    let hs = hs.receive_key(their_key).map_err(|e| TransportError::Handshake(e.to_string()))?;
    let mut out = vec![0u8; Handshake::<bip324::ReceivedKey>::send_version_len(None)];
    let hs = hs.send_version(&mut out, None).map_err(|e| TransportError::Handshake(e.to_string()))?;
    Ok((hs, out))
}

fn fresh_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

impl Transport {
    /// An outbound v2 connection; our key waits in
    /// [`Transport::take_outgoing`], to be sent first.
    ///
    /// # Errors
    /// Only if key generation fails.
    pub fn outbound_v2(network: Network) -> Result<Transport, TransportError> {
        let seed = fresh_seed();
        let (_, key) = key_for(network, Role::Initiator, seed)?;
        let state = V2::Handshake {
            role: Role::Initiator,
            seed,
            their_key: None,
            buf: Vec::new(),
            held: Vec::new(),
            replays: 0,
        };
        Ok(Transport::V2(Box::new(V2Conn { network, state, out: key.to_vec(), partial: Vec::new() })))
    }

    /// An inbound connection: v1 or v2, decided by the peer's first bytes.
    pub fn inbound(network: Network) -> Transport {
        Transport::V2(Box::new(V2Conn {
            network,
            state: V2::Detect { buf: Vec::new() },
            out: Vec::new(),
            partial: Vec::new(),
        }))
    }

    /// "v1", "v2", or where a v2 handshake stands.
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::V1 => "v1",
            Transport::V2(c) => match c.state {
                V2::Detect { .. } => "detecting",
                V2::Handshake { .. } => "v2-handshake",
                V2::Ready { .. } => "v2",
            },
        }
    }

    /// Whether a v2 handshake is still under way (a peer closing now is
    /// probably v1-only).
    pub fn v2_pending(&self) -> bool {
        matches!(self, Transport::V2(c) if matches!(c.state, V2::Handshake { .. } | V2::Detect { .. }))
    }

    /// Bytes to write to the socket (emptied).
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        match self {
            Transport::V1 => Vec::new(),
            Transport::V2(c) => std::mem::take(&mut c.out),
        }
    }

    /// v1 frames from the peer state machine, to be sent: returned as they
    /// are on v1; on v2 encrypted into [`Transport::take_outgoing`] (held
    /// until the handshake is done).
    ///
    /// # Errors
    /// A malformed frame (a bug on our side, never the peer's).
    pub fn send(&mut self, frames: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let (state, out, partial) = match self {
            Transport::V1 => return Ok(frames),
            Transport::V2(c) => (&mut c.state, &mut c.out, &mut c.partial),
        };
        match state {
            V2::Ready { session, .. } => {
                partial.extend_from_slice(&frames);
                let mut at = 0;
                while partial.len() - at >= HEADER_LEN {
                    let h = &partial[at..at + HEADER_LEN];
                    let len = u32::from_le_bytes(h[16..20].try_into().expect("4 bytes")) as usize;
                    if partial.len() - at < HEADER_LEN + len {
                        break;
                    }
                    let command = &h[4..16];
                    let end = command.iter().position(|&b| b == 0).unwrap_or(12);
                    let name =
                        std::str::from_utf8(&command[..end]).map_err(|e| TransportError::BadFrame(e.to_string()))?;
                    let payload = &partial[at + HEADER_LEN..at + HEADER_LEN + len];
                    let mut plain = Vec::with_capacity(13 + len);
                    match SHORT_IDS.iter().position(|&c| c == name).filter(|&i| i > 0) {
                        Some(id) => plain.push(id as u8),
                        None => {
                            plain.push(0);
                            plain.extend_from_slice(command);
                        }
                    }
                    plain.extend_from_slice(payload);
                    out.extend(session.outbound().encrypt_to_vec(&plain, PacketType::Genuine, None));
                    at += HEADER_LEN + len;
                }
                partial.drain(..at);
            }
            V2::Handshake { held, .. } => held.extend_from_slice(&frames),
            V2::Detect { .. } => partial.extend_from_slice(&frames),
        }
        Ok(Vec::new())
    }

    /// Bytes from the socket; returns the v1 bytes they carry for the peer
    /// state machine (on v1, the same bytes).
    ///
    /// # Errors
    /// A [`TransportError`]: disconnect.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TransportError> {
        let Transport::V2(c) = self else { return Ok(bytes.to_vec()) };
        let V2Conn { network, state, out, partial } = &mut **c;
        let network = *network;
        let magic = wire::magic(network);
        let mut v1 = Vec::new();
        if let V2::Detect { buf } = state {
            buf.extend_from_slice(bytes);
            let prefix = v1_prefix(magic);
            let n = buf.len().min(prefix.len());
            if buf[..n] == prefix[..n] {
                if buf.len() < prefix.len() {
                    return Ok(Vec::new());
                }
                // A v1 peer: everything so far, and from now on, is plain.
                let plain = std::mem::take(buf);
                let held = std::mem::take(partial);
                *self = Transport::V1;
                return if held.is_empty() {
                    Ok(plain)
                } else {
                    Err(TransportError::BadFrame("v1 output before detection".into()))
                };
            }
            let seed = fresh_seed();
            let (_, key) = key_for(network, Role::Responder, seed)?;
            out.extend_from_slice(&key);
            let buf = std::mem::take(buf);
            let held = std::mem::take(partial);
            *state = V2::Handshake { role: Role::Responder, seed, their_key: None, buf, held, replays: 0 };
            return self.receive(&[]);
        }
        if let V2::Handshake { role, seed, their_key, buf, held, replays } = state {
            buf.extend_from_slice(bytes);
            let first = their_key.is_none();
            if first {
                if buf.len() < KEY_LEN {
                    return Ok(Vec::new());
                }
                let key: [u8; 64] = buf[..KEY_LEN].try_into().expect("64 bytes");
                if key[..4] == magic.to_bytes() {
                    return Err(TransportError::Handshake("the peer speaks v1".into()));
                }
                buf.drain(..KEY_LEN);
                *their_key = Some(key);
            }
            let key = their_key.expect("set above");
            if buf.len() > MAX_GARBAGE + TERMINATOR_LEN + MAX_HANDSHAKE_EXTRA {
                return Err(TransportError::HandshakeTooLong(MAX_GARBAGE + TERMINATOR_LEN + MAX_HANDSHAKE_EXTRA));
            }
            // Replay the key exchange and try to finish with what is here.
            *replays += 1;
            if *replays > MAX_HANDSHAKE_READS {
                return Err(TransportError::Handshake(format!(
                    "not finished after {MAX_HANDSHAKE_READS} reads (a peer trickling its handshake)"
                )));
            }
            let (hs, ours) = version_for(network, *role, *seed, key)?;
            if first {
                // Our terminator and version packet, sent once.
                out.extend_from_slice(&ours);
            }
            let (mut hs, consumed) = match hs.receive_garbage(buf) {
                Ok(GarbageResult::FoundGarbage { handshake, consumed_bytes }) => (handshake, consumed_bytes),
                Ok(GarbageResult::NeedMoreData(_)) => return Ok(Vec::new()),
                Err(e) => return Err(TransportError::Handshake(e.to_string())),
            };
            let mut rest = buf[consumed..].to_vec();
            let mut at = 0;
            let session = loop {
                if rest.len() - at < 3 {
                    return Ok(Vec::new());
                }
                let len_bytes: [u8; 3] = rest[at..at + 3].try_into().expect("3 bytes");
                let len = hs.decrypt_packet_len(len_bytes).map_err(|e| TransportError::Handshake(e.to_string()))?;
                if len > MAX_HANDSHAKE_EXTRA {
                    return Err(TransportError::HandshakeTooLong(len));
                }
                if rest.len() - at - 3 < len {
                    return Ok(Vec::new());
                }
                let packet = &mut rest[at + 3..at + 3 + len];
                at += 3 + len;
                match hs.receive_version(packet).map_err(|e| TransportError::Handshake(e.to_string()))? {
                    VersionResult::Complete { cipher } => break cipher,
                    VersionResult::Decoy(next) => hs = next,
                }
            };
            let leftover = rest[at..].to_vec();
            let held = std::mem::take(held);
            *state = V2::Ready { session: Box::new(session), buf: Vec::new(), packet_len: None };
            self.send(held)?;
            return self.receive(&leftover);
        }
        let V2::Ready { session, buf, packet_len } = state else { unreachable!("all other states returned") };
        buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let len = match *packet_len {
                Some(l) => l,
                None => {
                    if buf.len() - at < 3 {
                        break;
                    }
                    let len_bytes: [u8; 3] = buf[at..at + 3].try_into().expect("3 bytes");
                    at += 3;
                    let l = session.inbound().decrypt_packet_len(len_bytes);
                    if l > MAX_CONTENTS + PACKET_OVERHEAD - 3 {
                        return Err(TransportError::PacketTooBig(l));
                    }
                    *packet_len = Some(l);
                    l
                }
            };
            if buf.len() - at < len {
                break;
            }
            let packet = &mut buf[at..at + len];
            at += len;
            *packet_len = None;
            let (_, plain) = session.inbound().decrypt_in_place(packet, None).map_err(|_| TransportError::Decrypt)?;
            // The header byte, then the contents; bit 7 set marks a decoy
            // (BIP324's IGNORE bit; other bits are reserved and ignored).
            let (&header, contents) = plain.split_first().ok_or(TransportError::BadContents("no header byte"))?;
            if header & 0x80 != 0 {
                continue;
            }
            append_frame(magic, contents, &mut v1)?;
        }
        buf.drain(..at);
        Ok(v1)
    }
}

/// What a v1 peer's first 16 bytes are: the magic and `version` padded.
fn v1_prefix(magic: Magic) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..4].copy_from_slice(&magic.to_bytes());
    p[4..11].copy_from_slice(b"version");
    p
}

/// One decrypted packet's contents as the v1 frame it stands for.
fn append_frame(magic: Magic, contents: &[u8], v1: &mut Vec<u8>) -> Result<(), TransportError> {
    let (&id, rest) = contents.split_first().ok_or(TransportError::BadContents("empty packet"))?;
    let (command, payload): (&str, &[u8]) = if id == 0 {
        if rest.len() < 12 {
            return Err(TransportError::BadContents("command shorter than 12 bytes"));
        }
        let raw = &rest[..12];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(12);
        let name = std::str::from_utf8(&raw[..end]).map_err(|_| TransportError::BadContents("command not ASCII"))?;
        (name, &rest[12..])
    } else {
        match SHORT_IDS.get(usize::from(id)) {
            Some(name) => (name, rest),
            // Unknown IDs are ignored (BIP324), as unknown commands are.
            None => return Ok(()),
        }
    };
    if payload.len() > MAX_PROTOCOL_MESSAGE_LENGTH {
        return Err(TransportError::PacketTooBig(payload.len()));
    }
    if !command.bytes().all(|b| b.is_ascii_graphic()) || command.is_empty() {
        return Err(TransportError::BadContents("command not printable ASCII"));
    }
    v1.extend_from_slice(&wire::encode_raw(magic, command, payload));
    Ok(())
}
