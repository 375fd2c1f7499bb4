//! Price history: candles of every asset's served price and of each venue's prices, at every
//! [`Interval`], in fixed memory.
//!
//! One writer (the price thread, through the table's writer) places each tick in the current
//! candle of every interval; readers (reactors answering reports, the side thread persisting
//! closed candles) copy candles out of seqlock slots without locking or allocating. A series'
//! rings are allocated at its first tick, so memory follows the (asset, venue) pairs quoted and
//! is bounded by [`Interval::kept`]: 369 KiB for a served series, 113 KiB for a venue's, at
//! most 1.02 MiB per asset (150 assets on 6 venues: 153 MiB; on 3 venues: 104 MiB).
//!
//! Time: a tick is placed at its exchange time, clamped to within [`CLOSE_GRACE_MS`] of its
//! arrival and never before the series' previous tick. So every interval sees one monotonic
//! clock (a 1 m candle's ticks are exactly those of its 1 s candles), a venue's skewed clock
//! cannot move a series far, and a candle whose end is [`CLOSE_GRACE_MS`] past is final.

mod candle;
mod interval;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use beast_core::{Decimal, Venue};

pub use candle::Candle;
pub use interval::{Interval, Retention};

use crate::price::{AssetId, SeqLock};
use candle::WORDS;

/// How far a tick's exchange time may be from its arrival, and how long after its end a candle
/// is still open to ticks.
pub const CLOSE_GRACE_MS: u64 = 2_000;
const SERIES_PER_ASSET: usize = Venue::COUNT + 1;
/// Read attempts before a reader gives up on a slot (as the price table's).
const READ_ATTEMPTS: u32 = 64;

/// Whose prices a series follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesId {
    Served,
    Venue(Venue),
}

impl SeriesId {
    pub const ALL: [SeriesId; SERIES_PER_ASSET] = [
        SeriesId::Served,
        SeriesId::Venue(Venue::ALL[0]),
        SeriesId::Venue(Venue::ALL[1]),
        SeriesId::Venue(Venue::ALL[2]),
        SeriesId::Venue(Venue::ALL[3]),
        SeriesId::Venue(Venue::ALL[4]),
        SeriesId::Venue(Venue::ALL[5]),
    ];

    fn index(self) -> usize {
        match self {
            SeriesId::Served => 0,
            SeriesId::Venue(venue) => 1 + venue.index(),
        }
    }

    pub fn retention(self) -> Retention {
        match self {
            SeriesId::Served => Retention::Served,
            SeriesId::Venue(_) => Retention::Venue,
        }
    }

    /// `served` or the venue's name (the store's and the reports' word for it).
    pub fn name(self) -> &'static str {
        match self {
            SeriesId::Served => "served",
            SeriesId::Venue(venue) => venue.name(),
        }
    }

    pub fn parse(text: &str) -> Option<SeriesId> {
        SeriesId::ALL.into_iter().find(|s| s.name() == text)
    }
}

/// One series: a ring of candles per interval.
struct Series {
    rings: [Box<[SeqLock<WORDS>]>; Interval::ALL.len()],
    /// Where the newest tick was placed (Unix ms); written by the one writer.
    last_ms: AtomicU64,
}

impl Series {
    fn new(retention: Retention) -> Series {
        Series {
            rings: Interval::ALL.map(|interval| {
                (0..interval.kept(retention))
                    .map(|_| SeqLock::new([0; WORDS]))
                    .collect()
            }),
            last_ms: AtomicU64::new(0),
        }
    }

    /// What a series of `retention` takes.
    fn bytes(retention: Retention) -> u64 {
        let slots: usize = Interval::ALL.iter().map(|i| i.kept(retention)).sum();
        (slots * size_of::<SeqLock<WORDS>>() + size_of::<Series>()) as u64
    }

    fn slot(&self, interval: Interval, open_ms: u64) -> Option<&SeqLock<WORDS>> {
        let ring = self.rings.get(interval.index())?;
        let len = u64::try_from(ring.len()).ok().filter(|&n| n > 0)?;
        ring.get(usize::try_from(open_ms / interval.ms() % len).ok()?)
    }

