//! Parse and format cost of exchange price text.

use std::hint::black_box;

use beast_core::Decimal;
use criterion::{Criterion, criterion_group, criterion_main};

fn decimal(c: &mut Criterion) {
    let mut group = c.benchmark_group("decimal");
    for text in ["97123.45", "0.00001234", "0.4705000000"] {
        group.bench_function(format!("parse/{text}"), |b| {
            b.iter(|| Decimal::parse(black_box(text)))
        });
        let value = Decimal::parse(text).unwrap_or(Decimal::ZERO);
        group.bench_function(format!("format/{text}"), |b| {
            b.iter(|| black_box(&value).format())
        });
    }
    group.finish();
}

criterion_group!(benches, decimal);
criterion_main!(benches);
