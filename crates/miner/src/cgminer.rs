//! A read-only server for cgminer's RPC API (`--api-cgminer`), so the
//! monitoring tools written for cgminer (dashboards, farm managers,
//! exporters) can watch kiln without changes.
//!
//! The protocol, as cgminer's API-README states it: one request per TCP
//! connection, either JSON `{"command":"summary","parameter":""}` (answered
//! in JSON) or plain text `summary` / `summary|param` (answered in cgminer's
//! text form, `KEY=value,...|` sections); one reply, terminated by a NUL byte
//! as cgminer sends it, then the connection closes. Report commands may be
//! joined with `+` (`summary+devs`): each gets its own reply in a section
//! named after the command.
//!
//! Only the report commands kiln can answer truthfully are served:
//! `summary`, `devs`, `pools`, `stats`, `version`, `config`. cgminer's
//! privileged commands (`addpool`, `switchpool`, `quit`, ...) are refused
//! with cgminer's "access denied" status (code 45), anything else with
//! "invalid command" (14): kiln's API changes nothing. Passwords are never
//! in any reply.
//!
//! The same protections as the HTTP API (shared in [`crate::serve`]): a
//! request deadline, a size cap, a cap on connections, and an accepting
//! thread that never reads from a client.

use std::fmt::Write as _;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::serve::{End, linger_close, read_request};
use crate::stats::{Snapshot, Stats};

/// The cgminer API version kiln's replies follow.
pub const API_VERSION: &str = "3.7";
/// cgminer's customary port, for `--help`.
pub const DEFAULT_PORT: u16 = 4028;
/// Longest request read; cgminer's own requests are a few dozen bytes.
const MAX_REQUEST: usize = 4096;
/// Once something arrived, this long without more ends the request (cgminer
/// itself reads a single packet), for clients that neither end the line nor
/// close their side.
const QUIET: Duration = Duration::from_millis(250);

/// The report commands served.
const REPORTS: [&str; 6] = ["summary", "devs", "pools", "stats", "version", "config"];

/// cgminer's commands that change something (privileged in cgminer): refused
/// with code 45 rather than 14, as a cgminer without `--api-allow W:` does.
const PRIVILEGED: [&str; 36] = [
    "switchpool",
    "enablepool",
    "addpool",
    "poolpriority",
    "poolquota",
    "disablepool",
    "removepool",
    "gpuenable",
    "gpudisable",
    "gpurestart",
    "gpuintensity",
    "gpumem",
    "gpuengine",
    "gpufan",
    "gpuvddc",
    "cpuenable",
    "cpudisable",
    "cpurestart",
    "save",
    "quit",
    "privileged",
    "pgaenable",
    "pgadisable",
    "pgaidentify",
    "pgaset",
    "ascenable",
    "ascdisable",
    "ascidentify",
    "ascset",
    "restart",
    "debug",
    "setconfig",
    "zero",
    "hotplug",
    "failover-only",
    "lockstats",
];

/// cgminer's status codes (api.c's `MSG_*`) for the replies kiln gives.
mod code {
    pub const POOL: u32 = 7;
    pub const DEVS: u32 = 9;
    pub const SUMM: u32 = 11;
    pub const INVCMD: u32 = 14;
    pub const VERSION: u32 = 22;
    pub const INVJSON: u32 = 23;
    pub const MISCMD: u32 = 24;
    pub const MINECONFIG: u32 = 33;
    pub const ACCDENY: u32 = 45;
    pub const MINESTATS: u32 = 70;
}

/// Binds `addr` and serves until `stop`; returns the thread and the bound address.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(JoinHandle<()>, SocketAddr)> {
    // Over the connection cap: closed unread (cgminer has no "busy" status).
    crate::serve::serve("cgminer API", "cgminer", addr, stop, b"", move |s| handle(s, &stats))
}

