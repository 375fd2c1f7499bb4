//! What the push engine counts, for `/metrics` and `/health` on the push node.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::payload::Cause;
use super::subscription::Protocol;

/// What became of a delivery attempt (the delivery log's `outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// HTTPS: the endpoint answered 2xx.
    Delivered,
    /// UDP: every datagram handed to the kernel.
    Sent,
    /// UDP: the socket's buffer was full (fire and forget: not retried).
    Dropped,
    /// HTTPS: this attempt failed; another follows.
    Failed,
    /// HTTPS: the last attempt failed; kept for replay.
    GaveUp,
    /// A newer price took the place of this undelivered one.
    Superseded,
    /// The target is or resolved to an address the SSRF guard refuses.
    Blocked,
    /// HTTPS: 410 Gone; the subscription is disabled.
    Gone,
}

pub const OUTCOMES: [Outcome; 8] = [
    Outcome::Delivered,
    Outcome::Sent,
    Outcome::Dropped,
    Outcome::Failed,
    Outcome::GaveUp,
    Outcome::Superseded,
    Outcome::Blocked,
    Outcome::Gone,
];

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Sent => "sent",
            Outcome::Dropped => "dropped",
            Outcome::Failed => "failed",
            Outcome::GaveUp => "gave_up",
            Outcome::Superseded => "superseded",
            Outcome::Blocked => "blocked",
            Outcome::Gone => "gone",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        OUTCOMES.into_iter().find(|o| o.as_str() == text)
    }

    fn index(self) -> usize {
        OUTCOMES.iter().position(|o| *o == self).unwrap_or(0)
    }
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Udp, Protocol::Https];
const CAUSES: [Cause; 2] = [Cause::Interval, Cause::Move];
/// Latency bucket bounds, ms.
const LATENCY_BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 5_000, 10_000];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    sum_ms: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn record(&self, ms: u64) {
        let at = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        if let Some(bucket) = self.buckets.get(at) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct PushStats {
    /// This node runs the push engine.
    pub configured: AtomicBool,
    /// The subscriptions have been read from the store at least once.
    pub loaded: AtomicBool,
    /// When reading the store last failed, Unix ms (0: the last read worked).
    pub store_failing_since_ms: AtomicU64,
    pub store_errors: AtomicU64,
    pub reloads: AtomicU64,
    pub active: AtomicU64,
    pub paused: AtomicU64,
    pub disabled: AtomicU64,
    /// HTTPS deliveries waiting for an endpoint (queued or waiting to retry).
    pub queued: AtomicU64,
    pub in_flight: AtomicU64,
    pub breakers_open: AtomicU64,
    pub breakers_half_open: AtomicU64,
    pub endpoints: AtomicU64,
    /// Delivery-log rows not yet in the store.
    pub log_pending: AtomicU64,
    /// Delivery-log rows given up (the store was down past the buffer): counted, logged.
    pub log_dropped: AtomicU64,
    pub log_written: AtomicU64,
    pub log_retention_deleted: AtomicU64,
    /// Connections or datagrams refused by the SSRF guard.
    pub ssrf_blocked: AtomicU64,
    /// Deliveries skipped because no sequence number could be reserved (store down).
    pub unsequenced: AtomicU64,
    pub retries: AtomicU64,
    pub udp_datagrams: AtomicU64,
    pub replays: AtomicU64,
    outcomes: [[AtomicU64; OUTCOMES.len()]; PROTOCOLS.len()],
    latency: [[Histogram; CAUSES.len()]; PROTOCOLS.len()],
}

fn protocol_index(protocol: Protocol) -> usize {
    PROTOCOLS.iter().position(|p| *p == protocol).unwrap_or(0)
}

impl PushStats {
    pub fn count(&self, protocol: Protocol, outcome: Outcome) {
        if let Some(c) = self
            .outcomes
            .get(protocol_index(protocol))
            .and_then(|row| row.get(outcome.index()))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn outcome(&self, protocol: Protocol, outcome: Outcome) -> u64 {
        self.outcomes
            .get(protocol_index(protocol))
            .and_then(|row| row.get(outcome.index()))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// From the price change (or the interval's due time) to the delivery.
    pub fn latency(&self, protocol: Protocol, cause: Cause, ms: u64) {
        let cause = CAUSES.iter().position(|c| *c == cause).unwrap_or(0);
        if let Some(h) = self
            .latency
            .get(protocol_index(protocol))
            .and_then(|row| row.get(cause))
        {
            h.record(ms);
        }
    }

    /// Why the push node is degraded, if it is. A subscriber's endpoint failing is not the
    /// node's fault: that shows in `beast_push_breakers`, not here.
    pub fn degraded(&self, now_ms: u64, mut each: impl FnMut(&'static str)) {
        if !self.configured.load(Ordering::Relaxed) {
            return;
        }
        let failing = self.store_failing_since_ms.load(Ordering::Relaxed);
        if !self.loaded.load(Ordering::Relaxed)
            || (failing > 0 && now_ms.saturating_sub(failing) > 10_000)
        {
            each("push_store_unreachable");
        }
        if self.log_dropped.load(Ordering::Relaxed) > 0 {
            each("push_delivery_log_lost_rows");
        }
    }

    pub fn render(&self, out: &mut String) {
        if !self.configured.load(Ordering::Relaxed) {
            return;
        }
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP beast_push_deliveries_total Push delivery attempts, by protocol and outcome.\n# TYPE beast_push_deliveries_total counter"
        );
        for protocol in PROTOCOLS {
            for outcome in OUTCOMES {
                let _ = writeln!(
                    out,
                    "beast_push_deliveries_total{{protocol=\"{}\",outcome=\"{}\"}} {}",
                    protocol.as_str(),
                    outcome.as_str(),
                    self.outcome(protocol, outcome)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP beast_push_latency_seconds From the price change (move) or the due time (interval) to the delivery: datagrams sent, or the 2xx received.\n# TYPE beast_push_latency_seconds histogram"
        );
        for (p, protocol) in PROTOCOLS.iter().enumerate() {
            for (c, cause) in CAUSES.iter().enumerate() {
                let Some(h) = self.latency.get(p).and_then(|row| row.get(c)) else {
                    continue;
                };
                let labels = format!(
                    "protocol=\"{}\",trigger=\"{}\"",
                    protocol.as_str(),
                    cause.as_str()
                );
                let mut cumulative = 0;
                for (bound, bucket) in LATENCY_BOUNDS_MS.iter().zip(&h.buckets) {
                    cumulative += get(bucket);
                    #[allow(clippy::cast_precision_loss, reason = "ms bounds as seconds")]
                    let le = *bound as f64 / 1_000.0;
                    let _ = writeln!(
                        out,
                        "beast_push_latency_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "beast_push_latency_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    get(&h.count)
                );
                #[allow(clippy::cast_precision_loss, reason = "seconds for Prometheus")]
                let sum = get(&h.sum_ms) as f64 / 1_000.0;
                let _ = writeln!(out, "beast_push_latency_seconds_sum{{{labels}}} {sum}");
                let _ = writeln!(
                    out,
                    "beast_push_latency_seconds_count{{{labels}}} {}",
                    get(&h.count)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP beast_push_subscriptions Subscriptions, by state.\n# TYPE beast_push_subscriptions gauge"
        );
        for (state, v) in [
            ("active", &self.active),
            ("paused", &self.paused),
            ("disabled", &self.disabled),
        ] {
            let _ = writeln!(
                out,
                "beast_push_subscriptions{{state=\"{state}\"}} {}",
                get(v)
            );
        }
        let _ = writeln!(
            out,
            "# HELP beast_push_breakers HTTPS endpoints, by circuit-breaker state.\n# TYPE beast_push_breakers gauge"
        );
        let endpoints = get(&self.endpoints);
        let open = get(&self.breakers_open);
        let half = get(&self.breakers_half_open);
        for (state, v) in [
            ("closed", endpoints.saturating_sub(open + half)),
            ("open", open),
            ("half_open", half),
        ] {
            let _ = writeln!(out, "beast_push_breakers{{state=\"{state}\"}} {v}");
        }
        for (name, kind, help, v) in [
            (
                "beast_push_queue_depth",
                "gauge",
                "HTTPS deliveries waiting for their endpoint (queued or waiting to retry).",
                &self.queued,
            ),
            (
                "beast_push_in_flight",
                "gauge",
                "HTTPS deliveries in flight.",
                &self.in_flight,
            ),
            (
                "beast_push_retries_total",
                "counter",
                "HTTPS attempts after the first.",
                &self.retries,
            ),
            (
                "beast_push_udp_datagrams_total",
                "counter",
                "UDP datagrams sent.",
                &self.udp_datagrams,
            ),
            (
                "beast_push_ssrf_blocked_total",
                "counter",
                "Connections and datagrams refused by the SSRF guard.",
                &self.ssrf_blocked,
            ),
            (
                "beast_push_unsequenced_total",
                "counter",
                "Deliveries skipped: no sequence number could be reserved in the store.",
                &self.unsequenced,
            ),
            (
                "beast_push_log_pending_rows",
                "gauge",
                "Delivery-log rows not yet in the store.",
                &self.log_pending,
            ),
            (
                "beast_push_log_written_rows_total",
                "counter",
                "Delivery-log rows written to the store.",
                &self.log_written,
            ),
            (
                "beast_push_log_dropped_rows_total",
                "counter",
                "Delivery-log rows given up while the store was down.",
                &self.log_dropped,
            ),
            (
                "beast_push_log_retention_deleted_rows_total",
                "counter",
                "Delivery-log rows deleted by retention.",
                &self.log_retention_deleted,
            ),
            (
                "beast_push_store_errors_total",
                "counter",
                "Failed store calls of the push engine.",
                &self.store_errors,
            ),
            (
                "beast_push_reloads_total",
                "counter",
                "Times the subscriptions were read from the store.",
                &self.reloads,
            ),
            (
                "beast_push_replays_total",
                "counter",
                "Failed deliveries sent again on request.",
                &self.replays,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                get(v)
            );
        }
    }
}
