//! The Run 17 replay: 13 progressive concurrency levels (1, 2, 4 … 4096 by default) on UDP and
//! HTTP, one level at a time, each reported with the server's own figures when its /metrics is
//! given, and the knee: the highest level that kept p99 within the SLO and errors within the
//! budget.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::args::{parse_duration, parse_target};
use crate::load::{self, Form, LoadSpec, Pace};
use crate::report::{self, Level, Machine, Protocol, Report, Settings};
use crate::scrape::{self, ServerFigures};

/// Options of `beast-bench run17`.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("targets").required(true).multiple(true).args(["udp", "http"])))]
pub struct Run17Args {
    /// UDP target, HOST:PORT (levels run on UDP when given).
    #[arg(long, value_parser = parse_target)]
    pub udp: Option<SocketAddr>,
    /// HTTP target, HOST:PORT (levels run on HTTP when given).
    #[arg(long, value_parser = parse_target)]
    pub http: Option<SocketAddr>,
    /// The target's Prometheus endpoint (e.g. http://127.0.0.1:8081/metrics), scraped around
    /// every level for the server's request count, drops and CPU time.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Measured time per level and protocol.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub level_duration: Duration,
    /// Unmeasured time before each level.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Number of levels; level n runs 2^(n-1) requests in flight.
    #[arg(long, default_value_t = 13, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub levels: u8,
    /// UDP request form.
    #[arg(long, default_value = "text", value_parser = ["text", "v8"])]
    pub udp_form: String,
    /// Assets asked for, rotated through (comma separated).
    #[arg(
        short = 'a',
        long,
        default_value = "BTC,ETH,SOL,XRP,DOGE",
        value_delimiter = ','
    )]
    pub assets: Vec<String>,
    /// API key sent with every request.
    #[arg(long, env = "BEAST_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The knee's latency objective for p99.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub slo_p99: Duration,
    /// The knee's error budget, as a fraction of requests sent.
    #[arg(long, default_value_t = 0.001)]
    pub error_budget: f64,
    /// A request unanswered after this long is a timeout.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Load threads per level (never more than the level's sockets or connections).
    #[arg(short = 't', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Pin load threads to CPUs, from the last CPU down.
    #[arg(long)]
    pub pin: bool,
    /// Directory for report.json, report.html and one .hgrm per level.
    #[arg(long)]
    pub out: PathBuf,
    /// A previous report.json to compare against in the HTML page.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// UDP sockets and window for `concurrency` in flight: up to 4 sockets, then 64 in flight per
/// socket, at most 64 sockets.
pub fn udp_shape(concurrency: usize) -> (usize, usize) {
    let sockets = concurrency.min(4.max(concurrency / 64)).clamp(1, 64);
    (sockets, (concurrency / sockets).max(1))
}

