//! `beast doctor` checks the host and the configuration before a node runs: one line per
//! check, the exit status the worst severity (0 ok, 1 warnings, 2 failures).

use beast_tests::{Scratch, run};
use serde_json::Value;

fn doctor(scratch: &Scratch, args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let ran = run(&mut scratch.beast(&all));
    let checks = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (ran.code, checks)
}

fn severity<'a>(checks: &'a [Value], name: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .and_then(|c| c["severity"].as_str())
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

fn worst(checks: &[Value]) -> i32 {
    let rank = |c: &Value| match c["severity"].as_str() {
        Some("ok") => 0,
        Some("warn") => 1,
        _ => 2,
    };
    checks.iter().map(rank).max().unwrap_or(0)
}

#[test]
fn a_usable_host_and_configuration_pass_and_the_status_is_the_worst_check() {
    let scratch = Scratch::new();
    let data = scratch.path().join("data");
    let (code, checks) = doctor(&scratch, &["--beast-data-dir", data.to_str().unwrap()]);
    for name in ["data directory", "store (embedded)", "cpus"] {
        assert_eq!(severity(&checks, name), "ok", "{name}: {checks:?}");
    }
    // Every kernel setting of tuning/sysctl.conf is looked at.
    let tuning = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tuning/sysctl.conf"
    ))
    .unwrap();
    for key in tuning
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('=').next())
    {
        severity(&checks, &format!("sysctl {}", key.trim()));
    }
    for name in ["io_uring", "memlock", "nofile", "clock source"] {
        severity(&checks, name);
    }
    // This host's sysctls may be below the recommendations (a warning), nothing fails.
    assert_eq!(code, Some(worst(&checks)), "{checks:?}");
    assert!(code == Some(0) || code == Some(1), "{checks:?}");
}

#[test]
fn what_the_node_cannot_run_with_fails() {
    let scratch = Scratch::new();
    // An unwritable data directory and an unreachable PostgreSQL: failures; an unreachable
    // Valkey: a warning (prices are served from memory without it).
    let (code, checks) = doctor(
        &scratch,
        &[
            "--beast-data-dir",
            "/proc/beast-doctor",
            "--database-url",
            "postgres://beast:secret-password@127.0.0.1:1/beast",
            "--cache-url",
            "redis://127.0.0.1:1/0",
            "--reactors",
            "1024",
        ],
    );
    assert_eq!(code, Some(2), "{checks:?}");
    assert_eq!(severity(&checks, "data directory"), "fail");
    assert_eq!(severity(&checks, "store (PostgreSQL)"), "fail");
    assert_eq!(severity(&checks, "cache (Valkey)"), "warn");
    assert_eq!(
        severity(&checks, "cpus"),
        "fail",
        "more pinned reactors than CPUs"
    );
    // No secret in what it prints.
    assert!(
        !format!("{checks:?}").contains("secret-password"),
        "{checks:?}"
    );
}