fn handle(mut s: TcpStream, stats: &Stats) -> std::io::Result<()> {
    let accepted = Instant::now();
    let (buf, end) = read_request(&mut s, accepted, MAX_REQUEST, Some(QUIET), complete)?;
    let reply = answer(&buf, end, &stats.snapshot(), unix_now());
    let mut out = reply.into_bytes();
    out.push(0);
    let written = s.write_all(&out);
    linger_close(&mut s);
    written
}

/// True once `buf` holds a whole request: a line or NUL end, a whole JSON
/// value (or one that can never become valid), or exactly a report command's
/// name (no report command is a prefix of another).
fn complete(buf: &[u8]) -> bool {
    if buf.iter().any(|&b| b == b'\n' || b == 0) {
        return true;
    }
    let t = buf.trim_ascii_start();
    if t.first() == Some(&b'{') {
        return match serde_json::Deserializer::from_slice(t).into_iter::<serde_json::Value>().next() {
            Some(Ok(_)) => true,
            Some(Err(e)) => !e.is_eof(),
            None => false,
        };
    }
    REPORTS.iter().any(|c| c.as_bytes() == t.trim_ascii_end())
}

/// The whole reply to one request (without the NUL). Pure: the tests drive
/// it with any bytes.
pub(crate) fn answer(buf: &[u8], end: End, snap: &Snapshot, when: u64) -> String {
    // cgminer: a request starting with '{' is JSON and gets a JSON reply.
    let json = buf.trim_ascii_start().first() == Some(&b'{');
    let error = |c: u32, msg: String| Reply::status_only(Status::error(when, c, msg)).render(json);
    if matches!(end, End::TooSlow | End::TooLarge) {
        let what = if end == End::TooSlow { "request too slow" } else { "request too large" };
        return if json {
            error(code::INVJSON, format!("Invalid JSON ({what})"))
        } else {
            error(code::INVCMD, format!("Invalid command ({what})"))
        };
    }
    let Ok(text) = std::str::from_utf8(buf) else {
        return if json {
            error(code::INVJSON, "Invalid JSON".into())
        } else {
            error(code::INVCMD, "Invalid command".into())
        };
    };
    let text = text.trim_matches(|c: char| c == '\0' || c.is_ascii_whitespace());
    let command = if json {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(o)) => match o.get("command") {
                Some(serde_json::Value::String(c)) => c.clone(),
                _ => return error(code::MISCMD, "Missing JSON 'command'".into()),
            },
            _ => return error(code::INVJSON, "Invalid JSON".into()),
        }
    } else {
        // `cmd|param`: no served command takes a parameter.
        text.split('|').next().unwrap_or("").to_string()
    };
    if command.contains('+') {
        return joined(&command, snap, when, json);
    }
    one(&command, snap, when).render(json)
}

/// A `+`-joined request: each distinct, non-empty command once, in order,
/// each in a section named after it (cgminer's layout since API 3.1).
fn joined(command: &str, snap: &Snapshot, when: u64, json: bool) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for c in command.split('+').filter(|c| !c.is_empty()) {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    let mut out = String::new();
    if json {
        out.push('{');
        for c in &seen {
            // The command name is the client's text: escaped as JSON.
            let _ = write!(out, "{}:[{}],", json_str(c), one(c, snap, when).render(true));
        }
        out.push_str("\"id\":1}");
    } else {
        for c in &seen {
            let _ = write!(out, "CMD={}|{}", text_escape(c), one(c, snap, when).render(false));
        }
    }
    out
}

