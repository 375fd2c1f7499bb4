//! `beast-bench`: load generator for the Beast price server.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use beast_bench::args::LoadArgs;
use beast_bench::load::{self, Form, Pace, RunResult};
use beast_bench::peers::{self, PeersArgs};
use beast_bench::report::{self, Report};
use beast_bench::run17::{self, Run17Args};
use clap::{Parser, Subcommand};

/// Load generator for the Beast price server: UDP (text, v8) and HTTP/1.1, closed and open
/// loop, the Run 17 replay, reports, and the same loads against the reference servers.
#[derive(Parser, Debug)]
#[command(name = "beast-bench", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// UDP load: text requests (`BTC`, padded) or binary v8.
    Udp {
        #[command(flatten)]
        load: LoadArgs,
        /// Request form.
        #[arg(long, default_value = "text", value_parser = ["text", "v8"])]
        form: String,
        /// Pad text requests to this many bytes per asset (0: no padding; beast then answers
        /// only what fits in the request).
        #[arg(long, default_value_t = beast_bench::UDP_TEXT_PAD)]
        pad: usize,
    },
    /// HTTP/1.1 keep-alive load (`GET /price?asset=`), pipelined with --window above 1.
    Http {
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The Run 17 replay: 13 progressive levels on UDP and HTTP, a JSON and an HTML report.
    Run17(Run17Args),
    /// Prints the level-by-level delta of two reports (run17 report.json or --json results).
    Compare {
        /// The baseline.
        a: PathBuf,
        /// The run compared with it.
        b: PathBuf,
        /// Also write an HTML page of B with A as its baseline.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Runs the reference servers and beast under the same loads, with wrk/udpload beside
    /// beast-bench, and writes the ratio table.
    Peers(PeersArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Udp { load, form, pad } => {
            let form = if form == "v8" {
                Form::UdpV8
            } else {
                Form::UdpText
            };
            single(&load, form, pad)
        }
        Command::Http { load } => single(&load, Form::Http, 0),
        Command::Run17(args) => run17::run(&args).map(|_| ()),
        Command::Compare { a, b, html } => compare(&a, &b, html.as_deref()),
        Command::Peers(args) => peers::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("beast-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn single(args: &LoadArgs, form: Form, pad: usize) -> anyhow::Result<()> {
    let spec = args.spec(form, pad);
    let quiet = args.quiet;
    let mut last = (Duration::ZERO, 0u64);
    let result = load::run(&spec, |elapsed, answered| {
        if quiet {
            return;
        }
        let rate = (answered - last.1) as f64 / (elapsed - last.0).as_secs_f64().max(1e-3);
        let phase = if elapsed < spec.warmup {
            "warm-up"
        } else {
            "measuring"
        };
        eprint!(
            "\r{:>5.1} s  {phase:<9}  {rate:>10.0} answers/s   ",
            elapsed.as_secs_f64()
        );
        let _ = std::io::stderr().flush();
        last = (elapsed, answered);
    })?;
    if !quiet {
        eprintln!();
    }
    print!("{}", summary(&result, spec.warmup));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.hgrm {
        std::fs::write(path, &result.hgrm)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(result.answered > 0, "no answers from {}", result.target);
    Ok(())
}

fn summary(r: &RunResult, warmup: Duration) -> String {
    let form = match r.form {
        Form::UdpText => "UDP text",
        Form::UdpV8 => "UDP v8",
        Form::Http => "HTTP",
    };
    let pace = match r.pace {
        Pace::Closed { window } => format!("closed loop, {} × {window} in flight", r.connections),
        Pace::Open { rate, window } => format!(
            "open loop at {rate:.0}/s, {} × up to {window} in flight",
            r.connections
        ),
    };
    let row = |name: &str, p: &beast_bench::stats::Percentiles| {
        format!(
            "  {name:<11} p50 {:>7}  p90 {:>7}  p99 {:>7}  p99.9 {:>7}  p99.99 {:>7}  max {:>8}\n",
            p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max
        )
    };
    let mut out = format!(
        "{form} {}: {pace}, {} thread(s), {:.1} s measured after {:.1} s warm-up\n",
        r.target,
        r.threads,
        r.duration_s,
        warmup.as_secs_f64()
    );
    out.push_str(&format!(
        "  requests    sent {}  answered {}  good {}  → {:.0} req/s{}\n",
        r.sent,
        r.answered,
        r.ok,
        r.achieved_rps,
        r.offered_rps
            .map_or(String::new(), |o| format!(" (offered {o:.0}/s)"))
    ));
    out.push_str(&row(
        if r.offered_rps.is_some() {
            "latency µs*"
        } else {
            "latency µs"
        },
        &r.latency_us,
    ));
    if r.offered_rps.is_some() {
        out.push_str(&row("service µs", &r.service_us));
        out.push_str(&row("gen. lag µs", &r.generator_lag_us));
        out.push_str(
            "  * from each request's intended send time (coordinated omission corrected)\n",
        );
    }
    let e = &r.errors;
    let failed = e.failed();
    if failed == 0 {
        out.push_str("  errors      none\n");
    } else {
        out.push_str(&format!(
            "  errors      {failed}: timeouts {}, UDP lost {}, malformed {}, mismatched {}, 4xx {}, 429 {}, 503 overloaded {}, 5xx {}, connection {}\n",
            e.timeouts, e.udp_lost, e.malformed, e.mismatched, e.http_4xx, e.http_429, e.http_503_overloaded, e.http_5xx, e.connection
        ));
    }
    out
}

fn compare(
    a: &std::path::Path,
    b: &std::path::Path,
    html: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let (ra, rb) = (
        Report::load(a).map_err(anyhow::Error::msg)?,
        Report::load(b).map_err(anyhow::Error::msg)?,
    );
    println!("A = {}\nB = {}\n", a.display(), b.display());
    print!("{}", report::compare_table(&ra, &rb));
    if let Some(path) = html {
        std::fs::write(path, report::html::render(&rb, Some(&ra)))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
