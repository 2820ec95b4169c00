//! Criterion benches: sha256d header-scan throughput per backend (in nonces),
//! plus the merkle root of a block-sized txid list.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use kiln_hash::{Backend, ScanParams};
use kiln_scan::selfcheck::real_header;
use kiln_work::merkle::merkle_root;

fn scan(c: &mut Criterion) {
    let header = real_header(1);
    let params = ScanParams::new(&header, 0);
    let n: u32 = 1 << 16;
    let mut g = c.benchmark_group("sha256d_scan");
    g.throughput(Throughput::Elements(n as u64));
    for b in Backend::available() {
        let mut out = Vec::new();
        let mut start = 0u32;
        g.bench_function(BenchmarkId::from_parameter(b.name()), |bench| {
            bench.iter(|| {
                out.clear();
                b.scan(&params, start, n, &mut out);
                start = start.wrapping_add(n);
            })
        });
    }
    g.finish();
}

fn merkle(c: &mut Criterion) {
    let txids: Vec<[u8; 32]> = (0..4096u32).map(|i| kiln_hash::sha256d(&i.to_le_bytes())).collect();
    let mut g = c.benchmark_group("merkle_root");
    g.throughput(Throughput::Elements(txids.len() as u64));
    g.bench_function("4096_txids", |b| b.iter(|| merkle_root(&txids)));
    g.finish();
}

criterion_group!(benches, scan, merkle);
criterion_main!(benches);
