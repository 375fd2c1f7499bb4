//! What each feed is doing, shared with the engine's `/health` and `/metrics`: a state and
//! counters, all atomics written by the feed's own threads.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use beast_core::{Throttle, Venue};

/// A connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FeedState {
    Connecting = 0,
    /// Connected, subscription sent, not confirmed yet.
    Subscribing = 1,
    /// Subscribed and receiving prices.
    Streaming = 2,
    /// Connected, but no price for longer than the stale limit.
    Stale = 3,
    /// Waiting to reconnect.
    Backoff = 4,
    Stopped = 5,
}

impl FeedState {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Subscribing => "subscribed",
            FeedState::Streaming => "streaming",
            FeedState::Stale => "stale",
            FeedState::Backoff => "backoff",
            FeedState::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> FeedState {
        match v {
            0 => FeedState::Connecting,
            1 => FeedState::Subscribing,
            2 => FeedState::Streaming,
            3 => FeedState::Stale,
            4 => FeedState::Backoff,
            _ => FeedState::Stopped,
        }
    }

    pub const ALL: [FeedState; 6] = [
        FeedState::Connecting,
        FeedState::Subscribing,
        FeedState::Streaming,
        FeedState::Stale,
        FeedState::Backoff,
        FeedState::Stopped,
    ];
}

/// One venue's feed.
/// A venue that keeps failing is logged once a minute (with the count), not per attempt.
pub const LOG_EVERY_MS: u64 = 60_000;

#[derive(Debug)]
pub struct FeedStatus {
    pub venue: Venue,
    state: AtomicU8,
    /// Text frames received.
    pub messages: AtomicU64,
    /// Prices handed to the price thread.
    pub prices: AtomicU64,
    pub parse_errors: AtomicU64,
    pub exchange_errors: AtomicU64,
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    /// Connection attempts failed in a row (0 once one succeeds).
    pub failing_connects: AtomicU64,
    /// Failed connects and REST polls are logged at most once per [`LOG_EVERY_MS`] each.
    pub connect_log: Throttle,
    pub rest_log: Throttle,
    /// Prices lost because the ring to the price thread was full.
    pub ring_drops: AtomicU64,
    /// Unix ms of the last frame of any kind (0: none yet).
    pub last_message_ms: AtomicU64,
    /// Unix ms of the last price.
    pub last_price_ms: AtomicU64,
    /// Frames per second over the last full second.
    pub messages_per_second: AtomicU64,
    pub rest_requests: AtomicU64,
    pub rest_errors: AtomicU64,
    pub rest_prices: AtomicU64,
    /// REST prices the price thread served, and those it ignored because the stream was fresh
    /// again (both counted by the price thread).
    pub rest_applied: AtomicU64,
    pub rest_superseded: AtomicU64,
    /// Prices stamped further in the future than `FUTURE_TOLERANCE_MS`, restamped at arrival
    /// (counted by the price thread).
    pub future_times: AtomicU64,
    /// The REST fallback is polling for at least one stale asset.
    pub rest_active: AtomicBool,
}

impl FeedStatus {
    pub fn new(venue: Venue) -> FeedStatus {
        FeedStatus {
            venue,
            state: AtomicU8::new(FeedState::Connecting as u8),
            messages: AtomicU64::new(0),
            prices: AtomicU64::new(0),
            parse_errors: AtomicU64::new(0),
            exchange_errors: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            failing_connects: AtomicU64::new(0),
            connect_log: Throttle::new(LOG_EVERY_MS),
            rest_log: Throttle::new(LOG_EVERY_MS),
            ring_drops: AtomicU64::new(0),
            last_message_ms: AtomicU64::new(0),
            last_price_ms: AtomicU64::new(0),
            messages_per_second: AtomicU64::new(0),
            rest_requests: AtomicU64::new(0),
            rest_errors: AtomicU64::new(0),
            rest_prices: AtomicU64::new(0),
            rest_applied: AtomicU64::new(0),
            rest_superseded: AtomicU64::new(0),
            future_times: AtomicU64::new(0),
            rest_active: AtomicBool::new(false),
        }
    }

    pub fn state(&self) -> FeedState {
        FeedState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, state: FeedState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The venue cannot be reached: its last connection attempt failed and none has
    /// succeeded since.
    pub fn unreachable(&self) -> bool {
        FeedStatus::get(&self.failing_connects) > 0
    }

    /// Every feed is unreachable (and there is at least one): the node is offline.
    pub fn none_reachable(feeds: &[std::sync::Arc<FeedStatus>]) -> bool {
        !feeds.is_empty() && feeds.iter().all(|f| f.unreachable())
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
