//! The wall clock, in one place for every crate: prices' exchange and arrival times, their
//! ages, usage records' minutes. Timers never use it (they run on `Instant`).

use std::sync::atomic::{AtomicI64, Ordering};

/// Added to the wall clock: only [`shift_wall_clock`] sets it.
static SHIFT_MS: AtomicI64 = AtomicI64::new(0);

/// Unix milliseconds now (a vDSO read: no system call).
pub fn wall_ms() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    ms.saturating_add_signed(SHIFT_MS.load(Ordering::Relaxed))
}

/// Moves this process's wall clock by `ms`, as an NTP step or an operator's `date -s` would:
/// for tests that show what follows the wall clock (prices' ages) and what must not (timers,
/// the governor, the watchdog, which run on the monotonic clock).
#[doc(hidden)]
pub fn shift_wall_clock(ms: i64) {
    SHIFT_MS.fetch_add(ms, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_the_wall_clock() {
        let before = wall_ms();
        shift_wall_clock(3_600_000);
        let after = wall_ms();
        shift_wall_clock(-3_600_000);
        assert!(after >= before + 3_600_000);
        assert!(wall_ms() < after);
    }
}