/// The reply to one command.
fn one(command: &str, snap: &Snapshot, when: u64) -> Reply {
    let ok = |c: u32, msg: String| Status { severity: 'S', when, code: c, msg };
    match command {
        "summary" => Reply::with(ok(code::SUMM, "Summary".into()), "SUMMARY", true, vec![summary(snap)]),
        "devs" => {
            let devs = devs(snap);
            let gpus = snap.scanners.iter().filter(|s| s.facts.kind == "gpu").count();
            let msg = format!("{gpus} GPU(s) - {} CPU(s)", snap.scanners.len() - gpus);
            Reply::with(ok(code::DEVS, msg), "DEVS", false, devs)
        }
        "pools" => {
            let msg = format!("{} Pool(s)", snap.pools.len());
            Reply::with(ok(code::POOL, msg), "POOLS", false, pools(snap))
        }
        "stats" => Reply::with(ok(code::MINESTATS, "CGMiner stats".into()), "STATS", false, stats(snap)),
        "version" => {
            let rec = vec![
                ("CGMiner", V::S(env!("CARGO_PKG_VERSION").into())),
                ("API", V::S(API_VERSION.into())),
                ("Miner", V::S(description())),
            ];
            Reply::with(ok(code::VERSION, "CGMiner versions".into()), "VERSION", true, vec![rec])
        }
        "config" => Reply::with(ok(code::MINECONFIG, "CGMiner config".into()), "CONFIG", true, vec![config(snap)]),
        c if PRIVILEGED.contains(&c) => {
            Reply::status_only(Status::error(when, code::ACCDENY, format!("Access denied to '{c}' command")))
        }
        _ => Reply::status_only(Status::error(when, code::INVCMD, "Invalid command".into())),
    }
}

/// What cgminer puts in every status's Description: the miner and version.
fn description() -> String {
    format!("kiln {}", env!("CARGO_PKG_VERSION"))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { 100.0 * part / whole } else { 0.0 }
}

fn per_minute(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n * 60.0 / secs } else { 0.0 }
}

fn summary(s: &Snapshot) -> Rec {
    let total_hashes: u64 = s.scanners.iter().map(|sc| sc.hashes).sum();
    let diff_all = s.difficulty_accepted + s.difficulty_rejected + s.difficulty_stale;
    let failures: u64 = s.pools.iter().map(|p| p.failures).sum();
    vec![
        ("Elapsed", V::U(s.uptime_s as u64)),
        ("MHS av", V::F(if s.uptime_s > 0.0 { total_hashes as f64 / s.uptime_s / 1e6 } else { 0.0 })),
        ("MHS 5s", V::F(s.hashrate / 1e6)),
        ("MHS 1m", V::F(s.hashrate_1m / 1e6)),
        ("Found Blocks", V::U(s.blocks)),
        ("Getworks", V::U(s.jobs)),
        ("Accepted", V::U(s.accepted)),
        ("Rejected", V::U(s.rejected)),
        ("Hardware Errors", V::U(s.hw_errors)),
        ("Utility", V::F(per_minute(s.accepted as f64, s.uptime_s))),
        // Solutions found but never submitted: duplicates and those lost.
        ("Discarded", V::U(s.duplicates + s.lost)),
        ("Stale", V::U(s.stale)),
        ("Get Failures", V::U(failures)),
        // Solutions found locally (re-checked on the CPU).
        ("Local Work", V::U(s.found)),
        ("Remote Failures", V::U(0)),
        ("Total MH", V::F(total_hashes as f64 / 1e6)),
        ("Work Utility", V::F(per_minute(s.difficulty_accepted, s.uptime_s))),
        ("Difficulty Accepted", V::F(s.difficulty_accepted)),
        ("Difficulty Rejected", V::F(s.difficulty_rejected)),
        ("Difficulty Stale", V::F(s.difficulty_stale)),
        ("Best Share", V::U(s.best_share as u64)),
        ("Device Hardware%", V::F(pct(s.hw_errors as f64, (s.hw_errors + s.found) as f64))),
        ("Device Rejected%", V::F(pct(s.difficulty_rejected, diff_all))),
        ("Pool Rejected%", V::F(pct(s.difficulty_rejected, diff_all))),
        ("Pool Stale%", V::F(pct(s.difficulty_stale, diff_all))),
        ("Last getwork", V::U(s.last_job_unix as u64)),
    ]
}

