//! The wall clock, in one place for every crate: prices' exchange and arrival times, their
//! ages, usage records' minutes. Timers never use it (they run on `Instant`).

use std::sync::atomic::{AtomicI64, Ordering};

/// How far ahead of this node's clock an exchange (or a cache entry) may stamp a price before
/// the time is taken as wrong: a price from the future would otherwise never age.
pub const FUTURE_TOLERANCE_MS: u64 = 2_000;

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

/// `2026-12-02T18:20:16.123Z`: Unix ms as RFC 3339 UTC (days to civil date after Howard
/// Hinnant's algorithm: valid for every `u64` ms this century will meet).
pub fn rfc3339_ms(ms: u64) -> String {
    let days = ms / 86_400_000;
    let in_day = ms % 86_400_000;
    let z = days.cast_signed() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_614_265_330_123, "2021-02-25T15:02:10.123Z"),
            (1_796_235_599_999, "2026-12-02T18:19:59.999Z"),
        ] {
            assert_eq!(rfc3339_ms(ms), text);
        }
    }

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