pub fn run(args: &Run17Args) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.error_budget),
        "--error-budget {} is not a fraction between 0 and 1",
        args.error_budget
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let baseline = args
        .baseline
        .as_deref()
        .map(Report::load)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let slo_p99_us = u64::try_from(args.slo_p99.as_micros()).unwrap_or(u64::MAX);
    let settings = Settings {
        level_duration_s: args.level_duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        slo_p99_us,
        error_budget: args.error_budget,
        assets: args.assets.clone(),
        udp_target: args.udp.map(|a| a.to_string()),
        http_target: args.http.map(|a| a.to_string()),
        metrics_url: args.metrics.clone(),
    };
    if let Some(url) = &args.metrics {
        scrape::fetch(url).map_err(|e| anyhow::anyhow!("--metrics: {e}"))?;
    }
    let udp_form = if args.udp_form == "v8" {
        Form::UdpV8
    } else {
        Form::UdpText
    };
    let targets: Vec<(Form, SocketAddr)> = [
        args.udp.map(|a| (udp_form, a)),
        args.http.map(|a| (Form::Http, a)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let started = Instant::now();
    let mut levels = Vec::new();
    for level in 1..=usize::from(args.levels) {
        let concurrency = 1usize << (level - 1);
        for &(form, target) in &targets {
            let (connections, window) = match form {
                Form::Http => (concurrency, 1),
                Form::UdpText | Form::UdpV8 => udp_shape(concurrency),
            };
            let spec = LoadSpec {
                target,
                form,
                pace: Pace::Closed { window },
                connections,
                threads: usize::from(args.threads),
                duration: args.level_duration,
                warmup: args.warmup,
                max_requests: None,
                assets: args.assets.clone(),
                per_request: 1,
                key: args.key.clone(),
                pad_to: crate::UDP_TEXT_PAD,
                path: None,
                timeout: args.timeout,
                pin: args.pin,
            };
            let protocol = Protocol::of(form);
            let before = args
                .metrics
                .as_deref()
                .and_then(|url| scrape::fetch(url).ok());
            let scrape_start = Instant::now();
            let started_s = started.elapsed().as_secs_f64() + args.warmup.as_secs_f64();
            let result = load::run(&spec, |_, _| {}).with_context(|| {
                format!(
                    "{} level {level} ({concurrency} in flight) against {target}",
                    protocol.name()
                )
            })?;
            let server = match (
                &before,
                args.metrics
                    .as_deref()
                    .and_then(|url| scrape::fetch(url).ok()),
            ) {
                (Some(before), Some(after)) => Some(ServerFigures::between(
                    before,
                    &after,
                    scrape_start.elapsed().as_secs_f64(),
                )),
                _ => None,
            };
            let verdict = report::judge(&result, slo_p99_us, args.error_budget);
            eprintln!(
                "{:<4} level {level:>2}/{} concurrency {concurrency:>4} ({connections} × {window}): {:>10.0} req/s  p50 {:>6} µs  p99 {:>7} µs  errors {:>6}{}  {}",
                protocol.name(),
                args.levels,
                result.achieved_rps,
                result.latency_us.p50,
                result.latency_us.p99,
                result.errors.failed(),
                server.as_ref().map_or(String::new(), |s| format!(
                    "  server {:.2} cores",
                    s.cpu_cores
                )),
                match &verdict {
                    Ok(()) => String::from("within SLO"),
                    Err(why) => why.clone(),
                },
            );
            write_hgrm(&args.out, protocol, level, &result.hgrm)?;
            levels.push(Level {
                protocol,
                level,
                concurrency,
                started_s: scrape::round(started_s, 3),
                result,
                server,
                within_slo: verdict.is_ok(),
            });
        }
    }
    let knees = report::knees(&levels, slo_p99_us, args.error_budget);
    let report = Report {
        tool: format!("beast-bench {}", beast_engine::build_info::VERSION),
        started_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        machine: Machine::here(),
        settings,
        levels,
        knees,
    };
    for knee in &report.knees {
        match (knee.level, knee.concurrency) {
            (Some(level), Some(concurrency)) => eprintln!(
                "{} knee: level {level} (concurrency {concurrency}), {:.0} req/s at p99 {} µs{}",
                knee.protocol.name(),
                knee.achieved_rps,
                knee.p99_us,
                knee.next_breach
                    .as_ref()
                    .map_or(String::from("; every level held"), |b| format!(
                        "; next: {b}"
                    ))
            ),
            _ => eprintln!(
                "{} knee: none, {}",
                knee.protocol.name(),
                knee.next_breach.clone().unwrap_or_default()
            ),
        }
    }
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(args.out.join("report.json"), json).context("writing report.json")?;
    let html = report::html::render(&report, baseline.as_ref());
    std::fs::write(args.out.join("report.html"), html).context("writing report.html")?;
    eprintln!("wrote {}/report.json and report.html", args.out.display());
    Ok(report)
}

fn write_hgrm(dir: &Path, protocol: Protocol, level: usize, hgrm: &str) -> anyhow::Result<()> {
    let path = dir.join(format!(
        "{}-level{level:02}.hgrm",
        protocol.name().to_lowercase()
    ));
    std::fs::write(&path, hgrm).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_shapes() {
        let cases: &[(usize, (usize, usize))] = &[
            (1, (1, 1)),
            (2, (2, 1)),
            (4, (4, 1)),
            (16, (4, 4)),
            (256, (4, 64)),
            (512, (8, 64)),
            (4096, (64, 64)),
        ];
        for (concurrency, shape) in cases {
            assert_eq!(udp_shape(*concurrency), *shape, "{concurrency}");
            assert_eq!(shape.0 * shape.1, *concurrency);
        }
    }
}