fn devs(s: &Snapshot) -> Vec<Rec> {
    let active_pool = s.pools.iter().position(|p| p.active).map_or(-1, |i| i as i64);
    let (mut cpus, mut gpus, mut others) = (0u64, 0u64, 0u64);
    s.scanners
        .iter()
        .map(|sc| {
            let (key, n) = match sc.facts.kind.as_str() {
                "cpu" => ("CPU", &mut cpus),
                "gpu" => ("GPU", &mut gpus),
                _ => ("PGA", &mut others),
            };
            let id = *n;
            *n += 1;
            let mut rec: Rec = vec![
                (key, V::U(id)),
                ("Name", V::S(sc.name.clone())),
                ("ID", V::U(id)),
                ("Enabled", V::S("Y".into())),
                ("Status", V::S("Alive".into())),
                ("Device Elapsed", V::U(s.uptime_s as u64)),
                ("MHS av", V::F(sc.hashrate_avg / 1e6)),
                ("MHS 5s", V::F(sc.hashrate / 1e6)),
                ("MHS 1m", V::F(sc.hashrate_1m / 1e6)),
                ("Accepted", V::U(sc.accepted)),
                ("Rejected", V::U(sc.rejected)),
                ("Hardware Errors", V::U(sc.hw_errors)),
                ("Utility", V::F(per_minute(sc.accepted as f64, s.uptime_s))),
                ("Last Share Pool", V::I(if sc.accepted > 0 { active_pool } else { -1 })),
                ("Last Share Time", V::U(sc.last_share_unix as u64)),
                ("Total MH", V::F(sc.hashes as f64 / 1e6)),
                ("Difficulty Accepted", V::F(sc.difficulty_accepted)),
                ("Device Hardware%", V::F(pct(sc.hw_errors as f64, (sc.hw_errors + sc.found) as f64))),
                ("Device Rejected%", V::F(pct(sc.rejected as f64, (sc.accepted + sc.rejected) as f64))),
                ("Backend", V::S(sc.facts.backend.clone())),
                ("Threads", V::U(sc.facts.threads as u64)),
            ];
            if key == "GPU" {
                // cgminer's intensity: log2 of the nonces per dispatch; "D"
                // (dynamic) while kiln's autotuner has not settled on a power of two.
                let intensity = match sc.facts.dispatch_size {
                    Some(n) if n.is_power_of_two() => n.trailing_zeros().to_string(),
                    _ => "D".into(),
                };
                rec.push(("Intensity", V::S(intensity)));
                rec.push(("Device", V::S(sc.facts.device.clone())));
                rec.push(("Dispatch Size", V::U(sc.facts.dispatch_size.unwrap_or(0))));
            }
            rec
        })
        .collect()
}

fn pools(s: &Snapshot) -> Vec<Rec> {
    s.pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let host = p.url.split("://").nth(1).unwrap_or(&p.url).to_string();
            let diff_all = p.difficulty_accepted + p.difficulty_rejected;
            vec![
                ("POOL", V::U(i as u64)),
                ("URL", V::S(p.url.clone())),
                // Dead: not in use, and its last attempt failed.
                ("Status", V::S(if p.active || p.failures == 0 { "Alive" } else { "Dead" }.into())),
                ("Priority", V::U(p.priority as u64)),
                ("Quota", V::U(1)),
                ("Long Poll", V::S("N".into())),
                ("Getworks", V::U(p.jobs)),
                ("Accepted", V::U(p.accepted)),
                ("Rejected", V::U(p.rejected)),
                ("Stale", V::U(p.stale)),
                ("Get Failures", V::U(p.failures)),
                ("Remote Failures", V::U(0)),
                ("User", V::S(p.user.clone())),
                ("Last Share Time", V::U(p.last_share_unix as u64)),
                ("Proxy Type", V::S(String::new())),
                ("Proxy", V::S(String::new())),
                ("Difficulty Accepted", V::F(p.difficulty_accepted)),
                ("Difficulty Rejected", V::F(p.difficulty_rejected)),
                ("Has Stratum", V::B(true)),
                ("Stratum Active", V::B(p.active)),
                ("Stratum URL", V::S(if p.active { host } else { String::new() })),
                ("Stratum Difficulty", V::F(if p.active { s.difficulty } else { 0.0 })),
                ("Has GBT", V::B(false)),
                ("Pool Rejected%", V::F(pct(p.difficulty_rejected, diff_all))),
                ("Pool Stale%", V::F(pct(p.stale as f64, (p.accepted + p.rejected + p.stale) as f64))),
                ("Connects", V::U(p.connects)),
            ]
        })
        .collect()
}

