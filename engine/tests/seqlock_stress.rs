//! Many threads reading while one writes flat out: no reader ever sees a torn record.
//!
//! Every record is self-checking (all words derive from its counter), so any mix of two
//! writes fails the check. Runs a fixed number of writes, not a fixed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use beast_core::{Decimal, Source, Symbol, Venue};
use beast_engine::price::{PriceTable, Quote, SeqLock};

const WRITES: u64 = 2_000_000;
const READERS: usize = 3;

fn record(i: u64) -> [u64; 5] {
    [
        i,
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        !i,
        i.rotate_left(17),
        i ^ 0xDEAD_BEEF_F00D_CAFE,
    ]
}

fn is_whole(words: [u64; 5]) -> bool {
    words == record(words[0])
}

#[test]
fn readers_never_see_a_torn_record() {
    let lock: Arc<SeqLock<5>> = Arc::new(SeqLock::new(record(0)));
    let done = Arc::new(AtomicBool::new(false));
    let retries = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (lock, done, retries) =
                (Arc::clone(&lock), Arc::clone(&done), Arc::clone(&retries));
            thread::spawn(move || {
                let (mut reads, mut last) = (0u64, 0u64);
                while !done.load(Ordering::Acquire) {
                    match lock.try_read() {
                        Some((words, _)) => {
                            assert!(is_whole(words), "torn read: {words:x?}");
                            assert!(
                                words[0] >= last,
                                "went back in time: {} after {last}",
                                words[0]
                            );
                            last = words[0];
                            reads += 1;
                        }
                        None => {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                reads
            })
        })
        .collect();
    for i in 1..=WRITES {
        lock.write(record(i));
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers
        .into_iter()
        .map(|r| r.join().expect("reader panicked"))
        .sum();
    assert!(reads > 0);
    assert_eq!(lock.try_read().map(|(w, _)| w), Some(record(WRITES)));
    eprintln!(
        "{reads} whole reads, {} overlapped and retried",
        retries.load(Ordering::Relaxed)
    );
}

#[test]
fn table_quotes_stay_whole_under_a_busy_writer() {
    let (table, mut writer) = PriceTable::new(16);
    let btc = writer.add_asset(&Symbol::parse(b"BTC").unwrap()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (table, done) = (Arc::clone(&table), Arc::clone(&done));
            thread::spawn(move || {
                let mut seen = 0u64;
                while !done.load(Ordering::Acquire) {
                    if let Some(q) = table.quote(btc, Venue::Okx) {
                        // price = i / 100, exchange time = i, receive time = i + 7
                        let i = q.exchange_ms;
                        assert_eq!(q.received_ms, i + 7, "torn quote {q:?}");
                        assert_eq!(
                            q.price,
                            Decimal::from_parts(i, 2).unwrap(),
                            "torn quote {q:?}"
                        );
                        seen += 1;
                    }
                }
                seen
            })
        })
        .collect();
    for i in 1..=WRITES / 4 {
        let price = Decimal::from_parts(i, 2).unwrap();
        writer.publish_quote(
            btc,
            &Quote {
                price,
                source: Source::stream(Venue::Okx),
                exchange_ms: i,
                received_ms: i + 7,
            },
        );
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().expect("reader panicked");
    }
}