    /// The candle opened at `open_ms`, if the ring still holds it.
    fn candle(&self, interval: Interval, open_ms: u64) -> Option<Candle> {
        let words = self.slot(interval, open_ms)?.read_bounded(READ_ATTEMPTS)?;
        Candle::decode(words).filter(|c| c.open_ms == open_ms)
    }
}

/// Every asset's series, indexed like the price table's assets.
pub struct History {
    series: Box<[OnceLock<Box<Series>>]>,
    /// Most bytes the series may take (`BEAST_HISTORY_MAX_MIB`); past it a new series is not
    /// kept, and counted.
    budget_bytes: u64,
    allocated_bytes: AtomicU64,
    refused_series: AtomicU64,
    /// Ticks whose prices could not share a candle's scale (never expected; counted).
    unencodable: AtomicU64,
}

/// The default budget: room for 500 assets quoted on every venue.
pub const DEFAULT_BUDGET_BYTES: u64 = 512 << 20;

impl History {
    pub fn new(assets: usize, budget_bytes: u64) -> History {
        History {
            series: (0..assets * SERIES_PER_ASSET)
                .map(|_| OnceLock::new())
                .collect(),
            budget_bytes,
            allocated_bytes: AtomicU64::new(0),
            refused_series: AtomicU64::new(0),
            unencodable: AtomicU64::new(0),
        }
    }

