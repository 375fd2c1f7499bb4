//! Read-side cost of the price core: seqlock reads (idle and under a busy writer), symbol lookup
//! from request bytes, and a whole aggregate read by symbol.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use beast_core::{Decimal, Source, Symbol, Venue};
use beast_engine::price::{Aggregate, PriceTable, SeqLock};
use criterion::{Criterion, criterion_group, criterion_main};

fn seqlock(c: &mut Criterion) {
    let mut group = c.benchmark_group("seqlock");
    let lock: Arc<SeqLock<5>> = Arc::new(SeqLock::new([1, 2, 3, 4, 5]));
    group.bench_function("read/idle", |b| {
        b.iter(|| black_box(&*lock).read_bounded(64))
    });
    group.bench_function("write", |b| {
        b.iter(|| lock.write(black_box([1, 2, 3, 4, 5])))
    });

    // A second thread writing flat out: the reader's retry cost, on a shared cache line.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (lock, stop) = (Arc::clone(&lock), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(1);
                lock.write([i; 5]);
            }
        })
    };
    group.bench_function("read/busy-writer", |b| {
        b.iter(|| black_box(&*lock).read_bounded(1024))
    });
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let (table, mut writer) = PriceTable::new(4096);
    // 150 prewarmed-like symbols plus noise, so probes see a realistic load factor.
    for i in 0..1000 {
        let _ = writer.add_asset(
            &Symbol::parse(format!("A{i}").as_bytes()).unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let btc = writer
        .add_asset(&Symbol::parse(b"BTC").unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let price = Decimal::parse("97123.45").unwrap_or(Decimal::ZERO);
    let source = Source::stream(Venue::Coinbase);
    writer.publish_aggregate(
        btc,
        &Aggregate {
            price,
            source,
            exchange_ms: 1,
            received_ms: 2,
            sources: 1,
            spread_bps: 0,
        },
    );

    let mut group = c.benchmark_group("symbol");
    for (name, text) in [
        ("hit/BTC", &b"BTC"[..]),
        ("hit/btc", b"btc"),
        ("miss/NOPE", b"NOPE"),
        ("hit/A999", b"A999"),
    ] {
        group.bench_function(format!("lookup/{name}"), |b| {
            b.iter(|| table.lookup(black_box(text)))
        });
    }
    group.bench_function("lookup+aggregate/BTC", |b| {
        b.iter(|| {
            table
                .lookup(black_box(b"btc"))
                .and_then(|id| table.aggregate(id))
        })
    });
    group.finish();
}

criterion_group!(benches, seqlock, lookup);
criterion_main!(benches);
