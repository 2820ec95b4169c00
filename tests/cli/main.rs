//! The `kiln` binary as a user runs it: outputs and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

use kiln_testkit::blocks::{flip_first_signature, load};
use kiln_testkit::data::path;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("running kiln")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const B: &str = "mainnet/block_866342.raw.zst";
const P: &str = "mainnet/block_866342.spent_utxos.json.zst";

#[test]
fn verify_block_valid_invalid_and_unreadable_exit_codes() {
    let (b, p) = (path(B), path(P));
    let ok = kiln(&["verify-block", "--block", b.to_str().unwrap(), "--prevouts", p.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("VALID"));

    // A flipped signature: exit 1, the input named.
    let (mut block, _) = load(866342);
    assert!(flip_first_signature(&mut block.txdata[10]));
    let bad_path = tmp("bad_block.bin");
    std::fs::write(&bad_path, bitcoin::consensus::serialize(&block)).unwrap();
    let bad =
        kiln(&["verify-block", "--block", bad_path.to_str().unwrap(), "--prevouts", p.to_str().unwrap(), "--json"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    let bads = report["bad_inputs"].as_array().unwrap();
    assert_eq!(bads.len(), 1);
    assert_eq!(bads[0]["tx_index"], 10);
    assert_eq!(bads[0]["input_index"], 0);
    // The same verdict with Schnorr batching off.
    let one_by_one = kiln(&[
        "verify-block",
        "--block",
        bad_path.to_str().unwrap(),
        "--prevouts",
        p.to_str().unwrap(),
        "--json",
        "--no-schnorr-batch",
    ]);
    assert_eq!(one_by_one.status.code(), Some(1), "{}", text(&one_by_one));
    let again: serde_json::Value = serde_json::from_slice(&one_by_one.stdout).unwrap();
    assert_eq!(again["bad_inputs"], report["bad_inputs"]);

    // Hex text input works too.
    let hex_path = tmp("block.hex");
    std::fs::write(&hex_path, hex::encode(kiln_testkit::data::read(B))).unwrap();
    let hexed = kiln(&["verify-block", "--block", hex_path.to_str().unwrap(), "--prevouts", p.to_str().unwrap()]);
    assert_eq!(hexed.status.code(), Some(0), "{}", text(&hexed));

    // Wrong number of prevouts: exit 2 with a clear message.
    let v: serde_json::Value = serde_json::from_slice(&kiln_testkit::data::read(P)).unwrap();
    let mut arr = v.as_array().unwrap().clone();
    arr.pop();
    let short = tmp("short.json");
    std::fs::write(&short, serde_json::to_vec(&arr).unwrap()).unwrap();
    let o = kiln(&["verify-block", "--block", b.to_str().unwrap(), "--prevouts", short.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("7971 spent outputs given, but the block has 7972"), "{}", text(&o));

    // Unreadable and malformed files: exit 2, no panic.
    let o = kiln(&["verify-block", "--block", "/nonexistent/block", "--prevouts", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot read"));
    let junk = tmp("junk.bin");
    std::fs::write(&junk, b"\\x01\\x02 not a block").unwrap();
    let o = kiln(&["verify-block", "--block", junk.to_str().unwrap(), "--prevouts", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!text(&o).contains("panicked"));
    let o = kiln(&["verify-block", "--block", b.to_str().unwrap(), "--prevouts", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not JSON"), "{}", text(&o));
}

/// The `bitcoin-cli getblock HASH 3` prevouts format.
#[test]
fn verify_block_accepts_getblock_verbosity_3_prevouts() {
    let (block, prevouts) = load(866342);
    let mut at = 0;
    let txs: Vec<serde_json::Value> = block
        .txdata
        .iter()
        .enumerate()
        .map(|(ti, tx)| {
            let vin: Vec<serde_json::Value> = tx
                .input
                .iter()
                .map(|_| {
                    if ti == 0 {
                        serde_json::json!({"coinbase": "00"})
                    } else {
                        let o = &prevouts[at];
                        at += 1;
                        serde_json::json!({"prevout": {
                            "value": o.value.to_sat() as f64 / 1e8,
                            "scriptPubKey": {"hex": hex::encode(o.script_pubkey.as_bytes())}
                        }})
                    }
                })
                .collect();
            serde_json::json!({"txid": tx.compute_txid().to_string(), "vin": vin})
        })
        .collect();
    let f = tmp("getblock3.json");
    std::fs::write(&f, serde_json::to_vec(&serde_json::json!({"hash": "x", "tx": txs})).unwrap()).unwrap();
    let o = kiln(&["verify-block", "--block", path(B).to_str().unwrap(), "--prevouts", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn bench_json_and_devices() {
    let o = kiln(&["bench", "--backend", "scalar", "--threads", "1", "--seconds", "0.75", "--json", "--no-reference"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = &rows.as_array().unwrap()[0];
    for key in ["backend", "threads", "hashes", "seconds", "mhs"] {
        assert!(row.get(key).is_some(), "missing {key}");
    }
    assert_eq!(row["backend"], "scalar");
    assert!(row["mhs"].as_f64().unwrap() > 0.1);
    let o = kiln(&["bench", "--backend", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown backend"));
    // Without XDG_RUNTIME_DIR, Mesa's warning must not reach the user.
    let o = Command::new(env!("CARGO_BIN_EXE_kiln")).arg("devices").env_remove("XDG_RUNTIME_DIR").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("XDG_RUNTIME_DIR"), "{}", text(&o));
    let o = kiln(&["devices"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("scalar"));
}

#[test]
fn mine_against_a_loopback_pool_never_logs_the_password() {
    use kiln_testkit::pool::{Behavior, TestPool};
    let pool = TestPool::start(Behavior::default());
    let url = pool.url();
    let o = kiln(&[
        "mine",
        "-o",
        &url,
        "-u",
        "kiln.cli",
        "-p",
        "s3cret-pass",
        "--cpu-threads",
        "1",
        "--gpu",
        "off",
        "--duration",
        "4",
        "--status-interval",
        "1",
        "--log-level",
        "debug",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("share accepted"), "{out}");
    assert!(out.contains("MH/s"), "status line: {out}");
    assert!(!out.contains("s3cret-pass"), "password in the logs: {out}");
    assert!(pool.log.lock().unwrap().valid() >= 1);
    assert_eq!(pool.log.lock().unwrap().passwords_seen, vec!["s3cret-pass".to_string()]);

    // The same from a TOML config file.
    let cfg = tmp("kiln.toml");
    std::fs::write(&cfg, format!("cpu-threads = 1\ngpu = \"off\"\nstatus-interval = 1\n\n[[pool]]\nurl = \"{url}\"\nuser = \"kiln.toml\"\npass = \"x\"\n")).unwrap();
    let o = kiln(&["mine", "--config", cfg.to_str().unwrap(), "--duration", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("share accepted"), "{}", text(&o));

    // Usage errors: exit 2 with a message.
    let o = kiln(&["mine", "-o", "http://x:1", "-u", "u"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unsupported scheme"), "{}", text(&o));
    let o = kiln(&["mine"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no pool given"));
    std::fs::write(&cfg, "cpu_threadz = 1\n").unwrap();
    let o = kiln(&["mine", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown field"), "{}", text(&o));
}

/// Hostile and awkward files: every one an exit-2 message or a clean verdict,
/// never a panic, never unbounded memory.
#[test]
fn verify_block_survives_hostile_files() {
    let (b, p) = (path(B), path(P));
    let (b, p) = (b.to_str().unwrap(), p.to_str().unwrap());
    let raw = kiln_testkit::data::read(B);

    // A zstd bomb: 40 MiB of zeros in a few KB. Refused at the block size
    // limit, without decompressing it all.
    let bomb = tmp("bomb.zst");
    std::fs::write(&bomb, zstd::encode_all(&vec![0u8; 40 << 20][..], 19).unwrap()).unwrap();
    let o = kiln(&["verify-block", "--block", bomb.to_str().unwrap(), "--prevouts", p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("larger than a block file can be"), "{}", text(&o));

    // More spent outputs than inputs: refused as the extra entry arrives.
    let v: serde_json::Value = serde_json::from_slice(&kiln_testkit::data::read(P)).unwrap();
    let mut arr = v.as_array().unwrap().clone();
    arr.push(arr[0].clone());
    let long = tmp("long.json");
    std::fs::write(&long, serde_json::to_vec(&arr).unwrap()).unwrap();
    let o = kiln(&["verify-block", "--block", b, "--prevouts", long.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("entry 7972: more spent outputs than the block has inputs"), "{}", text(&o));

    // Hex with a 0x prefix, wrapped at 64 columns: accepted.
    let digits = hex::encode(&raw);
    let wrapped: Vec<&str> = digits.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let hex_path = tmp("wrapped.hex");
    std::fs::write(&hex_path, format!("0x{}\n", wrapped.join("\n"))).unwrap();
    let o = kiln(&["verify-block", "--block", hex_path.to_str().unwrap(), "--prevouts", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A truncated block says so.
    let cut = tmp("cut.bin");
    std::fs::write(&cut, &raw[..1000]).unwrap();
    let o = kiln(&["verify-block", "--block", cut.to_str().unwrap(), "--prevouts", p]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("truncated: 1000 bytes end before the block does"), "{}", text(&o));

    // Absurd thread counts are usage errors.
    let o = kiln(&["verify-block", "--block", b, "--prevouts", p, "--threads", "5000"]);
    assert_eq!(o.status.code(), Some(2));

    // A reader that goes away (`| head -1`): kiln ends quietly by SIGPIPE as
    // Unix tools do, not with a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["verify-block", "--block", b, "--prevouts", p])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before kiln prints (it prints after validating).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(13), "ended by SIGPIPE: {:?}", out.status);
}

/// SIGTERM and SIGINT end `kiln mine` as `--duration` does: exit 0 with a
/// final summary line.
#[test]
fn mine_ends_with_a_summary_on_sigterm_sigint_and_duration() {
    use kiln_testkit::pool::{Behavior, TestPool};
    let pool = TestPool::start(Behavior::default());
    let url = pool.url();
    let base = ["mine", "-o", &url, "-u", "kiln.sig", "-p", "x", "--cpu-threads", "1", "--gpu", "off"];
    let summary =
        |out: &str| out.lines().any(|l| l.contains("summary:") && l.contains("accepted") && l.contains("MH/s"));

    let o = kiln(&[&base[..], &["--duration", "2"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(summary(&text(&o)), "no summary after --duration: {}", text(&o));

    for sig in ["-TERM", "-INT"] {
        let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(base)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        let killed = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        // Bounded: kiln must be gone well within the test's patience (and is
        // killed if not, so no test leaves it running).
        let pid = child.id().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let Ok(o) = rx.recv_timeout(std::time::Duration::from_secs(15)) else {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{sig}: kiln did not exit within 15 s of the signal");
        };
        let o = o.unwrap();
        assert_eq!(o.status.code(), Some(0), "{sig}: {}", text(&o));
        assert!(summary(&text(&o)), "{sig}: no summary: {}", text(&o));
    }
}

/// `--api-cgminer PORT` binds loopback and answers cgminer's protocol from
/// the running binary; `--help` documents it with cgminer's usual port.
#[test]
fn mine_serves_the_cgminer_api_on_loopback() {
    use kiln_testkit::pool::{Behavior, TestPool};
    use std::io::{BufRead, Read, Write};
    let help = kiln(&["mine", "--help"]);
    assert!(text(&help).contains("--api-cgminer") && text(&help).contains("4028"), "{}", text(&help));

    let pool = TestPool::start(Behavior::default());
    let url = pool.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["mine", "-o", &url, "-u", "kiln.cg", "-p", "s3cret-pass", "--cpu-threads", "1", "--gpu", "off"])
        .args(["--api-cgminer", "0", "--duration", "20"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The log names the bound address (port 0 resolved).
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let addr: std::net::SocketAddr = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("no 'cgminer API' line within 15 s");
        };
        if let Some(a) = line.split("cgminer API (read-only) on ").nth(1) {
            break a.trim().parse().unwrap();
        }
    };
    assert!(addr.ip().is_loopback(), "a bare port binds loopback: {addr}");
    pool.wait_for("a share", std::time::Duration::from_secs(15), |l| l.valid() >= 1);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(br#"{"command":"pools","parameter":""}"#).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out.pop(), Some(0), "NUL-terminated");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(v["STATUS"][0]["STATUS"], "S", "{v}");
    assert_eq!(v["POOLS"][0]["URL"], url.as_str());
    assert_eq!(v["POOLS"][0]["User"], "kiln.cg");
    assert!(!v.to_string().contains("s3cret-pass"));
}

/// `kiln mine --solo` against a real regtest node: bad credentials and an
/// address of another network are usage errors (exit 2) before any hashing;
/// with the node's cookie it mines blocks the node accepts and says so in
/// its summary; a usage mistake without a node is exit 2 too.
#[test]
fn mine_solo_exit_codes_and_blocks_against_a_real_node() {
    let o = kiln(&["mine", "--solo", "-t", "1", "--gpu", "off"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--coinbase-addr"), "{}", text(&o));

    let node =
        kiln_testkit::require_node!(kiln_testkit::NodeOptions::new().listen(false).auth(kiln_testkit::Auth::Cookie));
    let url = node.rpc_url();
    let cookie = node.cookie_path();
    let cookie = cookie.to_str().unwrap();
    let regtest_addr = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85";
    let base = ["mine", "--solo", "--rpc", url.as_str(), "-t", "1", "--gpu", "off", "--duration", "20"];

    let bad =
        [&base[..], &["--rpc-user", "kiln", "--rpc-pass", "wrong-password", "--coinbase-addr", regtest_addr]].concat();
    let o = kiln(&bad);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("401"), "{}", text(&o));
    assert!(!text(&o).contains("wrong-password"), "the password is never printed");

    let mainnet =
        [&base[..], &["--rpc-cookie", cookie, "--coinbase-addr", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"]]
            .concat();
    let o = kiln(&mainnet);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("regtest"), "{}", text(&o));

    let good = ["mine", "--solo", "--rpc", url.as_str(), "--rpc-cookie", cookie, "--coinbase-addr", regtest_addr];
    let good = [&good[..], &["-t", "1", "--gpu", "off", "--duration", "3", "--status-interval", "1"]].concat();
    let o = kiln(&good);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let height = kiln_testkit::regtest::block_count(&node).unwrap();
    assert!(height >= 1, "no block was mined:\n{}", text(&o));
    assert!(text(&o).contains(&format!("accepted {height}")), "the summary counts the node's blocks:\n{}", text(&o));
}

/// `kiln node` as a user runs it: usage errors are exit 2; it syncs the
/// headers and blocks of a real regtest bitcoind into --datadir; killed with
/// SIGKILL in the middle of the block download, it keeps every block it
/// had acknowledged and resumes from there; the read-only API answers
/// /chain, /peers and /metrics; SIGINT stops it cleanly with a summary
/// naming Core's tip.
#[test]
fn node_syncs_survives_kill_9_and_usage_errors_exit_2() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    for bad in [
        &["node", "--chain", "regtest", "--connect", "not-an-address"][..],
        &["node", "--chain", "regtest", "--connect", "127.0.0.1"],
        &["node", "--chain", "moon", "--connect", "127.0.0.1:18444"],
        &["node", "--chain", "regtest"],
        &["node", "--chain", "regtest", "--listen", "nowhere"],
        &["node", "--chain", "regtest", "--listen", "--headers-only"],
    ] {
        let o = kiln(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
    }
    let help = text(&kiln(&["node", "--help"]));
    assert!(help.contains("--datadir") && help.contains("--listen") && help.contains("compact"), "{help}");

    let node = kiln_testkit::require_node!(kiln_testkit::NodeOptions::default());
    let addr = node.p2p_addr().expect("listening node").to_string();
    let total = 3_000u32;
    for _ in 0..total / 500 {
        kiln_testkit::regtest::generate_to_address(&node, 500, &kiln_testkit::regtest::op_true_address()).unwrap();
    }
    let best = kiln_testkit::regtest::best_block_hash(&node).unwrap();
    let dir = kiln_testkit::TempDir::new("cli-node");
    let datadir = dir.path().to_str().unwrap().to_string();

    // Lines of a child's stderr, as they come.
    let lines_of = |child: &mut std::process::Child| {
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let base = ["node", "--chain", "regtest", "--connect", &addr, "--datadir", &datadir, "--status-interval", "1"];

    // 1. SIGKILL once a few hundred blocks are in.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(base)
        .args(["--log-level", "debug"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen = 0u32;
    while Instant::now() < until && seen < 300 {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else { continue };
        if let Some(h) = line.split(" at height ").nth(1).and_then(|h| h.trim().parse::<u32>().ok()) {
            seen = h;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    assert!(seen >= 300, "the first run never reported 300 blocks");
    {
        let store = kiln_store::BlockStore::open(dir.path()).unwrap();
        let (tip, height) = store.tip().unwrap().expect("a tip was committed");
        assert!(height >= seen, "acknowledged height {seen}, the store holds {height}");
        let block = store.get(&tip).unwrap().expect("the tip block is readable");
        assert_eq!(block.block_hash(), tip);
        eprintln!("killed at block height {height} of {total}");
    }

    // 2. Restart: it resumes and reaches Core's tip; the API shows it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(base)
        .args(["--api", "0", "--listen", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let rx = lines_of(&mut child);
    let get = |api: &str, path: &str| -> String {
        let mut s = std::net::TcpStream::connect(api).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let mut api = None;
    let mut log = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    let mut synced = false;
    while Instant::now() < until && !synced {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(a) = line.split("API on http://").nth(1) {
                api = Some(a.split('/').next().unwrap().to_string());
            }
            log.push(line);
        }
        if let Some(a) = &api {
            let chain = get(a, "/chain");
            synced = chain.contains(&format!("\"block_height\": {total}")) && chain.contains(&best.to_string());
        }
    }
    let a = api.expect("the API address is logged");
    if !synced {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("no sync to {total} after the restart:\n{}", log.join("\n"));
    }
    let peers = get(&a, "/peers");
    assert!(peers.contains("Satoshi") && peers.contains("\"inbound\": false"), "{peers}");
    let metrics = get(&a, "/metrics");
    assert!(metrics.contains(&format!("kiln_node_block_height {total}")), "{metrics}");
    assert!(get(&a, "/nope").starts_with("HTTP/1.1 404"));

    // A status line comes every second (--status-interval 1).
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && !log.iter().any(|l| l.contains("blocks/s")) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }

    // 3. SIGINT: a clean stop with the summary.
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(o) = done.recv_timeout(Duration::from_secs(10)) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("kiln node did not exit within 10 s of SIGINT");
    };
    let o = o.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains(&format!("blocks {total} tip {best}")), "{summary}");
    assert!(log.iter().any(|l| l.contains("blocks/s")), "a status line:\n{}", log.join("\n"));
}
