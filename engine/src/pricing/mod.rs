//! The price thread: the one writer of the price table.
//!
//! It registers the prewarmed assets, publishes the seed prices, then drains every feed's SPSC
//! ring and the REST fallback's results into the table: a venue's quote, then a fresh aggregate
//! for that asset (the median of its fresh sources). Four times a second it looks for assets
//! whose stream went quiet past the stale limit and asks their venue's REST ticker for them, until
//! the stream is fresh again; it also republishes aggregates whose sources went stale.

pub mod seed;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use beast_core::{Channel, Decimal, Source, Symbol, Venue};
use beast_feeds::client::{FeedEvent, FeedSpec, FeedStatus, Feeds};

use crate::price::aggregate::aggregate;
use crate::price::{AssetId, Quote, TableWriter};
use beast_core::clock::wall_ms;

pub use seed::{Seed, SeedError};

/// How often the demo walk moves prices.
const WALK_EVERY: Duration = Duration::from_millis(500);
/// How often staleness is checked.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

pub struct PriceThreadOptions {
    /// Each venue's subscribed assets.
    pub prewarm: Vec<(Venue, Vec<Symbol>)>,
    pub seeds: Vec<Seed>,
    pub demo_walk: bool,
    pub stale_after_ms: u64,
    /// A venue served, when fresh, instead of the median.
    pub primary: Option<Venue>,
    /// Least time between two REST polls of one venue.
    pub rest_every: Duration,
    /// The feeds to start (on the price thread, which drains them).
    pub feeds: Vec<FeedSpec>,
}

