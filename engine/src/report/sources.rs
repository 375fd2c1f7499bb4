//! `sources`: one asset's venues, each with its last price, exchange time, age, and distance
//! from the median of the fresh ones in basis points. With three fresh venues or more, one
//! further than [`OUTLIER_BPS`] from the median is flagged (with two, each is as far as the
//! other: neither is the odd one out).

use beast_core::{Decimal, Venue};

use super::chart::Chart;
use super::render::{Cell, Column, Report, left, right};
use crate::price::{AssetId, Freshness, PriceTable, Quote};
use crate::protocol::sink::Sink;

/// Distance from the median past which a venue is an outlier.
pub(crate) const OUTLIER_BPS: i64 = 50;

const COLUMNS: [Column; 8] = [
    left("venue", 9),
    left("source", 14),
    right("price", 12),
    right("ts", 13),
    right("age_ms", 7),
    left("stale", 5),
    right("deviation_bps", 13),
    left("outlier", 7),
];
const DEVIATION: usize = 6;

pub(super) struct Sources<'a> {
    table: &'a PriceTable,
    fresh: Freshness,
    asset: AssetId,
    quotes: [Option<Quote>; Venue::COUNT],
    median: Option<Decimal>,
    fresh_count: usize,
}

impl<'a> Sources<'a> {
    pub fn new(table: &'a PriceTable, fresh: Freshness, asset: AssetId) -> Sources<'a> {
        let quotes = Venue::ALL.map(|venue| table.quote(asset, venue));
        let mut prices = [Decimal::ZERO; Venue::COUNT];
        let mut fresh_count = 0;
        for quote in quotes.iter().flatten() {
            if !fresh.is_stale(quote.exchange_ms)
                && let Some(slot) = prices.get_mut(fresh_count)
            {
                *slot = quote.price;
                fresh_count += 1;
            }
        }
        let median = Decimal::median(prices.get_mut(..fresh_count).unwrap_or_default());
        Sources {
            table,
            fresh,
            asset,
            quotes,
            median,
            fresh_count,
        }
    }

    fn deviation_bps(&self, price: Decimal) -> Option<i64> {
        let median = super::chart::price_f64(&self.median?);
        if median <= 0.0 {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "basis points of prices within u64 are well within i64"
        )]
        Some(((super::chart::price_f64(&price) - median) / median * 10_000.0).round() as i64)
    }
}

impl Report for Sources<'_> {
    fn name(&self) -> &'static str {
        "sources"
    }

    fn title(&self, out: &mut dyn Sink) {
        out.put(b"sources ");
        if let Some(symbol) = self.table.registry().symbol(self.asset) {
            out.put(symbol.as_bytes());
        }
    }

    fn meta(&self, emit: &mut dyn FnMut(&'static str, Cell<'_>)) {
        let symbol = self.table.registry().symbol(self.asset);
        emit(
            "asset",
            Cell::Text(symbol.as_ref().map_or("", |s| s.as_str())),
        );
        emit("median", Cell::Price(self.median));
        emit("fresh", Cell::uint(self.fresh_count as u64));
        emit("outlier_bps", Cell::Int(Some(OUTLIER_BPS)));
        super::render::provenance(self.fresh, emit);
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn rows(&self, emit: &mut dyn FnMut(&[Cell<'_>])) {
        for (venue, quote) in Venue::ALL.iter().zip(&self.quotes) {
            let Some(quote) = quote else {
                continue;
            };
            let stale = self.fresh.is_stale(quote.exchange_ms);
            let deviation = self.deviation_bps(quote.price);
            let outlier =
                !stale && self.fresh_count >= 3 && deviation.is_some_and(|d| d.abs() > OUTLIER_BPS);
            emit(&[
                Cell::Text(venue.name()),
                Cell::Text(quote.source.tag_for(self.fresh.simulated)),
                Cell::Price(Some(quote.price)),
                Cell::uint(quote.exchange_ms),
                Cell::uint(self.fresh.age_ms(quote.exchange_ms)),
                Cell::Flag(stale),
                Cell::Int(deviation),
                Cell::Flag(outlier),
            ]);
        }
    }

    fn chart(&self) -> Chart {
        Chart::Bars {
            label: 0,
            value: DEVIATION,
        }
    }
}
