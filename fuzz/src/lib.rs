//! The bodies of kiln's fuzz targets. Each takes the fuzzer's bytes and must
//! never panic; where the code under test documents a property (sanitized
//! pool text, framing that does not depend on how bytes arrive, a count
//! check that refuses short prevouts), the body asserts it, so a broken
//! promise is a crash too. The `src/bin/` entry points hand these to AFL++;
//! `replay` runs them on files without it.

use std::sync::OnceLock;

use bitcoin::{Block, TxOut};
use kiln_stratum::codec::{Frame, LineCodec, MAX_LINE};
use kiln_stratum::{Event, Session, SessionConfig, Share};
use kiln_validate::rules::Network;
use kiln_validate::{InputError, Options, decode_block, read_spent_bytes, validate_block};

/// Names the targets for `replay` and the seed writer.
pub const TARGETS: [&str; 7] = [
    "stratum_session",
    "stratum_codec",
    "block_reader",
    "prevouts_reader",
    "p2p_peer",
    "p2p_transport",
    "rpc_response",
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "stratum_session" => stratum_session,
        "stratum_codec" => stratum_codec,
        "block_reader" => block_reader,
        "prevouts_reader" => prevouts_reader,
        "p2p_peer" => p2p_peer,
        "p2p_transport" => p2p_transport,
        "rpc_response" => rpc_response,
        _ => return None,
    })
}

/// Once per process, before the fuzz loop: the real spent outputs
/// `block_reader` uses, parsed now rather than on the first input. No
/// threads may start here: AFL's fork server forks after this, and a forked
/// process has none of its parent's threads (a rayon pool built here would
/// take jobs and never run them), hence [`one_thread_pool`].
pub fn init() {
    let _ = real_prevouts();
}

/// Validation's rayon pool, one thread (it otherwise starts one per core,
/// and AFL runs one target per core), built on first use in the process
/// that runs the inputs.
fn one_thread_pool() {
    static POOL: std::sync::Once = std::sync::Once::new();
    POOL.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    });
}

// ---------------------------------------------------------------------------
// Stratum

/// First byte: how many bytes each `receive` call gets (1–64; the pool's
/// bytes arrive split anywhere). The rest: what the pool sends, after
/// `start()` queued the handshake (configure id 1, subscribe 2, authorize 3;
/// extranonce.subscribe 4 once subscribed; shares from 5 on). Every job the
/// session emits is turned into a header as the engine does and answered
/// with a share, so share results are reachable.
pub fn stratum_session(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first % 64) + 1;
    let mut s = Session::new(SessionConfig::new("u", "p"));
    s.start();
    check_output(&s.take_output());
    for piece in stream.chunks(chunk) {
        for event in s.receive(piece) {
            check_event(&event);
            if let Event::Job(job) = &event {
                let extranonce2 = vec![0xa5; job.extranonce2_size];
                let version = job.rolled_version(u32::MAX);
                let _ = job.header(&extranonce2, job.ntime, version);
                let _ = job.network_target();
                let _ = job.share_target.difficulty();
                let share = Share {
                    job_id: job.job_id.clone(),
                    extranonce1: job.extranonce1.clone(),
                    extranonce2,
                    ntime: job.ntime,
                    nonce: 0,
                    version_bits: (job.version_mask != 0).then_some(version & job.version_mask),
                };
                s.submit(&share);
            }
        }
        check_output(&s.take_output());
        let _ = (s.extranonce1(), s.is_authorized(), s.difficulty());
    }
}

/// What kiln writes to a pool is whole JSON-RPC lines, each an object.
fn check_output(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    assert_eq!(out.last(), Some(&b'\n'), "output does not end a line");
    for line in out[..out.len() - 1].split(|&b| b == b'\n') {
        let v: serde_json::Value = serde_json::from_slice(line).expect("output line is not JSON");
        assert!(v.is_object() && v.get("id").is_some(), "output line is not a JSON-RPC object: {v}");
    }
}

