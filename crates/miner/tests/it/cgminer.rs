//! The cgminer API against a real miner mining on the loopback test pool,
//! through a client written from cgminer's API-README: one request per
//! connection (JSON `{"command":..,"parameter":..}` or text `cmd|param`), one
//! NUL-terminated reply, STATUS sections with cgminer's codes (S 11 Summary,
//! S 9 devs, S 7 pools, S 22 version, S 33 config, S 70 stats; E 14 invalid
//! command, E 45 access denied, E 23 invalid JSON).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_miner::miner::{Miner, MinerConfig};
use kiln_miner::stats::Stats;
use kiln_testkit::pool::{Behavior, TestPool};
use serde_json::Value;

use crate::stratum::miner_config;

/// Sends `req`, reads the reply to the end (the server closes), bounded.
fn raw(addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("the server answers and closes within 5 s");
    out
}

/// The reply without its NUL terminator (which cgminer always sends).
fn reply(addr: SocketAddr, req: &[u8]) -> String {
    let mut out = raw(addr, req);
    assert_eq!(out.pop(), Some(0), "a cgminer reply ends with NUL: {:?}", String::from_utf8_lossy(&out));
    String::from_utf8(out).expect("replies are UTF-8")
}

fn cmd(addr: SocketAddr, command: &str) -> Value {
    let req = serde_json::json!({"command": command, "parameter": ""}).to_string();
    let r = reply(addr, req.as_bytes());
    serde_json::from_str(&r).unwrap_or_else(|e| panic!("{command}: {e}: {r}"))
}

/// (STATUS, Code) of a reply in either form.
fn status(r: &str) -> (String, u64) {
    if let Ok(v) = serde_json::from_str::<Value>(r) {
        let st = &v["STATUS"][0];
        return (st["STATUS"].as_str().unwrap().to_string(), st["Code"].as_u64().unwrap());
    }
    // Text: STATUS=X,When=N,Code=N,Msg=...,Description=...|
    let section = r.split('|').next().unwrap();
    let field = |k: &str| section.split(',').find_map(|f| f.strip_prefix(k)).unwrap_or_else(|| panic!("{k} in {r}"));
    (field("STATUS=").to_string(), field("Code=").parse().unwrap())
}