fn stats(s: &Snapshot) -> Vec<Rec> {
    let mut out = Vec::new();
    let (mut cpus, mut gpus) = (0, 0);
    for sc in &s.scanners {
        let id = if sc.facts.kind == "gpu" {
            gpus += 1;
            format!("GPU{}", gpus - 1)
        } else {
            cpus += 1;
            format!("CPU{}", cpus - 1)
        };
        out.push(vec![
            ("STATS", V::U(out.len() as u64)),
            ("ID", V::S(id)),
            ("Elapsed", V::U(s.uptime_s as u64)),
            ("Name", V::S(sc.name.clone())),
            ("Hashes", V::U(sc.hashes)),
            ("Found", V::U(sc.found)),
            ("Backend", V::S(sc.facts.backend.clone())),
            ("Threads", V::U(sc.facts.threads as u64)),
            ("Dispatch Size", V::U(sc.facts.dispatch_size.unwrap_or(0))),
        ]);
    }
    for (i, p) in s.pools.iter().enumerate() {
        out.push(vec![
            ("STATS", V::U(out.len() as u64)),
            ("ID", V::S(format!("POOL{i}"))),
            ("Elapsed", V::U(s.uptime_s as u64)),
            ("Work Diff", V::F(if p.active { s.difficulty } else { 0.0 })),
            ("Getworks", V::U(p.jobs)),
            ("Connects", V::U(p.connects)),
            ("Failures", V::U(p.failures)),
        ]);
    }
    out
}

fn config(s: &Snapshot) -> Rec {
    let gpus = s.scanners.iter().filter(|sc| sc.facts.kind == "gpu").count() as u64;
    vec![
        ("GPU Count", V::U(gpus)),
        ("ASC Count", V::U(0)),
        ("PGA Count", V::U(0)),
        ("CPU Count", V::U(s.scanners.len() as u64 - gpus)),
        ("Pool Count", V::U(s.pools.len() as u64)),
        ("ADL", V::S("N".into())),
        ("ADL in use", V::S("N".into())),
        // Failover: the first pool that works, back to the primary when it recovers.
        ("Strategy", V::S("Failover".into())),
        ("Failover-Only", V::B(true)),
        ("Device Code", V::S("CPU GPU".into())),
        ("OS", V::S(std::env::consts::OS.into())),
    ]
}

/// A value in a reply.
#[derive(Clone, Debug)]
enum V {
    U(u64),
    I(i64),
    F(f64),
    S(String),
    B(bool),
}

