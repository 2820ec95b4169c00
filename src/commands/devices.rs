//! `kiln devices`: what this machine can hash with.

use kiln_hash::{Backend, BackendKind};
use kiln_scan::gpu;

use std::process::ExitCode;

use crate::AnyResult;

pub fn run() -> AnyResult<ExitCode> {
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
