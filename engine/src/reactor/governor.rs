//! The connection governor: how many connections a reactor serves at once.
//!
//! The ceiling is the node's share of `adaptive_max_concurrent`, split evenly across reactors.
//! Each second the governor looks at the responses: if fewer than `adaptive_success_threshold`
//! of them succeeded, the limit shrinks to three quarters, down to a floor; after a healthy
//! second it grows back by a twentieth of the ceiling. New connections past the limit get
//! `503 overloaded` and are closed. A failure is the server failing to keep up (a `503
//! overloaded` answer): never what a client does (resets, slow requests timing out, errors of
//! its own) nor the governor's own refusals, or any client could shrink the limit for all.

/// Fewest responses in a window for its ratio to count.
const MIN_SAMPLE: u64 = 100;
const WINDOW_MS: u64 = 1_000;

#[derive(Debug)]
pub(crate) struct Governor {
    ceiling: usize,
    floor: usize,
    limit: usize,
    threshold: f64,
    window_start_ms: u64,
    successes: u64,
    total: u64,
}

impl Governor {
    pub fn new(ceiling: usize, threshold: f64) -> Governor {
        let ceiling = ceiling.max(1);
        Governor {
            ceiling,
            floor: (ceiling / 16).max(1),
            limit: ceiling,
            threshold,
            window_start_ms: 0,
            successes: 0,
            total: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn admits(&self, open: usize) -> bool {
        open < self.limit
    }

    #[inline]
    pub(crate) fn record_many(&mut self, successes: u32, failures: u32) {
        self.total += u64::from(successes) + u64::from(failures);
        self.successes += u64::from(successes);
    }

    /// Closes the window when a second has passed; returns the new limit if it changed.
    pub fn tick(&mut self, now_ms: u64) -> Option<usize> {
        if now_ms.saturating_sub(self.window_start_ms) < WINDOW_MS {
            return None;
        }
        self.window_start_ms = now_ms;
        let (successes, total) = (self.successes, self.total);
        self.successes = 0;
        self.total = 0;
        let before = self.limit;
        let healthy = (successes as f64) >= self.threshold * total as f64;
        if total >= MIN_SAMPLE && !healthy {
            self.limit = (self.limit * 3 / 4).max(self.floor);
        } else if healthy && self.limit < self.ceiling {
            // Healthy or idle: grow back. A small window that looks unhealthy holds.
            self.limit = (self.limit + (self.ceiling / 20).max(1)).min(self.ceiling);
        }
        (self.limit != before).then_some(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_on_failure_and_recovers() {
        let mut g = Governor::new(1000, 0.5);
        assert!(g.admits(999) && !g.admits(1000));
        // (successes, failures, expected limit after the window)
        let windows = [
            (100, 0, 1000),
            (40, 60, 750),
            (10, 200, 562),
            (0, 50, 562),
            (500, 0, 612),
            (500, 0, 662),
        ];
        for (i, (ok, bad, expected)) in windows.into_iter().enumerate() {
            g.record_many(ok, bad);
            g.tick((i as u64 + 1) * 1_000);
            assert_eq!(g.limit(), expected, "window {i}");
        }
        let mut g = Governor::new(32, 0.5);
        for second in 1..20 {
            g.record_many(0, 200);
            g.tick(second * 1_000);
        }
        assert_eq!(g.limit(), 2, "never below the floor");
    }
}
