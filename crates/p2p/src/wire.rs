//! v1 message framing without I/O: bytes in, whole decoded messages out.
//!
//! A v1 message is a 24-byte header (network magic, a NUL-padded ASCII
//! command, the payload length, the first four bytes of the payload's
//! sha256d) followed by the payload. The [`Decoder`] checks the header as
//! soon as its 24 bytes are there, so a peer claiming a 4 GB payload is
//! refused before a single byte of it is buffered; it never reserves memory
//! for a claimed length, it only keeps what actually arrived. Payloads are
//! decoded with rust-bitcoin's `p2p` types once the frame is complete, after
//! the counts that Core bounds (headers, inventory, locators) were checked on
//! the raw bytes.

use bitcoin::Network;
use bitcoin::consensus::encode;
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::Magic;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};

/// Core's `MAX_PROTOCOL_MESSAGE_LENGTH`: the largest payload a peer may send.
pub const MAX_PROTOCOL_MESSAGE_LENGTH: usize = 4_000_000;
/// Core's `MAX_HEADERS_RESULTS`: at most this many headers per `headers`.
pub const MAX_HEADERS_RESULTS: u64 = 2_000;
/// Core's `MAX_INV_SZ`: at most this many entries per `inv`/`getdata`/`notfound`.
pub const MAX_INV_SZ: u64 = 50_000;
/// Core's `MAX_LOCATOR_SZ`: at most this many hashes in a block locator.
pub const MAX_LOCATOR_SZ: u64 = 101;
/// Core's `MAX_ADDR_TO_SEND`: at most this many entries per `addr`/`addrv2`.
pub const MAX_ADDR_TO_SEND: u64 = 1_000;
/// Length of the v1 message header.
pub const HEADER_LEN: usize = 24;

/// Why a peer's bytes cannot be a valid message. Each variant names the
/// violation so the caller can disconnect with a logged reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    #[error("wrong network magic {got:02x?} (expected {expected:02x?})")]
    WrongMagic { expected: [u8; 4], got: [u8; 4] },
    #[error("command field is not NUL-padded printable ASCII: {raw:02x?}")]
    BadCommand { raw: [u8; 12] },
    #[error("payload length {len} of '{command}' exceeds {MAX_PROTOCOL_MESSAGE_LENGTH}")]
    Oversized { command: String, len: u32 },
    #[error("checksum mismatch on '{command}': header says {expected:02x?}, payload hashes to {got:02x?}")]
    BadChecksum { command: String, expected: [u8; 4], got: [u8; 4] },
    #[error("'{command}' carries {count} entries, more than the {max} allowed")]
    TooManyEntries { command: String, count: u64, max: u64 },
    #[error("'{command}' locator has {count} hashes, more than {MAX_LOCATOR_SZ}")]
    LocatorTooLong { command: String, count: u64 },
    #[error("'{command}' payload does not decode: {reason}")]
    Decode { command: String, reason: String },
}

/// The magic bytes of a network (`bitcoin::Network` → `Magic`).
pub fn magic(network: Network) -> Magic {
    Magic::from(network)
}

/// Bitcoin Core's default P2P port for a network.
pub fn default_port(network: Network) -> u16 {
    match network {
        Network::Bitcoin => 8333,
        Network::Testnet => 18333,
        Network::Testnet4 => 48333,
        Network::Signet => 38333,
        Network::Regtest => 18444,
    }
}

/// Encodes one message as a complete v1 frame.
pub fn encode_message(magic: Magic, message: NetworkMessage) -> Vec<u8> {
    encode::serialize(&RawNetworkMessage::new(magic, message))
}

/// Frames an already-serialized payload (a stored block sent as it is on
/// disk, with no decode and re-encode).
pub fn encode_raw(magic: Magic, command: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&magic.to_bytes());
    let mut cmd = [0u8; 12];
    let n = command.len().min(12);
    cmd[..n].copy_from_slice(&command.as_bytes()[..n]);
    v.extend_from_slice(&cmd);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(&checksum(payload));
    v.extend_from_slice(payload);
    v
}

/// Incremental v1 decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    magic: Magic,
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new(magic: Magic) -> Self {
        Decoder { magic, buf: Vec::new() }
    }

    /// Bytes received but not yet part of a complete message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes. Call [`Decoder::next_message`] until it returns
    /// `Ok(None)` after each feed: the header is checked there as soon as its
    /// 24 bytes are in, so with bounded feeds the buffer never exceeds one
    /// allowed message plus one feed.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// A [`WireError`] naming the violation; the connection should be dropped
    /// (the decoder's state is not meaningful after an error).
    pub fn next_message(&mut self) -> Result<Option<NetworkMessage>, WireError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = parse_header(&self.buf[..HEADER_LEN], self.magic)?;
        let total = HEADER_LEN + header.len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let payload = &self.buf[HEADER_LEN..total];
        let got = checksum(payload);
        if got != header.checksum {
            return Err(WireError::BadChecksum { command: header.command, expected: header.checksum, got });
        }
        check_counts(&header.command, payload)?;
        let decoded = encode::deserialize::<RawNetworkMessage>(&self.buf[..total])
            .map_err(|e| WireError::Decode { command: header.command.clone(), reason: e.to_string() });
        self.buf.drain(..total);
        Ok(Some(decoded?.into_payload()))
    }
}

struct FrameHeader {
    command: String,
    len: u32,
    checksum: [u8; 4],
}

