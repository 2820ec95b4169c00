//! The pool worker end to end: Stratum session on real job data, the engine's
//! share rules, and kiln mining against the misbehaving test pool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_hash::Backend;
use kiln_miner::engine::{Engine, Solution, SourceEvent};
use kiln_miner::miner::{JobSource, Miner, MinerConfig};
use kiln_miner::source::stratum::{ClientOptions, PoolConfig, share_of};
use kiln_miner::stats::Stats;
use kiln_scan::gpu::{GpuScannerOptions, GpuSelection};
use kiln_scan::{ScanEvent, Scanner};
use kiln_stratum::{Event, Session, SessionConfig};
use kiln_work::{BlockHash, Work};
use serde_json::json;

use kiln_testkit::pool::{Behavior, TestPool, job_100000};

/// Feeds the real block-100000 job through a session and returns its Job.
pub fn session_with_job(mask: Option<u32>) -> (Session, kiln_work::Job) {
    let data = job_100000();
    let mut s = Session::new(SessionConfig { version_rolling: mask, ..SessionConfig::new("u", "p") });
    s.start();
    let out = String::from_utf8(s.take_output()).unwrap();
    let methods: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["method"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec!["mining.subscribe", "mining.authorize"];
    if mask.is_some() {
        want.insert(0, "mining.configure");
    }
    assert_eq!(methods, want, "configure first (BIP310), then subscribe, authorize");
    let mut lines = String::new();
    let mut id = 1;
    if mask.is_some() {
        lines += &format!(
            "{}\n",
            json!({"id": id, "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"}, "error": null})
        );
        id += 1;
    }
    let sub = &data["subscribe"];
    lines += &format!(
        "{}\n",
        json!({"id": id, "result": [[["mining.notify", "abc"]], sub["extranonce1"], sub["extranonce2_size"]], "error": null})
    );
    lines += &format!("{}\n", json!({"id": id + 1, "result": true, "error": null}));
    let n = &data["notify"];
    let params = json!([
        n["job_id"],
        n["prevhash"],
        n["coinb1"],
        n["coinb2"],
        n["merkle_branch"],
        n["version"],
        n["nbits"],
        n["ntime"],
        n["clean_jobs"]
    ]);
    lines += &format!("{}\n", json!({"id": null, "method": "mining.notify", "params": params}));
    let events = s.receive(lines.as_bytes());
    let job = events.iter().find_map(|e| if let Event::Job(j) = e { Some(j.clone()) } else { None }).expect("a job");
    assert!(events.contains(&Event::Authorized { ok: true, error: String::new() }));
    (s, job)
}

#[test]
fn session_builds_the_real_block_100000_header() {
    let data = job_100000();
    let (_, job) = session_with_job(None);
    let sol = &data["solution"];
    let en2 = hex::decode(sol["extranonce2"].as_str().unwrap()).unwrap();
    let ntime = u32::from_str_radix(sol["ntime"].as_str().unwrap(), 16).unwrap();
    let nonce = u32::from_str_radix(sol["nonce"].as_str().unwrap(), 16).unwrap();
    let mut root = job.merkle_root(&en2);
    root.reverse();
    assert_eq!(hex::encode(root), data["expect"]["merkle_root_display"].as_str().unwrap());
    let mut header = job.header(&en2, ntime, job.version);
    header[76..].copy_from_slice(&nonce.to_le_bytes());
    assert_eq!(hex::encode(header), data["expect"]["header_hex"].as_str().unwrap());
    let hash = BlockHash(kiln_hash::sha256d(&header));
    assert_eq!(hash.to_string(), data["expect"]["block_hash_display"].as_str().unwrap());
    // The prevhash word swap round-trips.
    let p = kiln_stratum::PrevHash::from_stratum_hex(data["notify"]["prevhash"].as_str().unwrap()).unwrap();
    assert_eq!(p.to_stratum_hex(), data["notify"]["prevhash"].as_str().unwrap());
}

/// A scanner that only records what it was given.
#[derive(Clone, Default)]
pub struct FakeScanner {
    pub works: Arc<Mutex<Vec<Work>>>,
}

