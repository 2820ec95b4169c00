//! A Stratum V1 test pool on 127.0.0.1:0 (test-only code). It serves the real
//! block-100000 job at a low difficulty, checks every share it receives with
//! the `sha2` crate (not kiln's hasher), and can misbehave on request. Every
//! wait in it is bounded; it stops when dropped.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How the pool behaves. Counters like `garbage_after` count valid shares
/// received on the current connection.
#[derive(Clone, Debug)]
pub struct Behavior {
    pub difficulty: f64,
    pub extranonce2_size: usize,
    /// Mask granted to `mining.configure` (None: refuse version rolling).
    pub version_mask: Option<u32>,
    pub reject_codes: Vec<i64>,
    pub garbage_after: Option<usize>,
    pub overlong_after: Option<usize>,
    pub drop_mid_line_after: Option<usize>,
    pub reconnect_after: Option<usize>,
    pub set_extranonce_after: Option<usize>,
    pub difficulty_change_after: Option<(usize, f64)>,
    pub clean_job_after: Option<usize>,
    pub never_answer: bool,
    /// Stop answering (but keep the connection) after this many valid shares.
    pub silent_after: Option<usize>,
    /// Close the connection after this many valid shares, then turn every
    /// new connection away for `refuse_ms` (the pool is "down").
    pub down_after: Option<usize>,
    pub refuse_ms: u64,
    pub refuse_auth: bool,
    /// Right after the first job, send this many more `mining.notify`s as
    /// fast as the socket takes them (the first of them with clean_jobs).
    pub notify_flood: usize,
    /// After authorizing, send `mining.ping`s with long ids without end and
    /// never read again (a pool that does not drain what kiln writes).
    pub ping_flood: bool,
    /// Close each connection this long after authorizing it.
    pub drop_after_ms: Option<u64>,
    /// Authorize, but never send a job.
    pub no_jobs: bool,
    /// Serve jobs with this block version instead of the real one.
    pub job_version: Option<u32>,
    /// Rebuild a submitted version as `job_version ^ bits` (as public-pool
    /// does) instead of BIP310's `(job_version & !mask) | (bits & mask)`.
    pub version_xor: bool,
    /// After this many valid shares, send `client.reconnect` with these params.
    pub reconnect_with: Option<(usize, Value)>,
    /// Send `client.show_message` with this text after authorizing.
    pub show_message: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            difficulty: 1.0 / 2048.0,
            extranonce2_size: 4,
            version_mask: Some(0x1fff_e000),
            reject_codes: Vec::new(),
            garbage_after: None,
            overlong_after: None,
            drop_mid_line_after: None,
            reconnect_after: None,
            set_extranonce_after: None,
            difficulty_change_after: None,
            clean_job_after: None,
            never_answer: false,
            silent_after: None,
            down_after: None,
            refuse_ms: 0,
            refuse_auth: false,
            notify_flood: 0,
            ping_flood: false,
            drop_after_ms: None,
            no_jobs: false,
            job_version: None,
            version_xor: false,
            reconnect_with: None,
            show_message: None,
        }
    }
}

/// A share as the pool judged it.
#[derive(Clone, Debug)]
pub struct Judged {
    /// The connection (1, 2, …) it arrived on.
    pub conn: u32,
    pub job_id: String,
    pub valid: bool,
    pub stale: bool,
    pub duplicate: bool,
    pub version_bits: Option<u32>,
    pub difficulty: f64,
}

#[derive(Default, Debug)]
pub struct Log {
    pub connections: usize,
    pub subscribes: Vec<Value>,
    pub configures: usize,
    pub authorizes: usize,
    pub shares: Vec<Judged>,
    pub passwords_seen: Vec<String>,
}

impl Log {
    pub fn valid(&self) -> usize {
        self.shares.iter().filter(|s| s.valid && !s.stale && !s.duplicate).count()
    }
    /// Valid shares (fresh, not duplicates) that also satisfy `f`.
    pub fn valid_where(&self, f: impl Fn(&Judged) -> bool) -> usize {
        self.shares.iter().filter(|s| s.valid && !s.stale && !s.duplicate && f(s)).count()
    }

    /// Shares for a job the pool still knows that fail its hash check.
    /// (Shares for replaced jobs are stale, a normal race, counted apart.)
    pub fn invalid(&self) -> usize {
        self.shares.iter().filter(|s| !s.valid && !s.stale).count()
    }
}

