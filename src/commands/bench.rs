//! `kiln bench`: every backend proves itself, then is timed against
//! OpenSSL's single-stream SHA-256 measured in the same run.

use std::io::{IsTerminal, Write};

use kiln_hash::Backend;
use kiln_scan::bench::{self, BenchResult, Reference};
use kiln_scan::gpu::{self, GpuScannerOptions, GpuSelection, KernelOptions};
use kiln_scan::selfcheck::{self_check, self_check_gpu};

use crate::cli::GpuArgs;
use crate::options::cpu_backend;
use std::process::ExitCode;

use crate::AnyResult;

pub fn run(
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
    let backends = match backend {
        None => Backend::available(),
        Some("gpu") => Vec::new(),
        Some(name) => vec![cpu_backend(Some(name))?],
    };
    let gpu_sel = gpu_args.gpu.clone().unwrap_or_default();
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
        let mut kernels = gpu::open(&gpu_sel, &opts)?;
        if kernels.is_empty() && backend == Some("gpu") && gpu_sel == GpuSelection::Auto {
            // No hardware GPU: time a software adapter so the path is exercised,
            // and say plainly that its rate is not a GPU figure.
            if let Some(k) = gpu::open_any(&opts)? {
                eprintln!("kiln: no hardware GPU; timing software adapter '{}' (not a GPU figure)", k.desc.name);
                kernels.push(k);
            }
        }
        if kernels.is_empty() && gpu_sel != GpuSelection::Off {
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
