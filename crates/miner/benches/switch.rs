//! Job-switch latency: from a job reaching the engine to every CPU thread
//! hashing the new work (the engine waits for each scanner's acknowledgement).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use kiln_hash::Backend;
use kiln_miner::engine::{Engine, SourceEvent};
use kiln_miner::stats::Stats;
use kiln_scan::Scanner;
use kiln_scan::cpu::CpuScanner;
use kiln_work::{Job, Target};

fn job(n: u32) -> Job {
    Job {
        job_id: format!("j{n}"),
        prev_hash: [7; 32],
        coinb1: vec![1, 2, 3],
        coinb2: vec![4, 5, 6],
        merkle_branch: vec![[9; 32]; 12],
        version: 0x2000_0000,
        nbits: 0x1703_0ecd,
        ntime: 1_700_000_000 + n,
        clean_jobs: true,
        extranonce1: vec![0, 1, 2, 3],
        extranonce2_size: 4,
        share_target: Target::DIFF1,
        version_mask: 0,
    }
}

fn switch(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (tx, _rx) = crossbeam_channel::unbounded();
    let scanner = CpuScanner::start(Backend::detect(), threads, tx);
    let (stx, _srx) = crossbeam_channel::unbounded();
    let scanners: Vec<Box<dyn Scanner>> = vec![Box::new(scanner)];
    let mut engine = Engine::new(scanners, Arc::new(Stats::new()), stx, Box::new(|| {}));
    let mut n = 0;
    engine.on_net(SourceEvent::Job(job(n)));
    c.bench_function(&format!("job_switch_cpu_{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                // Let the threads get deep into a chunk before the switch.
                std::thread::sleep(Duration::from_micros(300));
                total += engine.on_net(SourceEvent::Job(job(n))).unwrap();
            }
            total
        })
    });
}

criterion_group!(benches, switch);
criterion_main!(benches);
