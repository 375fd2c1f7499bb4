//! The price table: the latest price of every (asset, venue) and one aggregate per asset, each
//! in its own cache-line-padded seqlock slot.
//!
//! Exactly one thread writes (the price thread, through the one [`TableWriter`]); every reactor
//! reads without locking, allocating or writing shared memory.

use std::sync::Arc;

use beast_core::{Decimal, Source, Symbol, Venue};
use crossbeam_utils::CachePadded;

use super::registry::{AssetId, AssetRegistry, RegistryError};
use super::seqlock::SeqLock;
use crate::history::{Candle, History, Interval, SeriesId};

/// Words per slot: price (2), exchange time, receive time, metadata.
const WORDS: usize = 5;
/// One slot per venue, then the aggregate.
const SLOTS_PER_ASSET: usize = Venue::COUNT + 1;
const AGGREGATE: usize = Venue::COUNT;
/// Read attempts before a reader gives up on a slot whose writer stopped mid-write.
const READ_ATTEMPTS: u32 = 64;

/// Metadata word: bit 0 = slot holds a price; bits 8..16 source byte; bits 16..24 number of
/// sources (aggregate); bits 32..64 spread in basis points (aggregate).
const PRESENT: u64 = 1;

/// One venue's latest price for an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub price: Decimal,
    pub source: Source,
    /// Exchange time of the update, Unix ms (receive time where the venue sends none).
    pub exchange_ms: u64,
    /// Our wall clock when the update arrived, Unix ms.
    pub received_ms: u64,
}

/// The price served for an asset: the median of its fresh sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aggregate {
    pub price: Decimal,
    /// The source whose update last changed the aggregate.
    pub source: Source,
    pub exchange_ms: u64,
    pub received_ms: u64,
    /// Fresh sources the median was taken over.
    pub sources: u8,
    /// (highest − lowest) / median of those sources, in basis points.
    pub spread_bps: u32,
}

pub struct PriceTable {
    registry: AssetRegistry,
    slots: Box<[CachePadded<SeqLock<WORDS>>]>,
    /// Candles of every price written here, by the same one writer.
    history: History,
    /// Its prices are made up (the exchange simulator, the demo walk): set once, before
    /// serving, and shown on every answer.
    simulated: std::sync::atomic::AtomicBool,
}

/// The only handle that writes to a [`PriceTable`]. Not `Clone`: one writer by construction.
pub struct TableWriter {
    table: Arc<PriceTable>,
}

impl PriceTable {
    /// A table for up to `capacity` assets, and its one writer (the history's default budget).
    pub fn new(capacity: usize) -> (Arc<PriceTable>, TableWriter) {
        PriceTable::with_history_budget(capacity, crate::history::DEFAULT_BUDGET_BYTES)
    }

    /// As [`PriceTable::new`], the candles kept within `history_bytes`.
    pub fn with_history_budget(
        capacity: usize,
        history_bytes: u64,
    ) -> (Arc<PriceTable>, TableWriter) {
        let registry = AssetRegistry::new(capacity);
        let slots = (0..registry.capacity() * SLOTS_PER_ASSET)
            .map(|_| CachePadded::new(SeqLock::new([0; WORDS])))
            .collect();
        let history = History::new(registry.capacity(), history_bytes);
        let table = Arc::new(PriceTable {
            registry,
            slots,
            history,
            simulated: std::sync::atomic::AtomicBool::new(false),
        });
        (Arc::clone(&table), TableWriter { table })
    }

    pub fn registry(&self) -> &AssetRegistry {
        &self.registry
    }

    /// Whether its prices are simulated.
    pub fn simulated(&self) -> bool {
        self.simulated.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Asset named by request bytes, any case.
    #[inline]
    pub fn lookup(&self, text: &[u8]) -> Option<AssetId> {
        self.registry.lookup(text)
    }

    /// The latest price `venue` gave for `asset`, if any.
    #[inline]
    pub fn quote(&self, asset: AssetId, venue: Venue) -> Option<Quote> {
        let words = self
            .slot(asset, venue.index())?
            .read_bounded(READ_ATTEMPTS)?;
        decode_quote(words)
    }

    /// The price served for `asset`, if it has one yet.
    #[inline]
    pub fn aggregate(&self, asset: AssetId) -> Option<Aggregate> {
        let words = self.slot(asset, AGGREGATE)?.read_bounded(READ_ATTEMPTS)?;
        let quote = decode_quote(words)?;
        let [.., meta] = words;
        Some(Aggregate {
            price: quote.price,
            source: quote.source,
            exchange_ms: quote.exchange_ms,
            received_ms: quote.received_ms,
            sources: ((meta >> 16) & 0xff) as u8,
            spread_bps: (meta >> 32) as u32,
        })
    }

    /// Changes with every write to the asset's aggregate: lets a poller skip unchanged assets.
    #[cfg(test)]
    pub(crate) fn aggregate_version(&self, asset: AssetId) -> Option<u64> {
        Some(self.slot(asset, AGGREGATE)?.version())
    }

    fn slot(&self, asset: AssetId, offset: usize) -> Option<&SeqLock<WORDS>> {
        self.slots
            .get(asset.index() * SLOTS_PER_ASSET + offset)
            .map(|padded| &**padded)
    }
}

impl TableWriter {
    pub fn table(&self) -> &Arc<PriceTable> {
        &self.table
    }

