//! `beast doctor`: what this host and this configuration mean for a node, checked before it
//! runs: the I/O backend, process limits, CPUs against reactors, the kernel settings of
//! `tuning/`, the clock, the data directory and every configured store. One line per check;
//! the exit status is the worst severity (0 ok, 1 warnings, 2 a failure the node cannot run
//! with), as monitoring plugins report it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use beast_engine::config::setting::IoChoice;
use beast_engine::config::{Config, ConfigArgs};
use clap::ArgMatches;

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// One JSON object per check instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub settings: ConfigArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Ok,
    Warn,
    Fail,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        }
    }
}

struct Check {
    name: String,
    severity: Severity,
    detail: String,
}

fn check(name: impl Into<String>, severity: Severity, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        severity,
        detail: detail.into(),
    }
}

/// The kernel settings `tuning/sysctl.conf` recommends, read from that file.
const TUNING: &str = include_str!("../../../tuning/sysctl.conf");

/// Descriptors below which a node cannot hold a useful number of connections.
const NOFILE_FAIL: u64 = 4_096;
/// Free space under which the journal and the embedded store may run out.
const FREE_WARN_BYTES: u64 = 1 << 30;
/// How long a store may take to answer.
const STORE_TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(
    args: &DoctorArgs,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, super::Failure> {
    let loaded = super::load_config(&args.settings, matches, file)?;
    let config = &loaded.config;
    let mut checks = vec![
        io_backend(config),
        memlock(),
        nofile(config),
        cpus(config),
        clock_source(),
        data_dir(&config.stores.beast_data_dir.0),
    ];
    checks.extend(sysctls());
    checks.extend(stores(config));

    let worst = checks
        .iter()
        .map(|c| c.severity)
        .max()
        .unwrap_or(Severity::Ok);
    let mut out = String::new();
    for c in &checks {
        if args.json {
            out.push_str(
                &serde_json::json!({"check": c.name, "severity": c.severity.as_str(), "detail": c.detail})
                    .to_string(),
            );
            out.push('\n');
        } else {
            out.push_str(&format!(
                "{:<5} {:<40} {}\n",
                c.severity.as_str(),
                c.name,
                c.detail
            ));
        }
    }
    super::print_out(&out)?;
    Ok(match worst {
        Severity::Ok => ExitCode::SUCCESS,
        Severity::Warn => ExitCode::from(1),
        Severity::Fail => ExitCode::from(2),
    })
}

fn io_backend(config: &Config) -> Check {
    let wanted = config.engine.io;
    match (beast_engine::reactor::probe_uring(), wanted) {
        (Ok(()), IoChoice::Epoll) => check(
            "io_uring",
            Severity::Ok,
            "available; BEAST_IO=epoll serves on epoll",
        ),
        (Ok(()), _) => check("io_uring", Severity::Ok, "available: serving on io_uring"),
        (Err(why), IoChoice::Uring) => check(
            "io_uring",
            Severity::Fail,
            format!("BEAST_IO=uring, but io_uring is unavailable: {why}"),
        ),
        (Err(why), IoChoice::Epoll) => check(
            "io_uring",
            Severity::Ok,
            format!("unavailable ({why}); BEAST_IO=epoll"),
        ),
        (Err(why), IoChoice::Auto) => check(
            "io_uring",
            Severity::Warn,
            format!(
                "unavailable ({why}): the node falls back to epoll (set BEAST_IO=epoll to say so)"
            ),
        ),
    }
}

fn shown(value: u64) -> String {
    if value == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        value.to_string()
    }
}

fn memlock() -> Check {
    match beast_engine::host::rlimit(libc::RLIMIT_MEMLOCK) {
        // Kernels before 5.12 charge io_uring rings to RLIMIT_MEMLOCK; later ones to the cgroup.
        Some((soft, _)) if soft < 8 << 20 && kernel_below(5, 12) => check(
            "memlock",
            Severity::Warn,
            format!(
                "{} bytes: this kernel charges io_uring rings against it; raise to 8 MiB or more (ulimit -l)",
                shown(soft)
            ),
        ),
        Some((soft, _)) => check("memlock", Severity::Ok, format!("{} bytes", shown(soft))),
        None => check("memlock", Severity::Warn, "cannot read RLIMIT_MEMLOCK"),
    }
}

