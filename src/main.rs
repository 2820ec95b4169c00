//! The `kiln` command line: raw arguments become validated options, which
//! build the workers for one mode. Library modules return typed errors; only
//! this file turns them into messages and exit codes.
//!
//! Exit codes: 0 success; 1 the checked thing is bad (an invalid block, a
//! backend failing its self-check); 2 usage errors and unreadable input.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kiln::bench::{self, BenchResult, Reference};
use kiln::scan::gpu::{self, GpuScannerOptions, GpuSelection, KernelOptions};
use kiln::scan::selfcheck::self_check;
use kiln::scan::selfcheck::self_check_gpu;
use kiln::sha256::{Backend, BackendKind};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Bitcoin mining and validation engine: SIMD/SHA-NI CPU hashing, \
wgpu GPU mining, Stratum pool worker, batched signature verification"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// A block and the outputs it spends, shared by the validation commands.
#[derive(clap::Args)]
struct BlockFiles {
    /// The block: raw bytes or hex text, optionally zstd-compressed.
    #[arg(long, value_name = "FILE")]
    block: PathBuf,
    /// The outputs spent by the block's non-coinbase inputs, in block order:
    /// a JSON array of {"txout": {"value", "script_pubkey"}} or the JSON of
    /// `bitcoin-cli getblock HASH 3`; optionally zstd-compressed.
    #[arg(long, value_name = "FILE")]
    prevouts: PathBuf,
}

/// GPU selection, shared by the commands that hash.
#[derive(clap::Args, Clone)]
struct GpuArgs {
    /// GPUs to use: auto (every hardware adapter), off, or indices from
    /// `kiln devices` such as 0,2 (software adapters like lavapipe only by index).
    #[arg(long, value_name = "auto|off|LIST", default_value = "auto")]
    gpu: GpuSelection,
    /// Fixed GPU dispatch size of 2^N nonces (10..=32) instead of autotuning
    /// (which keeps about 20 ms of GPU work queued, the bound on a job switch).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(10..=32))]
    gpu_intensity: Option<u32>,
}

#[derive(clap::Args)]
struct MineArgs {
    /// Pool URL: stratum+tcp://HOST:PORT or stratum+ssl://HOST:PORT (repeatable).
    #[arg(short = 'o', long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// Worker name for the pool at the same position (repeatable).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    users: Vec<String>,
    /// Password for the pool at the same position (repeatable; never logged).
    #[arg(short = 'p', long = "pass", value_name = "PASS")]
    passes: Vec<String>,
    /// CPU hashing threads (0 = no CPU mining). Default: every core.
    #[arg(long, value_name = "N")]
    cpu_threads: Option<usize>,
    /// CPU backend (see `kiln devices`). Default: the fastest available.
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    #[command(flatten)]
    gpu: GpuArgs,
    /// TOML configuration file with the same keys; command-line options win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level.
    #[arg(long, value_enum, default_value = "info")]
    log_level: kiln::log::Level,
    /// Serve read-only JSON and Prometheus metrics: a port (bound on
    /// 127.0.0.1) or ADDR:PORT.
    #[arg(long, value_name = "[ADDR:]PORT")]
    api: Option<String>,
    /// Ask the pool for this starting difficulty (mining.suggest_difficulty).
    #[arg(long, value_name = "D")]
    suggest_difficulty: Option<f64>,
    /// Do not ask for version rolling (BIP310).
    #[arg(long)]
    no_version_rolling: bool,
    /// Seconds between status lines.
    #[arg(long, value_name = "S", default_value_t = 10)]
    status_interval: u64,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long, value_name = "S")]
    duration: Option<u64>,
}

/// The TOML config file: the same names as the long options.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    pool: Vec<ConfigPool>,
    cpu_threads: Option<usize>,
    backend: Option<String>,
    gpu: Option<String>,
    gpu_intensity: Option<u32>,
    log_level: Option<String>,
    api: Option<String>,
    suggest_difficulty: Option<f64>,
    no_version_rolling: Option<bool>,
    status_interval: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigPool {
    url: String,
    user: String,
    #[serde(default = "default_pass")]
    pass: String,
}

