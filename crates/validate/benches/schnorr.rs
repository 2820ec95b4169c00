//! BIP340 verification of block 866342's 2,370 Schnorr signatures, one by one
//! (libsecp256k1) and as batches of several sizes (kiln's batch verifier),
//! single-threaded. The per-signature ratio decides `batch::MIN_BATCH` and why
//! the pipeline makes one large batch per thread.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use kiln_validate::batch::{SchnorrItem, batch_valid, verify_one};
use kiln_validate::extract::{extract_all, split_prevouts};
use kiln_validate::{InputCheck, read_block, read_prevouts};

fn block_checks() -> Vec<InputCheck> {
    let dir = kiln_testkit::data::path("mainnet");
    let b = read_block(&dir.join("block_866342.raw.zst")).expect("block file");
    let p = read_prevouts(&dir.join("block_866342.spent_utxos.json.zst")).expect("prevouts file");
    extract_all(&b, &split_prevouts(&b, &p))
}

fn schnorr(c: &mut Criterion) {
    let checks = block_checks();
    let items: Vec<SchnorrItem> = checks.iter().filter_map(|c| SchnorrItem::of(&c.check)).collect();
    let mut g = c.benchmark_group("schnorr_866342");
    g.throughput(Throughput::Elements(items.len() as u64));
    g.sample_size(10);
    g.bench_function("one_by_one", |b| b.iter(|| assert!(items.iter().all(verify_one))));
    for size in [16, 64, 256, 1185, items.len()] {
        g.bench_with_input(BenchmarkId::new("batch", size), &size, |b, &size| {
            b.iter(|| assert!(items.chunks(size).all(batch_valid)))
        });
    }
    g.finish();
}

criterion_group!(benches, schnorr);
criterion_main!(benches);
