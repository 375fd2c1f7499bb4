//! The price thread: the one writer of the price table. It registers the prewarmed assets,
//! publishes the seed prices and, for demonstrations, walks them; each change to a venue's price
//! is followed by a fresh aggregate for that asset. (The exchange feeds push into it later.)

pub mod seed;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use beast_core::{Decimal, Symbol, Venue};

use crate::node::wall_ms;
use crate::price::aggregate::aggregate;
use crate::price::{AssetId, Quote, TableWriter};

pub use seed::{Seed, SeedError};

/// How often the demo walk moves prices.
const WALK_EVERY: Duration = Duration::from_millis(500);

pub struct PriceThreadOptions {
    pub prewarm: Vec<(Venue, Vec<Symbol>)>,
    pub seeds: Vec<Seed>,
    pub demo_walk: bool,
    pub stale_after_ms: u64,
}

/// The running price thread.
pub struct PriceThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PriceThread {
    /// Registers and publishes synchronously (so prices are there when this returns), then
    /// keeps walking prices on its thread if asked to.
    pub fn start(mut writer: TableWriter, options: PriceThreadOptions) -> PriceThread {
        let mut published = Vec::new();
        for (_, symbols) in &options.prewarm {
            for symbol in symbols {
                if let Err(e) = writer.add_asset(symbol) {
                    tracing::warn!(asset = %symbol, error = %e, "prewarmed asset not added");
                }
            }
        }
        for seed in &options.seeds {
            match writer.add_asset(&seed.asset) {
                Ok(asset) => {
                    let quote = Quote {
                        price: seed.price,
                        source: seed.source,
                        exchange_ms: seed.exchange_ms,
                        received_ms: wall_ms(),
                    };
                    publish(&mut writer, asset, &quote, options.stale_after_ms);
                    published.push((asset, quote));
                }
                Err(e) => tracing::warn!(asset = %seed.asset, error = %e, "seeded asset not added"),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handle = options.demo_walk.then(|| {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("beast-prices".into())
                .spawn(move || walk(writer, published, options.stale_after_ms, &stop))
                .ok()
        });
        PriceThread {
            stop,
            handle: handle.flatten(),
        }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

fn publish(writer: &mut TableWriter, asset: AssetId, quote: &Quote, stale_after_ms: u64) {
    writer.publish_quote(asset, quote);
    if let Some(agg) = aggregate(writer.table(), asset, wall_ms(), stale_after_ms, None) {
        writer.publish_aggregate(asset, &agg);
    }
}

/// Moves every seeded price by up to ±0.1 % in its last digits, twice a second, with a fresh
/// exchange time, so freshness and price changes are visible without exchanges.
fn walk(
    mut writer: TableWriter,
    mut quotes: Vec<(AssetId, Quote)>,
    stale_after_ms: u64,
    stop: &AtomicBool,
) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ wall_ms();
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(WALK_EVERY);
        let now = wall_ms();
        for (asset, quote) in &mut quotes {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            quote.price = step(quote.price, rng);
            quote.exchange_ms = now;
            quote.received_ms = now;
            publish(&mut writer, *asset, quote, stale_after_ms);
        }
    }
}

/// `price` moved by a random amount within ±0.1 %, at its own scale.
fn step(price: Decimal, random: u64) -> Decimal {
    let mantissa = price.mantissa();
    let reach = (mantissa / 1000).max(1);
    let delta = random % (2 * reach + 1);
    let moved = (mantissa + delta).saturating_sub(reach).max(1);
    Decimal::from_parts(moved, price.scale()).unwrap_or(price)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stay_close_and_positive() {
        let price = Decimal::parse("97123.45").unwrap();
        for random in [0u64, 1, 7, 9_712, 19_424, u64::MAX] {
            let moved = step(price, random);
            assert!(
                moved.excess_bps(&price).unwrap_or(0) <= 10
                    && price.excess_bps(&moved).unwrap_or(0) <= 10,
                "{moved}"
            );
        }
        assert!(!step(Decimal::parse("0.00000001").unwrap(), 0).is_zero());
    }
}