    /// Adds an asset (or finds it): assets can be added while readers run.
    /// Marks every price of the table as simulated (before serving).
    pub fn mark_simulated(&mut self) {
        self.table
            .simulated
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn add_asset(&mut self, symbol: &Symbol) -> Result<AssetId, RegistryError> {
        self.table.registry.insert(symbol)
    }

    /// Publishes a venue's price and places it in the venue's candles.
    pub fn publish_quote(&mut self, asset: AssetId, quote: &Quote) {
        self.table.history.record(
            asset,
            SeriesId::Venue(quote.source.venue),
            quote.price,
            quote.source.venue,
            quote.exchange_ms,
            quote.received_ms,
        );
        if let Some(slot) = self.table.slot(asset, quote.source.venue.index()) {
            slot.write(encode(
                quote.price,
                quote.source,
                quote.exchange_ms,
                quote.received_ms,
                0,
            ));
        }
    }

    /// Publishes the price served for an asset after one of its venues ticked, and places it
    /// in the served candles.
    pub fn publish_aggregate(&mut self, asset: AssetId, aggregate: &Aggregate) {
        self.record_served(asset, aggregate);
        self.write_aggregate(asset, aggregate);
    }

    /// Publishes a served price recomputed without a tick (a source went stale): a tick of
    /// the served candles only if the price moved.
    pub fn restate_aggregate(&mut self, asset: AssetId, aggregate: &Aggregate) {
        if self
            .table
            .aggregate(asset)
            .is_none_or(|current| current.price != aggregate.price)
        {
            self.record_served(asset, aggregate);
        }
        self.write_aggregate(asset, aggregate);
    }

    fn record_served(&self, asset: AssetId, aggregate: &Aggregate) {
        self.table.history.record(
            asset,
            SeriesId::Served,
            aggregate.price,
            aggregate.source.venue,
            aggregate.exchange_ms,
            aggregate.received_ms,
        );
    }

    fn write_aggregate(&self, asset: AssetId, aggregate: &Aggregate) {
        if let Some(slot) = self.table.slot(asset, AGGREGATE) {
            let extra = u64::from(aggregate.sources) << 16 | u64::from(aggregate.spread_bps) << 32;
            slot.write(encode(
                aggregate.price,
                aggregate.source,
                aggregate.exchange_ms,
                aggregate.received_ms,
                extra,
            ));
        }
    }
}

impl TableWriter {
    /// Puts back a candle kept from before a restart (before the feeds start).
    pub fn restore_candle(
        &mut self,
        asset: AssetId,
        series: SeriesId,
        interval: Interval,
        candle: &Candle,
    ) {
        self.table.history.restore(asset, series, interval, candle);
    }
}

fn encode(
    price: Decimal,
    source: Source,
    exchange_ms: u64,
    received_ms: u64,
    extra: u64,
) -> [u64; WORDS] {
    let [mantissa, notation] = price.to_words();
    let meta = PRESENT | u64::from(source.to_byte()) << 8 | extra;
    [mantissa, notation, exchange_ms, received_ms, meta]
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "fields are masked to their width"
)]
fn decode_quote(words: [u64; WORDS]) -> Option<Quote> {
    let [mantissa, notation, exchange_ms, received_ms, meta] = words;
    if meta & PRESENT == 0 {
        return None;
    }
    Some(Quote {
        price: Decimal::from_words([mantissa, notation])?,
        source: Source::from_byte(((meta >> 8) & 0xff) as u8)?,
        exchange_ms,
        received_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(price: &str, venue: Venue, ts: u64) -> Quote {
        Quote {
            price: Decimal::parse(price).unwrap(),
            source: Source::stream(venue),
            exchange_ms: ts,
            received_ms: ts + 1,
        }
    }

    #[test]
    fn stores_a_slot_per_venue_and_an_aggregate() {
        let (table, mut writer) = PriceTable::new(4);
        let btc = writer.add_asset(&Symbol::parse(b"BTC").unwrap()).unwrap();
        assert_eq!(table.quote(btc, Venue::Kraken), None, "no price yet");
        assert_eq!(table.aggregate(btc), None);

        let kraken = quote("97000.10", Venue::Kraken, 10);
        let okx = Quote {
            source: Source::rest(Venue::Okx),
            ..quote("97000.30", Venue::Okx, 20)
        };
        writer.publish_quote(btc, &kraken);
        writer.publish_quote(btc, &okx);
        assert_eq!(table.quote(btc, Venue::Kraken), Some(kraken));
        assert_eq!(table.quote(btc, Venue::Okx), Some(okx));
        assert_eq!(table.quote(btc, Venue::Gemini), None);

        let before = table.aggregate_version(btc);
        let aggregate = Aggregate {
            price: Decimal::parse("97000.2").unwrap(),
            source: okx.source,
            exchange_ms: 20,
            received_ms: 21,
            sources: 2,
            spread_bps: 2,
        };
        writer.publish_aggregate(btc, &aggregate);
        assert_eq!(table.aggregate(btc), Some(aggregate));
        assert_ne!(table.aggregate_version(btc), before);
        assert_eq!(
            table.aggregate(btc).map(|a| a.price.to_string()),
            Some("97000.2".into())
        );
    }

    #[test]
    fn readers_find_assets_added_later() {
        let (table, mut writer) = PriceTable::new(2);
        assert_eq!(table.lookup(b"eth"), None);
        let eth = writer.add_asset(&Symbol::parse(b"ETH").unwrap()).unwrap();
        assert_eq!(table.lookup(b"eth"), Some(eth));
        writer.add_asset(&Symbol::parse(b"SOL").unwrap()).unwrap();
        assert!(writer.add_asset(&Symbol::parse(b"XRP").unwrap()).is_err());
    }
}