/// Pool text in events has been through `sanitize` (session.rs promises it):
/// no control characters, no direction overrides, at most 200 characters
/// (plus the cut mark) per piece of pool text.
fn check_event(e: &Event) {
    fn clean(s: &str) {
        assert!(
            !s.chars().any(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
            "unsanitized pool text in an event: {s:?}"
        );
    }
    match e {
        Event::Authorized { error, .. } => clean(error),
        Event::ShareResult { reason: Some((_, m)), .. } => clean(m),
        Event::Reconnect { host, .. } => clean(host.as_deref().unwrap_or("")),
        Event::Message(m) | Event::Protocol(m) => clean(m),
        Event::Subscribed { extranonce2_size, session_id, .. } => {
            assert!((1..=16).contains(extranonce2_size), "extranonce2_size {extranonce2_size}");
            let _ = session_id;
        }
        Event::Extranonce { extranonce2_size, .. } => {
            assert!((1..=16).contains(extranonce2_size), "extranonce2_size {extranonce2_size}")
        }
        Event::Job(job) => assert!((1..=16).contains(&job.extranonce2_size), "job extranonce2_size"),
        Event::Difficulty(d) => assert!(d.is_finite() && *d > 0.0, "difficulty {d}"),
        _ => {}
    }
}

/// First byte: chunk size (1–256). The rest goes through one codec in
/// chunks and through another in one piece: the frames must be the same
/// (framing cannot depend on how TCP split the bytes), and every line must
/// respect the codec's bound and contract.
pub fn stratum_codec(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first) + 1;
    let mut whole = LineCodec::new();
    let at_once = whole.feed(stream);
    let mut split = LineCodec::new();
    let mut pieces = Vec::new();
    for piece in stream.chunks(chunk) {
        pieces.extend(split.feed(piece));
    }
    assert_eq!(at_once, pieces, "frames depend on how the bytes were split");
    let newlines = stream.iter().filter(|&&b| b == b'\n').count();
    assert!(at_once.len() <= newlines, "more frames than lines");
    for f in &at_once {
        match f {
            Frame::Line(l) => {
                assert!(l.len() <= MAX_LINE && !l.contains('\n'), "line breaks the bound");
                assert!(!l.bytes().all(|b| b.is_ascii_whitespace()), "blank line framed");
            }
            Frame::TooLong { len } => assert!(*len > MAX_LINE, "TooLong for {len} bytes"),
            Frame::NotUtf8 => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Validation

/// The spent outputs of mainnet block 866342 (tests/data), in block order:
/// the real prevouts of the block seeds, which are that block's first
/// transactions.
fn real_prevouts() -> &'static [TxOut] {
    static REAL: OnceLock<Vec<TxOut>> = OnceLock::new();
    REAL.get_or_init(|| {
        let zst = include_bytes!("../../tests/data/mainnet/block_866342.spent_utxos.json.zst");
        let json = zstd::decode_all(&zst[..]).expect("tests/data prevouts are zstd");
        read_spent_bytes(&json, None, "block_866342.spent_utxos.json").expect("tests/data prevouts parse").txouts
    })
}

/// Blocks with more non-coinbase inputs than this skip the deep pass (its
/// signature checks would make each run slow).
pub const DEEP_MAX_INPUTS: usize = 64;

/// Bytes (raw or hex) → `decode_block`; a block that decodes is validated
/// with no prevouts and with one too few (both must be refused when it has
/// inputs, not crash), then, when it is small, validated in full: the real
/// prevouts of block 866342 lined up with its inputs, on regtest, with the
/// merkle root made to match and the header ground to regtest's proof of
/// work, so extraction, sighashes, the rules and signature verification
/// see the fuzzed transactions instead of stopping at the header.
pub fn block_reader(data: &[u8]) {
    let Ok(block) = decode_block(data, "fuzz") else { return };
    one_thread_pool();
    let inputs: usize = block.txdata.iter().skip(1).map(|tx| tx.input.len()).sum();
    let opts = Options::default();
    let none = validate_block(&block, &[], None, &opts);
    if inputs > 0 {
        assert!(matches!(none, Err(InputError::PrevoutCount { .. })), "empty prevouts not refused");
        let short: Vec<TxOut> = real_prevouts().iter().cycle().take(inputs - 1).cloned().collect();
        let r = validate_block(&block, &short, None, &opts);
        assert!(matches!(r, Err(InputError::PrevoutCount { .. })), "short prevouts not refused");
    }
    if inputs <= DEEP_MAX_INPUTS {
        deep(block, inputs);
    }
}

fn deep(mut block: Block, inputs: usize) {
    let prevouts: Vec<TxOut> = real_prevouts().iter().cycle().take(inputs).cloned().collect();
    if let Some(root) = block.compute_merkle_root() {
        block.header.merkle_root = root;
    }
    block.header.bits = bitcoin::CompactTarget::from_consensus(0x207f_ffff);
    let target = bitcoin::Target::from_compact(block.header.bits);
    // Each nonce passes with probability 1/2: 32 tries all fail once in 2^32.
    for nonce in 0..32 {
        block.header.nonce = nonce;
        if target.is_met_by(block.block_hash()) {
            break;
        }
    }
    let height = block.bip34_block_height().ok().and_then(|h| u32::try_from(h).ok()).unwrap_or(1_000);
    let opts = Options { network: Network::Regtest, height: Some(height), ..Options::default() };
    if let Ok(report) = validate_block(&block, &prevouts, None, &opts) {
        assert_eq!(report.inputs, inputs, "report counts other inputs");
        let _ = (report.is_valid(), report.not_checked().len());
    }
}

/// Spent outputs in either format (the first non-blank byte picks: `[` for
/// kiln's array, `{` for `getblock HASH 3`). What parses with no count must
/// parse the same with its own count, and be refused with one fewer.
pub fn prevouts_reader(data: &[u8]) {
    let Ok(any) = read_spent_bytes(data, None, "fuzz") else { return };
    let n = any.txouts.len();
    assert_eq!(any.origins.len(), n, "an origin per output");
    let exact = read_spent_bytes(data, Some(n), "fuzz").expect("parses with its own count");
    assert_eq!(exact.txouts, any.txouts, "the count changed what was read");
    if n > 0 {
        let fewer = read_spent_bytes(data, Some(n - 1), "fuzz");
        assert!(fewer.is_err(), "one too many entries accepted");
    }
}

// ---------------------------------------------------------------------------
// Peers and nodes

/// First byte: how many bytes each `receive` gets (1–256; a peer's bytes
/// arrive split anywhere). The rest: what a mainnet peer sends after kiln's
/// `version`. Whatever it is, the state machine either goes on or names a
/// reason to disconnect; it never buffers more than one allowed message
/// plus one piece.
pub fn p2p_peer(data: &[u8]) {
    use kiln_p2p::peer::{Peer, PeerConfig};
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first) + 1;
    let now = std::time::Instant::now();
    let (mut peer, _hello) = Peer::new(PeerConfig::new(bitcoin::Network::Bitcoin, 0, 1_700_000_000, 7), now);
    for piece in stream.chunks(chunk) {
        if peer.receive(piece, now).is_err() {
            return;
        }
        assert!(peer.buffered() <= 4_000_000 + 24 + chunk, "buffered {} bytes", peer.buffered());
        let _ = peer.take_outgoing();
    }
    let _ = peer.poll_tick(now + std::time::Duration::from_secs(3600));
}

/// First byte: how many bytes each read gets (1–256). The rest: what an
/// inbound peer sends, through the transport (v1 told apart from BIP324 v2
/// by the first bytes) and then the inbound peer state machine: errors,
/// never panics, and neither buffers more than its bound.
pub fn p2p_transport(data: &[u8]) {
    use kiln_p2p::peer::{Peer, PeerConfig};
    use kiln_p2p::transport::Transport;
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first) + 1;
    let now = std::time::Instant::now();
    let network = bitcoin::Network::Bitcoin;
    let mut transport = Transport::inbound(network);
    let mut peer = Peer::inbound(PeerConfig::new(network, 0, 1_700_000_000, 7), now);
    for piece in stream.chunks(chunk) {
        let Ok(plain) = transport.receive(piece) else { return };
        if peer.receive(&plain, now).is_err() {
            return;
        }
        assert!(peer.buffered() <= 4_000_000 + 24 + 2 * 65_536, "buffered {} bytes", peer.buffered());
        if transport.send(peer.take_outgoing()).is_err() {
            return;
        }
        let _ = transport.take_outgoing();
    }
}

