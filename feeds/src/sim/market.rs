//! The simulator's prices: one moving price per (venue, asset), driven either by the recorded
//! sessions (each asset follows the relative moves of the venue's recorded price path, from its
//! own starting point) or by a random walk. The simulator writes decimal text; it may use
//! floats because it only makes prices up.

#![allow(
    clippy::cast_possible_truncation,
    reason = "made-up prices: truncating floats is intended"
)]

use std::collections::HashMap;
use std::sync::Mutex;

use beast_core::{Symbol, Venue};

/// What moves the prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The recorded sessions' price paths, replayed as relative moves.
    Samples,
    /// A random walk (±0.05 % per step).
    Walk,
}

/// Starting prices of well-known assets; others get a stable made-up one.
const KNOWN: [(&str, f64); 16] = [
    ("BTC", 97_123.45),
    ("ETH", 3_512.5),
    ("SOL", 187.42),
    ("BNB", 702.15),
    ("XRP", 2.4187),
    ("DOGE", 0.32145),
    ("PEPE", 0.000_012_34),
    ("BONK", 0.000_028_71),
    ("SHIB", 0.000_022_13),
    ("LTC", 104.37),
    ("LINK", 23.118),
    ("TON", 5.512),
    ("TIA", 5.812),
    ("CRO", 0.158_7),
    ("TAO", 472.8),
    ("ETC", 27.31),
];

/// Recorded price paths (samples/): BTC-USD on Coinbase, ETH-USD trades on Gemini (v2),
/// the tickers of Gate.io and Crypto.com (v2) and OKX BTC-USDT. Kraken's recording is v1; it
/// borrows Coinbase's path.
const PATHS: [(Venue, &[f64]); 5] = [
    (
        Venue::Coinbase,
        &[
            65086.18, 65084.0, 65083.67, 65086.1, 65087.9, 65090.02, 65089.4, 65091.77, 65088.3,
            65085.12, 65083.01, 65080.5, 65082.44, 65086.9, 65089.99, 65092.4, 65095.05, 65093.2,
            65090.8, 65088.66,
        ],
    ),
    (
        Venue::Gemini,
        &[
            1919.41, 1919.52, 1919.38, 1919.6, 1919.77, 1919.9, 1919.71, 1919.55, 1919.44, 1919.3,
            1919.28, 1919.45, 1919.62, 1919.8, 1920.01, 1920.12, 1919.98, 1919.85, 1919.66, 1919.5,
        ],
    ),
    (
        Venue::Gateio,
        &[
            0.0018716, 0.0018716, 0.0018735, 0.0018721, 0.0018709, 0.0018698, 0.0018712, 0.0018729,
            0.0018741, 0.0018733, 0.0018718, 0.0018704, 0.0018711, 0.0018726, 0.0018738, 0.0018745,
            0.0018731, 0.0018719, 0.0018707, 0.0018715,
        ],
    ),
    (
        Venue::Cryptocom,
        &[
            7.5328, 7.5341, 7.5319, 7.5302, 7.5287, 7.5299, 7.5315, 7.5333, 7.5348, 7.5361, 7.5352,
            7.5338, 7.5324, 7.5311, 7.5296, 7.5284, 7.5297, 7.5313, 7.5329, 7.5344,
        ],
    ),
    (
        Venue::Okx,
        &[
            30218.8, 30220.1, 30215.4, 30212.9, 30216.7, 30221.3, 30225.8, 30223.2, 30219.6,
            30214.1, 30210.5, 30213.9, 30218.2, 30222.7, 30226.4, 30224.1, 30220.8, 30217.3,
            30214.6, 30216.9,
        ],
    ),
];

struct Book {
    price: f64,
    step: usize,
}

/// Every (venue, asset) price the simulator has handed out.
pub struct Market {
    source: Source,
    books: Mutex<HashMap<(Venue, Symbol), Book>>,
    rng: Mutex<u64>,
}

impl Market {
    pub fn new(source: Source) -> Market {
        Market {
            source,
            books: Mutex::new(HashMap::new()),
            rng: Mutex::new(0x5EED_CAFE_F00D_1234),
        }
    }

    fn start_price(venue: Venue, asset: &Symbol) -> f64 {
        let base = KNOWN
            .iter()
            .find(|(name, _)| *name == asset.as_str())
            .map(|(_, p)| *p)
            .unwrap_or_else(|| {
                // A stable made-up price between 0.001 and 100 from the symbol's bytes.
                let hash = asset
                    .as_bytes()
                    .iter()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
                    });
                let exponent = (hash % 6) as i32 - 3;
                (1.0 + (hash >> 8) as f64 % 9.0) * 10f64.powi(exponent)
            });
        // Venues differ a little, so a two-source asset has a spread.
        base * (1.0 + 0.0002 * venue.index() as f64)
    }

    /// The next price of `asset` on `venue`, as decimal text.
    pub fn tick(&self, venue: Venue, asset: &Symbol) -> String {
        let random = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng
        };
        let mut books = self
            .books
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let book = books.entry((venue, *asset)).or_insert_with(|| Book {
            price: Market::start_price(venue, asset),
            step: (random % 20) as usize,
        });
        match self.source {
            Source::Walk => {
                let step = ((random % 2001) as f64 - 1000.0) / 1000.0 * 0.0005;
                book.price *= 1.0 + step;
            }
            Source::Samples => {
                let path = PATHS
                    .iter()
                    .find(|(v, _)| *v == venue)
                    .or(PATHS.first())
                    .map_or(&[1.0][..], |(_, p)| *p);
                let len = path.len().max(1);
                let (from, to) = (
                    path.get(book.step % len).copied().unwrap_or(1.0),
                    path.get((book.step + 1) % len).copied().unwrap_or(1.0),
                );
                book.price *= to / from;
                book.step += 1;
            }
        }
        format_price(book.price)
    }

    /// The current price (no move), as decimal text.
    pub fn current(&self, venue: Venue, asset: &Symbol) -> String {
        let books = self
            .books
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match books.get(&(venue, *asset)) {
            Some(book) => format_price(book.price),
            None => {
                drop(books);
                self.tick(venue, asset)
            }
        }
    }

    /// Assets quoted on `venue` so far.
    pub fn assets(&self, venue: Venue) -> Vec<Symbol> {
        let books = self
            .books
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut assets: Vec<Symbol> = books
            .keys()
            .filter(|(v, _)| *v == venue)
            .map(|(_, a)| *a)
            .collect();
        assets.sort();
        assets
    }
}

/// Decimal text with about eight significant digits, as exchanges quote.
fn format_price(price: f64) -> String {
    let price = price.max(1e-12);
    let decimals = if price >= 1000.0 {
        2
    } else if price >= 1.0 {
        4
    } else {
        (8.0 - price.log10().floor()).clamp(4.0, 16.0) as usize
    };
    format!("{price:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use beast_core::Decimal;

    #[test]
    fn prices_are_valid_decimals_that_move() {
        for source in [Source::Samples, Source::Walk] {
            let market = Market::new(source);
            for name in ["BTC", "PEPE", "1INCH", "S", "CHILLGUY"] {
                let asset = Symbol::parse(name.as_bytes()).unwrap();
                let first = market.tick(Venue::Okx, &asset);
                let prices: Vec<String> =
                    (0..30).map(|_| market.tick(Venue::Okx, &asset)).collect();
                for text in prices.iter().chain([&first]) {
                    let value = Decimal::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert!(!value.is_zero(), "{name} {text}");
                }
                assert!(
                    prices.iter().any(|p| *p != first),
                    "{source:?} {name} moves"
                );
            }
        }
    }
}
