//! What the side thread counts, shared with the reactors for `/metrics` and admin calls.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::side::sink::{SINK_KINDS, SinkKind};

#[derive(Default)]
pub struct SinkStats {
    pub configured: AtomicBool,
    pub up: AtomicBool,
    /// Journal bytes this sink has not taken yet (its queue depth).
    pub backlog_bytes: AtomicU64,
    /// When the oldest batch it has not delivered was written, Unix ms (0: none waiting).
    pub oldest_pending_ms: AtomicU64,
    /// When its deliveries started failing, Unix ms (0: the last one worked).
    pub failing_since_ms: AtomicU64,
    /// Records delivered.
    pub delivered: AtomicU64,
    /// Records the sink already held (a batch delivered again): no-ops.
    pub duplicates: AtomicU64,
    /// Records a store lacked before a batch it was given ([`crate::usage::apply::Applied`]).
    pub gap_records: AtomicU64,
    /// Records written by an earlier run of the process and delivered by this one.
    pub replayed: AtomicU64,
    /// Rows (or messages) written.
    pub rows_written: AtomicU64,
    /// Records given up with a journal segment past the cap before this sink had them.
    pub discarded_records: AtomicU64,
    pub deliveries: AtomicU64,
    pub delivery_ns_sum: AtomicU64,
    pub delivery_ns_max: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Default)]
pub struct SideStats {
    /// Usage records written to the journal.
    pub journaled: AtomicU64,
    pub journal_bytes: AtomicU64,
    pub journal_max_bytes: AtomicU64,
    pub journal_errors: AtomicU64,
    /// Bytes of segments given up at the cap.
    pub journal_discarded_bytes: AtomicU64,
    /// Damaged journal bytes skipped by readers.
    pub journal_damaged_bytes: AtomicU64,
    /// Records that could not be written to the journal when the process stopped.
    pub journal_lost_records: AtomicU64,
    /// When the drain last ran, Unix ms.
    pub last_drain_ms: AtomicU64,
    /// The fullest reactor ring at the last drain, ‰ of its capacity.
    pub ring_peak_permille: AtomicU64,
    pub retention_deleted_rows: AtomicU64,
    pub retention_runs: AtomicU64,
    /// The store is ready for retention (SQLite: incremental vacuum on).
    pub retention_prepared: AtomicBool,
    pub sinks: [SinkStats; SINK_KINDS.len()],
    pub store_up: AtomicBool,
    pub keys_active: AtomicU64,
    /// Keys in the store, revoked ones included (0: `/admin/bootstrap-key` may create one).
    pub keys_total: AtomicU64,
    /// The store's keys have been read at least once.
    pub keys_loaded: AtomicBool,
    pub key_reloads: AtomicU64,
    pub store_errors: AtomicU64,
    pub param_reloads: AtomicU64,
    pub cache_up: AtomicBool,
    /// Nodes with an unexpired `cluster:stats:<node>` in Valkey (0: not known yet; the last
    /// count stays while Valkey is down).
    pub live_nodes: AtomicU64,
    /// Their entries as last read (`/admin/cluster`).
    pub members: arc_swap::ArcSwap<Vec<serde_json::Value>>,
    /// Each key's share of its limit across the cluster ([`super::limits`]).
    pub limits: super::limits::LimitStats,
    /// The connection governors' counts, summed over the reactors (Valkey keeps the
    /// cluster's under `{adaptive:lpo}:*`).
    pub governor: GovernorCounts,
    /// The cluster's, as Valkey last added them up.
    pub governor_cluster: GovernorCounts,
    /// The version of the key set in force (the store's `keys` version).
    pub keys_version: AtomicU64,
    pub cache_writes: AtomicU64,
    pub cache_errors: AtomicU64,
    pub warm_start_prices: AtomicU64,
    /// Candles of the price history written to the store, read back at start, and failed writes.
    pub candles_saved: AtomicU64,
    pub candles_restored: AtomicU64,
    pub candle_save_errors: AtomicU64,
    pub admin_calls: AtomicU64,
    pub admin_denied: AtomicU64,
    /// `/admin/bootstrap-key` has handed out its one key (cleared if storing it failed).
    pub bootstrapped: AtomicBool,
    /// The push engine's figures (a `WEBHOOK_SERVER` node).
    pub push: crate::push::stats::PushStats,
}

/// Responses the governors counted (successes of all) and connections they refused.
#[derive(Default)]
pub struct GovernorCounts {
    pub successes: AtomicU64,
    pub total: AtomicU64,
    pub throttled: AtomicU64,
}

impl GovernorCounts {
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "successes": get(&self.successes),
            "total": get(&self.total),
            "throttled": get(&self.throttled),
        })
    }
}