/// The running price thread.
pub struct PriceThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PriceThread {
    /// Registers and seeds synchronously (so prices are there when this returns), then runs
    /// the feeds and the walk on its own thread if there are any.
    pub fn start(
        mut writer: TableWriter,
        options: PriceThreadOptions,
    ) -> std::io::Result<PriceThread> {
        let mut state = State::new(&options);
        for (_, symbols) in &options.prewarm {
            for symbol in symbols {
                if let Err(e) = writer.add_asset(symbol) {
                    tracing::warn!(asset = %symbol, error = %e, "prewarmed asset not added");
                }
            }
        }
        for seed in &options.seeds {
            let event = FeedEvent {
                venue: seed.source.venue,
                channel: seed.source.channel,
                asset: seed.asset,
                price: seed.price,
                exchange_ms: seed.exchange_ms,
                received_ms: wall_ms(),
            };
            if let Some(asset) = state.apply(&mut writer, &event) {
                state.walked.push((asset, event));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        if options.feeds.is_empty() && !options.demo_walk {
            return Ok(PriceThread { stop, handle: None });
        }
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("beast-prices".into())
            .spawn(move || {
                let feeds = if options.feeds.is_empty() {
                    None
                } else {
                    match Feeds::start(options.feeds, std::thread::current()) {
                        Ok(feeds) => Some(feeds),
                        Err(e) => {
                            tracing::error!(error = %e, "feeds did not start");
                            None
                        }
                    }
                };
                state.run(writer, feeds, options.demo_walk, &thread_stop);
            })?;
        Ok(PriceThread {
            stop,
            handle: Some(handle),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// What the price thread keeps between events.
struct State {
    subscriptions: Vec<(Venue, Vec<Symbol>)>,
    stale_after_ms: u64,
    primary: Option<Venue>,
    rest_every: Duration,
    /// Per asset id: when each venue's stream last priced it (Unix ms, 0: never).
    last_stream_ms: Vec<[u64; Venue::COUNT]>,
    last_rest_poll: [Option<Instant>; Venue::COUNT],
    /// Seeded quotes the demo walk moves.
    walked: Vec<(AssetId, FeedEvent)>,
    rng: u64,
    /// Each feed's status, where REST prices applied or ignored are counted.
    statuses: Vec<Arc<FeedStatus>>,
    /// Every venue was unreachable at the last sweep (said once when it starts and ends).
    offline: bool,
}

impl State {
    fn new(options: &PriceThreadOptions) -> State {
        State {
            subscriptions: options.prewarm.clone(),
            stale_after_ms: options.stale_after_ms,
            primary: options.primary,
            rest_every: options.rest_every,
            last_stream_ms: Vec::new(),
            last_rest_poll: [None; Venue::COUNT],
            walked: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15 ^ wall_ms(),
            statuses: options
                .feeds
                .iter()
                .map(|feed| Arc::clone(&feed.status))
                .collect(),
            offline: false,
        }
    }

    fn run(
        mut self,
        mut writer: TableWriter,
        mut feeds: Option<Feeds>,
        walk: bool,
        stop: &AtomicBool,
    ) {
        let (mut next_sweep, mut next_walk) = (Instant::now(), Instant::now() + WALK_EVERY);
        while !stop.load(Ordering::Acquire) {
            if let Some(feeds) = feeds.as_mut() {
                for ring in &mut feeds.rings {
                    while let Ok(event) = ring.pop() {
                        self.apply(&mut writer, &event);
                    }
                }
                while let Ok(event) = feeds.rest_results.try_recv() {
                    self.apply(&mut writer, &event);
                }
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep(&mut writer, feeds.as_ref());
                next_sweep = now + SWEEP_EVERY;
            }
            if walk && now >= next_walk {
                self.walk(&mut writer);
                next_walk = now + WALK_EVERY;
            }
            // Feed threads unpark us when prices arrive.
            let wake = next_sweep.min(if walk { next_walk } else { next_sweep });
            std::thread::park_timeout(wake.saturating_duration_since(Instant::now()));
        }
        if let Some(mut feeds) = feeds {
            feeds.stop();
        }
    }

    /// Adds one to a counter of `venue`'s feed status.
    fn count(&self, venue: Venue, counter: impl Fn(&FeedStatus) -> &AtomicU64) {
        if let Some(status) = self.statuses.iter().find(|s| s.venue == venue) {
            FeedStatus::add(counter(status), 1);
        }
    }

    /// Publishes one venue price and the asset's new aggregate; returns the asset's id.
    fn apply(&mut self, writer: &mut TableWriter, event: &FeedEvent) -> Option<AssetId> {
        if event.price.is_zero() {
            return None;
        }
        let asset = match writer.add_asset(&event.asset) {
            Ok(asset) => asset,
            // Counted by the registry (`beast_assets_refused_total`).
            Err(_) => return None,
        };
        let rest_after_ms = self.rest_after_ms();
        let slot = self.stream_times(asset);
        let venue_index = event.venue.index();
        match event.channel {
            Channel::Stream => {
                if let Some(t) = slot.and_then(|s| s.get_mut(venue_index)) {
                    *t = event.received_ms;
                }
            }
            Channel::Rest => {
                // The stream took over again: its price is newer than any poll.
                let stream_fresh = slot
                    .and_then(|s| s.get(venue_index))
                    .is_some_and(|t| event.received_ms.saturating_sub(*t) <= rest_after_ms);
                if stream_fresh {
                    self.count(event.venue, |s| &s.rest_superseded);
                    return Some(asset);
                }
                self.count(event.venue, |s| &s.rest_applied);
            }
        }
        // A time in the future never ages: such a price would be fresh forever.
        let exchange_ms = if event.exchange_ms
            > event
                .received_ms
                .saturating_add(beast_core::clock::FUTURE_TOLERANCE_MS)
        {
            self.count(event.venue, |s| &s.future_times);
            event.received_ms
        } else {
            event.exchange_ms
        };
        let quote = Quote {
            price: event.price,
            source: Source {
                venue: event.venue,
                channel: event.channel,
            },
            exchange_ms,
            received_ms: event.received_ms,
        };
        writer.publish_quote(asset, &quote);
        self.publish_aggregate(writer, asset, event.received_ms);
        Some(asset)
    }

    fn publish_aggregate(&self, writer: &mut TableWriter, asset: AssetId, now_ms: u64) {
        if let Some(agg) = aggregate(
            writer.table(),
            asset,
            now_ms,
            self.stale_after_ms,
            self.primary,
        ) {
            writer.publish_aggregate(asset, &agg);
        }
    }

    /// How long a stream may leave an asset unpriced before REST is asked for it, and before a
    /// REST price beats the stream's: half the stale limit, so the REST price is in before the
    /// stream's last one goes stale (a stalled stream shows only by its silence), and clients
    /// are never served a stale price in between.
    fn rest_after_ms(&self) -> u64 {
        self.stale_after_ms / 2
    }

    fn stream_times(&mut self, asset: AssetId) -> Option<&mut [u64; Venue::COUNT]> {
        if self.last_stream_ms.len() <= asset.index() {
            self.last_stream_ms
                .resize(asset.index() + 1, [0; Venue::COUNT]);
        }
        self.last_stream_ms.get_mut(asset.index())
    }

    /// Asks each venue's REST poller for its subscribed assets whose stream is stale, and
    /// republishes aggregates whose inputs went stale.
    fn sweep(&mut self, writer: &mut TableWriter, feeds: Option<&Feeds>) {
        let now = wall_ms();
        let offline = FeedStatus::none_reachable(&self.statuses);
        if offline != std::mem::replace(&mut self.offline, offline) {
            if offline {
                tracing::error!(
                    venues = self.statuses.len(),
                    "no exchange is reachable: every venue's connection fails (no network, or blocked?); no fresh price will be served until one connects (--feeds sim runs on simulated prices)"
                );
            } else {
                tracing::info!("an exchange is reachable again");
            }
        }
        let registry = writer.table().registry();
        if let Some(feeds) = feeds {
            for (venue, symbols) in &self.subscriptions {
                let stale: Vec<Symbol> = symbols
                    .iter()
                    .filter(|symbol| {
                        let last = registry
                            .find(symbol)
                            .and_then(|id| self.last_stream_ms.get(id.index()))
                            .and_then(|t| t.get(venue.index()))
                            .copied()
                            .unwrap_or(0);
                        now.saturating_sub(last) > self.rest_after_ms()
                    })
                    .copied()
                    .collect();
                if let Some(status) = self.statuses.iter().find(|s| s.venue == *venue) {
                    status
                        .rest_active
                        .store(!stale.is_empty(), Ordering::Relaxed);
                }
                let Some(last_poll) = self.last_rest_poll.get_mut(venue.index()) else {
                    continue;
                };
                if stale.is_empty() || last_poll.is_some_and(|at| at.elapsed() < self.rest_every) {
                    continue;
                }
                if let Some((_, requests)) = feeds.rest_requests.iter().find(|(v, _)| v == venue) {
                    // A poller still busy with the last request skips this one.
                    if requests.try_send(stale).is_ok() {
                        *last_poll = Some(Instant::now());
                    }
                }
            }
        }
        // A source that went stale changes the median: recompute where it did.
        let ids: Vec<AssetId> = registry.iter().map(|(id, _)| id).collect();
        for id in ids {
            let Some(current) = writer.table().aggregate(id) else {
                continue;
            };
            if let Some(next) =
                aggregate(writer.table(), id, now, self.stale_after_ms, self.primary)
                && (next.price != current.price
                    || next.sources != current.sources
                    || next.source != current.source)
            {
                writer.restate_aggregate(id, &next);
            }
        }
    }

    /// Moves every seeded price by up to ±0.1 % in its last digits, with a fresh time, so
    /// freshness and price changes are visible without exchanges.
    fn walk(&mut self, writer: &mut TableWriter) {
        let now = wall_ms();
        let mut walked = std::mem::take(&mut self.walked);
        for (_, event) in &mut walked {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            event.price = step(event.price, self.rng);
            event.exchange_ms = now;
            event.received_ms = now;
            self.apply(writer, event);
        }
        self.walked = walked;
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
    use crate::price::PriceTable;

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

    fn event(venue: Venue, channel: Channel, price: &str, received_ms: u64) -> FeedEvent {
        FeedEvent {
            venue,
            channel,
            asset: Symbol::parse(b"CRO").unwrap(),
            price: Decimal::parse(price).unwrap(),
            exchange_ms: received_ms,
            received_ms,
        }
    }

    #[test]
    fn rest_fills_in_until_the_stream_is_fresh_again() {
        let (table, mut writer) = PriceTable::new(8);
        let options = PriceThreadOptions {
            prewarm: Vec::new(),
            seeds: Vec::new(),
            demo_walk: false,
            stale_after_ms: 1_000,
            primary: None,
            rest_every: Duration::from_secs(1),
            feeds: Vec::new(),
        };
        let mut state = State::new(&options);
        let kraken = Arc::new(FeedStatus::new(Venue::Kraken));
        state.statuses.push(Arc::clone(&kraken));
        let cro = state
            .apply(
                &mut writer,
                &event(Venue::Kraken, Channel::Stream, "0.1587", 10_000),
            )
            .unwrap();
        // A REST answer while the stream is fresh is ignored.
        state.apply(
            &mut writer,
            &event(Venue::Kraken, Channel::Rest, "0.2000", 10_500),
        );
        assert_eq!(
            table.quote(cro, Venue::Kraken).map(|q| q.price.to_string()),
            Some("0.1587".into())
        );
        // Once the stream is stale, REST prices are served, marked as such.
        state.apply(
            &mut writer,
            &event(Venue::Kraken, Channel::Rest, "0.1590", 12_000),
        );
        let quote = table.quote(cro, Venue::Kraken).unwrap();
        assert_eq!(
            (quote.price.to_string(), quote.source),
            ("0.1590".into(), Source::rest(Venue::Kraken))
        );
        // A second venue: the aggregate is the median of the fresh ones.
        state.apply(
            &mut writer,
            &event(Venue::Cryptocom, Channel::Stream, "0.1600", 12_100),
        );
        let agg = table.aggregate(cro).unwrap();
        assert_eq!((agg.price.to_string(), agg.sources), ("0.1595".into(), 2));
        assert_eq!(
            (
                kraken.rest_superseded.load(Ordering::Relaxed),
                kraken.rest_applied.load(Ordering::Relaxed)
            ),
            (1, 1)
        );
    }
}