fn kernel_below(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
}

fn nofile(config: &Config) -> Check {
    // A node holds up to its share of the cluster's connections, plus its stores and feeds.
    let wanted = config.params.adaptive_max_concurrent.get() + 1_024;
    match beast_engine::host::rlimit(libc::RLIMIT_NOFILE) {
        Some((soft, hard)) if soft < NOFILE_FAIL => check(
            "nofile",
            Severity::Fail,
            format!(
                "{soft} (hard {}): too few descriptors to serve; raise ulimit -n",
                shown(hard)
            ),
        ),
        Some((soft, hard)) if soft < wanted => check(
            "nofile",
            Severity::Warn,
            format!(
                "{soft} (hard {}): below ADAPTIVE_MAX_CONCURRENT + 1024 = {wanted}",
                shown(hard)
            ),
        ),
        Some((soft, _)) => check("nofile", Severity::Ok, shown(soft)),
        None => check("nofile", Severity::Warn, "cannot read RLIMIT_NOFILE"),
    }
}

fn cpus(config: &Config) -> Check {
    let allowed = core_affinity::get_core_ids().map_or(0, |c| c.len());
    let requested = config.engine.reactors.get_usize();
    let pin = config.engine.pin.0;
    match beast_engine::server::reactor_count(requested, pin) {
        Err(e) => check("cpus", Severity::Fail, e.to_string()),
        Ok(reactors) if reactors > allowed => check(
            "cpus",
            Severity::Warn,
            format!("{reactors} reactors on {allowed} allowed CPUs: reactors will share cores"),
        ),
        Ok(reactors) => check(
            "cpus",
            Severity::Ok,
            format!(
                "{allowed} allowed; {reactors} reactors{}",
                if pin { ", pinned" } else { "" }
            ),
        ),
    }
}

fn clock_source() -> Check {
    let path = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    match std::fs::read_to_string(path) {
        // These are read through the vDSO: a clock read costs no system call.
        Ok(source) if matches!(source.trim(), "tsc" | "kvm-clock" | "arch_sys_counter") => {
            check("clock source", Severity::Ok, source.trim())
        }
        Ok(source) => check(
            "clock source",
            Severity::Warn,
            format!(
                "{}: reading the clock may be a system call (tsc is best where the host allows it)",
                source.trim()
            ),
        ),
        Err(e) => check(
            "clock source",
            Severity::Warn,
            format!("cannot read {path}: {e}"),
        ),
    }
}

fn data_dir(dir: &Path) -> Check {
    if let Err(e) = super::writable_dir(dir) {
        return check(
            "data directory",
            Severity::Fail,
            format!("{} is not writable: {e}", dir.display()),
        );
    }
    let free = match beast_engine::host::free_bytes(dir) {
        Ok(free) => free,
        Err(e) => {
            return check(
                "data directory",
                Severity::Warn,
                format!("{}: writable; free space unknown: {e}", dir.display()),
            );
        }
    };
    let detail = format!("{}: writable, {} MiB free", dir.display(), free >> 20);
    if free < FREE_WARN_BYTES {
        check(
            "data directory",
            Severity::Warn,
            format!("{detail} (under 1 GiB)"),
        )
    } else {
        check("data directory", Severity::Ok, detail)
    }
}

