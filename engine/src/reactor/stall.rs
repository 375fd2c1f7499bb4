//! Stall detection: a loop turn that takes longer than the threshold delays every request
//! queued behind it, so it is counted and logged (at most once a second per reactor) with
//! what the turn was doing. A turn that never returns cannot report itself: the [`Watchdog`],
//! a thread of its own, reports it while it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::ReactorMetrics;
use crate::node::Node;

pub(crate) struct StallDetector {
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
    pub(crate) fn turn_ended(
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

/// Watches every reactor's turn in progress (`turn_started_ms`, which a reactor sets when a
/// turn starts and clears when it ends) and reports a turn running longer than `stuck_after`:
/// which reactor, for how long; once per turn.
pub(crate) struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    const EVERY: Duration = Duration::from_millis(100);

    pub fn start(node: Arc<Node>, stuck_after: Duration) -> std::io::Result<Watchdog> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let stuck_ms = u64::try_from(stuck_after.as_millis()).unwrap_or(u64::MAX);
        let thread = std::thread::Builder::new()
            .name("beast-watchdog".into())
            .spawn(move || {
                // The start of the turn last reported, per reactor.
                let mut reported = vec![0u64; node.reactors.len()];
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Self::EVERY);
                    let now = node.mono_ms();
                    for (index, (metrics, last)) in
                        node.reactors.iter().zip(reported.iter_mut()).enumerate()
                    {
                        let started = metrics.turn_started_ms.get();
                        let running = now.saturating_sub(started);
                        if started == 0 || *last == started || running < stuck_ms {
                            continue;
                        }
                        *last = started;
                        metrics.loop_stuck.inc();
                        tracing::error!(
                            reactor = index,
                            running_ms = running,
                            "reactor loop turn has not returned: its connections and datagrams wait"
                        );
                    }
                }
            })?;
        Ok(Watchdog {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
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
