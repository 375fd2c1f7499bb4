//! Reads a server's Prometheus `/metrics` over plain HTTP, so a run can put the server's own
//! counts and CPU time beside what the generator measured.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::args::parse_target;

const TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BODY: u64 = 4 << 20;

/// Every sample of an exposition, summed over labels: `family → value`.
pub type Samples = BTreeMap<String, f64>;

/// Fetches `url` (`http://host:port/path`) and sums its samples by metric name.
pub fn fetch(url: &str) -> Result<Samples, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// metrics URLs are supported"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/"), |(a, p)| (a, p));
    let address = parse_target(authority)?;
    let mut stream =
        TcpStream::connect_timeout(&address, TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(MAX_BODY)
        .read_to_end(&mut response)
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(format!("{url}: {status}"));
    }
    Ok(parse(body))
}

/// Sums the samples of a text exposition by metric name (labels dropped).
pub fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let (name, rest) = line.split_at(name_end);
        let value = rest
            .rsplit(' ')
            .find(|v| !v.is_empty())
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(value) = value.filter(|v| v.is_finite()) {
            *samples.entry(name.to_string()).or_default() += value;
        }
    }
    samples
}

/// What the server says it did during a level.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerFigures {
    /// Seconds between the two scrapes (warm-up and drain included).
    pub seconds: f64,
    /// UDP replies plus HTTP responses.
    pub requests: f64,
    /// Server CPU time over the scrape interval, in cores.
    pub cpu_cores: f64,
    /// Requests per server-core-second: the per-core efficiency figure.
    pub requests_per_core_second: f64,
    pub udp_dropped: f64,
    pub connections_rejected: f64,
    pub reactor_stalls: f64,
    pub http_errors: f64,
}

impl ServerFigures {
    pub fn between(before: &Samples, after: &Samples, seconds: f64) -> ServerFigures {
        let delta = |name: &str| {
            (after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0))
                .max(0.0)
        };
        let requests = delta("beast_udp_replies_total") + delta("beast_http_responses_total");
        let cpu = delta("process_cpu_seconds_total");
        ServerFigures {
            seconds: round(seconds, 3),
            requests,
            cpu_cores: round(cpu / seconds.max(1e-9), 3),
            requests_per_core_second: if cpu > 0.0 {
                round(requests / cpu, 0)
            } else {
                0.0
            },
            udp_dropped: delta("beast_udp_dropped_total"),
            connections_rejected: delta("beast_connections_rejected_total"),
            reactor_stalls: delta("beast_reactor_stalls_total"),
            http_errors: delta("beast_http_errors_total"),
        }
    }
}

pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_by_name() {
        let text = "# HELP x y\n# TYPE beast_udp_replies_total counter\n\
            beast_udp_replies_total{port=\"lpo\",form=\"text\"} 10\n\
            beast_udp_replies_total{port=\"lrs\",form=\"v8\"} 5\n\
            process_cpu_seconds_total 1.5\nbad_line nan\n\n";
        let samples = parse(text);
        assert_eq!(samples.get("beast_udp_replies_total"), Some(&15.0));
        assert_eq!(samples.get("process_cpu_seconds_total"), Some(&1.5));
        assert_eq!(samples.get("bad_line"), None);
        let after = parse("beast_udp_replies_total 115\nprocess_cpu_seconds_total 2.0\n");
        let figures = ServerFigures::between(&samples, &after, 1.0);
        assert_eq!(
            (
                figures.requests,
                figures.cpu_cores,
                figures.requests_per_core_second
            ),
            (100.0, 0.5, 200.0)
        );
    }
}
