//! The connection governor: how many connections a reactor serves at once.
//!
//! The ceiling is the node's share of `adaptive_max_concurrent` (the cluster's, divided by the
//! live nodes the side thread counts in Valkey), split evenly across reactors.
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
    /// The reactor's share of the whole cluster's limit, for a node alone.
    whole: usize,
    /// Its share with the nodes live now.
    ceiling: usize,
    floor: usize,
    limit: usize,
    threshold: f64,
    window_start_ms: u64,
    successes: u64,
    total: u64,
    /// Counts not yet handed to the node's totals ([`Governor::take_counts`]).
    unreported: Counts,
}

/// Responses (successes of the total) and connections refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub successes: u64,
    pub total: u64,
    pub throttled: u64,
}

impl Governor {
    pub fn new(ceiling: usize, threshold: f64) -> Governor {
        let ceiling = ceiling.max(1);
        Governor {
            whole: ceiling,
            ceiling,
            floor: (ceiling / 16).max(1),
            limit: ceiling,
            threshold,
            window_start_ms: 0,
            successes: 0,
            total: 0,
            unreported: Counts::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes this node's share with `nodes` live (0: not known, counted as alone): the limit
    /// drops to the new ceiling at once and grows towards a higher one as after a healthy
    /// second.
    pub fn share(&mut self, nodes: u64) {
        let nodes = usize::try_from(nodes.max(1)).unwrap_or(usize::MAX);
        self.ceiling = (self.whole / nodes).max(1);
        self.floor = (self.ceiling / 16).max(1);
        self.limit = self.limit.min(self.ceiling);
    }

    /// Whether a new connection may open with `open` already open.
    pub(crate) fn admits(&self, open: usize) -> bool {
        open < self.limit
    }

    /// A connection was refused for want of room.
    pub(crate) fn refused(&mut self) {
        self.unreported.throttled += 1;
    }

    #[inline]
    pub(crate) fn record_many(&mut self, successes: u32, failures: u32) {
        let total = u64::from(successes) + u64::from(failures);
        self.total += total;
        self.successes += u64::from(successes);
        self.unreported.total += total;
        self.unreported.successes += u64::from(successes);
    }

    /// The counts since the last call.
    pub(crate) fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.unreported)
    }

    /// Closes the window when a second has passed.
    pub fn tick(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.window_start_ms) < WINDOW_MS {
            return;
        }
        self.window_start_ms = now_ms;
        let (successes, total) = (self.successes, self.total);
        self.successes = 0;
        self.total = 0;
        let healthy = (successes as f64) >= self.threshold * total as f64;
        if total >= MIN_SAMPLE && !healthy {
            self.limit = (self.limit * 3 / 4).max(self.floor);
        } else if healthy && self.limit < self.ceiling {
            // Healthy or idle: grow back. A small window that looks unhealthy holds.
            self.limit = (self.limit + (self.ceiling / 20).max(1)).min(self.ceiling);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_its_share_of_the_cluster() {
        let mut governor = Governor::new(6_000, 0.9);
        // (live nodes, ceiling, limit at once)
        let cases = [
            (3, 2_000, 2_000),
            (0, 6_000, 2_000),
            (2, 3_000, 2_000),
            (6, 1_000, 1_000),
        ];
        for (nodes, ceiling, limit) in cases {
            governor.share(nodes);
            assert_eq!(
                (governor.ceiling, governor.limit()),
                (ceiling, limit),
                "{nodes} nodes"
            );
        }
        // A node that was left alone grows back to the whole, a twentieth of it a second.
        governor.share(1);
        let mut now = 0;
        while governor.limit() < 6_000 {
            now += 1_000;
            governor.tick(now);
        }
        assert_eq!(now, 17_000);
    }

    #[test]
    fn shrinks_on_failure_and_recovers() {
        let mut g = Governor::new(1000, 0.5);
        assert!(g.admits(999) && !g.admits(1000));
        g.refused();
        g.record_many(3, 1);
        let counts = Counts {
            successes: 3,
            total: 4,
            throttled: 1,
        };
        assert_eq!(g.take_counts(), counts);
        assert_eq!(g.take_counts(), Counts::default());
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