impl Scanner for FakeScanner {
    fn label(&self) -> String {
        "fake".into()
    }
    fn set_work(&self, w: Work) -> u64 {
        let mut v = self.works.lock().unwrap();
        v.push(w);
        v.len() as u64
    }
    fn clear_work(&self) -> u64 {
        0
    }
    fn switched_to(&self, _: u64) -> bool {
        true
    }
    fn hashes(&self) -> u64 {
        0
    }
}

pub fn engine(
    job_mask: Option<u32>,
) -> (Engine, FakeScanner, crossbeam_channel::Receiver<Solution>, kiln_work::Job, Arc<Stats>) {
    let (_, mut job) = session_with_job(job_mask);
    job.extranonce2_size = 1;
    let fake = FakeScanner::default();
    let (tx, rx) = crossbeam_channel::unbounded();
    let stats = Arc::new(Stats::new());
    let mut e = Engine::new(vec![Box::new(fake.clone())], Arc::clone(&stats), tx, Box::new(|| {}));
    // These tests make every nonce a share on purpose: no share floor.
    e.set_share_rate_cap(None);
    (e, fake, rx, job, stats)
}

#[test]
fn version_rolled_work_and_submits_follow_bip310() {
    let (mut e, fake, rx, mut job, _) = engine(Some(0x1fff_e000));
    assert_eq!(job.version_mask, 0x1fff_e000);
    job.share_target = kiln_work::Target::MAX; // every nonce is a share
    e.on_net(SourceEvent::Job(job.clone()));
    // Exhaust the 256 extranonce2 values; then versions roll.
    for _ in 0..300 {
        let id = fake.works.lock().unwrap().last().unwrap().id;
        e.on_scan(ScanEvent::Exhausted { work_id: id, scanner: "fake".into() });
    }
    let works = fake.works.lock().unwrap().clone();
    let rolled = &works[280];
    let version = u32::from_le_bytes(rolled.header[..4].try_into().unwrap());
    assert_ne!(version, job.version, "past the extranonce2 space the version rolls");
    assert_eq!(version & !job.version_mask, job.version & !job.version_mask, "only masked bits change");
    // An easy-target share on rolled work: the submit carries version & mask,
    // and the pool's formula rebuilds the header's version.
    let easy = kiln_work::Target::MAX;
    let w = Work::new(rolled.id, rolled.header, easy);
    let hash = w.check(7).unwrap();
    e.on_scan(ScanEvent::Found { work_id: rolled.id, nonce: 7, hash, scanner: "fake".into() });
    let solution = rx.try_recv().expect("share sent");
    assert_eq!(BlockHash(kiln_hash::sha256d_header(&solution.header)), hash, "the solution carries its header");
    let share = share_of(&solution);
    let bits = share.version_bits.unwrap();
    assert_eq!((job.version & !job.version_mask) | (bits & job.version_mask), version);
    let (mut s, _) = session_with_job(Some(0x1fff_e000));
    let _ = s.take_output();
    s.submit(&share);
    let line = String::from_utf8(s.take_output()).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["method"], "mining.submit");
    assert_eq!(v["params"][4], format!("{:08x}", 7));
    assert_eq!(v["params"][5], format!("{bits:08x}"));
}

