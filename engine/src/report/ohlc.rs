//! `ohlc`: candles of an asset's served price (or one venue's), oldest first, one row per
//! interval in the range: a period without ticks is a row without prices (a gap, never a
//! repeated close), and the candle still open is marked `closed: false`. Columns follow
//! Binance's kline order where they apply (there is no volume: a price feed has none).

use super::chart::Chart;
use super::render::{Cell, Column, Report, left, right};
use crate::history::{History, Interval, SeriesId};
use crate::price::{AssetId, Freshness, PriceTable};
use crate::protocol::sink::Sink;

/// Most rows one request may ask for.
pub(crate) const MAX_ROWS: usize = 1_000;

const COLUMNS: [Column; 9] = [
    right("open_time", 13),
    right("open", 12),
    right("high", 12),
    right("low", 12),
    right("close", 12),
    right("close_time", 13),
    right("ticks", 6),
    right("venues", 6),
    left("closed", 6),
];

#[derive(Clone, Copy, Debug)]
pub(crate) struct Query {
    pub asset: AssetId,
    pub series: SeriesId,
    pub interval: Interval,
    /// Unix ms: the first row is the first candle opening at or after it.
    pub start: Option<u64>,
    /// Unix ms: the last row is the candle holding it (at most the current one).
    pub end: Option<u64>,
    pub limit: usize,
}

pub(super) struct Ohlc<'a> {
    table: &'a PriceTable,
    fresh: Freshness,
    query: Query,
    /// Open time of the first row, and how many rows.
    first: u64,
    rows: u64,
}

impl<'a> Ohlc<'a> {
    pub fn new(table: &'a PriceTable, fresh: Freshness, query: Query) -> Ohlc<'a> {
        let interval = query.interval;
        let ms = interval.ms();
        let now_open = interval.open_of(fresh.now_ms);
        let last = query
            .end
            .map_or(now_open, |end| interval.open_of(end).min(now_open));
        let limit = u64::try_from(query.limit).unwrap_or(1).max(1);
        let wanted = match query.start {
            Some(start) => start.div_ceil(ms) * ms,
            None => last.saturating_sub((limit - 1) * ms),
        };
        // Older candles than the rings keep are not gaps: they are not shown at all.
        let first = wanted.max(History::oldest_kept(query.series, interval, fresh.now_ms));
        let rows = if first > last {
            0
        } else {
            ((last - first) / ms + 1).min(limit)
        };
        Ohlc {
            table,
            fresh,
            query,
            first,
            rows,
        }
    }
}

impl Report for Ohlc<'_> {
    fn name(&self) -> &'static str {
        "ohlc"
    }

    fn title(&self, out: &mut dyn Sink) {
        out.put(b"ohlc ");
        if let Some(symbol) = self.table.registry().symbol(self.query.asset) {
            out.put(symbol.as_bytes());
        }
        out.put(b" ");
        out.put(self.query.interval.as_str().as_bytes());
        out.put(b" ");
        out.put(self.query.series.name().as_bytes());
    }

    fn meta(&self, emit: &mut dyn FnMut(&'static str, Cell<'_>)) {
        let symbol = self.table.registry().symbol(self.query.asset);
        emit(
            "asset",
            Cell::Text(symbol.as_ref().map_or("", |s| s.as_str())),
        );
        emit("interval", Cell::Text(self.query.interval.as_str()));
        emit("series", Cell::Text(self.query.series.name()));
        emit("from", Cell::uint(self.first));
        emit("rows_count", Cell::uint(self.rows));
        super::render::provenance(self.fresh, emit);
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn rows(&self, emit: &mut dyn FnMut(&[Cell<'_>])) {
        let history = self.table.history();
        let interval = self.query.interval;
        let ms = interval.ms();
        for n in 0..self.rows {
            let open = self.first + n * ms;
            let candle = history.candle(self.query.asset, self.query.series, interval, open);
            emit(&[
                Cell::uint(open),
                Cell::Price(candle.map(|c| c.open)),
                Cell::Price(candle.map(|c| c.high)),
                Cell::Price(candle.map(|c| c.low)),
                Cell::Price(candle.map(|c| c.close)),
                Cell::uint(open + ms - 1),
                Cell::uint(candle.map_or(0, |c| u64::from(c.ticks))),
                Cell::uint(candle.map_or(0, |c| u64::from(c.venue_count()))),
                Cell::Flag(History::is_closed(interval, open, self.fresh.now_ms)),
            ]);
        }
    }

    fn chart(&self) -> Chart {
        Chart::Candles([1, 2, 3, 4])
    }
}
