//! Candle intervals (Binance's names) and how many candles of each a series keeps.

/// A candle's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interval {
    S1,
    M1,
    M5,
    M15,
    H1,
    H4,
    D1,
}

/// Which prices a series follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// The price served for an asset (the median of its venues).
    Served,
    /// One venue's prices for an asset.
    Venue,
}

impl Interval {
    pub const ALL: [Interval; 7] = [
        Interval::S1,
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::H4,
        Interval::D1,
    ];

    /// The names `interval=` accepts, for error messages.
    pub const NAMES: &'static str = "1s, 1m, 5m, 15m, 1h, 4h, 1d";

    pub fn ms(self) -> u64 {
        match self {
            Interval::S1 => 1_000,
            Interval::M1 => 60_000,
            Interval::M5 => 300_000,
            Interval::M15 => 900_000,
            Interval::H1 => 3_600_000,
            Interval::H4 => 14_400_000,
            Interval::D1 => 86_400_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::S1 => "1s",
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::H4 => "4h",
            Interval::D1 => "1d",
        }
    }

    pub fn parse(text: &[u8]) -> Option<Interval> {
        Interval::ALL
            .into_iter()
            .find(|i| i.as_str().as_bytes() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Candles kept: the served price keeps 5 minutes of 1 s candles, a day of 1 m and 1 000
    /// of each longer interval (one `limit=1000` page); a venue keeps a day of 1 m, 5 m and
    /// 15 m candles, a week of 1 h and 4 h, 30 days of 1 d (enough to compare venues; the
    /// long view is the served price's).
    pub fn kept(self, retention: Retention) -> usize {
        match (retention, self) {
            (Retention::Served, Interval::S1) => 300,
            (Retention::Served, Interval::M1) | (Retention::Venue, Interval::M1) => 1_440,
            (Retention::Served, _) => 1_000,
            (Retention::Venue, Interval::S1) => 0,
            (Retention::Venue, Interval::M5) => 288,
            (Retention::Venue, Interval::M15) => 96,
            (Retention::Venue, Interval::H1) => 168,
            (Retention::Venue, Interval::H4) => 42,
            (Retention::Venue, Interval::D1) => 30,
        }
    }

    /// The open time of the candle holding `at_ms`.
    pub fn open_of(self, at_ms: u64) -> u64 {
        at_ms - at_ms % self.ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for interval in Interval::ALL {
            assert_eq!(
                Interval::parse(interval.as_str().as_bytes()),
                Some(interval)
            );
            assert!(Interval::NAMES.contains(interval.as_str()));
        }
        for bad in [&b""[..], b"2m", b"1M", b"1w", b"60s"] {
            assert_eq!(Interval::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn open_times_are_aligned_to_the_epoch() {
        let cases = [
            (Interval::S1, 1_700_000_000_999, 1_700_000_000_000),
            (Interval::M1, 1_700_000_059_999, 1_700_000_040_000),
            (Interval::H4, 1_700_000_000_000, 1_699_992_000_000),
            (Interval::D1, 1_700_000_000_000, 1_699_920_000_000),
        ];
        for (interval, at, open) in cases {
            assert_eq!(interval.open_of(at), open, "{interval:?}");
            assert_eq!(open % interval.ms(), 0);
        }
    }
}
