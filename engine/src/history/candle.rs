//! One candle and its six-word form in a seqlock slot.
//!
//! Words: open time (Unix ms); ticks (bits 0..32), the scale shared by the four prices (bits
//! 32..40) and a bit per venue that ticked (bits 40..48); then the open, high, low and close
//! mantissas at that scale. A slot whose tick count is 0 holds no candle.

use beast_core::{Decimal, Venue};

pub(crate) const WORDS: usize = 6;

/// Open, high, low and close of the prices in one interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candle {
    pub open_ms: u64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub ticks: u32,
    /// A bit per venue ([`Venue::index`]) whose prices went into the candle.
    pub venues: u8,
}

impl Candle {
    /// A candle of one tick.
    pub fn first(open_ms: u64, price: Decimal, venue: Venue) -> Candle {
        Candle {
            open_ms,
            open: price,
            high: price,
            low: price,
            close: price,
            ticks: 1,
            venues: venue_bit(venue),
        }
    }

    /// This candle with one more tick.
    pub fn with(mut self, price: Decimal, venue: Venue) -> Candle {
        if price > self.high {
            self.high = price;
        }
        if price < self.low {
            self.low = price;
        }
        self.close = price;
        self.ticks = self.ticks.saturating_add(1);
        self.venues |= venue_bit(venue);
        self
    }

    /// How many venues' prices went into it.
    pub fn venue_count(&self) -> u32 {
        self.venues.count_ones()
    }

    /// The six words, or `None` if a price cannot share a scale with the others (a mantissa
    /// past 64 bits: not a price any venue quotes).
    pub(crate) fn encode(&self) -> Option<[u64; WORDS]> {
        let prices = [self.open, self.high, self.low, self.close];
        let scale = prices.iter().map(Decimal::scale).max().unwrap_or(0);
        let mut mantissas = [0u64; 4];
        for (slot, price) in mantissas.iter_mut().zip(prices) {
            let up = u32::from(scale - price.scale());
            *slot = price.mantissa().checked_mul(10u64.checked_pow(up)?)?;
        }
        let [open, high, low, close] = mantissas;
        let meta = u64::from(self.ticks) | u64::from(scale) << 32 | u64::from(self.venues) << 40;
        Some([self.open_ms, meta, open, high, low, close])
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "fields are masked to their width"
    )]
    pub(crate) fn decode(words: [u64; WORDS]) -> Option<Candle> {
        let [open_ms, meta, open, high, low, close] = words;
        let ticks = (meta & 0xffff_ffff) as u32;
        if ticks == 0 {
            return None;
        }
        let scale = ((meta >> 32) & 0xff) as u8;
        let price = |mantissa| {
            Decimal::from_parts(mantissa, scale)
                .ok()
                .map(|d| d.canonical())
        };
        Some(Candle {
            open_ms,
            open: price(open)?,
            high: price(high)?,
            low: price(low)?,
            close: price(close)?,
            ticks,
            venues: ((meta >> 40) & 0xff) as u8,
        })
    }
}

fn venue_bit(venue: Venue) -> u8 {
    1u8.checked_shl(u32::try_from(venue.index()).unwrap_or(8))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn ticks_make_open_high_low_close() {
        let cases: [(&[(&str, Venue)], [&str; 4], u32, u32); 3] = [
            (
                &[("1.5", Venue::Kraken)],
                ["1.5", "1.5", "1.5", "1.5"],
                1,
                1,
            ),
            (
                &[
                    ("97000.10", Venue::Kraken),
                    ("97010", Venue::Okx),
                    ("96990.5", Venue::Kraken),
                    ("97001", Venue::Gemini),
                ],
                ["97000.1", "97010", "96990.5", "97001"],
                4,
                3,
            ),
            (
                &[("0.00001234", Venue::Gateio), ("0.00001200", Venue::Gateio)],
                ["0.00001234", "0.00001234", "0.000012", "0.000012"],
                2,
                1,
            ),
        ];
        for (ticks, [open, high, low, close], count, venues) in cases {
            let (first, rest) = ticks.split_first().unwrap();
            let mut candle = Candle::first(60_000, d(first.0), first.1);
            for (price, venue) in rest {
                candle = candle.with(d(price), *venue);
            }
            let decoded = Candle::decode(candle.encode().unwrap()).unwrap();
            assert_eq!(decoded, candle);
            let text = [decoded.open, decoded.high, decoded.low, decoded.close]
                .map(|p| p.format().as_str().to_string());
            assert_eq!(text, [open, high, low, close].map(String::from));
            assert_eq!((decoded.ticks, decoded.venue_count()), (count, venues));
        }
    }

    #[test]
    fn an_empty_slot_is_no_candle() {
        assert_eq!(Candle::decode([0; WORDS]), None);
    }
}