/// Checks a 24-byte header in the order that costs the peer the least of our
/// memory: magic, command, then the length before anything is buffered.
fn parse_header(h: &[u8], magic: Magic) -> Result<FrameHeader, WireError> {
    let got: [u8; 4] = h[0..4].try_into().unwrap_or_default();
    if got != magic.to_bytes() {
        return Err(WireError::WrongMagic { expected: magic.to_bytes(), got });
    }
    let raw: [u8; 12] = h[4..16].try_into().unwrap_or_default();
    let end = raw.iter().position(|&b| b == 0).unwrap_or(12);
    if !raw[..end].iter().all(|b| b.is_ascii_graphic()) || raw[end..].iter().any(|&b| b != 0) {
        return Err(WireError::BadCommand { raw });
    }
    let command: String = raw[..end].iter().map(|&b| b as char).collect();
    let len = u32::from_le_bytes(h[16..20].try_into().unwrap_or_default());
    if len as usize > MAX_PROTOCOL_MESSAGE_LENGTH {
        return Err(WireError::Oversized { command, len });
    }
    let checksum: [u8; 4] = h[20..24].try_into().unwrap_or_default();
    Ok(FrameHeader { command, len, checksum })
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let h = sha256d::Hash::hash(payload).to_byte_array();
    [h[0], h[1], h[2], h[3]]
}

/// Reads a CompactSize at the start of `b`; `None` when truncated (the full
/// decode then reports the error).
fn compact_size(b: &[u8]) -> Option<u64> {
    let first = *b.first()?;
    let read = |n: usize| -> Option<u64> {
        let bytes = b.get(1..1 + n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(bytes);
        Some(u64::from_le_bytes(v))
    };
    match first {
        0xfd => read(2),
        0xfe => read(4),
        0xff => read(8),
        n => Some(n as u64),
    }
}

/// Core's per-message count limits, checked on the raw payload before
/// decoding, so the decoder never builds a vector Core would refuse.
fn check_counts(command: &str, payload: &[u8]) -> Result<(), WireError> {
    let limit = match command {
        "headers" => MAX_HEADERS_RESULTS,
        "inv" | "getdata" | "notfound" => MAX_INV_SZ,
        "addr" | "addrv2" => MAX_ADDR_TO_SEND,
        "getheaders" | "getblocks" => {
            // version (4 bytes), then the locator's count.
            if let Some(count) = payload.get(4..).and_then(compact_size)
                && count > MAX_LOCATOR_SZ
            {
                return Err(WireError::LocatorTooLong { command: command.to_string(), count });
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    match compact_size(payload) {
        Some(count) if count > limit => {
            Err(WireError::TooManyEntries { command: command.to_string(), count, max: limit })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_byte_by_byte() {
        let m = magic(Network::Regtest);
        let bytes = encode_message(m, NetworkMessage::Ping(42));
        let mut d = Decoder::new(m);
        for (i, b) in bytes.iter().enumerate() {
            d.feed(&[*b]);
            let got = d.next_message().unwrap();
            if i + 1 < bytes.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(got, Some(NetworkMessage::Ping(42)));
            }
        }
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn magics_and_ports() {
        assert_eq!(magic(Network::Bitcoin).to_bytes(), [0xf9, 0xbe, 0xb4, 0xd9]);
        assert_eq!(magic(Network::Testnet4).to_bytes(), [0x1c, 0x16, 0x3f, 0x28]);
        assert_eq!(magic(Network::Regtest).to_bytes(), [0xfa, 0xbf, 0xb5, 0xda]);
        assert_eq!(default_port(Network::Signet), 38333);
        assert_eq!(default_port(Network::Testnet4), 48333);
    }

    #[test]
    fn limits_before_decoding() {
        let m = magic(Network::Bitcoin);
        let mut d = Decoder::new(m);
        d.feed(&encode_raw(magic(Network::Regtest), "ping", &[0; 8]));
        assert!(matches!(d.next_message(), Err(WireError::WrongMagic { .. })));

        let mut d = Decoder::new(m);
        let mut f = encode_raw(m, "ping", &[0; 8]);
        f[24] ^= 1;
        d.feed(&f);
        assert!(matches!(d.next_message(), Err(WireError::BadChecksum { .. })));

        // An oversized length is refused from the header alone.
        let mut d = Decoder::new(m);
        let mut f = encode_raw(m, "block", &[]);
        f[16..20].copy_from_slice(&4_000_001u32.to_le_bytes());
        d.feed(&f);
        assert!(matches!(d.next_message(), Err(WireError::Oversized { len: 4_000_001, .. })));

        let mut d = Decoder::new(m);
        d.feed(&encode_raw(m, "pi\x01g", &[]));
        assert!(matches!(d.next_message(), Err(WireError::BadCommand { .. })));

        // 50,001 inventory entries: only the count prefix is needed.
        let mut d = Decoder::new(m);
        d.feed(&encode_raw(m, "inv", &[0xfe, 0x51, 0xc3, 0x00, 0x00]));
        assert!(matches!(d.next_message(), Err(WireError::TooManyEntries { count: 50_001, .. })));

        let mut d = Decoder::new(m);
        let mut p = 70016u32.to_le_bytes().to_vec();
        p.push(102);
        d.feed(&encode_raw(m, "getheaders", &p));
        assert!(matches!(d.next_message(), Err(WireError::LocatorTooLong { count: 102, .. })));

        let mut d = Decoder::new(m);
        d.feed(&encode_raw(m, "ping", &[1, 2]));
        assert!(matches!(d.next_message(), Err(WireError::Decode { .. })));
    }
}
