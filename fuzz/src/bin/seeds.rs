//! `seeds [OUT_DIR]`: writes each target's seed corpus under OUT_DIR/TARGET
//! (default `fuzz/seeds`), and inputs too large for AFL++ under
//! OUT_DIR/large/TARGET, built from the real data in tests/data: block
//! 100000 as a Stratum job (and the test pool's message shapes), mainnet
//! block 866342 (whole, truncated, and cut down to its first transactions),
//! block 367891, and their spent outputs in both formats. Deterministic:
//! the same files every run.

use std::path::{Path, PathBuf};

use bitcoin::Block;
use serde_json::{Value, json};

fn data(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(rel);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) { zstd::decode_all(&raw[..]).expect("zstd") } else { raw }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("seed directory");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn line(v: Value) -> String {
    format!("{v}\n")
}

/// What a pool says over one connection, from the real block-100000 job:
/// answers to kiln's handshake ids (configure 1, subscribe 2, authorize 3,
/// extranonce.subscribe 4), then every call the session handles, then
/// answers to the shares the target submits for each job (5, 6, 7).
fn pool_streams() -> Vec<(&'static str, String)> {
    let job: Value = serde_json::from_slice(&data("stratum/block_100000_as_stratum_job.json")).expect("job json");
    let n = &job["notify"];
    let en1 = job["subscribe"]["extranonce1"].as_str().unwrap();
    let en2_size = job["subscribe"]["extranonce2_size"].as_u64().unwrap();
    let notify = |id: &str, clean: bool| {
        line(
            json!({"id": null, "method": "mining.notify", "params": [id, n["prevhash"], n["coinb1"], n["coinb2"], n["merkle_branch"], n["version"], n["nbits"], n["ntime"], clean]}),
        )
    };
    let configure =
        line(json!({"id": 1, "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"}, "error": null}));
    let subscribe = line(
        json!({"id": 2, "result": [[["mining.set_difficulty", "s-1"], ["mining.notify", "s-1"]], en1, en2_size], "error": null}),
    );
    let authorize = line(json!({"id": 3, "result": true, "error": null}));
    let en_sub = line(json!({"id": 4, "result": true, "error": null}));
    let diff = line(json!({"id": null, "method": "mining.set_difficulty", "params": [1.0 / 2048.0]}));
    let handshake = [configure.clone(), subscribe.clone(), authorize.clone(), en_sub.clone(), diff.clone()].concat();
    let session = [
        handshake.clone(),
        notify("b100000", true),
        line(json!({"id": 5, "result": true, "error": null})),
        line(json!({"id": 6, "result": null, "error": [23, "low difficulty share", null]})),
        line(json!({"id": null, "method": "mining.set_extranonce", "params": ["eeee0001", 4]})),
        notify("b100000-2", true),
        line(json!({"id": 7, "result": null, "error": {"code": 21, "message": "job not found"}})),
        line(json!({"id": null, "method": "mining.set_version_mask", "params": ["00fff000"]})),
        line(json!({"id": 77, "method": "mining.ping", "params": []})),
        line(json!({"id": 78, "method": "client.get_version", "params": []})),
        line(json!({"id": 79, "method": "mining.unknown", "params": []})),
        line(json!({"id": null, "method": "client.show_message", "params": ["maintenance at 12:00"]})),
        line(json!({"id": null, "method": "client.reconnect", "params": ["pool.example.com", "3334", 5]})),
    ]
    .concat();
    let early = [
        configure.clone(),
        notify("early", true),
        subscribe.clone(),
        line(json!({"id": 3, "result": false, "error": [24, "unauthorized worker", null]})),
    ]
    .concat();
    let refused = [
        line(json!({"id": 1, "result": {"version-rolling": false}, "error": null})),
        line(json!({"id": 2, "result": null, "error": [20, "busy", null]})),
        line(json!({"id": 99, "result": true, "error": null})),
    ]
    .concat();
    let hostile = [
        handshake,
        "{this is not json\n".to_string(),
        "\r\n\n   \n".to_string(),
        line(json!({"id": null, "method": "client.show_message", "params": ["hi\u{1b}[2J\u{202e}\r\nfake log"]})),
        line(json!({"id": null, "method": "mining.set_difficulty", "params": [0]})),
        line(json!({"id": null, "method": "mining.notify", "params": ["short", "00", "zz"]})),
        line(json!({"id": null, "method": "client.reconnect", "params": ["", 0, 0]})),
        "{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"half".to_string(),
    ]
    .concat();
    vec![("session", session), ("early_notify", early), ("refused", refused), ("hostile", hostile)]
}