#[test]
fn engine_drops_stale_and_duplicate_shares() {
    let (mut e, fake, rx, job, stats) = engine(None);
    e.on_net(SourceEvent::Job(job.clone()));
    let w0 = fake.works.lock().unwrap()[0].clone();
    let easy = Work::new(w0.id, w0.header, kiln_work::Target::MAX);
    let hash = easy.check(1).unwrap();
    // The job's real share target is difficulty 1: an easy hash that does not
    // meet it is a hardware error, never a share.
    e.on_scan(ScanEvent::Found { work_id: w0.id, nonce: 1, hash, scanner: "fake".into() });
    assert!(rx.try_recv().is_err());
    assert_eq!(stats.snapshot().hw_errors, 1);

    let mut easy_job = job.clone();
    easy_job.share_target = kiln_work::Target::MAX;
    e.on_net(SourceEvent::Job(easy_job.clone()));
    let w1 = fake.works.lock().unwrap().last().unwrap().clone();
    let h = Work::new(w1.id, w1.header, kiln_work::Target::MAX).check(5).unwrap();
    e.on_scan(ScanEvent::Found { work_id: w1.id, nonce: 5, hash: h, scanner: "fake".into() });
    assert!(rx.try_recv().is_ok(), "first share sent");
    e.on_scan(ScanEvent::Found { work_id: w1.id, nonce: 5, hash: h, scanner: "fake".into() });
    assert!(rx.try_recv().is_err(), "duplicate not sent");
    assert_eq!(stats.snapshot().duplicates, 1);
    // clean_jobs: a late share of the old work is stale and never sent.
    let mut next = easy_job.clone();
    next.job_id = "next".into();
    next.clean_jobs = true;
    e.on_net(SourceEvent::Job(next));
    let h = Work::new(w1.id, w1.header, kiln_work::Target::MAX).check(9).unwrap();
    e.on_scan(ScanEvent::Found { work_id: w1.id, nonce: 9, hash: h, scanner: "fake".into() });
    assert!(rx.try_recv().is_err(), "stale share not sent");
    assert_eq!(stats.snapshot().stale, 1);
    // A new extranonce1 after reconnect rebuilds the work though the job id is the same.
    let before = fake.works.lock().unwrap().len();
    e.on_net(SourceEvent::Subscribed { extranonce1: vec![9, 9, 9, 9] });
    let works = fake.works.lock().unwrap();
    assert_eq!(works.len(), before + 1);
    assert_ne!(works.last().unwrap().header[36..68], works[before - 1].header[36..68], "new merkle root");
}

pub fn fast_client() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_millis(1500),
        stall_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        failover_after: 2,
        primary_retry: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

/// The test miner: one CPU thread, no GPU, the fast client timings, no API.
pub fn miner_config(urls: &[String]) -> MinerConfig {
    MinerConfig {
        source: stratum_source(urls, fast_client()),
        cpu_threads: 1,
        backend: Backend::detect(),
        gpu: GpuSelection::Off,
        gpu_options: GpuScannerOptions::default(),
        api: None,
        max_solutions_per_second: None,
        cgminer_api: None,
    }
}

fn stratum_source(urls: &[String], client: ClientOptions) -> JobSource {
    let pools = urls
        .iter()
        .map(|u| PoolConfig { url: u.parse().unwrap(), user: "kiln.test".into(), pass: "s3cret-pass".into() })
        .collect();
    JobSource::Stratum { pools, client }
}

pub fn start_miner(urls: &[String], client: ClientOptions, api: Option<std::net::SocketAddr>) -> Miner {
    Miner::start(MinerConfig { source: stratum_source(urls, client), api, ..miner_config(urls) }).unwrap()
}

const T: Duration = Duration::from_secs(30);

fn mine_against(b: Behavior) -> (TestPool, Miner) {
    let pool = TestPool::start(b);
    let m = start_miner(&[pool.url()], fast_client(), None);
    (pool, m)
}

#[test]
fn mines_valid_shares_with_handshake_in_order() {
    let (pool, m) = mine_against(Behavior::default());
    pool.wait_for("20 valid shares", T, |l| l.valid() >= 20);
    let stats = m.stats();
    m.stop();
    let l = pool.log.lock().unwrap();
    assert_eq!((l.configures, l.authorizes), (1, 1));
    assert_eq!(l.invalid(), 0, "every share passes the pool's sha2 check");
    assert_eq!(l.shares.iter().filter(|s| s.duplicate).count(), 0);
    assert!(
        l.shares.iter().all(|s| s.version_bits.is_none()),
        "version rolling was granted, but the extranonce2 space is far from used up: no version field"
    );
    assert!(stats.snapshot().accepted >= 20);
    assert_eq!(stats.snapshot().hw_errors, 0);
}

