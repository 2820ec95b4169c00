//! The dashboard in a real browser: headless Chromium loads it from a miner
//! mining against the loopback test pool, runs its JavaScript, and the
//! numbers it shows must be the API's. A screenshot proves it renders.
//!
//! Chromium is found through `CHROMIUM`, else `chromium` or
//! `chromium-browser` on PATH. Without one the test is skipped loudly, unless
//! `KILN_REQUIRE_CHROMIUM=1` (set by scripts/test): then it fails.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_testkit::pool::{Behavior, TestPool};

use crate::stratum::{fast_client, start_miner};

/// Longest a Chromium run may take before it is killed.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        let p = PathBuf::from(p);
        // Set but wrong is a configuration error, never a silent skip.
        assert!(p.is_file(), "CHROMIUM={} is not a file", p.display());
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Chromium, or `None` after a loud message (a panic when it is required).
fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("KILN_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "KILN_REQUIRE_CHROMIUM=1 but no Chromium found (set CHROMIUM or install the `chromium` package)"
        );
        // Straight to the process's stderr: the harness hides an eprintln! of a passing test.
        let msg = format!(
            "\n*** SKIPPED {test}: no Chromium (set CHROMIUM or install `chromium`; KILN_REQUIRE_CHROMIUM=1 makes this fail) ***\n\n"
        );
        let _ = std::io::stderr().write_all(msg.as_bytes());
    }
    found
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let d = std::env::temp_dir().join(format!("kiln-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs headless Chromium on `url` with `extra` flags and its own profile
/// directory; killed if it runs past [`CHROMIUM_LIMIT`]. Returns stdout.
fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    let mut child = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    // Drain both pipes on threads so a chatty Chromium never blocks on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > CHROMIUM_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium ran past {CHROMIUM_LIMIT:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out_t.join().unwrap(), err_t.join().unwrap());
    assert!(status.success(), "Chromium failed ({status}): {stderr}");
    stdout
}

pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a whole response");
    (head.to_string(), body.to_string())
}

pub fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (head, body) = http_get(addr, path);
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The start tag of the element with this id.
fn tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..=end]
}

/// The text directly inside the element with this id (up to the next tag).
fn text(dom: &str, id: &str) -> String {
    let t = tag(dom, id);
    let at = dom.find(t).unwrap() + t.len();
    dom[at..at + dom[at..].find('<').unwrap()].to_string()
}

fn attr(dom: &str, id: &str, name: &str) -> String {
    let t = tag(dom, id);
    let key = format!("{name}=\"");
    let at = t.find(&key).unwrap_or_else(|| panic!("#{id} has no {name}: {t}")) + key.len();
    t[at..at + t[at..].find('"').unwrap()].to_string()
}

fn between(what: &str, shown: f64, before: &serde_json::Value, after: &serde_json::Value, key: &str) {
    let (lo, hi) = (before[key].as_f64().unwrap(), after[key].as_f64().unwrap());
    assert!(lo <= shown && shown <= hi, "{what}: the page shows {shown}, the API said {lo} then {hi}");
}