/// Block 866342's header and first transactions, as a block of its own (the
/// merkle root no longer matches; `block_reader`'s deep pass fixes it).
fn first_txs(block: &Block, max_inputs: usize) -> Block {
    let mut inputs = 0;
    let mut txdata = vec![block.txdata[0].clone()];
    for tx in &block.txdata[1..] {
        if inputs + tx.input.len() > max_inputs {
            break;
        }
        inputs += tx.input.len();
        txdata.push(tx.clone());
    }
    Block { header: block.header, txdata }
}

fn main() {
    let out =
        std::env::args().nth(1).map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"), PathBuf::from);
    let dir = |t: &str| out.join(t);

    // Stratum: the first byte picks the chunk size (session: 1 + b % 64,
    // codec: 1 + b).
    for (name, stream) in pool_streams() {
        for (tag, first) in [("1", 0u8), ("7", 6), ("64", 63)] {
            let bytes = [&[first][..], stream.as_bytes()].concat();
            write(&dir("stratum_session"), &format!("{name}_chunk{tag}"), &bytes);
        }
        write(&dir("stratum_codec"), &format!("{name}_chunk5"), &[&[4u8][..], stream.as_bytes()].concat());
    }
    let mut overlong = vec![63u8];
    overlong.extend(std::iter::repeat_n(b'x', kiln_stratum::codec::MAX_LINE + 100));
    overlong.extend(b"\r\n{\"id\":null,\"method\":\"mining.ping\",\"params\":[]}\n\xff\xfe\n");
    write(&dir("stratum_session"), "overlong_line", &overlong);
    overlong[0] = 255;
    write(&dir("stratum_codec"), "overlong_line", &overlong);

    // Blocks.
    let raw = data("mainnet/block_866342.raw.zst");
    let block: Block = bitcoin::consensus::deserialize(&raw).expect("block 866342");
    let d = dir("block_reader");
    // AFL++ reads at most 1 MiB of a seed (MAX_FILE), so the whole block
    // (1.58 MB) would only be fuzzed as a truncated copy: it is replayed
    // through the target by scripts/fuzz instead, from OUT_DIR/large.
    write(&out.join("large").join("block_reader"), "block_866342.raw", &raw);
    write(&d, "block_866342_truncated.raw", &raw[..4096]);
    let small = bitcoin::consensus::serialize(&first_txs(&block, 24));
    write(&d, "block_866342_first_txs.raw", &small);
    write(
        &d,
        "block_866342_first_txs.hex",
        format!("0x{}\n", bitcoin::hex::DisplayHex::to_lower_hex_string(&small[..])).as_bytes(),
    );
    write(&d, "block_866342_coinbase_only.raw", &bitcoin::consensus::serialize(&first_txs(&block, 0)));
    let old: Block = bitcoin::consensus::deserialize(&data("mainnet/block_367891.raw.zst")).expect("block 367891");
    write(&d, "block_367891_first_txs.raw", &bitcoin::consensus::serialize(&first_txs(&old, 16)));

    // Spent outputs: 50 real entries in kiln's format, the same as
    // `getblock HASH 3` would show them, and block 367891's (empty scripts).
    let d = dir("prevouts_reader");
    let all: Vec<Value> = serde_json::from_slice(&data("mainnet/block_866342.spent_utxos.json.zst")).expect("json");
    let fifty = &all[..50];
    write(&d, "kiln_866342_50.json", serde_json::to_string_pretty(fifty).unwrap().as_bytes());
    let flat: Vec<Value> = fifty[..5]
        .iter()
        .map(|e| json!({"value": e["txout"]["value"], "script_pubkey": e["txout"]["script_pubkey"]}))
        .collect();
    write(&d, "kiln_flat_5.json", serde_json::to_string(&flat).unwrap().as_bytes());
    let vin: Vec<Value> = fifty
        .iter()
        .map(|e| {
            json!({"txid": "00", "vout": 0, "prevout": {
                "generated": e["is_coinbase"],
                "height": e["creation_height"],
                "value": e["txout"]["value"].as_u64().unwrap() as f64 / 1e8,
                "scriptPubKey": {"hex": e["txout"]["script_pubkey"], "type": "witness_v0_keyhash"},
            }})
        })
        .collect();
    let getblock = json!({"hash": block.block_hash().to_string(), "height": 866342, "tx": [
        {"txid": block.txdata[0].compute_txid().to_string(), "vin": [{"coinbase": "0326380d", "sequence": 4294967295u32}]},
        {"txid": block.txdata[1].compute_txid().to_string(), "vin": vin[..25]},
        {"txid": block.txdata[2].compute_txid().to_string(), "vin": vin[25..]},
    ]});
    write(&d, "getblock3_866342_50.json", serde_json::to_string_pretty(&getblock).unwrap().as_bytes());
    let old_spent: Vec<Value> =
        serde_json::from_slice(&data("mainnet/block_367891.spent_utxos.json.zst")).expect("json");
    write(&d, "kiln_367891_20.json", serde_json::to_string(&old_spent[..20]).unwrap().as_bytes());

    // A mainnet peer: version, verack, ping, 200 real headers, an inv.
    {
        use bitcoin::p2p::message::NetworkMessage;
        use bitcoin::p2p::message_blockdata::Inventory;
        use bitcoin::p2p::message_network::VersionMessage;
        use bitcoin::p2p::{Address, ServiceFlags};
        let magic = kiln_p2p::wire::magic(bitcoin::Network::Bitcoin);
        let addr = Address::new(&"127.0.0.1:8333".parse().unwrap(), ServiceFlags::NONE);
        let version = VersionMessage::new(
            ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            1_700_000_000,
            addr.clone(),
            addr,
            99,
            "/Satoshi:31.99.0/".into(),
            10_236,
        );
        let headers_raw = data("mainnet/headers_0_10236.bin.zst");
        let headers: Vec<bitcoin::block::Header> =
            headers_raw.chunks(80).skip(1).take(200).map(|h| bitcoin::consensus::deserialize(h).unwrap()).collect();
        let first_hash = headers[0].block_hash();
        let msgs = [
            NetworkMessage::Version(version),
            NetworkMessage::WtxidRelay,
            NetworkMessage::SendAddrV2,
            NetworkMessage::Verack,
            NetworkMessage::Ping(5),
            NetworkMessage::Headers(headers),
            NetworkMessage::Inv(vec![Inventory::Block(first_hash)]),
        ];
        let stream: Vec<u8> = msgs.into_iter().flat_map(|m| kiln_p2p::wire::encode_message(magic, m)).collect();
        for (tag, first) in [("1", 0u8), ("61", 60), ("256", 255)] {
            write(&dir("p2p_peer"), &format!("handshake_headers_chunk{tag}"), &[&[first][..], &stream].concat());
            // The same stream from an inbound v1 peer, through the transport.
            write(&dir("p2p_transport"), &format!("v1_handshake_headers_chunk{tag}"), &[&[first][..], &stream].concat());
        }
        // A would-be v2 peer: 64 key bytes, garbage, no terminator.
        let v2: Vec<u8> = (0..64 + 300).map(|i| (i * 37 % 251) as u8).collect();
        write(&dir("p2p_transport"), "v2_key_and_garbage", &[&[63u8][..], &v2].concat());
    }

    // A node's answers: a template (block 866342's first 40 transactions,
    // so the commitment is kiln's own), a 2.0 error, a 1.0 error, a 401,
    // a chunked answer.
    {
        let mut gbt: Value =
            serde_json::from_slice(&data("gbt/block_866342_as_getblocktemplate.json.zst")).expect("gbt json");
        let t = &mut gbt["template"];
        t["transactions"].as_array_mut().unwrap().truncate(40);
        t.as_object_mut().unwrap().remove("default_witness_commitment");
        let body = serde_json::to_string(&json!({"jsonrpc": "2.0", "result": t, "id": 1})).unwrap();
        let http = |status: &str, body: &str| {
            format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        };
        let d = dir("rpc_response");
        write(&d, "template_40_chunk97", &[&[96u8][..], http("200 OK", &body).as_bytes()].concat());
        let err2 = r#"{"jsonrpc":"2.0","error":{"code":-10,"message":"Bitcoin Core is in initial sync"},"id":1}"#;
        write(&d, "error_2_0", &[&[255u8][..], http("200 OK", err2).as_bytes()].concat());
        let err1 = r#"{"result":null,"error":{"code":-28,"message":"Loading block index..."},"id":1}"#;
        write(&d, "error_1_0", &[&[7u8][..], http("500 Internal Server Error", err1).as_bytes()].concat());
        write(&d, "unauthorized", b"\x10HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{\"result\"\r\n7\r\n:null}\n\r\n0\r\n\r\n";
        write(&d, "chunked", &[&[3u8][..], chunked.as_bytes()].concat());
    }

    for t in kiln_fuzz::TARGETS {
        let n = std::fs::read_dir(dir(t)).map_or(0, |d| d.count());
        println!("{t}: {n} seeds in {}", dir(t).display());
    }
}
