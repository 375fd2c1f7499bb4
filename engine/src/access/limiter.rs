//! Per-key rate limits as a generic cell rate algorithm (GCRA) on one atomic word per key,
//! shared by every reactor.
//!
//! Each key's word holds its theoretical arrival time (TAT) in µs. A request at `now` is
//! admitted when `TAT − now ≤ (burst − 1) × interval`, and moves the TAT one interval on with a
//! compare-and-swap. Because all reactors update the same word, the limit is global and exact:
//! over any window of `t` seconds a key gets at most `rate × t + burst` requests, whichever
//! reactors its requests land on. The cost is one contended cache line per *key*, never a lock,
//! and no allocation; a different key is a different word.

use std::sync::atomic::{AtomicU64, Ordering};

use super::tier::Rate;

pub struct Limiter {
    tats: Box<[AtomicU64]>,
}

impl Limiter {
    /// Room for `capacity` keys.
    pub fn new(capacity: usize) -> Limiter {
        Limiter {
            tats: (0..capacity.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.tats.len()
    }

    /// Forgets a slot's history (it is being given to another key).
    pub fn reset(&self, slot: u32) {
        if let Some(tat) = self.tats.get(slot as usize) {
            tat.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn reset_all(&self) {
        for tat in &self.tats {
            tat.store(0, Ordering::Relaxed);
        }
    }

    /// Admits a request at `now_us`, or says how many µs until one would be admitted.
    pub(crate) fn admit(&self, slot: u32, now_us: u64, rate: Rate) -> Result<(), u64> {
        let Some(tat) = self.tats.get(slot as usize) else {
            return Err(1_000_000);
        };
        let interval = 1_000_000 / u64::from(rate.per_second.max(1));
        let tolerance = interval * u64::from(rate.burst.max(1) - 1);
        let mut current = tat.load(Ordering::Relaxed);
        loop {
            let start = current.max(now_us);
            let ahead = start - now_us;
            if ahead > tolerance {
                return Err(ahead - tolerance);
            }
            match tat.compare_exchange_weak(
                current,
                start + interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn admits_the_burst_then_the_rate() {
        let limiter = Limiter::new(2);
        let rate = Rate {
            per_second: 3,
            burst: 3,
        };
        let admitted = (0..10)
            .filter(|_| limiter.admit(0, 0, rate).is_ok())
            .count();
        assert_eq!(admitted, 3);
        // One interval later, exactly one more.
        assert!(limiter.admit(0, 333_333, rate).is_ok());
        assert!(limiter.admit(0, 333_333, rate).is_err());
        // The other slot is independent.
        assert!(limiter.admit(1, 0, rate).is_ok());
        // Ten idle seconds do not bank more than the burst.
        let later = 10_000_000;
        assert_eq!(
            (0..10)
                .filter(|_| limiter.admit(0, later, rate).is_ok())
                .count(),
            3
        );
    }

    #[test]
    fn the_limit_holds_across_threads() {
        // 8 threads hammer one key over 2 simulated seconds of 1 ms steps.
        let limiter = Arc::new(Limiter::new(1));
        let rate = Rate {
            per_second: 100,
            burst: 100,
        };
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                std::thread::spawn(move || {
                    let mut ok = 0;
                    for ms in 0..2_000u64 {
                        for _ in 0..5 {
                            ok += usize::from(limiter.admit(0, ms * 1_000, rate).is_ok());
                        }
                    }
                    ok
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // rate × t + burst at most; threads racing over the simulated clock may fall short of
        // it, never above.
        assert!(total <= 2 * 100 + 100, "{total}");
        assert!(total >= 2 * 100, "{total}");
    }
}
