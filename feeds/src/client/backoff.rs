//! Reconnect delays: capped exponential backoff with full jitter (AWS Architecture Blog,
//! "Exponential Backoff And Jitter"), reset once a connection has stayed up for a while.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt: uniform in [0, min(cap, base × 2^attempt)].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(if nanos == 0 {
            0
        } else {
            self.rng % (nanos + 1)
        })
    }

    /// A connection stayed up: start again from the base.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 42);
        for attempt in 0..20u32 {
            let ceiling =
                Duration::from_millis(100 * 2u64.pow(attempt.min(16))).min(Duration::from_secs(5));
            let delay = backoff.next_delay();
            assert!(
                delay <= ceiling,
                "attempt {attempt}: {delay:?} > {ceiling:?}"
            );
        }
        let late: Vec<Duration> = (0..50).map(|_| backoff.next_delay()).collect();
        assert!(
            late.iter().any(|d| *d > Duration::from_secs(1)),
            "jitter spans the capped range"
        );
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
