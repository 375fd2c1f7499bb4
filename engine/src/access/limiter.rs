//! Per-key rate limits as a generic cell rate algorithm (GCRA) on one atomic word per key,
//! shared by every reactor.
//!
//! Each key's word holds its theoretical arrival time (TAT) in µs. A request at `now` is
//! admitted when `TAT − now ≤ (burst − 1) × interval`, and moves the TAT one interval on with a
//! compare-and-swap. Because all reactors update the same word, the limit is exact across the
//! node: over any window of `t` seconds a key gets at most `rate × t + burst` requests, whichever
//! reactors its requests land on. The cost is one contended cache line per *key*, never a lock,
//! and no allocation; a different key is a different word.
//!
//! In a cluster each node enforces only its *share* of a key's limit (millionths of it): the
//! side thread sets the shares from every node's demand ([`crate::side::limits`]), and counts
//! that demand from [`Limiter::take_asked`]. Alone, every share is the whole.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::tier::Rate;

/// A share of a limit, in millionths: [`WHOLE`] is all of it.
pub(crate) type Share = u32;
pub(crate) const WHOLE: Share = 1_000_000;

/// One key's state, 16 bytes: the request path touches one cache line per key.
#[derive(Default)]
struct Cell {
    tat: AtomicU64,
    /// Requests presented (admitted or not) since the side thread last took the count.
    asked: AtomicU32,
    /// This node's share of the key's limit (0: the node's default share).
    share: AtomicU32,
}

pub struct Limiter {
    cells: Box<[Cell]>,
    /// The share of a key without one of its own: the whole alone, or what the side thread
    /// says (an equal split of the live nodes while it knows no better).
    default_share: AtomicU32,
}

impl Limiter {
    /// Room for `capacity` keys.
    pub fn new(capacity: usize) -> Limiter {
        Limiter {
            cells: (0..capacity.max(1)).map(|_| Cell::default()).collect(),
            default_share: AtomicU32::new(WHOLE),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cells.len()
    }

    /// Forgets a slot's history (it is being given to another key).
    pub fn reset(&self, slot: u32) {
        if let Some(cell) = self.cells.get(slot as usize) {
            cell.tat.store(0, Ordering::Relaxed);
            cell.asked.store(0, Ordering::Relaxed);
            cell.share.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn reset_all(&self) {
        for cell in &self.cells {
            cell.tat.store(0, Ordering::Relaxed);
        }
    }

    /// The requests `slot`'s key presented since the last call (its demand on this node).
    pub(crate) fn take_asked(&self, slot: u32) -> u32 {
        self.cells
            .get(slot as usize)
            .map_or(0, |cell| cell.asked.swap(0, Ordering::Relaxed))
    }

    /// Gives `slot`'s key a share of its own (`None`: the default share again). A share that
    /// grows restarts the key's schedule at the new rate from `now_us`: a schedule built at a
    /// small share (ten seconds between requests at a floor) must not hold back a larger one.
    pub(crate) fn set_share(&self, slot: u32, share: Option<Share>, now_us: u64, rate: Rate) {
        let Some(cell) = self.cells.get(slot as usize) else {
            return;
        };
        let before = self.share(slot);
        cell.share
            .store(share.map_or(0, |s| s.clamp(1, WHOLE)), Ordering::Relaxed);
        let after = self.share(slot);
        if after > before {
            cell.tat
                .fetch_min(now_us + interval_us(rate, after), Ordering::Relaxed);
        }
    }

    pub(crate) fn set_default_share(&self, share: Share) {
        self.default_share
            .store(share.clamp(1, WHOLE), Ordering::Relaxed);
    }

    pub(crate) fn default_share(&self) -> Share {
        self.default_share.load(Ordering::Relaxed)
    }

    /// The share `slot`'s key is held to now.
    pub(crate) fn share(&self, slot: u32) -> Share {
        match self
            .cells
            .get(slot as usize)
            .map(|c| c.share.load(Ordering::Relaxed))
        {
            Some(0) | None => self.default_share(),
            Some(own) => own,
        }
    }

    /// Admits a request at `now_us` within this node's share of `rate`, or says how many µs
    /// until one would be admitted. The burst is the same span of time at any share (one second
    /// of the share's rate for the tiers), so shares that sum to the whole allow the whole's
    /// burst across the cluster.
    pub(crate) fn admit(&self, slot: u32, now_us: u64, rate: Rate) -> Result<(), u64> {
        let Some(cell) = self.cells.get(slot as usize) else {
            return Err(1_000_000);
        };
        cell.asked.fetch_add(1, Ordering::Relaxed);
        let share = match cell.share.load(Ordering::Relaxed) {
            0 => self.default_share.load(Ordering::Relaxed),
            own => own,
        };
        let interval = interval_us(rate, share);
        let burst_us = 1_000_000 * u64::from(rate.burst.max(1)) / u64::from(rate.per_second.max(1));
        let tolerance = burst_us.saturating_sub(interval);
        let mut current = cell.tat.load(Ordering::Relaxed);
        loop {
            let start = current.max(now_us);
            let ahead = start - now_us;
            if ahead > tolerance {
                return Err(ahead - tolerance);
            }
            match cell.tat.compare_exchange_weak(
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

/// µs between requests at `share` of `rate`: 10¹² / (requests a second × share in millionths).
fn interval_us(rate: Rate, share: Share) -> u64 {
    1_000_000_000_000 / (u64::from(rate.per_second.max(1)) * u64::from(share.max(1)))
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

    #[test]
    fn a_share_scales_the_rate_and_the_burst() {
        let limiter = Limiter::new(1);
        let rate = Rate {
            per_second: 4,
            burst: 4,
        };
        // (share, admitted at once, admitted over the next 10 s in 1 ms steps)
        let cases = [(WHOLE, 4, 40), (WHOLE / 4, 1, 10), (WHOLE / 40, 1, 1)];
        for (share, at_once, later) in cases {
            limiter.reset(0);
            limiter.set_share(0, Some(share), 0, rate);
            let burst = (0..10)
                .filter(|_| limiter.admit(0, 0, rate).is_ok())
                .count();
            let steady = (1..=10_000u64)
                .filter(|ms| limiter.admit(0, ms * 1_000, rate).is_ok())
                .count();
            assert_eq!((burst, steady), (at_once, later), "share {share}");
            assert_eq!(limiter.share(0), share);
        }
        // Every call counts as demand, admitted or not.
        assert!(limiter.take_asked(0) > 10_000);
        assert_eq!(limiter.take_asked(0), 0);
        // A share that grows restarts the schedule: at a fortieth, the next request was due
        // ten seconds on; at a quarter it is due within one second.
        limiter.set_share(0, Some(WHOLE / 40), 0, rate);
        assert!(limiter.admit(0, 20_000_000, rate).is_ok());
        assert!(limiter.admit(0, 21_000_000, rate).is_err());
        limiter.set_share(0, Some(WHOLE / 4), 21_000_000, rate);
        assert!(limiter.admit(0, 22_000_000, rate).is_ok());
        // Back to the default, which the node sets.
        limiter.set_share(0, None, 0, rate);
        limiter.set_default_share(WHOLE / 2);
        assert_eq!(limiter.share(0), WHOLE / 2);
    }
}
