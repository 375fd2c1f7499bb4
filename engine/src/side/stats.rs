//! What the side thread counts, shared with the reactors for `/metrics` and admin calls.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::usage::sink::{SINK_KINDS, SinkKind};

#[derive(Default)]
pub struct SinkStats {
    pub configured: AtomicBool,
    pub up: AtomicBool,
    /// Records in the journal this sink has not accepted yet (its queue depth).
    pub pending: AtomicU64,
    pub delivered: AtomicU64,
    /// Records the sink already held (re-sent after a restart): inserted as no-ops.
    pub duplicates: AtomicU64,
    /// Records written by an earlier run of the process and delivered by this one.
    pub replayed: AtomicU64,
    pub batches: AtomicU64,
    pub batch_ns_sum: AtomicU64,
    pub batch_ns_max: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Default)]
pub struct SideStats {
    /// Usage records written to the journal.
    pub journaled: AtomicU64,
    pub journal_bytes: AtomicU64,
    pub journal_errors: AtomicU64,
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
    pub cache_writes: AtomicU64,
    pub cache_errors: AtomicU64,
    pub warm_start_prices: AtomicU64,
    pub admin_calls: AtomicU64,
    pub admin_denied: AtomicU64,
    /// `/admin/bootstrap-key` has handed out its one key (cleared if storing it failed).
    pub bootstrapped: AtomicBool,
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

    /// Appends the Prometheus text for these figures.
    pub fn render(&self, out: &mut String) {
        let flag = |b: &AtomicBool| u64::from(b.load(Ordering::Relaxed));
        let mut family = |name: &str, kind: &str, help: &str, values: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in values {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "beast_usage_journaled_total",
            "counter",
            "Usage records written to the on-disk journal.",
            &[(String::new(), get(&self.journaled))],
        );
        family(
            "beast_usage_journal_bytes",
            "gauge",
            "Size of the usage journal on disk.",
            &[(String::new(), get(&self.journal_bytes))],
        );
        family(
            "beast_usage_journal_errors_total",
            "counter",
            "Failed journal writes (records stay queued and are written on the next try).",
            &[(String::new(), get(&self.journal_errors))],
        );
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
        for (name, kind, help, pick) in [
            (
                "beast_usage_sink_up",
                "gauge",
                "1 while the sink's last delivery worked.",
                &(|s: &SinkStats| flag(&s.up)) as &dyn Fn(&SinkStats) -> u64,
            ),
            (
                "beast_usage_sink_queue_depth",
                "gauge",
                "Records journaled and not yet accepted by the sink.",
                &|s: &SinkStats| get(&s.pending),
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
                "Records sent again that the sink already held (no-op inserts).",
                &|s: &SinkStats| get(&s.duplicates),
            ),
            (
                "beast_usage_sink_replayed_total",
                "counter",
                "Records from an earlier run delivered from the journal.",
                &|s: &SinkStats| get(&s.replayed),
            ),
            (
                "beast_usage_sink_errors_total",
                "counter",
                "Failed deliveries (retried from the journal).",
                &|s: &SinkStats| get(&s.errors),
            ),
            (
                "beast_usage_sink_batches_total",
                "counter",
                "Deliveries that worked.",
                &|s: &SinkStats| get(&s.batches),
            ),
            (
                "beast_usage_sink_batch_ns_sum",
                "counter",
                "Total time of the deliveries that worked, ns.",
                &|s: &SinkStats| get(&s.batch_ns_sum),
            ),
            (
                "beast_usage_sink_batch_max_ns",
                "gauge",
                "Slowest delivery that worked, ns.",
                &|s: &SinkStats| get(&s.batch_ns_max),
            ),
        ] {
            family(name, kind, help, &per_sink(pick));
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
            family(name, kind, help, &[(String::new(), value)]);
        }
    }
}
