//! Command-line options shared by the load commands, and the parsers they use.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use beast_core::Symbol;

use crate::load::{Form, LoadSpec, Pace};

/// Options of `beast-bench udp` and `beast-bench http`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target server, HOST:PORT.
    #[arg(value_parser = parse_target)]
    pub target: SocketAddr,
    /// Sockets (UDP) or connections (HTTP), in all [default: UDP 4, HTTP 64].
    #[arg(short = 'c', long)]
    pub connections: Option<usize>,
    /// Requests in flight per socket, or pipelined per connection [default: UDP 16, HTTP 1].
    #[arg(short = 'w', long)]
    pub window: Option<usize>,
    /// Open loop: requests per second in all, sent on schedule whatever the server does;
    /// latency is then measured from each request's intended send time. Closed loop without.
    #[arg(short = 'r', long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Load threads, each driving its share of the sockets or connections.
    #[arg(short = 't', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Measured time (e.g. 10s, 500ms, 1m).
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time before measuring starts; requests intended in it are not counted.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Stop after this many measured requests (or at the end of the duration).
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Assets asked for, rotated through (comma separated).
    #[arg(short = 'a', long, default_value = "BTC", value_delimiter = ',', value_parser = parse_asset)]
    pub assets: Vec<String>,
    /// Assets per request (HTTP: `/prices?assets=`; UDP: several symbols per datagram).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub per_request: u8,
    /// API key sent with every request (UDP: `key=` / the v8 key field; HTTP: X-API-Key).
    #[arg(long, env = "BEAST_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// HTTP: ask for this target on every request instead of prices (`/reports/snapshot`);
    /// a 200 with a body is a good answer.
    #[arg(long, value_name = "TARGET", value_parser = parse_path)]
    pub path: Option<String>,
    /// A request unanswered after this long is a timeout.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Pin load threads to CPUs, from the last CPU down (the server pins from CPU 0 up).
    #[arg(long)]
    pub pin: bool,
    /// Write the result as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the latency histogram here in HdrHistogram's .hgrm text form.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// No progress line.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl LoadArgs {
    /// The run these options describe, with the protocol's defaults filled in.
    pub fn spec(&self, form: Form, pad_to: usize) -> LoadSpec {
        let (connections, window) = match form {
            Form::Http => (self.connections.unwrap_or(64), self.window.unwrap_or(1)),
            Form::UdpText | Form::UdpV8 => {
                (self.connections.unwrap_or(4), self.window.unwrap_or(16))
            }
        };
        let window = window.max(1);
        LoadSpec {
            target: self.target,
            form,
            pace: match self.rate {
                Some(rate) => Pace::Open { rate, window },
                None => Pace::Closed { window },
            },
            connections: connections.max(1),
            threads: usize::from(self.threads),
            duration: self.duration,
            warmup: self.warmup,
            max_requests: self.requests,
            assets: self.assets.clone(),
            per_request: usize::from(self.per_request),
            key: self.key.clone(),
            pad_to,
            path: self.path.clone(),
            timeout: self.timeout,
            pin: self.pin,
        }
    }
}

/// `HOST:PORT`, resolved to its first address.
fn parse_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a request target (it starts with / and has no spaces)"
        ))
    }
}

pub fn parse_target(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}` is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// `250ms`, `2s`, `1.5s`, `1m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 500ms, 2s, 1m)"))?;
    let seconds = match unit {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (us, ms, s, m)")),
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("`{text}` is out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (1.0..=1e8).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate between 1 and 100000000 requests per second"
        )),
    }
}

fn parse_asset(text: &str) -> Result<String, String> {
    Symbol::parse(text.trim().as_bytes())
        .map(|s| s.as_str().to_string())
        .map_err(|e| format!("`{text}` is not an asset symbol: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u128>)] = &[
            ("2s", Some(2_000_000)),
            ("250ms", Some(250_000)),
            ("1.5s", Some(1_500_000)),
            ("1m", Some(60_000_000)),
            ("3", Some(3_000_000)),
            ("40us", Some(40)),
            ("2h", None),
            ("-1s", None),
            ("fast", None),
        ];
        for (text, micros) in cases {
            let got = parse_duration(text).ok().map(|d| d.as_micros());
            assert_eq!(got, *micros, "{text}");
        }
    }

    #[test]
    fn targets_and_assets() {
        assert_eq!(
            parse_target("127.0.0.1:2679"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 2679)))
        );
        assert!(parse_target("localhost").is_err());
        assert_eq!(parse_asset("btc").as_deref(), Ok("BTC"));
        assert!(parse_asset("BTC/USD").is_err());
    }
}