fn default_pass() -> String {
    "x".into()
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure sha256d hash rates of every available backend (no pool, no GPU needed).
    ///
    /// Each backend first proves itself on real mainnet headers, then hashes
    /// block 866342's header for a few seconds per thread count. The reference
    /// column is OpenSSL's single-stream SHA-256 rate in 64-byte blocks,
    /// measured in the same run (the sha2 crate when openssl is missing).
    Bench {
        /// Only this backend (see `kiln devices`).
        #[arg(long, value_name = "NAME")]
        backend: Option<String>,
        /// Thread count. Default: 1 and every core.
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Seconds of measurement per row.
        #[arg(long, value_name = "S", default_value_t = 3.0)]
        seconds: f64,
        /// Print a JSON array (one object per row) instead of a table.
        #[arg(long)]
        json: bool,
        /// Skip the OpenSSL reference measurement.
        #[arg(long)]
        no_reference: bool,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// List the hashing backends and GPU adapters this machine has.
    Devices,
    /// Mine on one or more Stratum V1 pools (priority order, with failover).
    ///
    /// Example: kiln mine -o stratum+tcp://pool.example:3333 -u wallet.worker -p x
    ///
    /// Repeat -o/-u/-p for backup pools; a pool without its own -u/-p uses the
    /// previous one's. Every option can also come from a TOML file (--config)
    /// with the same names, pools as [[pool]] tables with url, user, pass.
    /// A status line every few seconds shows each scanner's rate, the 1-minute
    /// average, accepted/rejected/stale shares, hardware errors, pool and
    /// difficulty.
    Mine(MineArgs),
    /// Validate a block: proof of work, merkle root, witness commitment, BIP34,
    /// and every input's signatures against the outputs it spends.
    ///
    /// Exit status: 0 valid, 1 invalid (each bad input is named), 2 unreadable
    /// or inconsistent input files.
    VerifyBlock {
        #[command(flatten)]
        files: BlockFiles,
        /// Verification threads (0 = every core).
        #[arg(long, value_name = "N", default_value_t = 0)]
        threads: usize,
        /// Verify Schnorr signatures one by one instead of with BIP340 batch
        /// verification (same verdicts; for comparison).
        #[arg(long)]
        no_schnorr_batch: bool,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time bare libsecp256k1 verification of a block's signatures (one
    /// thread) against kiln's whole validation pipeline (all threads).
    BenchVerify {
        #[command(flatten)]
        files: BlockFiles,
        /// Pipeline threads (0 = every core).
        #[arg(long, value_name = "N", default_value_t = 0)]
        threads: usize,
        /// Repetitions; medians are reported.
        #[arg(long, value_name = "N", default_value_t = 5)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench { backend, threads, seconds, json, no_reference, gpu } => {
            run_bench(backend.as_deref(), threads, seconds, json, no_reference, &gpu)
        }
        Cmd::Devices => run_devices(),
        Cmd::Mine(args) => run_mine(args),
        Cmd::VerifyBlock { files, threads, no_schnorr_batch, json } => {
            run_verify_block(&files.block, &files.prevouts, threads, !no_schnorr_batch, json)
        }
        Cmd::BenchVerify { files, threads, runs, json } => {
            run_bench_verify(&files.block, &files.prevouts, threads, runs, json)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: {e}");
            ExitCode::from(2)
        }
    }
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn run_devices() -> AnyResult<ExitCode> {
    let best = Backend::detect();
    println!("CPU backends (sha256d header scan):");
    for kind in BackendKind::ALL {
        let state = match Backend::from_kind(kind) {
            Some(b) if b == best => "available, default",
            Some(_) => "available",
            None => "not supported by this CPU",
        };
        println!("  {:<8} {:>2} nonces/step  {state}", kind.name(), kind.width());
    }
    println!("CPU threads: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let adapters = gpu::adapters();
    println!("GPU adapters (wgpu; use the index with --gpu):");
    if adapters.is_empty() {
        println!("  none found (on Debian, `apt-get install mesa-vulkan-drivers` adds the lavapipe software adapter)");
    }
    for (d, _) in &adapters {
        let kind = if d.software { "software: correctness only, not used by --gpu auto" } else { "hardware" };
        println!(
            "  [{}] {} ({}, {}; driver {} {}) {kind}",
            d.index, d.name, d.backend, d.device_type, d.driver, d.driver_info
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_backends(name: Option<&str>) -> AnyResult<Vec<Backend>> {
    let Some(name) = name else { return Ok(Backend::available()) };
    if name == "gpu" {
        return Ok(Vec::new());
    }
    let kind = BackendKind::from_name(name).ok_or_else(|| {
        let names: Vec<_> = BackendKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown backend '{name}' (known: {})", names.join(", "))
    })?;
    let b = Backend::from_kind(kind).ok_or_else(|| format!("backend '{name}' is not supported by this CPU"))?;
    Ok(vec![b])
}

fn run_bench(
    backend: Option<&str>,
    threads: Option<usize>,
    seconds: f64,
    json: bool,
    no_reference: bool,
    gpu_args: &GpuArgs,
) -> AnyResult<ExitCode> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!("--seconds must be between 0 and 3600, got {seconds}").into());
    }
    if threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    let backends = parse_backends(backend)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let thread_counts = match threads {
        Some(n) => vec![n],
        None if cores > 1 => vec![1, cores],
        None => vec![1],
    };
    let tty = std::io::stderr().is_terminal();
    let reference: Option<Reference> = if no_reference {
        None
    } else {
        eprintln!("measuring reference: openssl speed -evp sha256 (single stream) …");
        let secs = seconds.ceil().clamp(1.0, 10.0) as u32;
        Some(bench::openssl_reference(secs).unwrap_or_else(|| bench::sha2_reference(seconds)))
    };

    let mut rows: Vec<BenchResult> = Vec::new();
    let mut failed = false;
    for b in backends {
        if let Err(e) = self_check(b) {
            eprintln!("kiln: {e}; not timing it");
            failed = true;
            continue;
        }
        for &t in &thread_counts {
            let label = format!("{} × {t} thread{}", b.name(), if t == 1 { "" } else { "s" });
            let mut row = bench::bench_cpu(b, t, seconds, progress(tty, &label));
            if tty {
                eprintln!();
            } else {
                eprintln!("  {label:<24} {:>8.2} MH/s", row.mhs);
            }
            row.ratio_to_reference = reference.as_ref().map(|r| row.mhs_per_thread / r.mblocks_per_s);
            rows.push(row);
        }
    }

    // GPUs: every selected adapter, unless a CPU backend alone was asked for.
    if backend.is_none() || backend == Some("gpu") {
        let opts = KernelOptions::default();
        let mut kernels = gpu::open(&gpu_args.gpu, &opts)?;
        if kernels.is_empty() && backend == Some("gpu") && gpu_args.gpu == GpuSelection::Auto {
            // No hardware GPU: time a software adapter so the path is exercised,
            // and say plainly that its rate is not a GPU figure.
            if let Some(k) = gpu::open_any(&opts)? {
                eprintln!("kiln: no hardware GPU; timing software adapter '{}' (not a GPU figure)", k.desc.name);
                kernels.push(k);
            }
        }
        if kernels.is_empty() && gpu_args.gpu != GpuSelection::Off {
            let soft: Vec<String> = gpu::adapters()
                .into_iter()
                .filter(|(d, _)| d.software)
                .map(|(d, _)| format!("[{}] {}", d.index, d.name))
                .collect();
            eprintln!(
                "kiln: no hardware GPU adapter found{}",
                if soft.is_empty() {
                    String::new()
                } else {
                    format!("; software adapters {} can be timed with --gpu INDEX", soft.join(", "))
                }
            );
            if backend == Some("gpu") {
                return Err("no GPU adapter found (on Debian, `apt-get install mesa-vulkan-drivers` adds the lavapipe software adapter)".into());
            }
        }
        for k in kernels {
            if let Err(e) = self_check_gpu(&k) {
                eprintln!("kiln: {e}; not timing it");
                failed = true;
                continue;
            }
            let name = k.desc.name.clone();
            let label = format!("gpu{} {}", k.desc.index, name);
            let gopts = GpuScannerOptions { intensity: gpu_args.gpu_intensity, ..Default::default() };
            match bench::bench_gpu(k, gopts, seconds, progress(tty, &label)) {
                Ok((row, batch)) => {
                    if tty {
                        eprintln!();
                    }
                    eprintln!("  {label}: {:.2} MH/s, dispatch size {batch} nonces", row.mhs);
                    rows.push(row);
                }
                Err(e) => {
                    eprintln!("kiln: GPU {name} failed: {e}");
                    failed = true;
                }
            }
        }
    }

    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows, reference.as_ref());
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// A progress line on a terminal (`fraction done`, current MH/s); nothing otherwise.
fn progress(tty: bool, label: &str) -> impl FnMut(f64, f64) + '_ {
    move |done, rate| {
        if tty {
            eprint!("\r  {label:<24} {:>3.0}%  {rate:>8.2} MH/s   ", done * 100.0);
            let _ = std::io::stderr().flush();
        }
    }
}

fn print_table(rows: &[BenchResult], reference: Option<&Reference>) {
    println!();
    println!("{:<8} {:>7} {:>12} {:>14} {:>12}", "backend", "threads", "MH/s total", "MH/s/thread", "× reference");
    for r in rows {
        let ratio = r.ratio_to_reference.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        println!("{:<8} {:>7} {:>12.2} {:>14.2} {:>12}", r.backend, r.threads, r.mhs, r.mhs_per_thread, ratio);
    }
    if let Some(r) = reference {
        println!("\nreference: {:.2} M 64-byte blocks/s single-stream ({})", r.mblocks_per_s, r.source);
        println!("rates are medians of 250 ms windows; '× reference' = MH/s per thread ÷ reference");
    }
}

fn run_verify_block(block: &Path, prevouts: &Path, threads: usize, batch: bool, json: bool) -> AnyResult<ExitCode> {
    let started = std::time::Instant::now();
    let b = kiln::validate::read_block(block)?;
    let p = kiln::validate::read_prevouts(prevouts)?;
    let r = kiln::validate::verify::validate_with(&b, &p, threads, batch)?;
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let c = &r.block;
        let yes = |ok: bool| if ok { "ok" } else { "FAILED" };
        println!("block {}", c.hash);
        println!("  height (BIP34)       {:?}", c.bip34);
        println!(
            "  proof of work        {} (nBits {}){}",
            yes(c.pow_ok),
            c.bits,
            c.pow_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
        println!("  merkle root          {}", yes(c.merkle_ok));
        println!("  witness commitment   {:?}", c.witness_commitment);
        println!("  transactions         {}", r.transactions);
        println!("  inputs               {} ({} signature verifications)", r.inputs, r.signatures);
        for (t, n) in &r.inputs_by_type {
            println!("    {t:<28} {n:>6}");
        }
        println!(
            "  time                 {total_ms:.1} ms (extract {:.1} ms, verify {:.1} ms)",
            r.extract_ms, r.verify_ms
        );
        for bad in &r.bad_inputs {
            println!(
                "  BAD INPUT tx {} input {} (txid {}, {}): {}",
                bad.tx_index, bad.input_index, bad.txid, bad.script_type, bad.reason
            );
        }
        println!("{}", if r.is_valid() { "VALID" } else { "INVALID" });
    }
    Ok(if r.is_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn run_bench_verify(block: &Path, prevouts: &Path, threads: usize, runs: usize, json: bool) -> AnyResult<ExitCode> {
    let bytes = kiln::validate::read_file(block)?;
    let p = kiln::validate::read_prevouts(prevouts)?;
    eprintln!("timing {runs} runs of bare verification and of the full pipeline …");
    let r = kiln::validate::bench::bench_verify(&bytes, &p, threads, runs)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "inputs {}: {} ECDSA, {} Schnorr signatures; {} inputs by the script interpreter",
            r.inputs, r.ecdsa, r.schnorr, r.interpreter
        );
        println!(
            "bare libsecp256k1, 1 thread     {:>9.2} ms  ({:.2} µs per signature)",
            r.bare_single_thread_ms, r.bare_us_per_sig
        );
        if let Some(speedup) = r.schnorr_batch_speedup {
            println!(
                "  of which Schnorr, 1 thread    {:>9.2} ms  one by one; {:.2} ms as one BIP340 batch ({speedup:.2}x)",
                r.schnorr_one_by_one_ms, r.schnorr_batch_ms
            );
        }
        println!(
            "kiln pipeline, {} threads        {:>9.2} ms  (decode, checks, sighash, extraction, verification)",
            r.threads, r.pipeline_ms
        );
        println!("  with Schnorr one by one       {:>9.2} ms", r.pipeline_one_by_one_ms);
        println!(
            "ratio bare ÷ (threads × pipeline) {:.3}   (1.0 = the pipeline costs nothing beyond the signatures)",
            r.ratio
        );
        println!("medians of {} runs", r.runs);
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_api(s: &str) -> AnyResult<std::net::SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| format!("--api wants PORT or ADDR:PORT, got '{s}'").into())
}

fn run_mine(mut a: MineArgs) -> AnyResult<ExitCode> {
    use kiln::net::client::{ClientOptions, PoolConfig, PoolUrl};
    let file: ConfigFile = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => ConfigFile::default(),
    };
    if let Some(l) = &file.log_level
        && a.log_level == kiln::log::Level::Info
    {
        a.log_level =
            <kiln::log::Level as clap::ValueEnum>::from_str(l, true).map_err(|_| format!("unknown log-level '{l}'"))?;
    }
    kiln::log::set_level(a.log_level);

    let mut pools = Vec::new();
    if a.urls.is_empty() {
        for p in &file.pool {
            pools.push(PoolConfig { url: p.url.parse::<PoolUrl>()?, user: p.user.clone(), pass: p.pass.clone() });
        }
    } else {
        for (i, url) in a.urls.iter().enumerate() {
            let user = a.users.get(i).or(a.users.last()).ok_or("each pool needs a user (-u)")?;
            let pass = a.passes.get(i).or(a.passes.last()).cloned().unwrap_or_else(default_pass);
            pools.push(PoolConfig { url: url.parse::<PoolUrl>()?, user: user.clone(), pass });
        }
    }
    if pools.is_empty() {
        return Err("no pool given: use -o stratum+tcp://HOST:PORT -u USER -p PASS (or [[pool]] in --config)".into());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let backend = match a.backend.as_deref().or(file.backend.as_deref()) {
        Some(name) => {
            parse_backends(Some(name))?.into_iter().next().ok_or("--backend gpu is not a CPU backend; use --gpu")?
        }
        None => Backend::detect(),
    };
    let gpu_sel = if a.gpu.gpu == GpuSelection::Auto {
        file.gpu.as_deref().map(str::parse).transpose()?.unwrap_or(GpuSelection::Auto)
    } else {
        a.gpu.gpu.clone()
    };
    let api = a.api.as_deref().or(file.api.as_deref()).map(parse_api).transpose()?;
    let mut client = ClientOptions {
        suggest_difficulty: a.suggest_difficulty.or(file.suggest_difficulty),
        ..ClientOptions::default()
    };
    if a.no_version_rolling || file.no_version_rolling == Some(true) {
        client.version_rolling = None;
    }
    let cfg = kiln::engine::miner::MinerConfig {
        pools,
        cpu_threads: a.cpu_threads.or(file.cpu_threads).unwrap_or(cores),
        backend,
        gpu: gpu_sel,
        gpu_options: GpuScannerOptions { intensity: a.gpu.gpu_intensity.or(file.gpu_intensity), ..Default::default() },
        client,
        api,
    };
    let interval = std::time::Duration::from_secs(file.status_interval.unwrap_or(a.status_interval).max(1));
    if let Err(e) = self_check(cfg.backend) {
        return Err(format!("{e}; refusing to mine with a wrong kernel").into());
    }
    let miner = kiln::engine::miner::Miner::start(cfg)?;
    let started = std::time::Instant::now();
    let mut last_status = started;
    let stats = miner.stats();
    while miner.is_running() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if a.duration.is_some_and(|d| started.elapsed().as_secs() >= d) {
            break;
        }
        if last_status.elapsed() >= interval {
            last_status = std::time::Instant::now();
            let s = stats.snapshot();
            let per: Vec<String> =
                s.scanners.iter().map(|sc| format!("{} {:.2} MH/s", sc.name, sc.hashrate / 1e6)).collect();
            kiln::log_info!(
                "{} | {:.2} MH/s (1m {:.2}) | A {} R {} S {} HW {} lost {} | diff {} | {} ({})",
                per.join(", "),
                s.hashrate / 1e6,
                s.hashrate_1m / 1e6,
                s.accepted,
                s.rejected,
                s.stale,
                s.hw_errors,
                s.lost,
                s.difficulty,
                s.pool,
                s.pool_state
            );
        }
    }
    miner.stop();
    Ok(ExitCode::SUCCESS)
}