fn sysctls() -> Vec<Check> {
    TUNING
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(key, wanted)| {
            let (key, wanted) = (key.trim(), wanted.trim());
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            let name = format!("sysctl {key}");
            match std::fs::read_to_string(&path) {
                Ok(current) => {
                    let current = current.split_whitespace().collect::<Vec<_>>().join(" ");
                    if sysctl_meets(&current, wanted) {
                        check(name, Severity::Ok, current)
                    } else {
                        check(
                            name,
                            Severity::Warn,
                            format!("{current}, tuning/sysctl.conf has {wanted} (hosts you control; not on Fargate)"),
                        )
                    }
                }
                Err(e) => check(name, Severity::Warn, format!("cannot read {path}: {e}")),
            }
        })
        .collect()
}

/// A size or count meets the recommendation at or above it, a switch (0, 1, 2: a mode, not an
/// amount) only when equal, a range (`1024 65535`) when at least as wide.
fn sysctl_meets(current: &str, wanted: &str) -> bool {
    let numbers = |s: &str| -> Vec<u64> {
        s.split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    match (numbers(current).as_slice(), numbers(wanted).as_slice()) {
        ([c], [w]) if *w <= 2 => c == w,
        ([c], [w]) => c >= w,
        ([c_lo, c_hi], [w_lo, w_hi]) => c_lo <= w_lo && c_hi >= w_hi,
        _ => current == wanted,
    }
}

fn stores(config: &Config) -> Vec<Check> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return vec![check("stores", Severity::Fail, format!("no runtime: {e}"))],
    };
    let dir = config.stores.beast_data_dir.0.clone();
    let mut checks = Vec::new();
    let database = config.stores.database();
    let opened = runtime.block_on(async {
        tokio::time::timeout(
            STORE_TIMEOUT,
            beast_engine::store::Store::open(database.map(|u| u.expose()), &dir),
        )
        .await
    });
    let (name, shown_url) = match database {
        Some(url) => ("store (PostgreSQL)", url.masked()),
        None => (
            "store (embedded)",
            dir.join("beast.db").display().to_string(),
        ),
    };
    checks.push(match opened {
        Ok(Ok(_)) => check(
            name,
            Severity::Ok,
            format!("{shown_url}: reachable, schema current"),
        ),
        Ok(Err(e)) => check(name, Severity::Fail, format!("{shown_url}: {e}")),
        Err(_) => check(
            name,
            Severity::Fail,
            format!("{shown_url}: no answer within 3 s"),
        ),
    });
    if let Some(url) = &config.stores.cache_url {
        let pinged = runtime.block_on(beast_engine::side::cache::ping(url.expose()));
        checks.push(match pinged {
            Ok(()) => check(
                "cache (Valkey)",
                Severity::Ok,
                format!("{}: PONG", url.masked()),
            ),
            // Serving does not need it: prices stay in memory.
            Err(e) => check(
                "cache (Valkey)",
                Severity::Warn,
                format!("{}: {e}", url.masked()),
            ),
        });
    }
    if let Some(url) = &config.stores.sqs_usage_log_queue_url {
        let client = beast_engine::side::sink::sqs::SqsClient::new(
            url.expose(),
            &config.stores.aws_region.0,
        );
        let body = serde_json::json!({"QueueUrl": url.expose(), "AttributeNames": ["QueueArn"]})
            .to_string();
        checks.push(match client.call("AmazonSQS.GetQueueAttributes", &body) {
            Ok(_) => check(
                "usage queue (SQS)",
                Severity::Ok,
                format!("{}: reachable", url.masked()),
            ),
            Err(e) => check(
                "usage queue (SQS)",
                Severity::Fail,
                format!("{}: {e}", url.masked()),
            ),
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_recommendations() {
        // (current, recommended, meets)
        let cases = [
            ("16777216", "16777216", true),
            ("33554432", "16777216", true),
            ("4194304", "16777216", false),
            ("1", "1", true),
            ("2", "1", false),
            ("1024 65535", "1024 65535", true),
            ("32768 60999", "1024 65535", false),
            ("500 65535", "1024 65535", true),
        ];
        for (current, wanted, meets) in cases {
            assert_eq!(
                sysctl_meets(current, wanted),
                meets,
                "{current} against {wanted}"
            );
        }
    }
}
