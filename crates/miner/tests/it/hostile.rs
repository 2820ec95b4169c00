//! A hostile or broken pool, and hostile API clients (issue 12): every
//! resource kiln spends on what the network sends is bounded, and nothing
//! the network does keeps kiln from stopping on time.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_miner::engine::{Engine, SourceEvent};
use kiln_miner::stats::Stats;
use kiln_scan::ScanEvent;
use kiln_testkit::pool::{Behavior, TestPool};
use kiln_work::{Target, Work};

use crate::stratum::{FakeScanner, engine, fast_client, start_miner};

const T: Duration = Duration::from_secs(30);

// ---- 1. An absurdly low pool difficulty ----

#[test]
fn work_target_has_a_floor_when_the_pool_difficulty_is_absurd() {
    let fake = FakeScanner::default();
    let (tx, _rx) = crossbeam_channel::unbounded();
    let mut e = Engine::new(vec![Box::new(fake.clone())], Arc::new(Stats::new()), tx, Box::new(|| {}));
    let (_, mut job) = crate::stratum::session_with_job(None);
    job.share_target = Target::MAX; // what `mining.set_difficulty 1e-9` becomes
    e.on_net(SourceEvent::Job(job));
    let w = fake.works.lock().unwrap()[0].clone();
    // Not every nonce may be a share: with no hash rate measured yet, the
    // floor assumes a fast scanner.
    assert!(w.target.difficulty().0 >= 1e-3, "work target {:?} is as easy as the pool's", w.target);
}

#[test]
fn a_pool_difficulty_of_1e_minus_9_does_not_flood_kiln_or_the_pool() {
    let pool = TestPool::start(Behavior { difficulty: 1e-9, ..Behavior::default() });
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("the first share", T, |l| l.valid() >= 1);
    std::thread::sleep(Duration::from_secs(3));
    let stats = m.stats().snapshot();
    m.stop();
    let l = pool.log.lock().unwrap();
    assert_eq!(l.invalid(), 0);
    // One scanner, at most a few dozen shares a second, for about 3 s (plus
    // the start, before the hash rate is measured).
    assert!(l.shares.len() < 400, "{} shares in ~3 s", l.shares.len());
    assert!(stats.found < 400, "{} solutions in ~3 s", stats.found);
}

// ---- 2. A flood of mining.notify ----

/// Jobs that queued up while the engine was busy are taken as one switch to
/// the newest; a clean_jobs among them makes that switch clean.
#[test]
fn queued_jobs_are_coalesced_into_one_switch_to_the_newest() {
    let (mut e, fake, rx, job, stats) = engine(None);
    let (net_tx, net_rx) = crossbeam_channel::unbounded();
    let (scan_tx, scan_rx) = crossbeam_channel::unbounded();
    e.on_net(SourceEvent::Job(job.clone()));
    let first = fake.works.lock().unwrap()[0].clone();
    // Queued before the engine runs: it finds them all waiting at once.
    let mut last = job.clone();
    for i in 0..2000u32 {
        let mut j = job.clone();
        j.job_id = format!("flood-{i}");
        j.ntime = job.ntime + 1 + i;
        j.clean_jobs = i == 0;
        last = j.clone();
        net_tx.send(SourceEvent::Job(j)).unwrap();
    }
    let runner = std::thread::spawn(move || e.run(net_rx, scan_rx));
    std::thread::sleep(Duration::from_millis(300));
    // A late share of the first job: stale, since a clean job came since.
    let h = Work::new(first.id, first.header, Target::MAX).check(3).unwrap();
    scan_tx.send(ScanEvent::Found { work_id: first.id, nonce: 3, hash: h, scanner: "fake".into() }).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    net_tx.send(SourceEvent::Shutdown).unwrap();
    runner.join().unwrap();
    let works = fake.works.lock().unwrap();
    assert!(works.len() < 50, "{} switches for 2000 queued jobs", works.len());
    let newest = u32::from_le_bytes(works.last().unwrap().header[68..72].try_into().unwrap());
    assert_eq!(newest, last.ntime, "the scanners end on the newest job");
    assert!(rx.try_recv().is_err(), "the late share of a replaced job is not sent");
    assert_eq!(stats.snapshot().stale, 1);
}

