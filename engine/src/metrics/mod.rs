//! Per-reactor counters and latency histograms, rendered as Prometheus text on demand.
//!
//! Each reactor owns one [`ReactorMetrics`] and is its only writer, so an increment is a plain
//! load and store (no locked instruction); any thread may read them to render `/metrics`.

mod render;

use std::sync::atomic::{AtomicU64, Ordering};

pub use render::{render, render_feeds, render_history, render_process};

use crate::protocol::answer::ErrorCode;
use crate::protocol::http::response::Status;

/// A counter with one writer thread.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Only the owning reactor calls this.
    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge with one writer thread.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicU64::new(0))
    }

    #[inline]
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Keeps the largest value seen.
    #[inline]
    pub fn max(&self, value: u64) {
        if value > self.get() {
            self.set(value);
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds.
pub(crate) const LATENCY_BOUNDS_US: [u64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000,
];

/// Request latency: fixed buckets (plus one for everything slower), a count and a sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; LATENCY_BOUNDS_US.len() + 1],
    sum_ns: Counter,
    count: Counter,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { Counter::new() }; LATENCY_BOUNDS_US.len() + 1],
            sum_ns: Counter::new(),
            count: Counter::new(),
        }
    }

    #[inline]
    pub(crate) fn record_ns(&self, ns: u64) {
        let us = ns / 1_000;
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| us < bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        if let Some(counter) = self.buckets.get(bucket) {
            counter.inc();
        }
        self.sum_ns.add(ns);
        self.count.inc();
    }

    /// Records `n` requests that all took `ns` (a batch answered together).
    #[inline]
    pub(crate) fn record_many_ns(&self, ns: u64, n: u64) {
        if n == 0 {
            return;
        }
        let us = ns / 1_000;
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| us < bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        if let Some(counter) = self.buckets.get(bucket) {
            counter.add(n);
        }
        self.sum_ns.add(ns.saturating_mul(n));
        self.count.add(n);
    }

    /// Per-bucket (not cumulative) counts, then the sum in ns and the count.
    pub fn snapshot(&self) -> ([u64; LATENCY_BOUNDS_US.len() + 1], u64, u64) {
        (
            std::array::from_fn(|i| self.buckets.get(i).map_or(0, Counter::get)),
            self.sum_ns.get(),
            self.count.get(),
        )
    }
}

/// HTTP statuses counted, in [`Status`] order.
pub(crate) const STATUSES: [Status; 15] = [
    Status::Ok,
    Status::Created,
    Status::Accepted,
    Status::BadRequest,
    Status::Unauthorized,
    Status::Conflict,
    Status::NotAcceptable,
    Status::TooManyRequests,
    Status::NotFound,
    Status::MethodNotAllowed,
    Status::RequestTimeout,
    Status::PayloadTooLarge,
    Status::UriTooLong,
    Status::HeadersTooLarge,
    Status::ServiceUnavailable,
];

pub(crate) const ERROR_CODES: [ErrorCode; 19] = [
    ErrorCode::BadRequest,
    ErrorCode::UnknownAsset,
    ErrorCode::InvalidAsset,
    ErrorCode::NoPrice,
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::RequestTimeout,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UriTooLong,
    ErrorCode::HeadersTooLarge,
    ErrorCode::Overloaded,
    ErrorCode::TooManyAssets,
    ErrorCode::TooSmall,
    ErrorCode::Unavailable,
    ErrorCode::InvalidApiKey,
    ErrorCode::RateLimited,
    ErrorCode::Unauthorized,
    ErrorCode::Conflict,
    ErrorCode::NotAcceptable,
];

/// Why a request was refused before it was answered (every protocol).
pub(crate) const DENIALS: [&str; 3] = ["missing_key", "invalid_key", "rate_limited"];

/// The [`DENIALS`] index of a refusal.
pub(crate) fn denial_index(denied: crate::access::Denied) -> usize {
    match denied {
        crate::access::Denied::Missing => 0,
        crate::access::Denied::Invalid => 1,
        crate::access::Denied::RateLimited { .. } => 2,
    }
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it, or asked to (`Connection: close`).
    Peer,
    /// Idle longer than the idle timeout.
    Idle,
    /// A request not completed in time (408) or a response not written in time.
    Timeout,
    /// Malformed input or an I/O error.
    Error,
    /// The server is shutting down.
    Shutdown,
}

pub(crate) const CLOSE_REASONS: [CloseReason; 5] = [
    CloseReason::Peer,
    CloseReason::Idle,
    CloseReason::Timeout,
    CloseReason::Error,
    CloseReason::Shutdown,
];

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Peer => "peer",
            CloseReason::Idle => "idle",
            CloseReason::Timeout => "timeout",
            CloseReason::Error => "error",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Why a UDP datagram got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpDrop {
    Malformed,
    Amplification,
    /// No send slot free: replies are produced faster than the socket takes them.
    Overload,
    /// The kernel had no receive buffer for a datagram (io_uring ENOBUFS).
    NoBuffers,
    /// Larger than the receive buffer.
    Truncated,
    SendError,
    /// From an address no reply can go to (port 0): never answered, never metered.
    BadSource,
}