/// First byte: piece size (1–256). The rest: what a node answers over
/// HTTP. The reader never yields a body over its limit; a complete answer
/// goes through the JSON-RPC decoder and, when it is an object, the
/// template parser, as the solo source would.
pub fn rpc_response(data: &[u8]) {
    use kiln_gbt::http::ResponseReader;
    const LIMIT: usize = 1 << 20;
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first) + 1;
    let mut reader = ResponseReader::new(LIMIT);
    let mut done = None;
    for piece in stream.chunks(chunk) {
        match reader.feed(piece) {
            Ok(Some(r)) => {
                done = Some(r);
                break;
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
    let Some(resp) = done.or_else(|| reader.finish().ok()) else { return };
    assert!(resp.body.len() <= LIMIT);
    if let Ok(v) = kiln_gbt::rpc::decode(&resp)
        && let Ok(t) = kiln_gbt::Template::from_json(&v)
    {
        let payout = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
        if let Ok(job) = t.job("1".into(), &payout, b"/fuzz/", [0; 4], true) {
            let en2 = vec![0; job.extranonce2_size];
            let header = job.header(&en2, job.ntime, job.version);
            if let Ok(block) = t.assemble(&job, &en2, &header) {
                let _ = t.check_except_pow(&block, Network::Mainnet);
            }
        }
    }
}