/// Jobs never replaced by a clean one are still forgotten past a bound: a
/// share for a job hundreds of notifies old is stale, not kept forever.
#[test]
fn only_a_bounded_number_of_recent_jobs_is_kept() {
    let (mut e, fake, rx, job, stats) = engine(None);
    let mut easy = job.clone();
    easy.share_target = Target::MAX;
    e.on_net(SourceEvent::Job(easy.clone()));
    let first = fake.works.lock().unwrap()[0].clone();
    for i in 0..500u32 {
        let mut j = easy.clone();
        j.job_id = format!("n{i}");
        j.ntime = easy.ntime + 1 + i;
        j.clean_jobs = false;
        e.on_net(SourceEvent::Job(j));
    }
    let h = Work::new(first.id, first.header, Target::MAX).check(3).unwrap();
    e.on_scan(ScanEvent::Found { work_id: first.id, nonce: 3, hash: h, scanner: "fake".into() });
    assert!(rx.try_recv().is_err());
    assert_eq!(stats.snapshot().stale, 1);
}

#[test]
fn a_notify_flood_ends_on_the_newest_job_and_does_not_delay_stopping() {
    const FLOOD: usize = 30_000;
    let pool = TestPool::start(Behavior { notify_flood: FLOOD, ..Behavior::default() });
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("the handshake", T, |l| l.authorizes >= 1);
    let newest = format!("j1-{}", FLOOD + 1);
    pool.wait_for("shares on the newest job", Duration::from_secs(15), |l| l.valid_where(|s| s.job_id == newest) >= 3);
    assert_eq!(pool.log.lock().unwrap().invalid(), 0);
    m.stop();

    // Stopping in the middle of a flood.
    let pool = TestPool::start(Behavior { notify_flood: FLOOD, ..Behavior::default() });
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("the handshake", T, |l| l.authorizes >= 1);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    m.stop();
    assert!(t.elapsed() < Duration::from_secs(3), "stop took {:?} under a notify flood", t.elapsed());
}

// ---- 3. A pool that never reads ----

#[test]
fn a_pool_that_never_reads_is_left_and_reconnected() {
    let pool = TestPool::start(Behavior { ping_flood: true, ..Behavior::default() });
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("a reconnect after the write queue filled", Duration::from_secs(8), |l| l.connections >= 2);
    let t = Instant::now();
    m.stop();
    assert!(t.elapsed() < Duration::from_secs(3));
}

// ---- 9. Hostile API clients ----

fn api() -> (std::thread::JoinHandle<()>, std::net::SocketAddr, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (h, addr) =
        kiln_miner::api::serve("127.0.0.1:0".parse().unwrap(), Arc::new(Stats::new()), Arc::clone(&stop)).unwrap();
    (h, addr, stop)
}