/// Why a node that serves prices is not healthy (`/health` says `degraded`, and why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degraded {
    /// The drain has not run for a second, or a reactor's usage ring is half full: answers
    /// are close to being refused for want of room for their records.
    UsageBehind,
    /// The journal is past 80 % of `BEAST_JOURNAL_MAX_BYTES`.
    JournalNearCap,
    /// A sink's deliveries have failed for over a minute.
    SinkFailing(SinkKind),
    /// A sink's oldest undelivered usage is over a minute old (it cannot keep up).
    SinkBehind(SinkKind),
    /// The push engine's reason ([`crate::push::stats::PushStats::degraded`]).
    Push(&'static str),
}

impl Degraded {
    /// How long a sink may fail or lag before the node says so.
    pub(crate) const SINK_GRACE_MS: u64 = 60_000;

    pub fn as_str(self) -> &'static str {
        match self {
            Degraded::UsageBehind => "usage_metering_behind",
            Degraded::JournalNearCap => "usage_journal_near_cap",
            Degraded::SinkFailing(SinkKind::Sqlite) => "usage_sink_failing:sqlite",
            Degraded::SinkFailing(SinkKind::Postgres) => "usage_sink_failing:postgres",
            Degraded::SinkFailing(SinkKind::Sqs) => "usage_sink_failing:sqs",
            Degraded::SinkBehind(SinkKind::Sqlite) => "usage_sink_behind:sqlite",
            Degraded::SinkBehind(SinkKind::Postgres) => "usage_sink_behind:postgres",
            Degraded::SinkBehind(SinkKind::Sqs) => "usage_sink_behind:sqs",
            Degraded::Push(reason) => reason,
        }
    }
}