#[test]
fn the_dashboard_is_served_and_its_json_endpoints_answer() {
    let pool = TestPool::start(Behavior::default());
    let m = start_miner(&[pool.url()], fast_client(), Some("127.0.0.1:0".parse().unwrap()));
    let addr = m.api_addr.unwrap();
    let (head, body) = http_get(addr, "/");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("Content-Type: text/html"), "{head}");
    assert_eq!(body, kiln_miner::api::DASHBOARD);
    let h = json(addr, "/history");
    assert_eq!((h["bucket_secs"].as_u64(), h["capacity"].as_u64()), (Some(10), Some(360)));
    assert_eq!(h["scanners"].as_array().unwrap().len(), 1);
    pool.wait_for("a connection", Duration::from_secs(30), |l| l.authorizes >= 1 && l.valid() >= 1);
    // The connect is in the pool history as soon as the pool authorized.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !json(addr, "/events").to_string().contains("connected to pool 0") {
        assert!(Instant::now() < deadline, "no connect event: {}", json(addr, "/events"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = json(addr, "/scanners");
    assert_eq!(s[0]["kind"], "cpu");
    assert_eq!(s[0]["threads"], 1);
    assert!(!s[0]["backend"].as_str().unwrap().is_empty());
    m.stop();
}

#[test]
fn the_dashboard_shows_the_apis_numbers_in_a_real_browser() {
    let Some(bin) = chromium_or_skip("the_dashboard_shows_the_apis_numbers_in_a_real_browser") else { return };
    let pool = TestPool::start(Behavior::default());
    let m = start_miner(&[pool.url()], fast_client(), Some("127.0.0.1:0".parse().unwrap()));
    let addr = m.api_addr.unwrap();
    pool.wait_for("a few shares", Duration::from_secs(30), |l| l.valid() >= 3);
    // The chart needs one closed 10 s bucket to draw a line.
    let deadline = Instant::now() + Duration::from_secs(25);
    while json(addr, "/history")["buckets"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no history bucket after 25 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("http://{addr}/");
    let dir = TempDir::new("chromium");

    let before = json(addr, "/summary");
    let scanners = json(addr, "/scanners");
    // Virtual time: the page's timers run without waiting in real time, and
    // Chromium dumps the DOM once the budget is spent (fetches pause it).
    let dom = run_chromium(
        &bin,
        &dir.0.join("profile-dom"),
        &["--virtual-time-budget=5000".into(), "--dump-dom".into()],
        &url,
    );
    let after = json(addr, "/summary");

    assert_eq!(attr(&dom, "status", "class"), "ok", "the page could not read the API: {}", text(&dom, "status"));
    assert!(dom.contains("data-loaded=\"1\""), "the page never finished a poll");
    for (id, key) in
        [("accepted", "accepted"), ("rejected", "rejected"), ("stale", "stale"), ("hw-errors", "hw_errors")]
    {
        let shown: f64 = text(&dom, id).parse().unwrap_or_else(|e| panic!("#{id}: {e}: {:?}", text(&dom, id)));
        between(id, shown, &before, &after, key);
    }
    assert!(text(&dom, "accepted").parse::<u64>().unwrap() >= 3);
    for (id, key) in
        [("blocks", "blocks"), ("blocks-accepted", "blocks_accepted"), ("blocks-rejected", "blocks_rejected")]
    {
        assert_eq!(text(&dom, id), after[key].to_string(), "#{id}");
    }
    let uptime: f64 = attr(&dom, "uptime", "data-value").parse().unwrap();
    between("uptime", uptime, &before, &after, "uptime_s");
    assert!(text(&dom, "uptime").starts_with("00:00:"), "{}", text(&dom, "uptime"));
    let best: f64 = attr(&dom, "best-share", "data-value").parse().unwrap();
    between("best share", best, &before, &after, "best_share");
    assert!(best >= 1.0 / 2048.0, "every share beats the pool's difficulty: {best}");
    assert_eq!(text(&dom, "pool"), after["pool"].as_str().unwrap());
    let names: Vec<&str> = scanners.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(attr(&dom, &format!("scanner-{i}"), "data-name"), *name);
    }
    assert_eq!(dom.matches("id=\"scanner-").count(), names.len());
    assert_eq!(dom.matches("id=\"pool-row-").count(), 1, "one pool row");
    let buckets: usize = attr(&dom, "chart", "data-buckets").parse().unwrap();
    assert!(buckets >= 1, "the chart drew no bucket");
    assert!(dom.contains("connected to pool 0"), "the pool history shows the connect");
    assert!(!dom.contains("s3cret-pass"), "the password never reaches the page");

    // A screenshot: a PNG of the requested size with real content (a blank
    // page of this size compresses to a few kilobytes).
    let shot = dir.0.join("dashboard.png");
    run_chromium(
        &bin,
        &dir.0.join("profile-shot"),
        &[
            "--hide-scrollbars".into(),
            "--window-size=1280,1100".into(),
            "--virtual-time-budget=5000".into(),
            format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("Chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((w, h), (1280, 1100), "IHDR size");
    assert!(png.len() > 30_000, "a {} byte screenshot is too plain to be the dashboard", png.len());
    if let Ok(keep) = std::env::var("KILN_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
    m.stop();
}

#[test]
fn the_page_needs_nothing_from_outside() {
    let page = kiln_miner::api::DASHBOARD;
    for external in ["://", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(external), "the dashboard must work offline: found {external:?}");
    }
    assert!(page.contains("<canvas id=\"chart\""));
    assert!(!page.contains("innerHTML"), "server text is set as text, never as HTML");
}
