//! What a load run measures: latency histograms (HdrHistogram, µs, 3 significant digits), error
//! classes, and a per-second series of throughput and p99.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded: anything slower is clamped here (one minute, in µs).
const MAX_US: u64 = 60_000_000;

#[allow(
    clippy::expect_used,
    reason = "constant bounds that HdrHistogram accepts"
)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_US);
    histogram.saturating_record(us);
}

/// Percentiles of a histogram, in µs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub max: u64,
    pub mean: f64,
    pub count: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            p99_99: h.value_at_quantile(0.9999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
            count: h.len(),
        }
    }
}

/// Errors by class.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Errors {
    /// Requests not answered within the timeout.
    pub timeouts: u64,
    /// UDP: sent − answered (timeouts included, counted at the end).
    pub udp_lost: u64,
    /// Replies that are not a well-formed answer.
    pub malformed: u64,
    /// Well-formed replies for another asset, or whose price does not parse.
    pub mismatched: u64,
    /// 4xx other than 429.
    pub http_4xx: u64,
    /// 5xx other than the governor's 503, and any other unexpected status.
    pub http_5xx: u64,
    pub http_429: u64,
    /// 503 with `"error":"overloaded"` (the connection governor).
    pub http_503_overloaded: u64,
    /// Connections refused or reset.
    pub connection: u64,
}

impl Errors {
    pub fn add(&mut self, other: &Errors) {
        self.timeouts += other.timeouts;
        self.udp_lost += other.udp_lost;
        self.malformed += other.malformed;
        self.mismatched += other.mismatched;
        self.http_4xx += other.http_4xx;
        self.http_5xx += other.http_5xx;
        self.http_429 += other.http_429;
        self.http_503_overloaded += other.http_503_overloaded;
        self.connection += other.connection;
    }

    /// Requests that did not get a good answer (for UDP, lost ones include the timed out).
    pub fn failed(&self) -> u64 {
        self.timeouts.max(self.udp_lost)
            + self.malformed
            + self.mismatched
            + self.http_4xx
            + self.http_5xx
            + self.http_429
            + self.http_503_overloaded
            + self.connection
    }

    /// Counts an HTTP answer with a status other than 200 (and not the governor's 503).
    pub fn count_status(&mut self, status: u16) {
        match status {
            429 => self.http_429 += 1,
            400..=499 => self.http_4xx += 1,
            _ => self.http_5xx += 1,
        }
    }
}

/// One second of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// Seconds since the measurement started.
    pub t: u64,
    pub responses: u64,
    pub p99_us: u64,
}

/// Per-second counts and latencies, merged across threads.
pub struct Series {
    seconds: Vec<(u64, Histogram<u64>)>,
}

impl Series {
    pub fn new() -> Series {
        Series {
            seconds: Vec::new(),
        }
    }

    pub fn record(&mut self, second: usize, latency: Duration) {
        while self.seconds.len() <= second {
            self.seconds.push((0, histogram()));
        }
        if let Some((count, h)) = self.seconds.get_mut(second) {
            *count += 1;
            record(h, latency);
        }
    }

    pub fn merge(&mut self, other: Series) {
        for (i, (count, h)) in other.seconds.into_iter().enumerate() {
            while self.seconds.len() <= i {
                self.seconds.push((0, histogram()));
            }
            if let Some((c, mine)) = self.seconds.get_mut(i) {
                *c += count;
                let _ = mine.add(&h);
            }
        }
    }

    pub fn to_seconds(&self) -> Vec<Second> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(t, (responses, h))| Second {
                t: t as u64,
                responses: *responses,
                p99_us: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.99)
                },
            })
            .collect()
    }
}

impl Default for Series {
    fn default() -> Self {
        Series::new()
    }
}

/// The percentile distribution in HdrHistogram's `.hgrm` text form (what
/// `outputPercentileDistribution` prints), values in µs scaled to ms like the reference tools.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value_ms = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            out.push_str(&format!(
                "{value_ms:12.3} {q:14.12} {total:10} {:14.2}\n",
                1.0 / (1.0 - q)
            ));
        } else {
            out.push_str(&format!("{value_ms:12.3} {q:14.12} {total:10}\n"));
        }
    }
    let mean = h.mean() / 1000.0;
    let stdev = h.stdev() / 1000.0;
    out.push_str(&format!(
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]\n#[Buckets = {:12}, SubBuckets     = {:12}]\n",
        h.max() as f64 / 1000.0,
        h.len(),
        h.buckets(),
        h.distinct_values()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_hgrm() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let p = Percentiles::of(&h);
        assert_eq!((p.p50, p.count), (500, 1000));
        assert!((990..=991).contains(&p.p99), "{}", p.p99);
        assert_eq!(p.max, 1000);
        let text = hgrm(&h);
        assert!(text.starts_with("       Value     Percentile TotalCount"));
        assert!(text.contains("Total count    =         1000"));
        let mut series = Series::new();
        series.record(0, Duration::from_micros(5));
        series.record(2, Duration::from_micros(7));
        let mut other = Series::new();
        other.record(2, Duration::from_micros(9));
        series.merge(other);
        let seconds = series.to_seconds();
        assert_eq!(
            seconds.iter().map(|s| s.responses).collect::<Vec<_>>(),
            [1, 0, 2]
        );
    }
}
