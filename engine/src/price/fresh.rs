//! How old a price is, and whether it is still fresh: what every answer says of it.

/// How prices are shown in one batch of answers: their clock, freshness and provenance.
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    /// Wall clock, Unix ms.
    pub now_ms: u64,
    /// Prices older than this are served with `"stale":true`.
    pub stale_after_ms: u64,
    /// Prices are made up: sources read `sim-…` and answers carry `"simulated":true`.
    pub simulated: bool,
}

impl Freshness {
    /// Age of a price from its exchange time; clocks that run ahead of ours count as 0.
    pub fn age_ms(&self, exchange_ms: u64) -> u64 {
        self.now_ms.saturating_sub(exchange_ms)
    }

    pub(crate) fn is_stale(&self, exchange_ms: u64) -> bool {
        self.age_ms(exchange_ms) > self.stale_after_ms
    }
}
