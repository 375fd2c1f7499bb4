//! `beast version`, `--help` on every command, and usage errors.

use beast_tests::{Scratch, run};

#[test]
fn version_reports_build_facts() {
    let scratch = Scratch::new();
    let ran = run(&mut scratch.beast(&["version"]));
    assert_eq!(ran.code, Some(0));
    assert!(
        ran.stdout
            .starts_with(&format!("beast {}\n", env!("CARGO_PKG_VERSION"))),
        "{}",
        ran.stdout
    );
    for field in ["commit:", "target:", "io backends:"] {
        assert!(
            ran.stdout.contains(field),
            "{field} missing: {}",
            ran.stdout
        );
    }
    let ran = run(&mut scratch.beast(&["version", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(json["target"].as_str().is_some_and(|t| t.contains("linux")));
    let backends: Vec<&str> = json["io_backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    assert_eq!(backends, ["uring", "epoll"]);
}

#[test]
fn every_command_has_help() {
    let scratch = Scratch::new();
    // (command, text the help must contain)
    let cases: &[(&[&str], &str)] = &[
        (&["--help"], "serve"),
        (&["serve", "--help"], "--tcp-port-lpo <PORT>"),
        (&["config", "--help"], "show"),
        (&["config", "show", "--help"], "--format"),
        (&["config", "check", "--help"], "<FILE>"),
        (&["config", "docs", "--help"], "Markdown"),
        (&["version", "--help"], "--json"),
        (&["help", "serve"], "[env: TCP_PORT_LPO=]"),
    ];
    for (args, needle) in cases {
        let ran = run(&mut scratch.beast(args));
        assert_eq!(ran.code, Some(0), "{args:?}: {}", ran.stderr);
        assert!(
            ran.stdout.contains(needle),
            "{args:?} lacks {needle}:\n{}",
            ran.stdout
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let scratch = Scratch::new();
    for args in [
        &["frobnicate"][..],
        &["serve", "--no-such-flag"],
        &["config"],
        &["config", "check"],
        &[],
    ] {
        let ran = run(&mut scratch.beast(args));
        assert_eq!(ran.code, Some(2), "{args:?}");
        assert!(!ran.stderr.is_empty(), "{args:?} printed no reason");
    }
}