fn start(pools: &[String]) -> Miner {
    Miner::start(MinerConfig {
        cgminer_api: Some("127.0.0.1:0".parse().unwrap()),
        api: Some("127.0.0.1:0".parse().unwrap()),
        ..miner_config(pools)
    })
    .unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn cgminer_clients_read_a_mining_kiln() {
    let primary = TestPool::start(Behavior::default());
    let backup = TestPool::start(Behavior::default());
    let m = start(&[primary.url(), backup.url()]);
    let addr = m.cgminer_addr.expect("bound");
    assert!(addr.ip().is_loopback());
    primary.wait_for("a few shares", Duration::from_secs(30), |l| l.valid() >= 5);
    let stats = m.stats();
    // Let the answers to the shares just sent arrive, then read around the request.
    std::thread::sleep(Duration::from_millis(600));

    let before = stats.snapshot();
    let v = cmd(addr, "summary");
    let after = stats.snapshot();
    assert_eq!(status(&v.to_string()), ("S".into(), 11));
    assert_eq!(v["STATUS"][0]["Msg"], "Summary");
    assert!(v["STATUS"][0]["Description"].as_str().unwrap().starts_with("kiln "));
    assert_eq!(v["id"], 1);
    let s = &v["SUMMARY"][0];
    let within = |key: &str, lo: f64, hi: f64| {
        let x = f(&s[key]);
        assert!(lo <= x && x <= hi, "{key} = {x}, the stats said {lo} then {hi}");
    };
    within("Accepted", before.accepted as f64, after.accepted as f64);
    assert!(f(&s["Accepted"]) >= 5.0);
    within("Rejected", before.rejected as f64, after.rejected as f64);
    within("Stale", before.stale as f64, after.stale as f64);
    within("Hardware Errors", before.hw_errors as f64, after.hw_errors as f64);
    within("Found Blocks", before.blocks as f64, after.blocks as f64);
    within("Getworks", before.jobs as f64, after.jobs as f64);
    within("Elapsed", before.uptime_s.floor(), after.uptime_s.ceil());
    within("Difficulty Accepted", before.difficulty_accepted - 1e-6, after.difficulty_accepted + 1e-6);
    within("Best Share", before.best_share.floor(), after.best_share.floor());
    assert!(f(&s["MHS av"]) > 0.0 && f(&s["MHS 5s"]) > 0.0, "{s}");
    assert!(f(&s["Last getwork"]) > 1.6e9, "a unix time: {s}");
    for key in [
        "Utility",
        "Discarded",
        "Local Work",
        "Difficulty Rejected",
        "Difficulty Stale",
        "Pool Rejected%",
        "Pool Stale%",
    ] {
        assert!(s[key].is_number(), "{key} missing: {s}");
    }
    // The same numbers as the HTTP API's /summary.
    let http = {
        let mut c = TcpStream::connect(m.api_addr.unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /summary HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        serde_json::from_str::<Value>(out.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    assert!(f(&http["accepted"]) >= f(&s["Accepted"]));
    assert_eq!(f(&http["blocks"]), f(&s["Found Blocks"]));

    // devs: one entry per scanner, CPU as CPU.
    let v = cmd(addr, "devs");
    assert_eq!(status(&v.to_string()), ("S".into(), 9));
    let devs = v["DEVS"].as_array().unwrap();
    assert_eq!(devs.len(), after.scanners.len());
    assert_eq!(devs[0]["CPU"], 0);
    assert_eq!(devs[0]["Name"], after.scanners[0].name.as_str());
    assert_eq!((devs[0]["Enabled"].as_str(), devs[0]["Status"].as_str()), (Some("Y"), Some("Alive")));
    assert!(f(&devs[0]["MHS av"]) > 0.0 && f(&devs[0]["Accepted"]) >= 5.0, "{}", devs[0]);

    // pools: both, in priority order, the primary in use; no password anywhere.
    let v = cmd(addr, "pools");
    assert_eq!(status(&v.to_string()), ("S".into(), 7));
    let pools = v["POOLS"].as_array().unwrap();
    assert_eq!(pools.len(), 2);
    for (i, (p, url)) in pools.iter().zip([primary.url(), backup.url()]).enumerate() {
        assert_eq!(p["POOL"], i);
        assert_eq!(p["Priority"], i);
        assert_eq!(p["URL"], url.as_str());
        assert_eq!(p["User"], "kiln.test");
        assert_eq!(p["Status"], "Alive");
    }
    assert_eq!((pools[0]["Stratum Active"].as_bool(), pools[1]["Stratum Active"].as_bool()), (Some(true), Some(false)));
    assert!(f(&pools[0]["Accepted"]) >= 5.0 && f(&pools[0]["Getworks"]) >= 1.0);

    let v = cmd(addr, "version");
    assert_eq!(status(&v.to_string()), ("S".into(), 22));
    assert_eq!(v["VERSION"][0]["API"], "3.7");
    assert_eq!(v["VERSION"][0]["CGMiner"], env!("CARGO_PKG_VERSION"));
    let v = cmd(addr, "config");
    assert_eq!(status(&v.to_string()), ("S".into(), 33));
    assert_eq!((v["CONFIG"][0]["Pool Count"].as_u64(), v["CONFIG"][0]["CPU Count"].as_u64()), (Some(2), Some(1)));
    let v = cmd(addr, "stats");
    assert_eq!(status(&v.to_string()), ("S".into(), 70));
    assert_eq!(v["STATS"].as_array().unwrap().len(), 3, "a scanner and two pools: {v}");

    // Text form, with and without a parameter, and joined commands.
    let t = reply(addr, b"summary");
    assert_eq!(status(&t), ("S".into(), 11));
    assert!(t.contains("|SUMMARY,Elapsed="), "{t}");
    assert_eq!(status(&reply(addr, b"pools|0\n")), ("S".into(), 7));
    let v: Value = serde_json::from_str(&reply(addr, br#"{"command":"summary+devs"}"#)).unwrap();
    assert_eq!(v["summary"][0]["STATUS"][0]["Code"], 11);
    assert_eq!(v["devs"][0]["DEVS"].as_array().unwrap().len(), 1);

    // No reply to any command, in either form, carries the password.
    for c in ["summary", "devs", "pools", "stats", "version", "config", "summary+pools+devs+stats"] {
        assert!(!reply(addr, c.as_bytes()).contains("s3cret-pass"), "{c}");
        assert!(!cmd(addr, c).to_string().contains("s3cret-pass"), "{c}");
    }

    // Privileged commands: access denied (45); anything else invalid (14).
    for (req, code) in [
        (&br#"{"command":"addpool","parameter":"stratum+tcp://evil:1,u,p"}"#[..], 45),
        (b"switchpool|1", 45),
        (b"restart", 45),
        (b"quit", 45),
        (b"privileged", 45),
        (br#"{"command":"removepool","parameter":"0"}"#, 45),
        (b"nonsense", 14),
        (b"\n", 14),
        (b"\xff\xfe\xfdsummary", 14),
        (&[b'a'; 20_000], 14),
        (br#"{"command": summary}"#, 23),
        (br#"{"parameter":"1"}"#, 24),
    ] {
        let r = reply(addr, req);
        assert_eq!(status(&r), ("E".into(), code), "{:?}: {r}", String::from_utf8_lossy(&req[..req.len().min(40)]));
    }
    // None of that changed anything: still two pools, still mining on the primary.
    let v = cmd(addr, "pools");
    assert_eq!(v["POOLS"].as_array().unwrap().len(), 2);
    let shares = primary.log.lock().unwrap().valid();
    primary.wait_for("shares after the hostile requests", Duration::from_secs(30), |l| l.valid() > shares);
    assert!(m.is_running());
    m.stop();
}

fn server() -> (std::thread::JoinHandle<()>, SocketAddr, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (h, addr) =
        kiln_miner::cgminer::serve("127.0.0.1:0".parse().unwrap(), Arc::new(Stats::new()), Arc::clone(&stop)).unwrap();
    (h, addr, stop)
}

#[test]
fn slow_and_silent_cgminer_clients_are_cut_off_without_holding_others() {
    let (h, addr, stop) = server();
    let deadline = kiln_miner::api::REQUEST_DEADLINE;
    // One that never sends: an E reply once the deadline passed, then the close.
    let silent = std::thread::spawn(move || {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        (t.elapsed(), out)
    });
    // One that sends a byte every 300 ms (each pause longer than a whole request takes).
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut out = Vec::new();
        for b in br#"{"command":"summary"}"#.iter().cycle() {
            if s.write_all(&[*b]).is_err() || t.elapsed() > Duration::from_secs(10) {
                break;
            }
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        (t.elapsed(), out)
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    assert_eq!(status(&reply(addr, b"summary")), ("S".into(), 11));
    assert!(t.elapsed() < Duration::from_millis(500), "answered after {:?}", t.elapsed());

    let (took, out) = silent.join().unwrap();
    assert!(took >= deadline && took < deadline + Duration::from_secs(2), "silent client cut off after {took:?}");
    let r = String::from_utf8_lossy(out.strip_suffix(&[0]).expect("NUL-terminated"));
    assert_eq!(status(&r), ("E".into(), 14), "{r}");
    let (took, out) = slow.join().unwrap();
    assert!(took < deadline + Duration::from_secs(2), "slow client held for {took:?}");
    let r = String::from_utf8_lossy(out.strip_suffix(&[0]).expect("NUL-terminated"));
    assert_eq!(status(&r).0, "E", "{r}");

    let t = Instant::now();
    stop.store(true, Ordering::Release);
    h.join().unwrap();
    assert!(t.elapsed() < Duration::from_millis(500), "stopped after {:?}", t.elapsed());
}

#[test]
fn many_idle_cgminer_connections_do_not_block_a_request() {
    let (h, addr, stop) = server();
    let idle: Vec<_> = (0..100).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // Over the cap a connection is closed unread at once: retry until one is served.
    let t = Instant::now();
    let served = loop {
        // Turned away: the connection may close (or reset) before the write.
        let mut out = Vec::new();
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if s.write_all(b"version").is_ok() {
                let _ = s.read_to_end(&mut out);
            }
        }
        if !out.is_empty() || t.elapsed() > Duration::from_secs(4) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(served.last(), Some(&0), "served once the idle ones hit the deadline");
    assert!(t.elapsed() < kiln_miner::api::REQUEST_DEADLINE + Duration::from_secs(1), "after {:?}", t.elapsed());
    drop(idle);
    stop.store(true, Ordering::Release);
    h.join().unwrap();
}
