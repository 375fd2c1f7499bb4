//! Model check of the seqlock protocol with loom: every interleaving and every value the
//! C11 memory model allows a relaxed load to return, within loom's bounds.

use std::sync::atomic::Ordering;

use beast_engine::price::{AtomicWord, SeqLock};
use loom::sync::Arc;
use loom::thread;

/// Bounded preemption keeps the search to seconds; most concurrency bugs need very few
/// preemptions to show (the missing-fence test below needs two).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// loom's atomic behind the seqlock's word trait.
struct LoomWord(loom::sync::atomic::AtomicU64);

impl AtomicWord for LoomWord {
    fn new(value: u64) -> Self {
        LoomWord(loom::sync::atomic::AtomicU64::new(value))
    }
    fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order);
    }
    fn fence(order: Ordering) {
        loom::sync::atomic::fence(order);
    }
}

#[test]
fn a_reader_accepts_only_whole_writes() {
    model(|| {
        let lock = Arc::new(SeqLock::<2, LoomWord>::new([0, 0]));
        let reader = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                for _ in 0..2 {
                    if let Some(([a, b], version)) = lock.try_read() {
                        assert_eq!(a, b, "torn read at version {version}");
                        assert_eq!(version, 2 * a, "words from another version");
                    }
                }
            })
        };
        lock.write([1, 1]);
        lock.write([2, 2]);
        reader.join().unwrap();
    });
}

/// The same protocol with the writer's release fence left out: loom must find the torn read,
/// which shows the model above is strong enough to catch a missing fence.
#[test]
#[should_panic(expected = "torn")]
fn the_model_catches_a_missing_fence() {
    struct Unfenced {
        seq: LoomWord,
        words: [LoomWord; 2],
    }
    model(|| {
        let lock = Arc::new(Unfenced {
            seq: LoomWord::new(0),
            words: [LoomWord::new(0), LoomWord::new(0)],
        });
        let reader = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                let before = lock.seq.load(Ordering::Acquire);
                if before % 2 == 1 {
                    return;
                }
                let (a, b) = (
                    lock.words[0].load(Ordering::Relaxed),
                    lock.words[1].load(Ordering::Relaxed),
                );
                LoomWord::fence(Ordering::Acquire);
                if lock.seq.load(Ordering::Relaxed) == before {
                    assert_eq!(a, b, "torn");
                }
            })
        };
        for value in 1..=2 {
            let seq = lock.seq.load(Ordering::Relaxed);
            lock.seq.store(seq + 1, Ordering::Relaxed);
            // (release fence missing here)
            lock.words[0].store(value, Ordering::Relaxed);
            lock.words[1].store(value, Ordering::Relaxed);
            lock.seq.store(seq + 2, Ordering::Release);
        }
        reader.join().unwrap();
    });
}
