//! The price served for an asset: the median of its fresh venue prices.
//!
//! Fresh means younger than the stale limit. With no fresh venue the newest price is served
//! as it is (and shows `"stale":true`), which beats no price. A configured primary venue, when
//! fresh, is served instead of the median.

use beast_core::{Decimal, Venue};

use super::registry::AssetId;
use super::table::{Aggregate, PriceTable, Quote};

/// Computes `asset`'s aggregate from the venue slots of `table`.
pub fn aggregate(
    table: &PriceTable,
    asset: AssetId,
    now_ms: u64,
    stale_after_ms: u64,
    primary: Option<Venue>,
) -> Option<Aggregate> {
    let mut quotes: [Option<Quote>; Venue::COUNT] = [None; Venue::COUNT];
    for (slot, venue) in quotes.iter_mut().zip(Venue::ALL) {
        *slot = table.quote(asset, venue);
    }
    combine(&quotes, now_ms, stale_after_ms, primary)
}

/// The aggregate of a set of venue quotes (see the module documentation).
pub(crate) fn combine(
    quotes: &[Option<Quote>],
    now_ms: u64,
    stale_after_ms: u64,
    primary: Option<Venue>,
) -> Option<Aggregate> {
    let is_fresh = |q: &Quote| now_ms.saturating_sub(q.exchange_ms) <= stale_after_ms;
    let mut prices = [Decimal::ZERO; Venue::COUNT];
    let mut fresh = 0;
    let mut newest: Option<Quote> = None;
    for quote in quotes.iter().flatten() {
        if newest.is_none_or(|n| quote.exchange_ms > n.exchange_ms) {
            newest = Some(*quote);
        }
        if is_fresh(quote)
            && let Some(slot) = prices.get_mut(fresh)
        {
            *slot = quote.price;
            fresh += 1;
        }
    }
    let newest = newest?;
    if fresh == 0 {
        return Some(single(&newest));
    }
    if let Some(primary) = primary
        && let Some(quote) = quotes
            .iter()
            .flatten()
            .find(|q| q.source.venue == primary && is_fresh(q))
    {
        return Some(Aggregate {
            sources: u8::try_from(fresh).unwrap_or(u8::MAX),
            ..single(quote)
        });
    }
    let fresh_prices = prices.get_mut(..fresh)?;
    let median = Decimal::median(fresh_prices)?;
    let (low, high) = (fresh_prices.first()?, fresh_prices.last()?);
    let spread_bps = spread_bps(low, high, &median);
    // Attribute the median to the fresh venue closest to it, and to the newest fresh update.
    let closest = quotes
        .iter()
        .flatten()
        .filter(|q| is_fresh(q))
        .min_by_key(|q| {
            if q.price >= median {
                q.price.checked_sub(&median)
            } else {
                median.checked_sub(&q.price)
            }
        })?;
    let exchange_ms = quotes
        .iter()
        .flatten()
        .filter(|q| is_fresh(q))
        .map(|q| q.exchange_ms)
        .max()
        .unwrap_or(newest.exchange_ms);
    let received_ms = quotes
        .iter()
        .flatten()
        .filter(|q| is_fresh(q))
        .map(|q| q.received_ms)
        .max()
        .unwrap_or(newest.received_ms);
    Some(Aggregate {
        price: median,
        source: closest.source,
        exchange_ms,
        received_ms,
        sources: u8::try_from(fresh).unwrap_or(u8::MAX),
        spread_bps: u32::try_from(spread_bps).unwrap_or(u32::MAX),
    })
}

fn single(quote: &Quote) -> Aggregate {
    Aggregate {
        price: quote.price,
        source: quote.source,
        exchange_ms: quote.exchange_ms,
        received_ms: quote.received_ms,
        sources: 1,
        spread_bps: 0,
    }
}

/// (high − low) / median in basis points.
fn spread_bps(low: &Decimal, high: &Decimal, median: &Decimal) -> u64 {
    high.checked_sub(low)
        .and_then(|width| median.checked_add(&width))
        .and_then(|top| top.excess_bps(median))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use beast_core::Source;

    fn quote(venue: Venue, price: &str, ts: u64) -> Option<Quote> {
        Some(Quote {
            price: Decimal::parse(price).unwrap(),
            source: Source::stream(venue),
            exchange_ms: ts,
            received_ms: ts,
        })
    }

    #[test]
    fn median_of_fresh_sources() {
        // (quotes, now, primary, expected price, expected source venue, sources)
        let cases: Vec<(Vec<Option<Quote>>, u64, Option<Venue>, &str, Venue, u8)> = vec![
            (
                vec![quote(Venue::Kraken, "100", 1_000)],
                2_000,
                None,
                "100",
                Venue::Kraken,
                1,
            ),
            (
                vec![
                    quote(Venue::Kraken, "100", 1_000),
                    quote(Venue::Okx, "102", 1_500),
                    quote(Venue::Gemini, "101", 1_200),
                ],
                2_000,
                None,
                "101",
                Venue::Gemini,
                3,
            ),
            (
                vec![
                    quote(Venue::Kraken, "100", 1_000),
                    quote(Venue::Okx, "103", 1_500),
                ],
                2_000,
                None,
                "101.5",
                Venue::Kraken,
                2,
            ),
            // a stale source does not count
            (
                vec![
                    quote(Venue::Kraken, "100", 1_000),
                    quote(Venue::Okx, "500", 1),
                ],
                9_000,
                None,
                "100",
                Venue::Kraken,
                1,
            ),
            // nothing fresh: the newest, as is
            (
                vec![
                    quote(Venue::Kraken, "100", 1_000),
                    quote(Venue::Okx, "99", 2_000),
                ],
                60_000,
                None,
                "99",
                Venue::Okx,
                1,
            ),
            // a fresh primary wins
            (
                vec![
                    quote(Venue::Kraken, "100", 1_000),
                    quote(Venue::Okx, "102", 1_500),
                    quote(Venue::Gemini, "101", 1_200),
                ],
                2_000,
                Some(Venue::Okx),
                "102",
                Venue::Okx,
                3,
            ),
        ];
        for (i, (quotes, now, primary, price, venue, sources)) in cases.into_iter().enumerate() {
            let got = combine(&quotes, now, 8_000, primary).unwrap();
            assert_eq!(
                (
                    got.price.to_string().as_str(),
                    got.source.venue,
                    got.sources
                ),
                (price, venue, sources),
                "TC{i}"
            );
        }
        assert!(combine(&[None, None], 0, 1, None).is_none());
        let spread = combine(
            &[quote(Venue::Kraken, "100", 1), quote(Venue::Okx, "101", 1)],
            1,
            10,
            None,
        )
        .unwrap();
        assert_eq!(spread.spread_bps, 99, "1 / 100.5");
    }
}
