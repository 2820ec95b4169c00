//! The wgpu scanner, on whatever adapter is present (Mesa's lavapipe in CI).
//! With KILN_REQUIRE_GPU=1 (set by scripts/test) a missing adapter fails the
//! test instead of skipping it.

use std::time::{Duration, Instant};

use kiln_hash::{Backend, ScanParams};
use kiln_scan::ScanEvent;
use kiln_scan::gpu::{GpuScanner, GpuScannerOptions, Kernel, KernelOptions, open_any};
use kiln_scan::selfcheck::real_header;
use kiln_work::{Header, Target, Work};

fn kernel_with(opts: KernelOptions) -> Option<Kernel> {
    let required = std::env::var("KILN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match open_any(&opts) {
        Ok(Some(k)) => Some(k),
        Ok(None) if required => panic!("KILN_REQUIRE_GPU=1 but wgpu found no adapter (install mesa-vulkan-drivers)"),
        Err(e) if required => panic!("KILN_REQUIRE_GPU=1 but the GPU kernel failed: {e}"),
        other => {
            eprintln!("skipping GPU test: no usable adapter ({:?})", other.err());
            None
        }
    }
}

fn kernel() -> Option<Kernel> {
    kernel_with(KernelOptions::default())
}

#[test]
fn gpu_finds_real_nonces_of_blocks_100000_and_866342() {
    let Some(k) = kernel() else { return };
    eprintln!("GPU adapter: {:?}", k.desc);
    for i in 0..2 {
        let bytes = real_header(i);
        let h = Header::parse(&bytes).unwrap();
        let target = h.bits.to_target().unwrap();
        let start = h.nonce - 300_000;
        let w = Work::with_range(0, bytes, target, start, start as u64 + 600_000);
        let cands = k.scan_blocking(&w.params, start, w.len(), 1 << 18).unwrap();
        let found: Vec<u32> = cands.into_iter().filter(|&n| w.check(n).is_some()).collect();
        assert_eq!(found, [h.nonce], "block {i}");
    }
}

#[test]
fn gpu_candidates_equal_cpu_candidates_at_an_easy_target() {
    for opts in [
        KernelOptions::default(),
        KernelOptions { workgroup_size: 32, nonces_per_invocation: 3, unchecked: false, ..Default::default() },
    ] {
        let Some(k) = kernel_with(opts.clone()) else { return };
        for i in 0..2 {
            let p = ScanParams::new(&real_header(i), 0x00ff_ffff);
            // A length that is no multiple of the granule, near the top of the range.
            let (start, len) = (u32::MAX - 300_000, 300_001u64);
            let gpu = k.scan_blocking(&p, start, len, 100_000).unwrap();
            let mut cpu = Vec::new();
            Backend::detect().scan(&p, start, len as u32, &mut cpu);
            cpu.sort_unstable();
            assert!(cpu.len() > 500, "the easy target yields many candidates");
            assert_eq!(gpu, cpu, "block {i}, {opts:?}");
        }
    }
}

#[test]
fn gpu_overflow_is_rescanned_not_truncated() {
    let Some(k) = kernel_with(KernelOptions { result_slots: 64, ..Default::default() }) else { return };
    // Every nonce is a candidate: each dispatch overflows its 64 slots.
    let p = ScanParams::new(&real_header(0), u32::MAX);
    let got = k.scan_blocking(&p, 1000, 5000, 4096).unwrap();
    assert_eq!(got, (1000..6000).collect::<Vec<u32>>());

    // The same through the scanner thread, with full re-checks on the CPU.
    let (tx, rx) = crossbeam_channel::unbounded();
    let s = GpuScanner::start(k, GpuScannerOptions { intensity: Some(12), ..Default::default() }, tx);
    s.set_work(Work::with_range(9, real_header(0), Target::MAX, 0, 3000));
    let mut nonces = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_deadline(deadline).expect("scanner finished in time") {
            ScanEvent::Found { work_id: 9, nonce, .. } => nonces.push(nonce),
            ScanEvent::Exhausted { work_id: 9, .. } => break,
            ev => panic!("unexpected {ev:?}"),
        }
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (0..3000).collect::<Vec<u32>>());
    assert_eq!(s.hashes(), 3000);
    assert_eq!(s.error(), None);
}

#[test]
fn gpu_switch_drops_old_work_in_flight() {
    let Some(k) = kernel() else { return };
    let easy = Target::from_difficulty(kiln_work::Difficulty(1.0 / 65536.0)).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let s = GpuScanner::start(k, GpuScannerOptions::default(), tx);
    let old = real_header(1);
    s.set_work(Work::new(1, old, easy));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(rx.recv_deadline(deadline).unwrap(), ScanEvent::Found { work_id: 1, .. }) {}
    let mut new = old;
    new[68] ^= 1;
    let epoch = s.set_work(Work::new(2, new, easy));
    let t = Instant::now();
    while !s.all_switched_to(epoch) {
        assert!(t.elapsed() < Duration::from_secs(30), "switch not acknowledged");
        std::thread::sleep(Duration::from_micros(200));
    }
    while rx.try_recv().is_ok() {}
    let mut fresh = 0;
    while fresh < 10 {
        match rx.recv_deadline(deadline).expect("new shares in time") {
            ScanEvent::Found { work_id, nonce, hash, .. } => {
                assert_eq!(work_id, 2, "old work reported after the switch");
                assert_eq!(Work::new(2, new, easy).check(nonce), Some(hash));
                fresh += 1;
            }
            ScanEvent::HardwareError { .. } => panic!("hardware error"),
            ScanEvent::Exhausted { .. } => {}
        }
    }
    assert_eq!(s.error(), None);
}

/// A dispatch of more than 65,535 workgroups (one invocation per group, one
/// nonce per invocation) is laid out on a 2-D grid and still covers every nonce.
#[test]
fn gpu_dispatch_beyond_65535_workgroups() {
    let opts = KernelOptions { workgroup_size: 1, nonces_per_invocation: 1, ..Default::default() };
    let Some(k) = kernel_with(opts) else { return };
    let p = ScanParams::new(&real_header(1), 0x00ff_ffff);
    let n = 70_001u64;
    let gpu = k.scan_blocking(&p, 5_000_000, n, n as u32).unwrap();
    let mut cpu = Vec::new();
    Backend::detect().scan(&p, 5_000_000, n as u32, &mut cpu);
    assert!(!cpu.is_empty());
    assert_eq!(gpu, cpu);
}