pub struct TestPool {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Log>>,
    pub behavior: Arc<Mutex<Behavior>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Until when new connections are turned away.
type Down = Arc<Mutex<Option<Instant>>>;

impl TestPool {
    pub fn start(b: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let behavior = Arc::new(Mutex::new(b));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, bh, st) = (Arc::clone(&log), Arc::clone(&behavior), Arc::clone(&stop));
        let down: Down = Arc::new(Mutex::new(None));
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            let mut n = 0u32;
            while !st.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if down.lock().unwrap().is_some_and(|until| Instant::now() < until) {
                            drop(s); // the pool is down: close at once
                            continue;
                        }
                        n += 1;
                        l.lock().unwrap().connections += 1;
                        let (l, bh, st, dn) = (Arc::clone(&l), Arc::clone(&bh), Arc::clone(&st), Arc::clone(&down));
                        conns.push(std::thread::spawn(move || {
                            let _ = serve(s, n, &l, &bh, &st, &dn);
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        TestPool { addr, log, behavior, stop, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("stratum+tcp://{}", self.addr)
    }

    /// Waits (bounded) until `cond` holds on the log.
    pub fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&Log) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond(&self.log.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; pool log: {:?}", self.log.lock().unwrap());
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real job data of block 100000 (../shared/testdata/stratum).
pub fn job_100000() -> Value {
    serde_json::from_slice(&crate::data::read("stratum/block_100000_as_stratum_job.json")).unwrap()
}

struct Job {
    id: String,
    notify: Value,
    difficulty: f64,
    extranonce1: Vec<u8>,
}

fn sha256d(b: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(b)).into()
}

/// The pool's own check of a share, with the sha2 crate.
fn judge(job: &Job, en2: &[u8], ntime: u32, nonce: u32, vbits: Option<u32>, mask: u32, xor: bool) -> bool {
    let n = &job.notify["params"];
    let h = |i: usize| hex::decode(n[i].as_str().unwrap()).unwrap();
    let coinbase = [h(2), job.extranonce1.clone(), en2.to_vec(), h(3)].concat();
    let mut root = sha256d(&coinbase);
    for b in n[4].as_array().unwrap() {
        let mut buf = root.to_vec();
        buf.extend(hex::decode(b.as_str().unwrap()).unwrap());
        root = sha256d(&buf);
    }
    let version = u32::from_str_radix(n[5].as_str().unwrap(), 16).unwrap();
    let version = match vbits {
        Some(v) if xor => version ^ v,
        Some(v) => (version & !mask) | (v & mask),
        None => version,
    };
    let mut prev = h(1);
    for w in prev.chunks_mut(4) {
        w.reverse();
    }
    let mut header = Vec::with_capacity(80);
    header.extend(version.to_le_bytes());
    header.extend(prev);
    header.extend(root);
    header.extend(ntime.to_le_bytes());
    header.extend(u32::from_str_radix(n[6].as_str().unwrap(), 16).unwrap().to_le_bytes());
    header.extend(nonce.to_le_bytes());
    let hash = sha256d(&header);
    let value = hash.iter().rev().fold(0.0f64, |acc, &b| acc * 256.0 + b as f64);
    value <= 65535.0 * 2f64.powi(208) / job.difficulty
}

/// Writes all of `bytes`, waiting out the socket's write timeout as often as
/// needed (so a line is never cut), until `stop`.
fn write_fully(w: &mut TcpStream, mut bytes: &[u8], stop: &AtomicBool) -> std::io::Result<()> {
    while !bytes.is_empty() {
        if stop.load(Ordering::Acquire) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        match w.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn serve(
    s: TcpStream,
    conn: u32,
    log: &Mutex<Log>,
    behavior: &Mutex<Behavior>,
    stop: &AtomicBool,
    down: &Down,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    // Bounded writes too: a kiln that stops reading must not hang the pool.
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let send =
        |w: &mut TcpStream, v: Value| -> std::io::Result<()> { write_fully(w, format!("{v}\n").as_bytes(), stop) };
    let b = behavior.lock().unwrap().clone();
    let base = job_100000();
    let mut extranonce1 = vec![0x0a, 0x0b, 0x00, conn as u8];
    let mut difficulty = b.difficulty;
    let mut jobs: Vec<Job> = Vec::new();
    let mut live: HashSet<String> = HashSet::new();
    let mut seen = HashSet::new();
    let mut mask = 0u32;
    let mut valid_here = 0usize;
    let mut job_no = 0;
    let mut line = String::new();
    let mut fired = HashSet::new();
    let new_job = |job_no: &mut u32, clean: bool, en1: &[u8], diff: f64| {
        *job_no += 1;
        let id = format!("j{conn}-{job_no}");
        let mut p = base["notify"].clone();
        if let Some(v) = b.job_version {
            p["version"] = json!(format!("{v:08x}"));
        }
        let mut ntime = u32::from_str_radix(p["ntime"].as_str().unwrap(), 16).unwrap();
        ntime += *job_no; // each job a different header
        let params = json!([
            id,
            p["prevhash"],
            p["coinb1"],
            p["coinb2"],
            p["merkle_branch"],
            p["version"],
            p["nbits"],
            format!("{ntime:08x}"),
            clean
        ]);
        p = json!({"id": null, "method": "mining.notify", "params": params});
        Job { id, notify: p, difficulty: diff, extranonce1: en1.to_vec() }
    };
    let mut authorized_at: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        if b.drop_after_ms.is_some_and(|ms| authorized_at.is_some_and(|t| t.elapsed() >= Duration::from_millis(ms))) {
            return Ok(());
        }
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        }
        if b.never_answer || b.silent_after.is_some_and(|n| valid_here >= n) {
            continue;
        }
        let Ok(req) = serde_json::from_str::<Value>(&line) else { continue };
        let id = req["id"].clone();
        let method = req["method"].as_str().unwrap_or("");
        let params = &req["params"];
        match method {
            "mining.configure" => {
                log.lock().unwrap().configures += 1;
                let result = match b.version_mask {
                    Some(m) => {
                        let asked = u32::from_str_radix(params[1]["version-rolling.mask"].as_str().unwrap_or("0"), 16)
                            .unwrap_or(0);
                        mask = m & asked;
                        json!({"version-rolling": true, "version-rolling.mask": format!("{mask:08x}")})
                    }
                    None => json!({"version-rolling": false}),
                };
                send(&mut w, json!({"id": id, "result": result, "error": null}))?;
            }
            "mining.subscribe" => {
                log.lock().unwrap().subscribes.push(params.clone());
                // Resume: a known session id keeps its extranonce1.
                if let Some(sid) = params.get(1).and_then(Value::as_str)
                    && let Ok(en1) = hex::decode(sid.trim_start_matches("s-"))
                    && en1.len() == 4
                {
                    extranonce1 = en1;
                }
                let sid = format!("s-{}", hex::encode(&extranonce1));
                send(
                    &mut w,
                    json!({"id": id, "result": [[["mining.set_difficulty", sid], ["mining.notify", sid]], hex::encode(&extranonce1), b.extranonce2_size], "error": null}),
                )?;
            }
            "mining.authorize" => {
                {
                    let mut l = log.lock().unwrap();
                    l.authorizes += 1;
                    l.passwords_seen.push(params[1].as_str().unwrap_or("").to_string());
                }
                send(
                    &mut w,
                    json!({"id": id, "result": !b.refuse_auth, "error": if b.refuse_auth { json!([24, "unauthorized worker", null]) } else { json!(null) }}),
                )?;
                if !b.refuse_auth {
                    authorized_at = Some(Instant::now());
                    send(&mut w, json!({"id": null, "method": "mining.set_difficulty", "params": [difficulty]}))?;
                    if let Some(m) = &b.show_message {
                        send(&mut w, json!({"id": null, "method": "client.show_message", "params": [m]}))?;
                    }
                    if b.no_jobs {
                        continue;
                    }
                    let j = new_job(&mut job_no, true, &extranonce1, difficulty);
                    live.clear();
                    live.insert(j.id.clone());
                    send(&mut w, j.notify.clone())?;
                    jobs.push(j);
                    for k in 0..b.notify_flood {
                        let j = new_job(&mut job_no, k == 0, &extranonce1, difficulty);
                        if k == 0 {
                            live.clear();
                        }
                        send(&mut w, j.notify.clone())?;
                        // Only the newest few are remembered for judging.
                        if k + 8 >= b.notify_flood {
                            live.insert(j.id.clone());
                            jobs.push(j);
                        }
                    }
                    if b.ping_flood {
                        // Never read again; ping with 32 KiB ids until kiln leaves.
                        let id = "p".repeat(32 * 1024);
                        let ping = format!("{}\n", json!({"id": id, "method": "mining.ping", "params": []}));
                        while !stop.load(Ordering::Acquire) {
                            write_fully(&mut w, ping.as_bytes(), stop)?;
                        }
                        return Ok(());
                    }
                }
            }
            "mining.extranonce.subscribe" => send(&mut w, json!({"id": id, "result": true, "error": null}))?,
            "mining.submit" => {
                let p = params.as_array().unwrap();
                let job_id = p[1].as_str().unwrap_or("").to_string();
                let en2 = hex::decode(p[2].as_str().unwrap_or("")).unwrap_or_default();
                let ntime = u32::from_str_radix(p[3].as_str().unwrap_or(""), 16).unwrap_or(0);
                let nonce = u32::from_str_radix(p[4].as_str().unwrap_or(""), 16).unwrap_or(0);
                let vbits = p.get(5).and_then(Value::as_str).and_then(|v| u32::from_str_radix(v, 16).ok());
                let job = jobs.iter().find(|j| j.id == job_id);
                let stale = !live.contains(&job_id);
                let valid = job.is_some_and(|j| {
                    en2.len() == b.extranonce2_size && judge(j, &en2, ntime, nonce, vbits, mask, b.version_xor)
                });
                let duplicate = !seen.insert((job_id.clone(), en2.clone(), ntime, nonce, vbits));
                let diff = job.map_or(0.0, |j| j.difficulty);
                log.lock().unwrap().shares.push(Judged {
                    conn,
                    job_id: job_id.clone(),
                    valid,
                    stale,
                    duplicate,
                    version_bits: vbits,
                    difficulty: diff,
                });
                let n_rejects = b.reject_codes.len();
                let reply = if n_rejects > 0 {
                    let code = b.reject_codes[(log.lock().unwrap().shares.len() - 1) % n_rejects];
                    json!({"id": id, "result": null, "error": [code, "rejected by test pool", null]})
                } else if stale {
                    json!({"id": id, "result": null, "error": [21, "job not found", null]})
                } else if duplicate {
                    json!({"id": id, "result": null, "error": [22, "duplicate", null]})
                } else if !valid {
                    json!({"id": id, "result": null, "error": [23, "low difficulty share", null]})
                } else {
                    valid_here += 1;
                    json!({"id": id, "result": true, "error": null})
                };
                send(&mut w, reply)?;
                let mut once = |name: &str, at: Option<usize>| {
                    at.is_some_and(|n| valid_here >= n && fired.insert(name.to_string()))
                };
                if conn == 1 && once("down", b.down_after) {
                    *down.lock().unwrap() = Some(Instant::now() + Duration::from_millis(b.refuse_ms));
                    return Ok(());
                }
                if once("garbage", b.garbage_after) {
                    write_fully(&mut w, b"{this is not json\n", stop)?;
                }
                if once("overlong", b.overlong_after) {
                    write_fully(&mut w, &[b'x'; 200_000], stop)?;
                    write_fully(&mut w, b"\n", stop)?;
                }
                if once("drop", b.drop_mid_line_after) {
                    write_fully(&mut w, b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"half", stop)?;
                    return Ok(());
                }
                if let Some((after, params)) = &b.reconnect_with
                    && once("reconnect_with", Some(*after))
                {
                    send(&mut w, json!({"id": null, "method": "client.reconnect", "params": params}))?;
                }
                if once("reconnect", b.reconnect_after) {
                    send(&mut w, json!({"id": null, "method": "client.reconnect", "params": ["", 0, 0]}))?;
                }
                if once("extranonce", b.set_extranonce_after) {
                    extranonce1 = vec![0xee, 0xee, 0x00, conn as u8];
                    send(
                        &mut w,
                        json!({"id": null, "method": "mining.set_extranonce", "params": [hex::encode(&extranonce1), b.extranonce2_size]}),
                    )?;
                    let j = new_job(&mut job_no, true, &extranonce1, difficulty);
                    live.clear();
                    live.insert(j.id.clone());
                    send(&mut w, j.notify.clone())?;
                    jobs.push(j);
                }
                if let Some((after, d)) = b.difficulty_change_after
                    && once("difficulty", Some(after))
                {
                    difficulty = d;
                    send(&mut w, json!({"id": null, "method": "mining.set_difficulty", "params": [d]}))?;
                    // Not clean: shares of the previous job stay valid at its own difficulty.
                    let j = new_job(&mut job_no, false, &extranonce1, difficulty);
                    live.insert(j.id.clone());
                    send(&mut w, j.notify.clone())?;
                    jobs.push(j);
                }
                if once("clean", b.clean_job_after) {
                    let j = new_job(&mut job_no, true, &extranonce1, difficulty);
                    live.clear();
                    live.insert(j.id.clone());
                    send(&mut w, j.notify.clone())?;
                    jobs.push(j);
                }
            }
            _ => send(&mut w, json!({"id": id, "result": null, "error": [20, "unknown method", null]}))?,
        }
    }
    Ok(())
}
