//! Stall detection: a loop turn that takes longer than the threshold delays every request
//! queued behind it, so it is counted and logged (at most once a second per reactor) with
//! what the turn was doing.

use std::time::{Duration, Instant};

use crate::metrics::ReactorMetrics;

pub struct StallDetector {
    threshold: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl StallDetector {
    pub fn new(threshold: Duration) -> StallDetector {
        StallDetector {
            threshold,
            last_log: None,
            suppressed: 0,
        }
    }

    /// Called at the end of each turn with its start and the events it handled.
    #[inline]
    pub fn turn_ended(
        &mut self,
        reactor: usize,
        started: Instant,
        events: usize,
        metrics: &ReactorMetrics,
    ) {
        let took = started.elapsed();
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        metrics.loop_turns.inc();
        metrics.loop_max_turn_ns.max(ns);
        if took < self.threshold {
            return;
        }
        metrics.loop_stalls.inc();
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            reactor,
            took_us = ns / 1_000,
            threshold_us = u64::try_from(self.threshold.as_micros()).unwrap_or(u64::MAX),
            events,
            suppressed = self.suppressed,
            "reactor loop turn stalled"
        );
        self.last_log = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_turns_over_the_threshold() {
        let metrics = ReactorMetrics::new();
        let mut detector = StallDetector::new(Duration::from_millis(10));
        detector.turn_ended(0, Instant::now(), 1, &metrics);
        let long_ago = Instant::now()
            .checked_sub(Duration::from_millis(50))
            .unwrap();
        detector.turn_ended(0, long_ago, 7, &metrics);
        detector.turn_ended(0, long_ago, 7, &metrics); // counted, log suppressed
        assert_eq!(
            (metrics.loop_turns.get(), metrics.loop_stalls.get()),
            (3, 2)
        );
        assert!(metrics.loop_max_turn_ns.get() >= 50_000_000);
    }
}
