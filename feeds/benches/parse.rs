//! Frame parsing throughput per venue: one typical price frame (documented current format).

use std::hint::black_box;

use beast_core::{Symbol, Venue};
use beast_feeds::venues;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FRAMES: [(Venue, &str); 6] = [
    (
        Venue::Coinbase,
        r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33.123456789Z","sequence_num":41,"events":[{"type":"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"97012.34","volume_24_h":"8123.44120391","low_24_h":"95880.01","high_24_h":"97650","low_52_w":"57717.55","high_52_w":"126296","price_percent_chg_24_h":"1.0371","best_bid":"97012.33","best_bid_quantity":"0.41","best_ask":"97012.34","best_ask_quantity":"0.0203"}]}]}"#,
    ),
    (
        Venue::Gemini,
        r#"{"E":1795497153123456789,"s":"btcusd","t":2840140800042677,"p":"97012.34","q":"0.00510000","m":false}"#,
    ),
    (
        Venue::Kraken,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":97012.3,"bid_qty":0.41,"ask":97012.4,"ask_qty":1.18,"last":97012.4,"volume":2210.51,"vwap":96540.2,"low":95880.0,"high":97650.0,"change":1003.1,"change_pct":1.04,"timestamp":"2026-11-24T05:12:33.123456Z"}]}"#,
    ),
    (
        Venue::Gateio,
        r#"{"time":1795497153,"time_ms":1795497153123,"channel":"spot.tickers","event":"update","result":{"currency_pair":"BNB_USDT","last":"912.34","lowest_ask":"912.35","highest_bid":"912.33","change_percentage":"1.27","base_volume":"81234.123","quote_volume":"74125678.29","high_24h":"918.02","low_24h":"897.44"}}"#,
    ),
    (
        Venue::Cryptocom,
        r#"{"id":-1,"method":"subscribe","code":0,"result":{"instrument_name":"TON_USDT","subscription":"ticker.TON_USDT","channel":"ticker","data":[{"i":"TON_USDT","h":"5.6200","l":"5.3810","a":"5.5120","v":"1250031.22","vv":"6890413.51","c":"0.0213","b":"5.5110","bs":"410.5","k":"5.5130","ks":"1200.0","oi":"0","t":1795497153123}]}}"#,
    ),
    (
        Venue::Okx,
        r#"{"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[{"instType":"SPOT","instId":"TIA-USDT","last":"5.812","lastSz":"12.5","askPx":"5.813","askSz":"220","bidPx":"5.811","bidSz":"41.2","open24h":"5.64","high24h":"5.92","low24h":"5.55","volCcy24h":"4813290.12","vol24h":"831244.1","sodUtc0":"5.70","sodUtc8":"5.66","ts":"1795497153123"}]}"#,
    ),
];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    let btc = [Symbol::parse(b"BTC").unwrap_or_else(|e| panic!("{e}"))];
    for (venue, frame) in FRAMES {
        let parser = venues::for_venue(venue, &btc);
        group.bench_function(venue.name(), |b| {
            b.iter(|| {
                let mut n = 0u32;
                let _ = parser.parse(black_box(frame), 1, &mut |u| {
                    n += u32::from(!u.price.is_zero())
                });
                n
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