/// One record: fields in cgminer's order.
type Rec = Vec<(&'static str, V)>;

struct Status {
    severity: char,
    when: u64,
    code: u32,
    msg: String,
}

impl Status {
    fn error(when: u64, code: u32, msg: String) -> Self {
        Status { severity: 'E', when, code, msg }
    }
    fn rec(&self) -> Rec {
        vec![
            ("STATUS", V::S(self.severity.to_string())),
            ("When", V::U(self.when)),
            ("Code", V::U(u64::from(self.code))),
            ("Msg", V::S(self.msg.clone())),
            ("Description", V::S(description())),
        ]
    }
}

/// A STATUS section and, on success, one detail section.
struct Reply {
    status: Status,
    /// Section name, records, and whether the text form starts each record
    /// with the section's name (`SUMMARY,Elapsed=...`) — those without an id
    /// field of their own — rather than the id (`POOL=0,...`).
    section: Option<(&'static str, bool, Vec<Rec>)>,
}

impl Reply {
    fn status_only(status: Status) -> Self {
        Reply { status, section: None }
    }
    fn with(status: Status, name: &'static str, named_records: bool, recs: Vec<Rec>) -> Self {
        Reply { status, section: Some((name, named_records, recs)) }
    }

    fn render(&self, json: bool) -> String {
        let mut out = String::new();
        if json {
            let _ = write!(out, "{{\"STATUS\":[{}]", json_rec(&self.status.rec()));
            if let Some((name, _, recs)) = &self.section {
                let body: Vec<String> = recs.iter().map(json_rec).collect();
                let _ = write!(out, ",\"{name}\":[{}]", body.join(","));
            }
            out.push_str(",\"id\":1}");
        } else {
            out.push_str(&text_rec(&self.status.rec()));
            out.push('|');
            if let Some((name, named, recs)) = &self.section {
                for r in recs {
                    if *named {
                        out.push_str(name);
                        out.push(',');
                    }
                    out.push_str(&text_rec(r));
                    out.push('|');
                }
            }
        }
        out
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn json_value(v: &V) -> String {
    match v {
        V::U(n) => n.to_string(),
        V::I(n) => n.to_string(),
        // JSON has no NaN or infinity; no counter here should produce one.
        V::F(x) if x.is_finite() => serde_json::to_string(x).unwrap_or_else(|_| "0".into()),
        V::F(_) => "0".into(),
        V::S(s) => json_str(s),
        V::B(b) => b.to_string(),
    }
}

fn json_rec(r: &Rec) -> String {
    let fields: Vec<String> = r.iter().map(|(k, v)| format!("{}:{}", json_str(k), json_value(v))).collect();
    format!("{{{}}}", fields.join(","))
}

/// cgminer's text escaping: `|`, `,`, `=` and `\` get a backslash.
fn text_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '|' | ',' | '=' | '\\') {
            out.push('\\');
        }
        // NUL ends a reply: never inside one.
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

fn text_rec(r: &Rec) -> String {
    let fields: Vec<String> = r
        .iter()
        .map(|(k, v)| {
            let v = match v {
                V::S(s) => text_escape(s),
                V::F(x) if x.is_finite() => format!("{x:.4}"),
                V::F(_) => "0".into(),
                other => json_value(other),
            };
            format!("{k}={v}")
        })
        .collect();
    fields.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{PoolStatus, ScannerFacts};

    fn snap() -> Snapshot {
        let s = Stats::new();
        s.set_scanners(vec![ScannerFacts {
            name: "cpu/avx2x2".into(),
            kind: "cpu".into(),
            backend: "avx2".into(),
            threads: 2,
            ..Default::default()
        }]);
        s.set_pools(vec![PoolStatus {
            url: "stratum+tcp://a,b=c|d:1".into(),
            user: "w\"x".into(),
            ..Default::default()
        }]);
        s.pool_event(0, true, false);
        s.answered(Some(0), 4.0, None);
        s.snapshot()
    }

    fn j(req: &str) -> serde_json::Value {
        let r = answer(req.as_bytes(), End::Complete, &snap(), 7);
        serde_json::from_str(&r).unwrap_or_else(|e| panic!("{e}: {r}"))
    }

    #[test]
    fn json_and_text_forms() {
        let v = j(r#"{"command":"summary","parameter":""}"#);
        assert_eq!(v["STATUS"][0]["STATUS"], "S");
        assert_eq!(v["STATUS"][0]["Code"], 11);
        assert_eq!(v["STATUS"][0]["When"], 7);
        assert_eq!(v["SUMMARY"][0]["Accepted"], 1);
        assert_eq!(v["SUMMARY"][0]["Difficulty Accepted"], 4.0);
        assert_eq!(v["id"], 1);
        let t = answer(b"summary|x", End::Quiet, &snap(), 7);
        assert!(t.starts_with("STATUS=S,When=7,Code=11,Msg=Summary,Description=kiln "), "{t}");
        assert!(t.contains("|SUMMARY,Elapsed="), "{t}");
        assert!(t.contains(",Accepted=1,"), "{t}");
        assert!(t.ends_with('|'), "{t}");
        // Pool text is escaped in both forms.
        let t = answer(b"pools", End::Complete, &snap(), 7);
        assert!(t.contains(r"URL=stratum+tcp://a\,b\=c\|d:1,"), "{t}");
        assert_eq!(j(r#"{"command":"pools"}"#)["POOLS"][0]["User"], "w\"x");
    }

    #[test]
    fn bad_requests_get_status_e_with_cgminer_codes() {
        let code = |req: &[u8], end: End| -> (String, u64) {
            let r = answer(req, end, &snap(), 1);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&r) {
                return (v["STATUS"][0]["STATUS"].as_str().unwrap().into(), v["STATUS"][0]["Code"].as_u64().unwrap());
            }
            let status = r.split('|').next().unwrap();
            let field = |k: &str| status.split(',').find_map(|f| f.strip_prefix(k)).unwrap().to_string();
            (field("STATUS="), field("Code=").parse().unwrap())
        };
        let e = |c: u64| ("E".to_string(), c);
        assert_eq!(code(b"addpool|stratum+tcp://evil:1,u,p", End::Complete), e(45));
        assert_eq!(code(br#"{"command":"quit"}"#, End::Complete), e(45));
        assert_eq!(code(b"privileged", End::Complete), e(45));
        assert_eq!(code(b"nonsense", End::Complete), e(14));
        assert_eq!(code(b"", End::Closed), e(14));
        assert_eq!(code(b"", End::TooSlow), e(14));
        assert_eq!(code(b"summ", End::TooSlow), e(14));
        assert_eq!(code(&[0xff, 0xfe, b's'], End::Quiet), e(14));
        assert_eq!(code(&[b'x'; 5000], End::TooLarge), e(14));
        assert_eq!(code(br#"{"command":"summary""#, End::Closed), e(23));
        assert_eq!(code(br#"{"parameter":"0"}"#, End::Complete), e(24));
        assert_eq!(code(br#"{"command":7}"#, End::Complete), e(24));
        assert_eq!(code(b"SUMMARY", End::Complete), e(14), "commands are case-sensitive, as in cgminer");
    }

    #[test]
    fn joined_commands_each_get_a_section() {
        let v = j(r#"{"command":"summary+devs+devs+quit+"}"#);
        assert_eq!(v["summary"][0]["STATUS"][0]["Code"], 11);
        assert_eq!(v["devs"][0]["DEVS"][0]["CPU"], 0);
        assert_eq!(v["quit"][0]["STATUS"][0]["STATUS"], "E");
        assert_eq!(v["quit"][0]["STATUS"][0]["Code"], 45);
        assert_eq!(v.as_object().unwrap().len(), 4, "summary, devs once, quit, id: {v}");
        let t = answer(b"version+config", End::Complete, &snap(), 1);
        assert!(t.starts_with("CMD=version|STATUS=S,"), "{t}");
        assert!(t.contains("|CMD=config|STATUS=S,"), "{t}");
        assert!(t.contains("|VERSION,CGMiner="), "{t}");
    }

    #[test]
    fn a_request_is_complete_at_a_line_end_a_whole_json_value_or_a_bare_command() {
        assert!(complete(b"summary"));
        assert!(complete(b"pools\n"));
        assert!(!complete(b"summ"));
        assert!(!complete(b"summary|"));
        assert!(complete(b"summary|0\n"));
        assert!(!complete(br#"{"command":"sum"#));
        assert!(complete(br#"{"command":"summary"}"#));
        assert!(complete(b"{]"), "broken JSON ends the request at once");
    }
}