#[test]
fn difficulty_change_applies_from_the_next_job() {
    let b = Behavior { difficulty_change_after: Some((10, 1.0 / 512.0)), ..Behavior::default() };
    let (pool, m) = mine_against(b);
    pool.wait_for("shares at the new difficulty", T, |l| l.valid_where(|s| s.difficulty == 1.0 / 512.0) >= 3);
    m.stop();
    let l = pool.log.lock().unwrap();
    assert_eq!(l.invalid(), 0, "each share meets the difficulty of the job it was mined for");
}

#[test]
fn clean_jobs_switch_leaves_at_most_in_flight_stale_shares() {
    let b = Behavior { clean_job_after: Some(10), ..Behavior::default() };
    let (pool, m) = mine_against(b);
    pool.wait_for("shares on the new job", T, |l| l.valid_where(|s| s.job_id.ends_with("-2")) >= 10);
    m.stop();
    let l = pool.log.lock().unwrap();
    // Only shares already on the wire when the notify arrived can be stale.
    assert!(
        l.shares.iter().filter(|s| s.stale).count() <= 3,
        "{:?}",
        l.shares.iter().filter(|s| s.stale).collect::<Vec<_>>()
    );
    assert_eq!(l.invalid(), 0);
}

#[test]
fn set_extranonce_is_used_from_the_next_job() {
    let b = Behavior { set_extranonce_after: Some(10), ..Behavior::default() };
    let (pool, m) = mine_against(b);
    pool.wait_for("shares on the new extranonce", T, |l| l.valid_where(|s| s.job_id.ends_with("-2")) >= 10);
    m.stop();
    assert_eq!(pool.log.lock().unwrap().invalid(), 0);
}

fn reconnects_and_keeps_mining(b: Behavior, what: &str) {
    let (pool, m) = mine_against(b);
    pool.wait_for(what, T, |l| l.connections >= 2 && l.valid_where(|s| s.job_id.starts_with("j2-")) >= 5);
    let stats = m.stats();
    assert!(m.is_running(), "{what}: never a panic");
    m.stop();
    assert_eq!(pool.log.lock().unwrap().invalid(), 0, "{what}");
    assert_eq!(stats.snapshot().hw_errors, 0);
}

#[test]
fn client_reconnect_is_followed_and_resumes_the_session() {
    let (pool, m) = mine_against(Behavior { reconnect_after: Some(10), ..Behavior::default() });
    pool.wait_for("shares after the reconnect", T, |l| {
        l.connections >= 2 && l.valid_where(|s| s.job_id.starts_with("j2-")) >= 5
    });
    m.stop();
    let l = pool.log.lock().unwrap();
    // The second subscribe offers the first session's id, which this pool honours.
    assert_eq!(l.subscribes[1][1], "s-0a0b0001", "{:?}", l.subscribes);
    assert_eq!(l.invalid(), 0);
}

/// Shares found while the pool is down are queued and sent after the
/// reconnect, since the resumed session keeps the same extranonce1.
#[test]
fn shares_found_while_disconnected_are_sent_after_reconnect() {
    let pool = TestPool::start(Behavior { down_after: Some(5), refuse_ms: 1500, ..Behavior::default() });
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("old-job shares delivered on a later connection", T, |l| {
        l.shares.iter().any(|s| s.conn > 1 && s.job_id.starts_with("j1-"))
    });
    let stats = m.stats();
    m.stop();
    let l = pool.log.lock().unwrap();
    assert!(l.connections >= 2);
    assert_eq!(l.invalid(), 0);
    assert_eq!(stats.snapshot().lost, 0, "same extranonce1 after resume: nothing lost");
}

#[test]
fn a_pool_that_stalls_mid_session_is_left_and_reconnected() {
    let pool = TestPool::start(Behavior { silent_after: Some(5), ..Behavior::default() });
    let opts = ClientOptions { stall_timeout: Duration::from_secs(1), ..fast_client() };
    let m = start_miner(&[pool.url()], opts, None);
    pool.wait_for("a reconnect after the stall, and shares again", T, |l| {
        l.connections >= 2 && l.valid_where(|s| s.job_id.starts_with("j2-")) >= 3
    });
    m.stop();
    assert_eq!(pool.log.lock().unwrap().invalid(), 0);
}

