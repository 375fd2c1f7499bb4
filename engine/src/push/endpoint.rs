//! An HTTPS endpoint (one `host:port`): its queue of subscriptions with a delivery waiting, its
//! in-flight cap, its kept-alive connections, and its circuit breaker. One dead or slow
//! endpoint fills only its own queue.

use std::collections::VecDeque;

use super::https::Conn;

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    /// Deliveries flow; `failures` in a row so far.
    Closed { failures: u32 },
    /// Nothing is sent until `until_ms`.
    Open { until_ms: u64 },
    /// One probe may go; its outcome closes or reopens the breaker.
    HalfOpen { probing: bool },
}

pub struct BreakerPolicy {
    pub failures: u32,
    pub cooldown_ms: u64,
}

pub struct Endpoint {
    pub queue: VecDeque<u64>,
    pub in_flight: usize,
    pub idle: Vec<Conn>,
    pub breaker: Breaker,
    /// When the current run of failures began, mono ms (0: the last attempt worked).
    pub failing_since_ms: u64,
    /// Subscriptions delivering here (for disabling them together).
    pub users: usize,
}

impl Endpoint {
    pub fn new() -> Endpoint {
        Endpoint {
            queue: VecDeque::new(),
            in_flight: 0,
            idle: Vec::new(),
            breaker: Breaker::Closed { failures: 0 },
            failing_since_ms: 0,
            users: 0,
        }
    }

    /// How many more attempts may start now (and moves an open breaker whose cooldown has
    /// passed to half-open).
    pub fn room(&mut self, now_ms: u64, cap: usize) -> usize {
        if let Breaker::Open { until_ms } = self.breaker
            && now_ms >= until_ms
        {
            self.breaker = Breaker::HalfOpen { probing: false };
        }
        match self.breaker {
            Breaker::Closed { .. } => cap.saturating_sub(self.in_flight),
            Breaker::Open { .. } | Breaker::HalfOpen { probing: true } => 0,
            Breaker::HalfOpen { probing: false } => usize::from(self.in_flight == 0),
        }
    }

    /// An attempt starts.
    pub fn started(&mut self) {
        self.in_flight += 1;
        if let Breaker::HalfOpen { probing } = &mut self.breaker {
            *probing = true;
        }
    }

    /// The endpoint answered (any status it chose: it is up).
    pub fn succeeded(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.breaker = Breaker::Closed { failures: 0 };
        self.failing_since_ms = 0;
    }

    /// An attempt failed (no answer, or a status that counts as failure).
    pub fn failed(&mut self, now_ms: u64, policy: &BreakerPolicy) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.failing_since_ms == 0 {
            self.failing_since_ms = now_ms;
        }
        self.breaker = match self.breaker {
            Breaker::Closed { failures } if failures + 1 < policy.failures => Breaker::Closed {
                failures: failures + 1,
            },
            Breaker::Open { until_ms } => Breaker::Open { until_ms },
            _ => Breaker::Open {
                until_ms: now_ms + policy.cooldown_ms,
            },
        };
    }

    /// How long it has been failing, ms (0 when it is not).
    pub fn failing_for(&self, now_ms: u64) -> u64 {
        if self.failing_since_ms == 0 {
            0
        } else {
            now_ms.saturating_sub(self.failing_since_ms)
        }
    }
}

/// The delay before attempt `attempt` (2, 3, …): `base · 2^(attempt − 2)`, times a jitter in
/// [0.5, 1.5) from `random`; or the endpoint's `Retry-After`, capped at `retry_after_max_ms`.
pub fn backoff_ms(
    attempt: u32,
    base_ms: u64,
    retry_after_s: Option<u64>,
    retry_after_max_ms: u64,
    random: u64,
) -> u64 {
    if let Some(seconds) = retry_after_s {
        return seconds.saturating_mul(1_000).min(retry_after_max_ms);
    }
    let exponential = base_ms.saturating_mul(1 << attempt.saturating_sub(2).min(20));
    // jitter = 0.5 + (random mod 1000)/1000
    exponential / 2 + exponential.saturating_mul(random % 1_000) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_probes_and_closes() {
        let policy = BreakerPolicy {
            failures: 3,
            cooldown_ms: 1_000,
        };
        let mut e = Endpoint::new();
        assert_eq!(e.room(0, 4), 4);
        for n in 0..3 {
            e.started();
            e.failed(10 + n, &policy);
        }
        assert_eq!(e.breaker, Breaker::Open { until_ms: 1_012 });
        assert_eq!(e.failing_for(1_010), 1_000);
        assert_eq!(e.room(1_011, 4), 0, "open");
        assert_eq!(e.room(1_012, 4), 1, "half-open: one probe");
        e.started();
        assert_eq!(e.room(1_013, 4), 0, "probe in flight");
        e.failed(1_100, &policy);
        assert_eq!(e.breaker, Breaker::Open { until_ms: 2_100 });
        assert_eq!(e.room(2_100, 4), 1);
        e.started();
        e.succeeded();
        assert_eq!(e.breaker, Breaker::Closed { failures: 0 });
        assert_eq!((e.room(2_101, 4), e.failing_for(2_101)), (4, 0));
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        for (attempt, retry_after, random, want) in [
            (2, None, 500, 1_000),
            (2, None, 0, 500),
            (2, None, 999, 1_499),
            (3, None, 500, 2_000),
            (4, None, 500, 4_000),
            (2, Some(5), 0, 5_000),
            (2, Some(3_600), 0, 60_000),
        ] {
            assert_eq!(
                backoff_ms(attempt, 1_000, retry_after, 60_000, random),
                want,
                "{attempt} {retry_after:?}"
            );
        }
    }
}