pub(crate) const UDP_DROPS: [UdpDrop; 7] = [
    UdpDrop::Malformed,
    UdpDrop::Amplification,
    UdpDrop::Overload,
    UdpDrop::NoBuffers,
    UdpDrop::Truncated,
    UdpDrop::SendError,
    UdpDrop::BadSource,
];

impl UdpDrop {
    pub fn as_str(self) -> &'static str {
        match self {
            UdpDrop::Malformed => "malformed",
            UdpDrop::Amplification => "amplification",
            UdpDrop::Overload => "overload",
            UdpDrop::NoBuffers => "no_buffers",
            UdpDrop::Truncated => "truncated",
            UdpDrop::SendError => "send_error",
            UdpDrop::BadSource => "bad_source",
        }
    }
}

/// Everything one reactor counts.
#[derive(Debug, Default)]
pub struct ReactorMetrics {
    pub http_responses: [Counter; STATUSES.len()],
    pub http_errors: [Counter; ERROR_CODES.len()],
    pub http_latency: Histogram,
    pub udp_text: Counter,
    pub udp_v8: Counter,
    pub udp_replies: Counter,
    pub udp_drops: [Counter; UDP_DROPS.len()],
    pub udp_latency: Histogram,
    /// Requests refused for their key, by [`DENIALS`].
    pub denied: [Counter; DENIALS.len()],
    /// Requests answered with prices: each one's usage record was queued.
    pub usage_recorded: Counter,
    /// Answered requests whose usage record could not be queued (must stay 0).
    pub usage_dropped: Counter,
    pub accepted: Counter,
    pub rejected_overloaded: Counter,
    pub closed: [Counter; CLOSE_REASONS.len()],
    pub open_connections: Gauge,
    pub connection_limit: Gauge,
    pub accept_errors: Counter,
    pub loop_turns: Counter,
    pub loop_stalls: Counter,
    pub loop_max_turn_ns: Gauge,
    pub completions: Counter,
    /// When the loop turn in progress started (the node's monotonic ms; 0 between turns), for
    /// the watchdog.
    pub turn_started_ms: Gauge,
    /// Turns the watchdog found running far past the stall threshold.
    pub loop_stuck: Counter,
}

/// Where a caller without a reactor of its own counts (never rendered).
pub(crate) static DETACHED: ReactorMetrics = ReactorMetrics::new();

impl ReactorMetrics {
    pub const fn new() -> ReactorMetrics {
        ReactorMetrics {
            http_responses: [const { Counter::new() }; STATUSES.len()],
            http_errors: [const { Counter::new() }; ERROR_CODES.len()],
            http_latency: Histogram::new(),
            udp_text: Counter::new(),
            udp_v8: Counter::new(),
            udp_replies: Counter::new(),
            udp_drops: [const { Counter::new() }; UDP_DROPS.len()],
            udp_latency: Histogram::new(),
            denied: [const { Counter::new() }; DENIALS.len()],
            usage_recorded: Counter::new(),
            usage_dropped: Counter::new(),
            accepted: Counter::new(),
            rejected_overloaded: Counter::new(),
            closed: [const { Counter::new() }; CLOSE_REASONS.len()],
            open_connections: Gauge::new(),
            connection_limit: Gauge::new(),
            accept_errors: Counter::new(),
            loop_turns: Counter::new(),
            loop_stalls: Counter::new(),
            loop_max_turn_ns: Gauge::new(),
            completions: Counter::new(),
            turn_started_ms: Gauge::new(),
            loop_stuck: Counter::new(),
        }
    }

    #[inline]
    pub(crate) fn http_response(&self, status: Status) {
        if let Some(counter) = STATUSES
            .iter()
            .position(|s| *s == status)
            .and_then(|i| self.http_responses.get(i))
        {
            counter.inc();
        }
    }

    #[inline]
    pub(crate) fn http_error(&self, code: ErrorCode) {
        if let Some(counter) = ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.http_errors.get(i))
        {
            counter.inc();
        }
    }

    #[inline]
    pub(crate) fn udp_drop(&self, reason: UdpDrop) {
        if let Some(counter) = UDP_DROPS
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.udp_drops.get(i))
        {
            counter.inc();
        }
    }

    #[inline]
    pub(crate) fn deny(&self, denied: crate::access::Denied) {
        if let Some(counter) = self.denied.get(denial_index(denied)) {
            counter.inc();
        }
    }

    #[inline]
    pub fn closed(&self, reason: CloseReason) {
        if let Some(counter) = CLOSE_REASONS
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.closed.get(i))
        {
            counter.inc();
        }
    }

    pub fn udp_dropped(&self, reason: UdpDrop) -> u64 {
        UDP_DROPS
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.udp_drops.get(i))
            .map_or(0, Counter::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::default();
        for ns in [500, 1_500, 999_999, 1_000_000, 200_000_000] {
            h.record_ns(ns);
        }
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 5);
        assert_eq!(sum, 500 + 1_500 + 999_999 + 1_000_000 + 200_000_000);
        assert_eq!(buckets[0], 1, "< 1 us");
        assert_eq!(buckets[1], 1, "1-2 us");
        assert_eq!(buckets[9], 1, "500-1000 us");
        assert_eq!(buckets[10], 1, "1-2 ms");
        assert_eq!(buckets[15], 1, "slower than the last bound");
    }
}
