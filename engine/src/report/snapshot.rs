//! `snapshot`: every asset (or those asked for) with its served price, where it came from, its
//! age, the spread across venues, and each venue's last price.

use beast_core::Venue;

use super::chart::Chart;
use super::render::{Cell, Column, Report, left, right};
use crate::price::{AssetId, Freshness, PriceTable};
use crate::protocol::sink::Sink;

const COLUMNS: [Column; 14] = [
    left("asset", 6),
    right("price", 12),
    left("source", 14),
    right("ts", 13),
    right("age_ms", 7),
    left("stale", 5),
    right("sources", 7),
    right("spread_bps", 10),
    right("coinbase", 12),
    right("gemini", 12),
    right("kraken", 12),
    right("gateio", 12),
    right("cryptocom", 12),
    right("okx", 12),
];
const SPREAD: usize = 7;

pub(super) struct Snapshot<'a> {
    pub table: &'a PriceTable,
    pub fresh: Freshness,
    /// Empty: every asset.
    pub assets: &'a [AssetId],
}

impl Snapshot<'_> {
    fn row(&self, id: AssetId, emit: &mut dyn FnMut(&[Cell<'_>])) {
        let Some(symbol) = self.table.registry().symbol(id) else {
            return;
        };
        let served = self.table.aggregate(id);
        let venue = |v: Venue| Cell::Price(self.table.quote(id, v).map(|q| q.price));
        emit(&[
            Cell::Text(symbol.as_str()),
            Cell::Price(served.map(|a| a.price)),
            served.map_or(Cell::Missing, |a| {
                Cell::Text(a.source.tag_for(self.fresh.simulated))
            }),
            Cell::Int(served.and_then(|a| i64::try_from(a.exchange_ms).ok())),
            Cell::Int(served.and_then(|a| i64::try_from(self.fresh.age_ms(a.exchange_ms)).ok())),
            Cell::Flag(served.is_none_or(|a| self.fresh.is_stale(a.exchange_ms))),
            Cell::Int(served.map(|a| i64::from(a.sources))),
            Cell::Int(served.map(|a| i64::from(a.spread_bps))),
            venue(Venue::Coinbase),
            venue(Venue::Gemini),
            venue(Venue::Kraken),
            venue(Venue::Gateio),
            venue(Venue::Cryptocom),
            venue(Venue::Okx),
        ]);
    }
}

impl Report for Snapshot<'_> {
    fn name(&self) -> &'static str {
        "snapshot"
    }

    fn title(&self, out: &mut dyn Sink) {
        out.put(b"snapshot");
    }

    fn meta(&self, emit: &mut dyn FnMut(&'static str, Cell<'_>)) {
        emit("at", Cell::uint(self.fresh.now_ms));
        emit("stale_after_ms", Cell::uint(self.fresh.stale_after_ms));
        super::render::provenance(self.fresh, emit);
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn rows(&self, emit: &mut dyn FnMut(&[Cell<'_>])) {
        if self.assets.is_empty() {
            for (id, _) in self.table.registry().iter() {
                self.row(id, emit);
            }
        } else {
            for id in self.assets {
                self.row(*id, emit);
            }
        }
    }

    fn chart(&self) -> Chart {
        Chart::Bars {
            label: 0,
            value: SPREAD,
        }
    }
}
