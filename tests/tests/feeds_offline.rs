//! With no configuration `beast serve` follows the live exchanges (its job). Offline, it says
//! so plainly: once in its log, and in `/health`, until a venue connects. The node runs in a
//! network namespace of the test's own with only loopback, so nothing leaves the machine and
//! no exchange can answer; the health check runs inside it too (`beast health`).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use beast_tests::server::wait_until;

/// A network namespace with loopback up, removed when dropped.
struct Namespace(String);

impl Namespace {
    fn create() -> Option<Namespace> {
        let name = format!("beast-offline-{}", std::process::id());
        let made = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .ok()?;
        if !made.status.success() {
            eprintln!(
                "SKIPPED: cannot create a network namespace here: {}",
                String::from_utf8_lossy(&made.stderr).trim()
            );
            return None;
        }
        let namespace = Namespace(name);
        let up = namespace
            .exec("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(
            up.is_ok_and(|s| s.success()),
            "loopback up in {}",
            namespace.0
        );
        Some(namespace)
    }

    fn exec(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0, program]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn offline_the_live_node_says_no_venue_is_reachable() {
    let Some(namespace) = Namespace::create() else {
        return;
    };
    let scratch = beast_tests::Scratch::new();
    let stderr = scratch.path().join("stderr.log");
    // No --feeds: the default. Fixed ports: the namespace is the test's alone.
    let mut serve = namespace.exec(beast_tests::beast_bin().to_str().unwrap());
    serve
        .args(["serve", "--bind", "127.0.0.1", "--reactors", "1"])
        .args([
            "--beast-data-dir",
            scratch.path().join("data").to_str().unwrap(),
        ])
        .args(["--health-port-lpo", "18181"])
        .env("BEAST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = serve.spawn().expect("spawn beast in the namespace");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("the ready line");
    assert_eq!(ready["feeds"], "live", "{ready}");

    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let said = wait_until(Duration::from_secs(30), || {
        log().contains("no exchange is reachable")
    });
    let health = || {
        let out = namespace
            .exec(beast_tests::beast_bin().to_str().unwrap())
            .args(["health", "--health-port-lpo", "18181"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, body) = health();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    let log = log();
    assert!(said, "the log says no exchange is reachable:\n{log}");
    assert_eq!(
        log.matches("no exchange is reachable").count(),
        1,
        "said once:\n{log}"
    );
    // Nothing priced: not healthy, and the reason named.
    assert_eq!(code, Some(1), "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "starting", "{body}");
    assert_eq!(body["degraded"][0], "no_venue_reachable", "{body}");
    assert!(body.get("simulated").is_none(), "{body}");
    assert!(status.success(), "SIGTERM ends it cleanly: {status}");
}