    /// Bytes the series allocated so far take.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes.load(Ordering::Relaxed)
    }

    /// Series not kept because the budget was spent.
    pub fn refused_series(&self) -> u64 {
        self.refused_series.load(Ordering::Relaxed)
    }

    fn series(&self, asset: AssetId, series: SeriesId) -> Option<&Series> {
        self.series
            .get(asset.index() * SERIES_PER_ASSET + series.index())?
            .get()
            .map(|boxed| &**boxed)
    }

    /// The candle of `interval` opened at `open_ms`, if there is one (`None`: a gap, or older
    /// than the ring keeps).
    pub fn candle(
        &self,
        asset: AssetId,
        series: SeriesId,
        interval: Interval,
        open_ms: u64,
    ) -> Option<Candle> {
        self.series(asset, series)?.candle(interval, open_ms)
    }

    /// The newest candle of `interval`.
    pub fn latest(&self, asset: AssetId, series: SeriesId, interval: Interval) -> Option<Candle> {
        let series = self.series(asset, series)?;
        let last = series.last_ms.load(Ordering::Acquire);
        (last > 0)
            .then(|| series.candle(interval, interval.open_of(last)))
            .flatten()
    }

    /// True once no tick can change the candle opened at `open_ms` any more.
    pub fn is_closed(interval: Interval, open_ms: u64, now_ms: u64) -> bool {
        open_ms + interval.ms() + CLOSE_GRACE_MS <= now_ms
    }

    /// The oldest open time the rings of `series` keep for `interval` at `now_ms`.
    pub fn oldest_kept(series: SeriesId, interval: Interval, now_ms: u64) -> u64 {
        let kept = u64::try_from(interval.kept(series.retention())).unwrap_or(0);
        interval
            .open_of(now_ms)
            .saturating_sub(kept.saturating_sub(1) * interval.ms())
    }

    pub fn unencodable(&self) -> u64 {
        self.unencodable.load(Ordering::Relaxed)
    }

    /// A series, allocated at its first use (by the one writer) if the budget has room.
    fn series_or_new(&self, asset: AssetId, series: SeriesId) -> Option<&Series> {
        let cell = self
            .series
            .get(asset.index() * SERIES_PER_ASSET + series.index())?;
        if let Some(held) = cell.get() {
            return Some(held);
        }
        let bytes = Series::bytes(series.retention());
        let allocated = self.allocated_bytes.load(Ordering::Relaxed);
        if allocated + bytes > self.budget_bytes {
            if self.refused_series.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    budget_mib = self.budget_bytes >> 20,
                    "price history full (BEAST_HISTORY_MAX_MIB): new series get no candles"
                );
            }
            return None;
        }
        self.allocated_bytes
            .store(allocated + bytes, Ordering::Relaxed);
        Some(cell.get_or_init(|| Box::new(Series::new(series.retention()))))
    }

    /// Places one tick (the table's writer calls this: one writer).
    pub(crate) fn record(
        &self,
        asset: AssetId,
        series: SeriesId,
        price: Decimal,
        venue: Venue,
        exchange_ms: u64,
        received_ms: u64,
    ) {
        let Some(rings) = self.series_or_new(asset, series) else {
            return;
        };
        let last = rings.last_ms.load(Ordering::Relaxed);
        let at = exchange_ms
            .clamp(
                received_ms.saturating_sub(CLOSE_GRACE_MS),
                received_ms.saturating_add(CLOSE_GRACE_MS),
            )
            .max(last);
        for interval in Interval::ALL {
            let open_ms = interval.open_of(at);
            let Some(slot) = rings.slot(interval, open_ms) else {
                continue;
            };
            let candle = match slot.read_bounded(READ_ATTEMPTS).and_then(Candle::decode) {
                Some(current) if current.open_ms == open_ms => current.with(price, venue),
                _ => Candle::first(open_ms, price, venue),
            };
            match candle.encode() {
                Some(words) => slot.write(words),
                None => {
                    self.unencodable.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        rings.last_ms.store(at, Ordering::Release);
    }

    /// Puts back a candle kept from before a restart, unless its slot already holds a later
    /// one (the table's writer, before any feed's tick; it replaces what a warm start's prices
    /// made of the same period).
    pub(crate) fn restore(
        &self,
        asset: AssetId,
        series: SeriesId,
        interval: Interval,
        candle: &Candle,
    ) {
        let Some(rings) = self.series_or_new(asset, series) else {
            return;
        };
        let Some(slot) = rings.slot(interval, candle.open_ms) else {
            return;
        };
        let newer = slot
            .read_bounded(READ_ATTEMPTS)
            .and_then(Candle::decode)
            .is_some_and(|held| held.open_ms > candle.open_ms);
        if let (false, Some(words)) = (newer, candle.encode()) {
            slot.write(words);
            let last = rings.last_ms.load(Ordering::Relaxed);
            rings
                .last_ms
                .store(last.max(candle.open_ms), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    const T0: u64 = 1_700_000_040_000; // a minute boundary

    /// (price, venue, exchange ms after T0, received ms after T0)
    type Tick = (&'static str, Venue, u64, u64);

    fn feed(history: &History, ticks: &[Tick]) {
        let asset = AssetId::from_raw(0);
        for &(price, venue, exchange, received) in ticks {
            history.record(
                asset,
                SeriesId::Venue(venue),
                d(price),
                venue,
                T0 + exchange,
                T0 + received,
            );
        }
    }

    fn ohlc(candle: Option<Candle>) -> Option<(String, String, String, String, u32)> {
        candle.map(|c| {
            (
                c.open.to_string(),
                c.high.to_string(),
                c.low.to_string(),
                c.close.to_string(),
                c.ticks,
            )
        })
    }

    #[test]
    fn ticks_land_in_the_candle_of_their_time_at_every_interval() {
        let history = History::new(1, DEFAULT_BUDGET_BYTES);
        let k = Venue::Kraken;
        feed(
            &history,
            &[
                ("100", k, 0, 5),
                ("103", k, 10_000, 10_005),
                ("99", k, 59_999, 60_010),
                ("101", k, 60_000, 60_020),
                ("102", k, 185_000, 185_001),
            ],
        );
        let asset = AssetId::from_raw(0);
        let series = SeriesId::Venue(k);
        let one = |open| ohlc(history.candle(asset, series, Interval::M1, open));
        let s = |a: &str, b: &str, c: &str, e: &str, n| {
            Some((a.into(), b.into(), c.into(), e.into(), n))
        };
        assert_eq!(one(T0), s("100", "103", "99", "99", 3));
        assert_eq!(one(T0 + 60_000), s("101", "101", "101", "101", 1));
        assert_eq!(one(T0 + 120_000), None, "a minute without ticks is a gap");
        assert_eq!(one(T0 + 180_000), s("102", "102", "102", "102", 1));
        // T0 is 4 minutes into its 5-minute candle: the next minute opens a new one.
        let five = Interval::M5.open_of(T0);
        assert_eq!(five, T0 - 240_000);
        assert_eq!(
            ohlc(history.candle(asset, series, Interval::M5, five)),
            s("100", "103", "99", "99", 3)
        );
        assert_eq!(
            ohlc(history.latest(asset, series, Interval::M1)),
            s("102", "102", "102", "102", 1)
        );
        assert_eq!(
            history.candle(asset, SeriesId::Served, Interval::M1, T0),
            None
        );
    }

    #[test]
    fn series_past_the_budget_are_counted_not_kept() {
        let venue = Series::bytes(Retention::Venue);
        let history = History::new(4, venue * 2);
        for asset in 0..3 {
            history.record(
                AssetId::from_raw(asset),
                SeriesId::Venue(Venue::Okx),
                d("1"),
                Venue::Okx,
                T0,
                T0,
            );
        }
        assert_eq!(
            (history.allocated_bytes(), history.refused_series()),
            (venue * 2, 1)
        );
        assert!(
            history
                .latest(
                    AssetId::from_raw(1),
                    SeriesId::Venue(Venue::Okx),
                    Interval::M1
                )
                .is_some()
        );
        assert!(
            history
                .latest(
                    AssetId::from_raw(2),
                    SeriesId::Venue(Venue::Okx),
                    Interval::M1
                )
                .is_none()
        );
    }

    #[test]
    fn skewed_and_late_ticks_are_clamped_onto_one_clock() {
        let history = History::new(1, DEFAULT_BUDGET_BYTES);
        let g = Venue::Gemini;
        feed(
            &history,
            &[
                // An exchange clock an hour behind is placed 2 s before arrival.
                ("10", g, 0, 3_600_000),
                // A tick stamped before the previous one goes with it.
                ("11", g, 3_590_000, 3_600_001),
            ],
        );
        let asset = AssetId::from_raw(0);
        let at = T0 + 3_600_000 - CLOSE_GRACE_MS;
        let candle = history
            .candle(
                asset,
                SeriesId::Venue(g),
                Interval::M1,
                Interval::M1.open_of(at),
            )
            .unwrap();
        assert_eq!(
            (
                candle.open.to_string(),
                candle.close.to_string(),
                candle.ticks
            ),
            ("10".into(), "11".into(), 2)
        );
    }

    #[test]
    fn rings_forget_what_they_cannot_keep_and_restore_keeps_the_newer() {
        let history = History::new(1, DEFAULT_BUDGET_BYTES);
        let asset = AssetId::from_raw(0);
        let o = Venue::Okx;
        let kept = Interval::M1.kept(Retention::Venue) as u64;
        feed(&history, &[("1", o, 0, 0)]);
        let later = kept * 60_000;
        feed(&history, &[("2", o, later, later)]);
        let series = SeriesId::Venue(o);
        assert_eq!(
            history.candle(asset, series, Interval::M1, T0),
            None,
            "overwritten"
        );
        assert!(
            history
                .candle(asset, series, Interval::M1, T0 + later)
                .is_some()
        );
        // An older candle does not replace a newer one in its slot.
        let old = Candle::first(T0, d("5"), o);
        history.restore(asset, series, Interval::M1, &old);
        assert_eq!(history.candle(asset, series, Interval::M1, T0), None);
        let elsewhere = Candle::first(T0 + 60_000, d("5"), o);
        history.restore(asset, series, Interval::M1, &elsewhere);
        assert_eq!(
            history.candle(asset, series, Interval::M1, T0 + 60_000),
            Some(elsewhere)
        );
        assert!(History::is_closed(Interval::M1, T0, T0 + 62_000));
        assert!(!History::is_closed(Interval::M1, T0, T0 + 61_999));
    }
}
