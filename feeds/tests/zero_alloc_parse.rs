//! Parsing a frame allocates nothing: every venue's parser over its documented frames and its
//! recorded session, under a counting global allocator.

#![allow(unsafe_code, reason = "a global allocator is an unsafe trait")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use beast_core::{Symbol, Venue};
use beast_feeds::{Frame, venues};

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; counting touches atomics only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FRAMES: [(Venue, &str); 6] = [
    (
        Venue::Coinbase,
        r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33.123456789Z","sequence_num":41,"events":[{"type":"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"97012.34","best_bid":"97012.33"},{"product_id":"ETH-USD","price":"3512.50"}]}]}"#,
    ),
    (
        Venue::Gemini,
        r#"{"E":1795497153123456789,"s":"btcusd","t":2840140800042677,"p":"97012.34","q":"0.00510000","m":false}"#,
    ),
    (
        Venue::Kraken,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":97012.3,"last":97012.4,"volume":2210.51,"timestamp":"2026-11-24T05:12:33.123456Z"}]}"#,
    ),
    (
        Venue::Gateio,
        r#"{"time":1795497153,"time_ms":1795497153123,"channel":"spot.tickers","event":"update","result":{"currency_pair":"BNB_USDT","last":"912.34","lowest_ask":"912.35"}}"#,
    ),
    (
        Venue::Cryptocom,
        r#"{"id":-1,"method":"subscribe","code":0,"result":{"instrument_name":"TON_USDT","subscription":"ticker.TON_USDT","channel":"ticker","data":[{"i":"TON_USDT","a":"5.5120","t":1795497153123}]}}"#,
    ),
    (
        Venue::Okx,
        r#"{"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[{"instType":"SPOT","instId":"TIA-USDT","last":"5.812","ts":"1795497153123"}]}"#,
    ),
];

const SESSIONS: [(Venue, &str); 6] = [
    (Venue::Coinbase, include_str!("data/samples/coinbase.jsonl")),
    (Venue::Gemini, include_str!("data/samples/gemini.jsonl")),
    (Venue::Kraken, include_str!("data/samples/kraken.jsonl")),
    (Venue::Gateio, include_str!("data/samples/gateio.jsonl")),
    (
        Venue::Cryptocom,
        include_str!("data/samples/cryptocom.jsonl"),
    ),
    (Venue::Okx, include_str!("data/samples/okx.jsonl")),
];

#[test]
fn parsing_allocates_nothing() {
    let parsers: Vec<_> = Venue::ALL
        .iter()
        .map(|v| venues::for_venue(*v, &[Symbol::parse(b"CHILLGUY").unwrap()]))
        .collect();
    let lines: Vec<(usize, &str)> = SESSIONS
        .iter()
        .flat_map(|(v, file)| file.lines().map(move |l| (v.index(), l)))
        .collect();
    let (mut prices, mut frames) = (0usize, 0usize);
    // Warm up, then count.
    for round in 0..2 {
        if round == 1 {
            COUNTING.store(true, Ordering::Relaxed);
        }
        for _ in 0..1_000 {
            for (venue, frame) in FRAMES {
                if let Ok(Frame::Prices(n)) = parsers[venue.index()]
                    .parse(frame, 1, &mut |u| prices += usize::from(!u.price.is_zero()))
                {
                    frames += n;
                }
            }
        }
        for (venue, line) in &lines {
            let _ = parsers[*venue].parse(line, 1, &mut |_| prices += 1);
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
    assert!(frames >= 12_000 && prices > frames, "{frames} {prices}");
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations while parsing"
    );
}
