//! Request-path cost of the wire protocols: an HTTP request parsed, routed and its response
//! formatted; a UDP datagram (text and v8) answered; a v8 request encoded and a v8 reply
//! decoded, as a client does.

use std::hint::black_box;

use beast_core::{Decimal, Source, Symbol, Venue};
use beast_engine::access::Access;
use beast_engine::node::Node;
use beast_engine::price::Freshness;
use beast_engine::price::{Aggregate, PriceTable};
use beast_engine::protocol::http::request::{self, Parsed};
use beast_engine::protocol::http::response::{self, Persist};
use beast_engine::protocol::http::routes::{self, PortKind};
use beast_engine::protocol::sink::Fixed;
use beast_engine::protocol::udp::{self, Context, MAX_REPLY, v8};
use beast_engine::side::SideLink;
use beast_engine::usage::AssetList;
use criterion::{Criterion, criterion_group, criterion_main};

const NOW_MS: u64 = 1_010;

fn node() -> Node {
    let (table, mut writer) = PriceTable::new(256);
    for symbol in ["BTC", "ETH", "SOL", "XRP", "DOGE"] {
        let id = writer
            .add_asset(&Symbol::parse(symbol.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        writer.publish_aggregate(
            id,
            &Aggregate {
                price: Decimal::parse("97123.45").unwrap_or(Decimal::ZERO),
                source: Source::stream(Venue::Coinbase),
                exchange_ms: 1_000,
                received_ms: 1_000,
                sources: 3,
                spread_bps: 2,
            },
        );
    }
    Node::new(
        String::from("bench"),
        table,
        std::sync::Arc::new(Access::new(false, 1)),
        SideLink::detached(),
        9_000,
        "bench",
        1,
    )
}

fn fresh() -> Freshness {
    Freshness {
        now_ms: NOW_MS,
        stale_after_ms: 9_000,
        simulated: false,
    }
}

fn http(c: &mut Criterion) {
    let node = node();
    let mut group = c.benchmark_group("http");
    let requests: [(&str, &[u8]); 2] = [
        ("price", b"GET /price?asset=BTC HTTP/1.1\r\nHost: beast\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"),
        ("prices", b"GET /prices?assets=BTC,ETH,SOL HTTP/1.1\r\nHost: beast\r\nX-API-Key: bench-key-123\r\n\r\n"),
    ];
    for (name, bytes) in requests {
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| matches!(request::parse(black_box(bytes)), Parsed::Complete(_)))
        });
        let mut body = Vec::with_capacity(4096);
        let mut out = vec![0u8; 16 * 1024];
        let mut priced = AssetList::default();
        group.bench_function(format!("parse+respond+format/{name}"), |b| {
            b.iter(|| {
                let Parsed::Complete(head) = request::parse(black_box(bytes)) else {
                    return 0;
                };
                let reply =
                    routes::respond(&head, &node, fresh(), PortKind::Api, &mut body, &mut priced);
                let mut sink = Fixed::new(&mut out);
                response::write(
                    &mut sink,
                    reply.status,
                    reply.content_type,
                    &body,
                    Persist::KeepAlive,
                    false,
                    reply.extra,
                );
                sink.len()
            })
        });
    }
    group.finish();
}

fn udp_answer(c: &mut Criterion) {
    let node = node();
    let ctx = Context {
        table: &node.table,
        access: &node.access,
        fresh: fresh(),
        reports: false,
    };
    let mut group = c.benchmark_group("udp");
    let mut text = b"BTC".to_vec();
    text.resize(200, b' ');
    let mut v8_request = [0u8; 1024];
    let symbols: [&[u8]; 3] = [b"BTC", b"ETH", b"SOL"];
    let len = v8::encode_request(&mut v8_request, 7, None, &symbols, v8::reply_len(3)).unwrap_or(0);
    let v8_request = v8_request.get(..len).unwrap_or_default().to_vec();
    let mut out = vec![0u8; MAX_REPLY];
    let mut assets = AssetList::default();
    group.bench_function("answer/text", |b| {
        b.iter(|| udp::answer(black_box(&text), ctx, &mut out, &mut assets))
    });
    group.bench_function("answer/v8-3-symbols", |b| {
        b.iter(|| udp::answer(black_box(&v8_request), ctx, &mut out, &mut assets))
    });

    let mut encoded = [0u8; 1024];
    group.bench_function("v8/encode-request-3", |b| {
        b.iter(|| v8::encode_request(&mut encoded, black_box(7), None, black_box(&symbols), 0))
    });
    group.bench_function("v8/parse-request-3", |b| {
        b.iter(|| v8::parse_request(black_box(&v8_request)).map(|r| r.count()))
    });
    let udp::Outcome::Reply { len, .. } = udp::answer(&v8_request, ctx, &mut out, &mut assets)
    else {
        panic!("v8 answered")
    };
    let reply = out.get(..len).unwrap_or_default().to_vec();
    group.bench_function("v8/decode-reply-3", |b| {
        b.iter(|| {
            let Ok((header, records)) = v8::parse_reply(black_box(&reply)) else {
                return 0;
            };
            records
                .filter_map(Result::ok)
                .map(|r| r.mantissa)
                .sum::<u64>()
                + u64::from(header.request_id)
        })
    });
    group.finish();
}

criterion_group!(benches, http, udp_answer);
criterion_main!(benches);