pub fn get(v: &AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

pub fn add(v: &AtomicU64, n: u64) {
    v.fetch_add(n, Ordering::Relaxed);
}

pub fn set(v: &AtomicU64, n: u64) {
    v.store(n, Ordering::Relaxed);
}

impl SideStats {
    pub fn sink(&self, kind: SinkKind) -> &SinkStats {
        let index = SINK_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        // Every kind has its entry: SINK_KINDS is the array's length.
        self.sinks.get(index).unwrap_or(&self.sinks[0])
    }

    /// Calls `each` with every reason the node is degraded now (no allocation: `/health` is
    /// answered on a reactor).
    pub fn degraded(&self, now_ms: u64, mut each: impl FnMut(Degraded)) {
        let last_drain = get(&self.last_drain_ms);
        if last_drain > 0
            && (now_ms.saturating_sub(last_drain) > 1_000 || get(&self.ring_peak_permille) >= 500)
        {
            each(Degraded::UsageBehind);
        }
        let cap = get(&self.journal_max_bytes);
        if cap > 0 && get(&self.journal_bytes) > cap / 10 * 8 {
            each(Degraded::JournalNearCap);
        }
        for kind in SINK_KINDS {
            let sink = self.sink(kind);
            if !sink.configured.load(Ordering::Relaxed) {
                continue;
            }
            let failing = get(&sink.failing_since_ms);
            let oldest = get(&sink.oldest_pending_ms);
            if failing > 0 && now_ms.saturating_sub(failing) > Degraded::SINK_GRACE_MS {
                each(Degraded::SinkFailing(kind));
            } else if oldest > 0 && now_ms.saturating_sub(oldest) > Degraded::SINK_GRACE_MS {
                each(Degraded::SinkBehind(kind));
            }
        }
        self.push
            .degraded(now_ms, |reason| each(Degraded::Push(reason)));
    }

    /// Appends the Prometheus text for these figures.
    pub fn render(&self, out: &mut String) {
        self.push.render(out);
        self.limits.render(out);
        let flag = |b: &AtomicBool| u64::from(b.load(Ordering::Relaxed));
        #[allow(clippy::cast_precision_loss, reason = "seconds for Prometheus")]
        let seconds = |ns: u64| ns as f64 / 1e9;
        family(
            out,
            "beast_usage_journaled_total",
            "counter",
            "Usage records written to the on-disk journal.",
            &[(String::new(), get(&self.journaled))],
        );
        for (name, kind, help, value) in [
            (
                "beast_usage_journal_bytes",
                "gauge",
                "Size of the usage journal on disk.",
                get(&self.journal_bytes),
            ),
            (
                "beast_usage_journal_max_bytes",
                "gauge",
                "The journal's cap (BEAST_JOURNAL_MAX_BYTES); past it the oldest segment is given up.",
                get(&self.journal_max_bytes),
            ),
            (
                "beast_usage_journal_errors_total",
                "counter",
                "Failed journal writes and syncs (records stay queued and are written on the next try).",
                get(&self.journal_errors),
            ),
            (
                "beast_usage_journal_discarded_bytes_total",
                "counter",
                "Journal bytes given up at the cap.",
                get(&self.journal_discarded_bytes),
            ),
            (
                "beast_usage_journal_damaged_bytes_total",
                "counter",
                "Damaged journal bytes skipped by the sinks.",
                get(&self.journal_damaged_bytes),
            ),
            (
                "beast_usage_journal_lost_records_total",
                "counter",
                "Records that could not be written to the journal (a full disk) when the process stopped.",
                get(&self.journal_lost_records),
            ),
            (
                "beast_usage_ring_peak_ratio_permille",
                "gauge",
                "Fill of the fullest reactor usage ring at the last drain, per mille.",
                get(&self.ring_peak_permille),
            ),
            (
                "beast_usage_retention_deleted_rows_total",
                "counter",
                "Usage rows deleted by retention (USAGE_RETENTION_DAYS).",
                get(&self.retention_deleted_rows),
            ),
            (
                "beast_usage_retention_runs_total",
                "counter",
                "Retention passes that deleted everything due.",
                get(&self.retention_runs),
            ),
        ] {
            family(out, name, kind, help, &[(String::new(), value)]);
        }
        let sinks: Vec<(SinkKind, &SinkStats)> = SINK_KINDS
            .iter()
            .map(|k| (*k, self.sink(*k)))
            .filter(|(_, s)| s.configured.load(Ordering::Relaxed))
            .collect();
        let per_sink = |pick: &dyn Fn(&SinkStats) -> u64| -> Vec<(String, u64)> {
            sinks
                .iter()
                .map(|(k, s)| (format!("{{sink=\"{}\"}}", k.name()), pick(s)))
                .collect()
        };
        let now_ms = beast_core::clock::wall_ms();
        for (name, kind, help, pick) in [
            (
                "beast_usage_sink_up",
                "gauge",
                "1 while the sink's last delivery worked.",
                &(|s: &SinkStats| flag(&s.up)) as &dyn Fn(&SinkStats) -> u64,
            ),
            (
                "beast_usage_sink_backlog_bytes",
                "gauge",
                "Journal bytes the sink has not taken yet.",
                &|s: &SinkStats| get(&s.backlog_bytes),
            ),
            (
                "beast_usage_sink_lag_seconds",
                "gauge",
                "Age of the oldest usage the sink has not delivered (0: none waiting).",
                &|s: &SinkStats| match get(&s.oldest_pending_ms) {
                    0 => 0,
                    t => now_ms.saturating_sub(t) / 1000,
                },
            ),
            (
                "beast_usage_sink_delivered_total",
                "counter",
                "Records the sink accepted.",
                &|s: &SinkStats| get(&s.delivered),
            ),
            (
                "beast_usage_sink_duplicates_total",
                "counter",
                "Records delivered again that the sink already held (no-ops).",
                &|s: &SinkStats| get(&s.duplicates),
            ),
            (
                "beast_usage_sink_gap_records_total",
                "counter",
                "Records a store lacked before a batch it was given: usage it lost (restored from an older backup) or never got (given up at the journal cap).",
                &|s: &SinkStats| get(&s.gap_records),
            ),
            (
                "beast_usage_sink_replayed_total",
                "counter",
                "Records from an earlier run delivered from the journal.",
                &|s: &SinkStats| get(&s.replayed),
            ),
            (
                "beast_usage_sink_rows_written_total",
                "counter",
                "Rows the sink wrote (rollups upserted, raw records inserted; SQS: messages).",
                &|s: &SinkStats| get(&s.rows_written),
            ),
            (
                "beast_usage_sink_discarded_records_total",
                "counter",
                "Records given up with journal segments past the cap before the sink had them.",
                &|s: &SinkStats| get(&s.discarded_records),
            ),
            (
                "beast_usage_sink_errors_total",
                "counter",
                "Failed deliveries (retried from the journal).",
                &|s: &SinkStats| get(&s.errors),
            ),
            (
                "beast_usage_sink_deliveries_total",
                "counter",
                "Deliveries that worked.",
                &|s: &SinkStats| get(&s.deliveries),
            ),
        ] {
            family(out, name, kind, help, &per_sink(pick));
        }
        let _ = writeln!(
            out,
            "# HELP beast_usage_sink_delivery_seconds Time of the deliveries that worked.\n# TYPE beast_usage_sink_delivery_seconds summary"
        );
        for (k, s) in &sinks {
            let _ = writeln!(
                out,
                "beast_usage_sink_delivery_seconds_sum{{sink=\"{0}\"}} {1}\nbeast_usage_sink_delivery_seconds_count{{sink=\"{0}\"}} {2}",
                k.name(),
                seconds(get(&s.delivery_ns_sum)),
                get(&s.deliveries)
            );
        }
        let _ = writeln!(
            out,
            "# HELP beast_usage_sink_delivery_max_seconds Slowest delivery that worked.\n# TYPE beast_usage_sink_delivery_max_seconds gauge"
        );
        for (k, s) in &sinks {
            let _ = writeln!(
                out,
                "beast_usage_sink_delivery_max_seconds{{sink=\"{}\"}} {}",
                k.name(),
                seconds(get(&s.delivery_ns_max))
            );
        }
        for (name, kind, help, value) in [
            (
                "beast_store_up",
                "gauge",
                "1 while the key store answers.",
                flag(&self.store_up),
            ),
            (
                "beast_api_keys_active",
                "gauge",
                "Keys in force on every reactor.",
                get(&self.keys_active),
            ),
            (
                "beast_api_key_reloads_total",
                "counter",
                "Key sets published to the reactors.",
                get(&self.key_reloads),
            ),
            (
                "beast_store_errors_total",
                "counter",
                "Failed key/parameter reads and writes.",
                get(&self.store_errors),
            ),
            (
                "beast_param_reloads_total",
                "counter",
                "Parameter sets applied.",
                get(&self.param_reloads),
            ),
            (
                "beast_cluster_live_nodes",
                "gauge",
                "Nodes live in the cluster (unexpired cluster:stats entries; 0: not known).",
                get(&self.live_nodes),
            ),
            (
                "beast_cache_up",
                "gauge",
                "1 while Valkey answers (0 also when none is configured).",
                flag(&self.cache_up),
            ),
            (
                "beast_cache_writes_total",
                "counter",
                "Price and node-stats writes to Valkey.",
                get(&self.cache_writes),
            ),
            (
                "beast_cache_errors_total",
                "counter",
                "Failed Valkey calls.",
                get(&self.cache_errors),
            ),
            (
                "beast_warm_start_prices",
                "gauge",
                "Prices read back from Valkey at start.",
                get(&self.warm_start_prices),
            ),
            (
                "beast_history_candles_saved_total",
                "counter",
                "Candles of the price history written to the store.",
                get(&self.candles_saved),
            ),
            (
                "beast_history_candles_restored",
                "gauge",
                "Candles read back from the store at start.",
                get(&self.candles_restored),
            ),
            (
                "beast_history_save_errors_total",
                "counter",
                "Failed writes of candles to the store (retried: the rings still hold them) or to Valkey (not retried).",
                get(&self.candle_save_errors),
            ),
            (
                "beast_admin_calls_total",
                "counter",
                "Admin calls with the right key.",
                get(&self.admin_calls),
            ),
            (
                "beast_admin_denied_total",
                "counter",
                "Admin calls refused for a wrong or missing X-Admin-Key.",
                get(&self.admin_denied),
            ),
        ] {
            family(out, name, kind, help, &[(String::new(), value)]);
        }
    }
}

/// One metric family: its help, type and samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, values: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in values {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(stats: &SideStats, now_ms: u64) -> Vec<&'static str> {
        let mut found = Vec::new();
        stats.degraded(now_ms, |d| found.push(d.as_str()));
        found
    }

    #[test]
    fn degraded_says_why() {
        let stats = SideStats::default();
        assert!(
            reasons(&stats, 1_000_000).is_empty(),
            "metering off: nothing to say"
        );
        set(&stats.last_drain_ms, 1_000_000);
        set(&stats.journal_max_bytes, 1_000);
        let pg = stats.sink(SinkKind::Postgres);
        pg.configured.store(true, Ordering::Relaxed);
        assert!(reasons(&stats, 1_000_500).is_empty());
        for (setup, now, expected) in [
            (
                &(|s: &SideStats| set(&s.ring_peak_permille, 600)) as &dyn Fn(&SideStats),
                1_000_100,
                "usage_metering_behind",
            ),
            (&|_: &SideStats| {}, 1_002_000, "usage_metering_behind"),
            (
                &|s: &SideStats| set(&s.journal_bytes, 801),
                1_000_100,
                "usage_journal_near_cap",
            ),
            (
                &|s: &SideStats| set(&s.sink(SinkKind::Postgres).failing_since_ms, 900_000),
                1_000_100,
                "usage_sink_failing:postgres",
            ),
            (
                &|s: &SideStats| set(&s.sink(SinkKind::Postgres).oldest_pending_ms, 900_000),
                1_000_100,
                "usage_sink_behind:postgres",
            ),
        ] {
            let stats = SideStats::default();
            set(&stats.last_drain_ms, 1_000_000);
            set(&stats.journal_max_bytes, 1_000);
            stats
                .sink(SinkKind::Postgres)
                .configured
                .store(true, Ordering::Relaxed);
            setup(&stats);
            assert_eq!(reasons(&stats, now), [expected]);
        }
    }
}
