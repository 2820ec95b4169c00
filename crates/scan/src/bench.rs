//! The measurements behind `kiln bench`: hash rate per backend and thread
//! count, and a reference rate measured in the same run so figures from a
//! noisy shared machine can be compared as ratios.
//!
//! Rates are medians over short windows, not one long average, so a burst of
//! load from a neighbour moves the figure less.

use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cpu::CpuScanner;
use crate::selfcheck::real_header;
use crate::{ScanEvent, Scanner};
use kiln_hash::Backend;
use kiln_work::{Header, Work};

/// One row of `kiln bench`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub backend: String,
    pub threads: usize,
    /// Nonces hashed during the measured windows.
    pub hashes: u64,
    /// Length of the measured windows together.
    pub seconds: f64,
    /// Median of the per-window rates, in millions of nonces per second.
    pub mhs: f64,
    pub mhs_per_thread: f64,
    /// `mhs_per_thread` divided by the reference rate in millions of 64-byte
    /// blocks per second (when a reference was measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_reference: Option<f64>,
}

/// A single-stream SHA-256 rate to compare against.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    /// Where the figure came from.
    pub source: String,
    /// Millions of 64-byte blocks per second, one thread.
    pub mblocks_per_s: f64,
}

/// Median of a non-empty list (the mean of the middle two for even lengths).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// OpenSSL's single-stream SHA-256 rate (`openssl speed -evp sha256 -bytes
/// 16384`), the figure the project's performance bars are stated against.
/// `None` when the `openssl` command is missing or its output is unexpected.
pub fn openssl_reference(seconds: u32) -> Option<Reference> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "sha256", "-bytes", "16384", "-seconds", &seconds.max(1).to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().to_ascii_lowercase().starts_with("sha256"))?;
    let kbytes: f64 = line.split_whitespace().last()?.trim_end_matches('k').parse().ok()?;
    Some(Reference {
        source: format!("openssl speed -evp sha256 -bytes 16384 -seconds {}", seconds.max(1)),
        mblocks_per_s: kbytes * 1000.0 / 64.0 / 1e6,
    })
}

/// Fallback reference when OpenSSL is absent: the `sha2` crate hashing 16 KiB
/// buffers on one thread (it also uses SHA-NI where the CPU has it).
pub fn sha2_reference(seconds: f64) -> Reference {
    let buf = vec![0x5au8; 16384];
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.2));
    let started = Instant::now();
    let mut blocks = 0u64;
    let mut sink = 0u8;
    while Instant::now() < deadline {
        for _ in 0..16 {
            sink ^= kiln_hash::sha256(&buf)[0];
            blocks += 16384 / 64;
        }
    }
    std::hint::black_box(sink);
    Reference {
        source: "sha2 crate, 16 KiB buffers (openssl not found)".into(),
        mblocks_per_s: blocks as f64 / started.elapsed().as_secs_f64() / 1e6,
    }
}

/// The work every CPU benchmark hashes: block 866342's real header at its real
/// target, so the rare candidates are re-checked exactly as when mining.
pub fn bench_work(id: u64) -> Work {
    let bytes = real_header(1);
    let header = Header::parse(&bytes).expect("80 bytes");
    Work::new(id, bytes, header.bits.to_target().expect("real nBits"))
}

/// Collects per-window rates from a running scanner for about `seconds`.
/// `hashes()` reads its counter; `on_exhausted` is polled once per window.
fn measure(
    seconds: f64,
    hashes: impl Fn() -> u64,
    mut keep_busy: impl FnMut(),
    progress: &mut dyn FnMut(f64, f64),
) -> (u64, f64, f64) {
    let window = Duration::from_millis(250);
    let windows = ((seconds / window.as_secs_f64()).round() as usize).max(3);
    let mut rates = Vec::with_capacity(windows);
    let (first, started) = (hashes(), Instant::now());
    let (mut last_h, mut last_t) = (first, started);
    for i in 0..windows {
        std::thread::sleep(window);
        let (h, t) = (hashes(), Instant::now());
        let rate = (h - last_h) as f64 / (t - last_t).as_secs_f64() / 1e6;
        rates.push(rate);
        (last_h, last_t) = (h, t);
        progress((i + 1) as f64 / windows as f64, rate);
        keep_busy();
    }
    (last_h - first, (last_t - started).as_secs_f64(), median(&mut rates))
}

/// Keeps `scanner` busy on the benchmark work for a warm-up and then about
/// `seconds` of measurement; returns (hashes, seconds, median MH/s).
fn run_scanner(
    scanner: &dyn Scanner,
    events: &crossbeam_channel::Receiver<ScanEvent>,
    warmup: Duration,
    seconds: f64,
    progress: &mut dyn FnMut(f64, f64),
) -> (u64, f64, f64) {
    let mut work_id = 1;
    scanner.set_work(bench_work(work_id));
    std::thread::sleep(warmup);
    measure(
        seconds,
        || scanner.hashes(),
        || {
            // A scanner that finished its range idles; keep it busy.
            if events.try_iter().any(|ev| matches!(ev, ScanEvent::Exhausted { .. })) {
                work_id += 1;
                scanner.set_work(bench_work(work_id));
            }
        },
        progress,
    )
}

/// Hashes with the GPU kernel `k` for about `seconds` (after a warm-up that
/// lets the autotuner settle), reporting like [`bench_cpu`].
pub fn bench_gpu(
    k: crate::gpu::Kernel,
    opts: crate::gpu::GpuScannerOptions,
    seconds: f64,
    mut progress: impl FnMut(f64, f64),
) -> Result<(BenchResult, u64), String> {
    use crate::gpu::GpuScanner;
    let label = format!("gpu{}", k.desc.index);
    let (tx, rx) = crossbeam_channel::unbounded();
    let scanner = GpuScanner::start(k, opts, tx);
    // A longer warm-up lets the autotuner settle on a dispatch size.
    let (hashes, secs, mhs) = run_scanner(&scanner, &rx, Duration::from_millis(1000), seconds, &mut progress);
    if let Some(e) = scanner.error() {
        return Err(e);
    }
    let batch = scanner.batch();
    Ok((
        BenchResult {
            backend: label,
            threads: 1,
            hashes,
            seconds: secs,
            mhs,
            mhs_per_thread: mhs,
            ratio_to_reference: None,
        },
        batch,
    ))
}

/// Hashes with `backend` on `threads` threads for about `seconds`, calling
/// `progress(fraction_done, current_mhs)` a few times a second.
pub fn bench_cpu(backend: Backend, threads: usize, seconds: f64, mut progress: impl FnMut(f64, f64)) -> BenchResult {
    let (tx, rx) = crossbeam_channel::unbounded();
    let scanner = CpuScanner::start(backend, threads, tx);
    // Warm up: let the chunk size settle and the clocks ramp.
    let (hashes, secs, mhs) = run_scanner(&scanner, &rx, Duration::from_millis(300), seconds, &mut progress);
    drop(scanner);
    BenchResult {
        backend: backend.name().to_string(),
        threads,
        hashes,
        seconds: secs,
        mhs,
        mhs_per_thread: mhs / threads as f64,
        ratio_to_reference: None,
    }
}
