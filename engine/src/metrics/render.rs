//! Prometheus text exposition (version 0.0.4) of every reactor's metrics and the node's.

use std::fmt::Write as _;

use crate::protocol::state::NodeFacts;

use super::{
    CLOSE_REASONS, DENIALS, ERROR_CODES, LATENCY_BOUNDS_US, ReactorMetrics, STATUSES, UDP_DROPS,
};

/// Renders into `out` (cleared first).
pub fn render(out: &mut String, reactors: &[ReactorMetrics], node: &NodeFacts, io_backend: &str) {
    out.clear();
    let sum = |f: &dyn Fn(&ReactorMetrics) -> u64| reactors.iter().map(f).sum::<u64>();

    family(out, "beast_build_info", "gauge", "Build and runtime facts.");
    let _ = writeln!(
        out,
        "beast_build_info{{version=\"{}\",commit=\"{}\",io=\"{io_backend}\",simulated=\"{}\"}} 1",
        crate::build_info::VERSION,
        crate::build_info::GIT_COMMIT,
        node.simulated
    );
    gauge(
        out,
        "beast_uptime_seconds",
        "Seconds since start.",
        node.uptime_s,
    );
    gauge(
        out,
        "beast_draining",
        "1 while shutting down.",
        u64::from(node.draining),
    );
    gauge(
        out,
        "beast_assets",
        "Assets in the price table.",
        node.assets as u64,
    );
    gauge(
        out,
        "beast_assets_priced",
        "Assets with a price.",
        node.priced as u64,
    );
    gauge(
        out,
        "beast_assets_stale",
        "Assets whose price is older than the stale limit.",
        node.stale as u64,
    );
    family(
        out,
        "beast_assets_refused_total",
        "counter",
        "Prices dropped because the price table had no room for their asset.",
    );
    let _ = writeln!(out, "beast_assets_refused_total {}", node.refused);

    family(
        out,
        "beast_http_responses_total",
        "counter",
        "HTTP responses by status code.",
    );
    for (i, status) in STATUSES.iter().enumerate() {
        let n = sum(&|m| m.http_responses.get(i).map_or(0, |c| c.get()));
        let _ = writeln!(
            out,
            "beast_http_responses_total{{status=\"{}\"}} {n}",
            status.code()
        );
    }
    family(
        out,
        "beast_http_errors_total",
        "counter",
        "HTTP error responses by error code.",
    );
    for (i, code) in ERROR_CODES.iter().enumerate() {
        let n = sum(&|m| m.http_errors.get(i).map_or(0, |c| c.get()));
        let _ = writeln!(
            out,
            "beast_http_errors_total{{code=\"{}\"}} {n}",
            code.as_str()
        );
    }
    family(
        out,
        "beast_udp_requests_total",
        "counter",
        "UDP datagrams received, by request form.",
    );
    let _ = writeln!(
        out,
        "beast_udp_requests_total{{form=\"text\"}} {}",
        sum(&|m| m.udp_text.get())
    );
    let _ = writeln!(
        out,
        "beast_udp_requests_total{{form=\"v8\"}} {}",
        sum(&|m| m.udp_v8.get())
    );
    counter(
        out,
        "beast_udp_replies_total",
        "UDP replies sent.",
        sum(&|m| m.udp_replies.get()),
    );
    family(
        out,
        "beast_udp_dropped_total",
        "counter",
        "UDP datagrams not answered, by reason.",
    );
    for (i, reason) in UDP_DROPS.iter().enumerate() {
        let n = sum(&|m| m.udp_drops.get(i).map_or(0, |c| c.get()));
        let _ = writeln!(
            out,
            "beast_udp_dropped_total{{reason=\"{}\"}} {n}",
            reason.as_str()
        );
    }
    family(
        out,
        "beast_requests_denied_total",
        "counter",
        "Requests refused for their API key (HTTP 401/429, UDP errors), by reason.",
    );
    for (i, reason) in DENIALS.iter().enumerate() {
        let n = sum(&|m| m.denied.get(i).map_or(0, |c| c.get()));
        let _ = writeln!(
            out,
            "beast_requests_denied_total{{reason=\"{reason}\"}} {n}"
        );
    }
    counter(
        out,
        "beast_usage_recorded_total",
        "Requests answered with prices, each queued as one usage record.",
        sum(&|m| m.usage_recorded.get()),
    );
    counter(
        out,
        "beast_usage_dropped_total",
        "Price requests refused because their usage record could not be queued (the side thread was behind); should stay 0.",
        sum(&|m| m.usage_dropped.get()),
    );

    family(
        out,
        "beast_request_duration_seconds",
        "histogram",
        "Time from a request's arrival in the reactor to its reply being queued.",
    );
    for (protocol, pick) in [("http", 0), ("udp", 1)] {
        let mut buckets = [0u64; LATENCY_BOUNDS_US.len() + 1];
        let (mut total_ns, mut count) = (0u64, 0u64);
        for m in reactors {
            let (b, s, c) = if pick == 0 {
                m.http_latency.snapshot()
            } else {
                m.udp_latency.snapshot()
            };
            for (acc, v) in buckets.iter_mut().zip(b) {
                *acc += v;
            }
            total_ns += s;
            count += c;
        }
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BOUNDS_US.iter().zip(buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "beast_request_duration_seconds_bucket{{protocol=\"{protocol}\",le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "beast_request_duration_seconds_bucket{{protocol=\"{protocol}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "beast_request_duration_seconds_sum{{protocol=\"{protocol}\"}} {}",
            total_ns as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "beast_request_duration_seconds_count{{protocol=\"{protocol}\"}} {count}"
        );
    }

    gauge(
        out,
        "beast_connections_open",
        "Open HTTP connections.",
        sum(&|m| m.open_connections.get()),
    );
    gauge(
        out,
        "beast_connections_limit",
        "Connections admitted at once (connection governor).",
        sum(&|m| m.connection_limit.get()),
    );
    counter(
        out,
        "beast_connections_accepted_total",
        "HTTP connections accepted.",
        sum(&|m| m.accepted.get()),
    );
    counter(
        out,
        "beast_connections_rejected_total",
        "Connections refused with 503 overloaded.",
        sum(&|m| m.rejected_overloaded.get()),
    );
    counter(
        out,
        "beast_accept_errors_total",
        "Failed accepts.",
        sum(&|m| m.accept_errors.get()),
    );
    family(
        out,
        "beast_connections_closed_total",
        "counter",
        "Connections closed, by reason.",
    );
    for (i, reason) in CLOSE_REASONS.iter().enumerate() {
        let n = sum(&|m| m.closed.get(i).map_or(0, |c| c.get()));
        let _ = writeln!(
            out,
            "beast_connections_closed_total{{reason=\"{}\"}} {n}",
            reason.as_str()
        );
    }

    family(
        out,
        "beast_reactor_loop_turns_total",
        "counter",
        "Event loop turns per reactor.",
    );
    for (i, m) in reactors.iter().enumerate() {
        let _ = writeln!(
            out,
            "beast_reactor_loop_turns_total{{reactor=\"{i}\"}} {}",
            m.loop_turns.get()
        );
    }
    family(
        out,
        "beast_reactor_completions_total",
        "counter",
        "I/O completions (or readiness events) handled per reactor.",
    );
    for (i, m) in reactors.iter().enumerate() {
        let _ = writeln!(
            out,
            "beast_reactor_completions_total{{reactor=\"{i}\"}} {}",
            m.completions.get()
        );
    }
    family(
        out,
        "beast_reactor_stalls_total",
        "counter",
        "Loop turns longer than the stall threshold.",
    );
    for (i, m) in reactors.iter().enumerate() {
        let _ = writeln!(
            out,
            "beast_reactor_stalls_total{{reactor=\"{i}\"}} {}",
            m.loop_stalls.get()
        );
    }
    family(
        out,
        "beast_reactor_stuck_turns_total",
        "counter",
        "Loop turns the watchdog found still running ten stall thresholds (at least 1 s) after they started.",
    );
    for (i, m) in reactors.iter().enumerate() {
        let _ = writeln!(
            out,
            "beast_reactor_stuck_turns_total{{reactor=\"{i}\"}} {}",
            m.loop_stuck.get()
        );
    }
    family(
        out,
        "beast_reactor_max_turn_seconds",
        "gauge",
        "Longest loop turn since start.",
    );
    for (i, m) in reactors.iter().enumerate() {
        let _ = writeln!(
            out,
            "beast_reactor_max_turn_seconds{{reactor=\"{i}\"}} {}",
            m.loop_max_turn_ns.get() as f64 / 1e9
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Appends the process's CPU time and resident memory (the standard `process_*` names), read
/// from procfs, so a load generator can put server CPU beside its own figures.
/// The price history's memory against its budget, and what did not fit.
pub fn render_history(out: &mut String, history: &crate::history::History) {
    gauge(
        out,
        "beast_history_bytes",
        "Memory the price history's candles take.",
        history.allocated_bytes(),
    );
    counter(
        out,
        "beast_history_series_refused_total",
        "Series (an asset's served price or one venue's) not kept: BEAST_HISTORY_MAX_MIB was spent.",
        history.refused_series(),
    );
    counter(
        out,
        "beast_history_unencodable_ticks_total",
        "Ticks whose price could not share its candle's scale (not placed).",
        history.unencodable(),
    );
}

pub fn render_process(out: &mut String) {
    family(
        out,
        "beast_log_lines_dropped_total",
        "counter",
        "Log lines dropped because the log writer fell behind (no thread ever waits to log).",
    );
    let _ = writeln!(
        out,
        "beast_log_lines_dropped_total {}",
        crate::logging::dropped()
    );
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    if let Some(cpu_s) = cpu_seconds(&stat) {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the process.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {cpu_s:.2}");
    }
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    if let Some(pages) = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
    {
        gauge(
            out,
            "process_resident_memory_bytes",
            "Resident memory of the process.",
            pages * PAGE_SIZE,
        );
    }
}

/// procfs reports times in USER_HZ, which the kernel ABI fixes at 100 on every architecture.
const USER_HZ: f64 = 100.0;
/// x86_64 and aarch64 (4K-page kernels), the targets this server is built for.
const PAGE_SIZE: u64 = 4096;

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`, in seconds. The command name in
/// field 2 may hold spaces, so fields are counted after its closing parenthesis.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

/// Appends each venue's feed state and counters.
pub fn render_feeds(
    out: &mut String,
    feeds: &[std::sync::Arc<beast_feeds::client::FeedStatus>],
    now_ms: u64,
) {
    use beast_feeds::client::{FeedState, FeedStatus};
    if feeds.is_empty() {
        return;
    }
    family(
        out,
        "beast_feed_state",
        "gauge",
        "1 for the state each venue's feed is in.",
    );
    for feed in feeds {
        let current = feed.state();
        for state in FeedState::ALL {
            let _ = writeln!(
                out,
                "beast_feed_state{{venue=\"{}\",state=\"{}\"}} {}",
                feed.venue.name(),
                state.as_str(),
                u8::from(state == current)
            );
        }
    }
    let series: [(&str, &str, &str, fn(&FeedStatus) -> u64); 15] = [
        (
            "beast_feed_messages_total",
            "counter",
            "Text frames received.",
            |f| FeedStatus::get(&f.messages),
        ),
        (
            "beast_feed_messages_per_second",
            "gauge",
            "Frames received in the last full second.",
            |f| FeedStatus::get(&f.messages_per_second),
        ),
        (
            "beast_feed_prices_total",
            "counter",
            "Stream prices handed to the price thread.",
            |f| FeedStatus::get(&f.prices),
        ),
        (
            "beast_feed_parse_errors_total",
            "counter",
            "Malformed frames.",
            |f| FeedStatus::get(&f.parse_errors),
        ),
        (
            "beast_feed_exchange_errors_total",
            "counter",
            "Error frames sent by the exchange.",
            |f| FeedStatus::get(&f.exchange_errors),
        ),
        (
            "beast_feed_reconnects_total",
            "counter",
            "Connections after the first.",
            |f| FeedStatus::get(&f.reconnects),
        ),
        (
            "beast_feed_failing_connects",
            "gauge",
            "Connection attempts failed in a row (0 while connected).",
            |f| FeedStatus::get(&f.failing_connects),
        ),
        (
            "beast_feed_ring_drops_total",
            "counter",
            "Prices dropped because the ring to the price thread was full.",
            |f| FeedStatus::get(&f.ring_drops),
        ),
        (
            "beast_feed_rest_requests_total",
            "counter",
            "REST fallback requests.",
            |f| FeedStatus::get(&f.rest_requests),
        ),
        (
            "beast_feed_rest_errors_total",
            "counter",
            "Failed REST fallback requests.",
            |f| FeedStatus::get(&f.rest_errors),
        ),
        (
            "beast_feed_rest_prices_total",
            "counter",
            "Prices the REST fallback delivered.",
            |f| FeedStatus::get(&f.rest_prices),
        ),
        (
            "beast_feed_rest_prices_applied_total",
            "counter",
            "REST prices the price thread served (the stream was stale).",
            |f| FeedStatus::get(&f.rest_applied),
        ),
        (
            "beast_feed_rest_prices_superseded_total",
            "counter",
            "REST prices ignored because the stream was fresh again.",
            |f| FeedStatus::get(&f.rest_superseded),
        ),
        (
            "beast_feed_future_times_total",
            "counter",
            "Prices stamped in the future beyond the tolerance, restamped at arrival.",
            |f| FeedStatus::get(&f.future_times),
        ),
        (
            "beast_feed_rest_fallback_active",
            "gauge",
            "1 while the REST fallback polls for stale assets.",
            |f| u64::from(f.rest_active.load(std::sync::atomic::Ordering::Relaxed)),
        ),
    ];
    for (name, kind, help, value) in series {
        family(out, name, kind, help);
        for feed in feeds {
            let _ = writeln!(
                out,
                "{name}{{venue=\"{}\"}} {}",
                feed.venue.name(),
                value(feed)
            );
        }
    }
    family(
        out,
        "beast_feed_last_message_age_seconds",
        "gauge",
        "Seconds since the last frame (-1: none yet).",
    );
    for feed in feeds {
        let last = FeedStatus::get(&feed.last_message_ms);
        let age = if last == 0 {
            -1.0
        } else {
            now_ms.saturating_sub(last) as f64 / 1000.0
        };
        let _ = writeln!(
            out,
            "beast_feed_last_message_age_seconds{{venue=\"{}\"}} {age}",
            feed.venue.name()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_from_proc_stat() {
        let cases: &[(&str, Option<f64>)] = &[
            (
                "1 (beast) S 0 1 1 0 -1 4194560 10 0 0 0 250 75 0 0 20 0 4 0",
                Some(3.25),
            ),
            (
                "7 (my (odd) name) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0",
                Some(0.03),
            ),
            ("garbage", None),
        ];
        for (stat, expected) in cases {
            assert_eq!(cpu_seconds(stat), *expected, "{stat}");
        }
        let mut out = String::new();
        render_process(&mut out);
        assert!(out.contains("process_cpu_seconds_total "), "{out}");
        assert!(out.contains("process_resident_memory_bytes "), "{out}");
    }
}
