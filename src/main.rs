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
use kiln::scan::selfcheck::self_check;
use kiln::scan::gpu::{self, GpuScannerOptions, GpuSelection, KernelOptions};
use kiln::scan::selfcheck::self_check_gpu;
use kiln::sha256::{Backend, BackendKind};

#[derive(Parser)]
#[command(name = "kiln", version, about = "Bitcoin mining and validation engine: SIMD/SHA-NI CPU hashing, \
wgpu GPU mining, Stratum pool worker, batched signature verification")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// GPU selection, shared by the commands that hash.
#[derive(clap::Args, Clone)]
struct GpuArgs {
    /// GPUs to use: auto (every hardware adapter), off, or indices from
    /// `kiln devices` such as 0,2 (software adapters like lavapipe only by index).
    #[arg(long, value_name = "auto|off|LIST", default_value = "auto")]
    gpu: GpuSelection,
    /// Fixed GPU dispatch size of 2^N nonces (10..=32) instead of autotuning
    /// toward ~20 ms per dispatch.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(10..=32))]
    gpu_intensity: Option<u32>,
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
    /// Validate a block: proof of work, merkle root, witness commitment, BIP34,
    /// and every input's signatures against the outputs it spends.
    ///
    /// Exit status: 0 valid, 1 invalid (each bad input is named), 2 unreadable
    /// or inconsistent input files.
    VerifyBlock {
        /// The block: raw bytes or hex text, optionally zstd-compressed.
        #[arg(long, value_name = "FILE")]
        block: PathBuf,
        /// The outputs spent by the block's non-coinbase inputs, in block order:
        /// a JSON array of {"txout": {"value", "script_pubkey"}} or the JSON of
        /// `bitcoin-cli getblock HASH 3`; optionally zstd-compressed.
        #[arg(long, value_name = "FILE")]
        prevouts: PathBuf,
        /// Verification threads (0 = every core).
        #[arg(long, value_name = "N", default_value_t = 0)]
        threads: usize,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time bare libsecp256k1 verification of a block's signatures (one
    /// thread) against kiln's whole validation pipeline (all threads).
    BenchVerify {
        #[arg(long, value_name = "FILE")]
        block: PathBuf,
        #[arg(long, value_name = "FILE")]
        prevouts: PathBuf,
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
        Cmd::VerifyBlock { block, prevouts, threads, json } => run_verify_block(&block, &prevouts, threads, json),
        Cmd::BenchVerify { block, prevouts, threads, runs, json } => run_bench_verify(&block, &prevouts, threads, runs, json),
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
        println!("  [{}] {} ({}, {}; driver {} {}) {kind}", d.index, d.name, d.backend, d.device_type, d.driver, d.driver_info);
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
            let mut row = bench::bench_cpu(b, t, seconds, |done, rate| {
                if tty {
                    eprint!("\r  {label:<24} {:>3.0}%  {rate:>8.2} MH/s   ", done * 100.0);
                    let _ = std::io::stderr().flush();
                }
            });
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
                if soft.is_empty() { String::new() } else { format!("; software adapters {} can be timed with --gpu INDEX", soft.join(", ")) }
            );
            if backend == Some("gpu") {
                failed = true;
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
            match bench::bench_gpu(k, gopts, seconds, |done, rate| {
                if tty {
                    eprint!("\r  {label:<24} {:>3.0}%  {rate:>8.2} MH/s   ", done * 100.0);
                    let _ = std::io::stderr().flush();
                }
            }) {
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

fn run_verify_block(block: &Path, prevouts: &Path, threads: usize, json: bool) -> AnyResult<ExitCode> {
    let started = std::time::Instant::now();
    let b = kiln::validate::read_block(block)?;
    let p = kiln::validate::read_prevouts(prevouts)?;
    let r = kiln::validate::validate(&b, &p, threads)?;
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let c = &r.block;
        let yes = |ok: bool| if ok { "ok" } else { "FAILED" };
        println!("block {}", c.hash);
        println!("  height (BIP34)       {:?}", c.bip34);
        println!("  proof of work        {} (nBits {}){}", yes(c.pow_ok), c.bits, c.pow_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default());
        println!("  merkle root          {}", yes(c.merkle_ok));
        println!("  witness commitment   {:?}", c.witness_commitment);
        println!("  transactions         {}", r.transactions);
        println!("  inputs               {} ({} signature verifications)", r.inputs, r.signatures);
        for (t, n) in &r.inputs_by_type {
            println!("    {t:<28} {n:>6}");
        }
        println!("  time                 {total_ms:.1} ms (extract {:.1} ms, verify {:.1} ms)", r.extract_ms, r.verify_ms);
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
        println!("inputs {}: {} ECDSA, {} Schnorr signatures; {} inputs by the script interpreter", r.inputs, r.ecdsa, r.schnorr, r.interpreter);
        println!("bare libsecp256k1, 1 thread     {:>9.2} ms  ({:.2} µs per signature)", r.bare_single_thread_ms, r.bare_us_per_sig);
        println!("kiln pipeline, {} threads        {:>9.2} ms  (decode, checks, sighash, extraction, verification)", r.threads, r.pipeline_ms);
        println!("ratio bare ÷ (threads × pipeline) {:.3}   (1.0 = the pipeline costs nothing beyond the signatures)", r.ratio);
        println!("medians of {} runs", r.runs);
    }
    Ok(ExitCode::SUCCESS)
}
