//! One log line per period for an event that repeats (a venue that keeps failing, a flood of
//! refused calls): the first passes at once, later ones within the period are counted and
//! reported with the next line. Lock-free, so any thread may share one.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Throttle {
    period_ms: u64,
    /// When the last line was let through (0: never).
    last_ms: AtomicU64,
    held: AtomicU64,
}

impl Throttle {
    pub const fn new(period_ms: u64) -> Throttle {
        Throttle {
            period_ms,
            last_ms: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(held)`: log this one, saying `held` more happened since the last line; `None`:
    /// counted for the next line.
    pub fn admit(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < self.period_ms {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // One caller wins the line; the others are counted into the next one.
        if self
            .last_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held.swap(0, Ordering::Relaxed))
    }

    /// The event stopped (a venue connected): the next one is logged at once.
    pub fn reset(&self) {
        self.last_ms.store(0, Ordering::Relaxed);
        self.held.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_held_back() {
        let throttle = Throttle::new(1_000);
        // (now, expected)
        let cases = [
            (5_000, Some(0)),
            (5_001, None),
            (5_999, None),
            (6_000, Some(2)),
            (6_500, None),
            (9_000, Some(1)),
        ];
        for (now, expected) in cases {
            assert_eq!(throttle.admit(now), expected, "at {now}");
        }
        throttle.reset();
        assert_eq!(throttle.admit(9_001), Some(0));
    }
}