#[test]
fn malformed_json_is_logged_and_reconnected() {
    reconnects_and_keeps_mining(Behavior { garbage_after: Some(10), ..Behavior::default() }, "garbage");
}

#[test]
fn overlong_line_is_bounded_and_reconnected() {
    reconnects_and_keeps_mining(Behavior { overlong_after: Some(10), ..Behavior::default() }, "over-long line");
}

#[test]
fn connection_dropped_mid_line_is_reconnected() {
    reconnects_and_keeps_mining(Behavior { drop_mid_line_after: Some(10), ..Behavior::default() }, "drop mid-line");
}

#[test]
fn error_codes_20_to_25_are_understood_and_counted() {
    let b = Behavior { reject_codes: vec![20, 21, 22, 23, 24, 25], ..Behavior::default() };
    let (pool, m) = mine_against(b);
    let stats = m.stats();
    pool.wait_for("12 rejected shares", T, |l| l.shares.len() >= 12);
    std::thread::sleep(Duration::from_millis(300));
    m.stop();
    let s = stats.snapshot();
    for reason in ["other", "stale", "duplicate", "low_difficulty", "unauthorized", "not_subscribed"] {
        assert!(s.rejected_by_reason.get(reason).copied().unwrap_or(0) >= 1, "{reason}: {:?}", s.rejected_by_reason);
    }
    assert_eq!(s.accepted, 0);
}

#[test]
fn silent_primary_fails_over_and_the_miner_returns_when_it_recovers() {
    let primary = TestPool::start(Behavior { never_answer: true, ..Behavior::default() });
    let backup = TestPool::start(Behavior::default());
    let m = start_miner(&[primary.url(), backup.url()], fast_client(), None);
    backup.wait_for("shares on the backup", T, |l| l.valid() >= 5);
    assert_eq!(primary.log.lock().unwrap().shares.len(), 0);
    // The primary comes back: kiln returns to it within primary_retry.
    primary.behavior.lock().unwrap().never_answer = false;
    primary.wait_for("shares on the primary again", T, |l| l.valid() >= 5);
    m.stop();
    assert_eq!(primary.log.lock().unwrap().invalid() + backup.log.lock().unwrap().invalid(), 0);
}

#[test]
fn refused_authorization_fails_over() {
    let primary = TestPool::start(Behavior { refuse_auth: true, ..Behavior::default() });
    let backup = TestPool::start(Behavior::default());
    let m = start_miner(
        &[primary.url(), backup.url()],
        ClientOptions { primary_retry: Duration::from_secs(600), ..fast_client() },
        None,
    );
    backup.wait_for("shares on the backup", T, |l| l.valid() >= 5);
    m.stop();
    assert!(primary.log.lock().unwrap().authorizes >= 2, "retried before failing over");
}

