//! Run 17 reports: the JSON written per run, the terminal comparison of two runs, and the HTML
//! page (see [`html`]).

pub mod html;

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::load::{Form, RunResult};
use crate::scrape::ServerFigures;

/// Which wire a level ran on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Http,
}

impl Protocol {
    pub fn of(form: Form) -> Protocol {
        match form {
            Form::Http => Protocol::Http,
            Form::UdpText | Form::UdpV8 => Protocol::Udp,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Http => "HTTP",
        }
    }
}

/// Where the run was taken.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

/// How a Run 17 replay was set up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub level_duration_s: f64,
    pub warmup_s: f64,
    /// The knee's latency objective: p99 at or under this, µs.
    pub slo_p99_us: u64,
    /// The knee's error budget: failed ÷ sent at or under this.
    pub error_budget: f64,
    pub assets: Vec<String>,
    pub udp_target: Option<String>,
    pub http_target: Option<String>,
    pub metrics_url: Option<String>,
}

/// One level on one protocol.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Level {
    pub protocol: Protocol,
    /// 1-based.
    pub level: usize,
    /// Requests in flight: sockets × window (UDP) or connections (HTTP).
    pub concurrency: usize,
    /// Seconds from the start of the replay to this level's measured window.
    pub started_s: f64,
    pub result: RunResult,
    /// From the target's /metrics, when given.
    pub server: Option<ServerFigures>,
    /// p99 within the SLO and errors within the budget.
    pub within_slo: bool,
}

/// The highest level of a protocol that held the SLO, and what broke it next.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Knee {
    pub protocol: Protocol,
    /// None: not even level 1 held.
    pub level: Option<usize>,
    pub concurrency: Option<usize>,
    pub achieved_rps: f64,
    pub p99_us: u64,
    /// Why the level above failed, if one did.
    pub next_breach: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// `beast-bench <version>`.
    pub tool: String,
    pub started_unix_s: u64,
    pub machine: Machine,
    pub settings: Settings,
    pub levels: Vec<Level>,
    pub knees: Vec<Knee>,
}

impl Report {
    /// Reads a report, or a single `udp`/`http` run result (as a one-level report).
    pub fn load(path: &Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(report) = serde_json::from_str::<Report>(&text) {
            return Ok(report);
        }
        let result: RunResult = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: neither a run17 report nor a run result: {e}",
                path.display()
            )
        })?;
        let protocol = Protocol::of(result.form);
        let concurrency = result.connections;
        Ok(Report {
            tool: String::from("beast-bench"),
            started_unix_s: 0,
            machine: Machine::default(),
            settings: Settings::default(),
            levels: vec![Level {
                protocol,
                level: 1,
                concurrency,
                started_s: 0.0,
                result,
                server: None,
                within_slo: true,
            }],
            knees: Vec::new(),
        })
    }

    pub fn level(&self, protocol: Protocol, level: usize) -> Option<&Level> {
        self.levels
            .iter()
            .find(|l| l.protocol == protocol && l.level == level)
    }

    pub fn protocols(&self) -> Vec<Protocol> {
        let mut protocols: Vec<Protocol> = self.levels.iter().map(|l| l.protocol).collect();
        protocols.sort();
        protocols.dedup();
        protocols
    }
}

/// Judges a level against the SLO and error budget; `Err` says why it failed.
pub fn judge(result: &RunResult, slo_p99_us: u64, error_budget: f64) -> Result<(), String> {
    let failed = result.errors.failed();
    let ratio = failed as f64 / result.sent.max(1) as f64;
    if result.answered == 0 {
        return Err(String::from("no answers"));
    }
    if result.latency_us.p99 > slo_p99_us {
        return Err(format!(
            "p99 {} µs over the {} µs SLO",
            result.latency_us.p99, slo_p99_us
        ));
    }
    if ratio > error_budget {
        return Err(format!(
            "{failed} of {} requests failed ({:.3}%), over the {:.3}% budget",
            result.sent,
            ratio * 100.0,
            error_budget * 100.0
        ));
    }
    Ok(())
}

/// The knee of each protocol: the highest level before the first one that broke the SLO.
pub fn knees(levels: &[Level], slo_p99_us: u64, error_budget: f64) -> Vec<Knee> {
    let mut protocols: Vec<Protocol> = levels.iter().map(|l| l.protocol).collect();
    protocols.sort();
    protocols.dedup();
    protocols
        .into_iter()
        .map(|protocol| {
            let mut ordered: Vec<&Level> =
                levels.iter().filter(|l| l.protocol == protocol).collect();
            ordered.sort_by_key(|l| l.level);
            let breach = ordered
                .iter()
                .position(|l| judge(&l.result, slo_p99_us, error_budget).is_err());
            let held = match breach {
                Some(at) => at.checked_sub(1).and_then(|i| ordered.get(i)),
                None => ordered.last(),
            };
            let next_breach = breach.and_then(|at| ordered.get(at)).map(|l| {
                let why = judge(&l.result, slo_p99_us, error_budget)
                    .err()
                    .unwrap_or_default();
                format!("level {} (concurrency {}): {why}", l.level, l.concurrency)
            });
            Knee {
                protocol,
                level: held.map(|l| l.level),
                concurrency: held.map(|l| l.concurrency),
                achieved_rps: held.map_or(0.0, |l| l.result.achieved_rps),
                p99_us: held.map_or(0, |l| l.result.latency_us.p99),
                next_breach,
            }
        })
        .collect()
}

/// Percent change from `a` to `b`, or "—" when `a` is zero.
pub fn delta(a: f64, b: f64) -> String {
    if a == 0.0 {
        return String::from("—");
    }
    format!("{:+.1}%", (b - a) / a * 100.0)
}

/// The terminal table of `beast-bench compare`: B against A, level by level.
pub fn compare_table(a: &Report, b: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:>5} {:>6} | {:>11} {:>11} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>7} {:>7}",
        "proto",
        "level",
        "conc",
        "req/s A",
        "req/s B",
        "Δ",
        "p50 A",
        "p50 B",
        "Δ",
        "p99 A",
        "p99 B",
        "Δ",
        "err A",
        "err B"
    );
    let mut keys: Vec<(Protocol, usize)> = a
        .levels
        .iter()
        .chain(&b.levels)
        .map(|l| (l.protocol, l.level))
        .collect();
    keys.sort();
    keys.dedup();
    for (protocol, level) in keys {
        let (la, lb) = (a.level(protocol, level), b.level(protocol, level));
        let conc = la.or(lb).map_or(0, |l| l.concurrency);
        let rps = |l: Option<&Level>| l.map_or(0.0, |l| l.result.achieved_rps);
        let p50 = |l: Option<&Level>| l.map_or(0, |l| l.result.latency_us.p50);
        let p99 = |l: Option<&Level>| l.map_or(0, |l| l.result.latency_us.p99);
        let err = |l: Option<&Level>| {
            l.map_or(String::from("—"), |l| {
                l.result.errors.failed().to_string()
            })
        };
        let _ = writeln!(
            out,
            "{:<5} {:>5} {:>6} | {:>11.0} {:>11.0} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>7} {:>7}",
            protocol.name(),
            level,
            conc,
            rps(la),
            rps(lb),
            delta(rps(la), rps(lb)),
            p50(la),
            p50(lb),
            delta(p50(la) as f64, p50(lb) as f64),
            p99(la),
            p99(lb),
            delta(p99(la) as f64, p99(lb) as f64),
            err(la),
            err(lb),
        );
    }
    out
}