fn get(addr: std::net::SocketAddr, req: &str, within: Duration) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends one byte of a request every 200 ms until `stop`.
fn slow_client(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        for b in b"GET /summary HTTP/1.1\r\nHost: a-very-long-host-name.example\r\n".iter().cycle() {
            if stop.load(Ordering::Acquire) || s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

#[test]
fn a_slow_api_client_does_not_block_others_or_shutdown() {
    let (h, addr, stop) = api();
    let client_stop = Arc::new(AtomicBool::new(false));
    let slow = slow_client(addr, Arc::clone(&client_stop));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = get(addr, "GET /summary HTTP/1.1\r\n\r\n", Duration::from_secs(5));
    assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "answered after {:?}", t.elapsed());
    let t = Instant::now();
    stop.store(true, Ordering::Release);
    h.join().unwrap();
    assert!(t.elapsed() < Duration::from_millis(500), "API stopped after {:?}", t.elapsed());
    client_stop.store(true, Ordering::Release);
    slow.join().unwrap();
}

#[test]
fn many_idle_api_connections_do_not_block_a_request() {
    let (h, addr, stop) = api();
    let idle: Vec<_> = (0..200).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = get(addr, "GET /metrics HTTP/1.1\r\n\r\n", Duration::from_secs(5));
    // Either served or turned away at once; never left waiting.
    assert!(r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.1 503"), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "answered after {:?}", t.elapsed());
    stop.store(true, Ordering::Release);
    h.join().unwrap();
    drop(idle);
    // Once the idle ones are gone, requests are served again.
}

#[test]
fn head_gets_headers_without_a_body() {
    let (h, addr, stop) = api();
    let r = get(addr, "HEAD /summary HTTP/1.1\r\n\r\n", Duration::from_secs(5));
    assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
    assert!(r.contains("Content-Length: "), "{r:?}");
    assert!(r.ends_with("\r\n\r\n"), "HEAD must not send a body: {r:?}");
    stop.store(true, Ordering::Release);
    h.join().unwrap();
}

// ---- 5. Text from the network, logged ----

#[test]
fn pool_text_is_escaped_before_it_is_logged() {
    crate::logcap::start();
    let marker = "kiln-escape-marker";
    let evil = format!("{marker}\u{1b}[2J\u{1b}]0;owned\u{7}\nINFO share accepted (difficulty 1e9)");
    let pool = TestPool::start(Behavior { show_message: Some(evil), ..Behavior::default() });
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("a share", T, |l| l.valid() >= 1);
    m.stop();
    let lines = crate::logcap::lines_with(marker);
    assert!(!lines.is_empty(), "the message was logged");
    for l in lines {
        assert!(!l.chars().any(char::is_control), "control characters reached the log: {l:?}");
    }
}

// ---- 8 is in kiln-stratum (notify fields). 6. client.reconnect ----

#[test]
fn reconnect_to_an_unconfigured_host_gets_no_credentials() {
    let other = TestPool::start(Behavior::default());
    let b = Behavior {
        reconnect_with: Some((3, serde_json::json!(["localhost", other.addr.port(), 0]))),
        ..Behavior::default()
    };
    let pool = TestPool::start(b);
    let m = start_miner(&[pool.url()], fast_client(), None);
    pool.wait_for("shares after the redirect was sent", T, |l| l.valid() >= 8);
    std::thread::sleep(Duration::from_millis(500));
    m.stop();
    let o = other.log.lock().unwrap();
    assert_eq!((o.connections, o.authorizes), (0, 0), "credentials went to a host the user never configured");
}

#[test]
fn a_long_reconnect_wait_is_spent_on_the_backup() {
    let b = Behavior { reconnect_with: Some((3, serde_json::json!(["", 0, 100_000]))), ..Behavior::default() };
    let primary = TestPool::start(b);
    let backup = TestPool::start(Behavior::default());
    let opts = kiln_miner::source::stratum::ClientOptions { primary_retry: Duration::from_secs(600), ..fast_client() };
    let m = start_miner(&[primary.url(), backup.url()], opts, None);
    backup.wait_for("shares on the backup during the wait", Duration::from_secs(15), |l| l.valid() >= 3);
    m.stop();
}

// ---- 4. Failover ----

/// A primary behaving as `primary` and a healthy backup: kiln must end up
/// mining valid shares on the backup (the primary is not retried meanwhile).
fn fails_over_from(primary: Behavior) {
    let primary = TestPool::start(primary);
    let backup = TestPool::start(Behavior::default());
    let opts = kiln_miner::source::stratum::ClientOptions { primary_retry: Duration::from_secs(600), ..fast_client() };
    let m = start_miner(&[primary.url(), backup.url()], opts, None);
    backup.wait_for("shares on the backup", Duration::from_secs(15), |l| l.valid() >= 3);
    m.stop();
}

#[test]
fn a_primary_that_drops_every_few_hundred_ms_fails_over() {
    fails_over_from(Behavior { drop_after_ms: Some(300), ..Behavior::default() });
}

/// One pool whose sessions work (jobs, then a drop after 300 ms, longer than
/// `min_session` here) but keep dropping: reconnects back off with growth,
/// not 0.5–1.5 × the base forever. With a 200 ms base, growth allows about
/// 6 sessions in 5 s; a fixed back-off allowed 8 or more.
#[test]
fn a_pool_that_keeps_dropping_working_sessions_gets_growing_back_off() {
    let pool = TestPool::start(Behavior { drop_after_ms: Some(300), ..Behavior::default() });
    let opts = kiln_miner::source::stratum::ClientOptions {
        min_session: Duration::from_millis(100),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(3),
        ..fast_client()
    };
    let m = start_miner(&[pool.url()], opts, None);
    std::thread::sleep(Duration::from_secs(5));
    m.stop();
    let n = pool.log.lock().unwrap().connections;
    assert!((2..=7).contains(&n), "{n} sessions in 5 s");
}

#[test]
fn a_primary_that_never_sends_a_job_fails_over() {
    fails_over_from(Behavior { no_jobs: true, ..Behavior::default() });
}

// ---- 10. Version rolling as real pools read it ----

/// The job's version has a bit inside the rolling mask (0x20002000): kiln
/// must not roll, and its shares carry no version field, so a pool that XORs
/// submitted bits in (public-pool) and one that replaces them (BIP310) both
/// accept every share.
#[test]
fn no_version_field_when_the_job_version_has_bits_in_the_mask() {
    for xor in [true, false] {
        let pool =
            TestPool::start(Behavior { job_version: Some(0x2000_2000), version_xor: xor, ..Behavior::default() });
        let m = start_miner(&[pool.url()], fast_client(), None);
        pool.wait_for("shares", T, |l| l.shares.len() >= 5);
        m.stop();
        let l = pool.log.lock().unwrap();
        assert_eq!(l.invalid(), 0, "xor {xor}: {:?}", l.shares);
        assert!(l.shares.iter().all(|s| s.version_bits.is_none()), "xor {xor}");
    }
}