#[test]
fn api_serves_json_and_metrics_read_only() {
    use std::io::{Read, Write};
    let pool = TestPool::start(Behavior::default());
    let m = start_miner(&[pool.url()], fast_client(), Some("127.0.0.1:0".parse().unwrap()));
    let addr = m.api_addr.unwrap();
    assert!(addr.ip().is_loopback());
    pool.wait_for("a few shares", T, |l| l.valid() >= 5);
    std::thread::sleep(Duration::from_millis(1200));
    let get = |req: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let summary = get("GET /summary HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(summary.starts_with("HTTP/1.1 200"), "{summary}");
    let body: serde_json::Value = serde_json::from_str(summary.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(body["accepted"].as_u64().unwrap() >= 1);
    assert!(!summary.contains("s3cret-pass"), "the password never leaves through the API");
    let metrics = get("GET /metrics HTTP/1.1\r\n\r\n");
    assert!(metrics.contains("kiln_shares_accepted_total"));
    assert!(metrics.contains("kiln_hashrate_hashes_per_second{scanner="));
    let scanners = get("GET /scanners HTTP/1.1\r\n\r\n");
    assert!(scanners.contains("cpu/"));
    let post = get("POST /summary HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"));
    m.stop();
}

/// No byte stream makes the codec or the session panic.
#[test]
fn fuzz_session_never_panics() {
    let mut rng = kiln_testkit::data::Rng(0xfeed);
    let data = job_100000();
    let n = &data["notify"];
    let valid = [
        json!({"id": 1, "result": [[["mining.notify", "x"]], "0206", 1], "error": null}).to_string(),
        json!({"id": null, "method": "mining.notify", "params": [n["job_id"], n["prevhash"], n["coinb1"], n["coinb2"], n["merkle_branch"], n["version"], n["nbits"], n["ntime"], true]}).to_string(),
        json!({"id": null, "method": "mining.set_difficulty", "params": [0.5]}).to_string(),
        json!({"id": 7, "method": "mining.ping", "params": []}).to_string(),
        json!({"id": null, "method": "client.reconnect", "params": ["h", "99999999", "x"]}).to_string(),
        json!({"id": 3, "result": null, "error": [23, "low", null]}).to_string(),
        json!({"id": null, "method": "mining.set_extranonce", "params": ["zz", -1]}).to_string(),
    ];
    for round in 0..3000 {
        let mut s = Session::new(SessionConfig::new("u", "p"));
        s.start();
        let mut bytes = Vec::new();
        for _ in 0..(rng.next_u32() % 6) {
            let mut line = valid[(rng.next_u32() as usize) % valid.len()].clone().into_bytes();
            // Mutate: flip, truncate or splice random bytes.
            for _ in 0..(rng.next_u32() % 4) {
                if line.is_empty() {
                    break;
                }
                let i = (rng.next_u32() as usize) % line.len();
                match rng.next_u32() % 3 {
                    0 => line[i] = rng.next_u32() as u8,
                    1 => line.truncate(i),
                    _ => line.insert(i, rng.next_u32() as u8),
                }
            }
            bytes.extend(line);
            bytes.push(b'\n');
        }
        if round % 10 == 0 {
            let mut junk = vec![0u8; (rng.next_u32() % 3000) as usize];
            rng.fill(&mut junk);
            bytes.extend(junk);
        }
        // Feed in random-sized pieces.
        let mut at = 0;
        while at < bytes.len() {
            let k = 1 + (rng.next_u32() as usize % 64).min(bytes.len() - at - 1 + 1);
            let end = (at + k).min(bytes.len());
            let _ = s.receive(&bytes[at..end]);
            at = end;
        }
        let _ = s.take_output();
    }
}

/// Benchmark, not a check run in CI: mines a loopback pool for 60 s at a low
/// difficulty and compares the hash rate implied by accepted shares with
/// `kiln bench`'s rate for the same backend and threads, measured just before.
/// Run: cargo test --release -p kiln-miner --test it -- --ignored loopback_pool_rate --nocapture
#[test]
#[ignore = "a one-minute benchmark; run by hand, figures go to BENCHMARKS.md"]
fn loopback_pool_rate_matches_bench() {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let backend = Backend::detect();
    let bench = kiln_scan::bench::bench_cpu(backend, threads, 10.0, |_, _| {});
    let diff = 1.0 / 4096.0;
    let pool = TestPool::start(Behavior { difficulty: diff, ..Behavior::default() });
    let m = Miner::start(MinerConfig { cpu_threads: threads, backend, ..miner_config(&[pool.url()]) }).unwrap();
    pool.wait_for("the first share", T, |l| l.valid() >= 1);
    let (v0, t0) = (pool.log.lock().unwrap().valid(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(60));
    let (v1, secs) = (pool.log.lock().unwrap().valid(), t0.elapsed().as_secs_f64());
    let stats = m.stats().snapshot();
    m.stop();
    let shares = (v1 - v0) as f64;
    let implied = shares * diff * 4_294_967_296.0 / secs / 1e6;
    let sigma = implied / shares.sqrt();
    println!(
        "backend {backend} x{threads}: kiln bench {:.2} MH/s; loopback pool {shares} shares in {secs:.1} s => {implied:.2} MH/s (±{sigma:.2} Poisson 1σ); ratio {:.3}; miner's own counter {:.2} MH/s (1 min); invalid {}",
        bench.mhs,
        implied / bench.mhs,
        stats.hashrate_1m / 1e6,
        pool.log.lock().unwrap().invalid()
    );
}
