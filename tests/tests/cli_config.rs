//! `beast config show|check` through the real binary: precedence, sources, errors, secrets.

use beast_tests::{Scratch, run};
use serde_json::Value;

/// (value, source) of `setting` in `beast config show --format json`.
fn shown(
    scratch: &Scratch,
    extra_args: &[&str],
    env: &[(&str, &str)],
    setting: &str,
) -> (String, String) {
    let mut args = vec!["config", "show", "--format", "json"];
    args.extend_from_slice(extra_args);
    let mut command = scratch.beast(&args);
    command.envs(env.iter().copied());
    let ran = run(&mut command);
    assert_eq!(ran.code, Some(0), "stderr: {}", ran.stderr);
    let json: Value = serde_json::from_str(&ran.stdout).expect("json output");
    let row = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["setting"] == setting)
        .expect("setting listed");
    (
        row["value"].as_str().unwrap().to_string(),
        row["source"].as_str().unwrap().to_string(),
    )
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let scratch = Scratch::new();
    let port = |args: &[&str], env: &[(&str, &str)]| shown(&scratch, args, env, "TCP_PORT_LPO");
    let env = [("TCP_PORT_LPO", "9000")];

    assert_eq!(port(&[], &[]), ("8080".into(), "default".into()));
    scratch.write("beast.toml", "tcp_port_lpo = 9200\n");
    assert_eq!(port(&[], &[]), ("9200".into(), "file".into()));
    assert_eq!(port(&[], &env), ("9000".into(), "env".into()));
    assert_eq!(
        port(&["--tcp-port-lpo", "9100"], &env),
        ("9100".into(), "flag".into())
    );
    std::fs::remove_file(scratch.path().join("beast.toml")).unwrap();
    assert_eq!(
        port(&["--tcp-port-lpo", "9100"], &env),
        ("9100".into(), "flag".into())
    );
    assert_eq!(port(&[], &env), ("9000".into(), "env".into()));
}

#[test]
fn text_output_names_value_and_source() {
    let scratch = Scratch::new();
    let mut command = scratch.beast(&["config", "show", "--tcp-port-lpo", "9100"]);
    command
        .env("TCP_PORT_LPO", "9000")
        .env("UDP_PORT_LRS", "2999");
    let ran = run(&mut command);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let line = |name: &str| {
        ran.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        line("TCP_PORT_LPO").split_whitespace().collect::<Vec<_>>(),
        ["TCP_PORT_LPO", "flag", "9100"]
    );
    assert_eq!(
        line("UDP_PORT_LRS").split_whitespace().collect::<Vec<_>>(),
        ["UDP_PORT_LRS", "env", "2999"]
    );
    assert_eq!(
        line("TCP_PORT_LRS").split_whitespace().collect::<Vec<_>>(),
        ["TCP_PORT_LRS", "default", "9090"]
    );
}

#[test]
fn an_explicit_config_file_is_read_from_anywhere() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "elsewhere.toml",
        "udp_port_lpo = 3679\ncoinbase_prewarm_assets = [\"btc\", \"ETH\"]\n",
    );
    let file = file.to_str().unwrap();
    assert_eq!(
        shown(&scratch, &["--config", file], &[], "UDP_PORT_LPO"),
        ("3679".into(), "file".into())
    );
    assert_eq!(
        shown(
            &scratch,
            &[],
            &[("BEAST_CONFIG", file)],
            "COINBASE_PREWARM_ASSETS"
        ),
        ("btc,eth".into(), "file".into())
    );
}

/// Each bad configuration: exit 2 and one line naming the setting and where it came from.
#[test]
fn invalid_values_stop_with_one_clear_line() {
    let scratch = Scratch::new();
    let garbage = scratch.write("garbage.toml", "tcp_port_lpo = = 1\n");
    let bad_port = scratch.write("bad-port.toml", "\n\nhealth_port_lrs = 70000\n");
    let unknown = scratch.write("unknown.toml", "tcp_port = 1\n");
    // (args, env, expected stderr line)
    let cases: &[(&[&str], &[(&str, &str)], &str)] = &[
        (
            &[],
            &[("TCP_PORT_LPO", "70000")],
            "error: invalid value \"70000\" for TCP_PORT_LPO (from environment): not a port number (0-65535)",
        ),
        (
            &["--udp-port-lpo", "70000"],
            &[],
            "error: invalid value \"70000\" for --udp-port-lpo (from command line): not a port number (0-65535)",
        ),
        (
            &[],
            &[("SERVER_TYPE", "PRICE_SERVER")],
            "error: invalid value \"PRICE_SERVER\" for SERVER_TYPE (from environment): expected one of: APP_REPORT_SERVER | WEBHOOK_SERVER",
        ),
        (
            &[],
            &[("DATABASE_URL", "mysql://db/beast")],
            "error: invalid value \"mysql://db/beast\" for DATABASE_URL (from environment): URL scheme must be one of postgres, postgresql",
        ),
        (
            &["--cache-url", "redis//nohost"],
            &[],
            "error: invalid value \"redis//nohost\" for --cache-url (from command line): not a URL (scheme://host...)",
        ),
        (
            &["--config", "missing.toml"],
            &[],
            "error: cannot read config file missing.toml: No such file or directory (os error 2)",
        ),
        (
            &["--config", "."],
            &[],
            "error: cannot read config file .: Is a directory (os error 21)",
        ),
        (
            &["--config", garbage.to_str().unwrap()],
            &[],
            "is not valid TOML (line 1)",
        ),
        (
            &["--config", bad_port.to_str().unwrap()],
            &[],
            "error: invalid value \"70000\" for health_port_lrs (from",
        ),
        (
            &["--config", unknown.to_str().unwrap()],
            &[],
            "unknown setting \"tcp_port\"",
        ),
        (
            &["--tcp-port-lrs", "8080"],
            &[],
            "error: TCP_PORT_LPO (from default) and TCP_PORT_LRS (from flag) are both port 8080: ports must differ",
        ),
    ];
    for (args, env, expected) in cases {
        let mut all = vec!["config", "show"];
        all.extend_from_slice(args);
        let mut beast = scratch.beast(&all);
        beast.envs(env.iter().copied());
        let ran = run(&mut beast);
        assert_eq!(ran.code, Some(2), "{args:?} {env:?}: {}", ran.stderr);
        assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
        assert!(
            ran.stderr.contains(expected),
            "{args:?} {env:?}\n got: {}\nwant: {expected}",
            ran.stderr
        );
        assert!(ran.stdout.is_empty());
    }
}

#[test]
fn serve_refuses_a_bad_configuration_the_same_way() {
    let scratch = Scratch::new();
    let mut beast = scratch.beast(&["serve"]);
    beast.env("UDP_PORT_LRS", "99999");
    let ran = run(&mut beast);
    assert_eq!(ran.code, Some(2));
    assert_eq!(
        ran.stderr.trim(),
        "error: invalid value \"99999\" for UDP_PORT_LRS (from environment): not a port number (0-65535)"
    );
}

#[test]
fn config_check_validates_a_file() {
    let scratch = Scratch::new();
    let good = scratch.write(
        "good.toml",
        "tcp_port_lpo = 9000\nadaptive_success_threshold = 0.6\nokx_prewarm_assets = \"tia,jup\"\n",
    );
    let ran = run(&mut scratch.beast(&["config", "check", good.to_str().unwrap()]));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(ran.stdout.contains("ok (3 settings set"), "{}", ran.stdout);

    let bad = scratch.write("bad.toml", "sqs_batch_size = 11\n");
    let ran = run(&mut scratch.beast(&["config", "check", bad.to_str().unwrap()]));
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr
            .contains("invalid value \"11\" for sqs_batch_size")
            && ran.stderr.contains("out of range (1-10)"),
        "{}",
        ran.stderr
    );

    // `check` judges the file alone: the environment does not rescue or break it.
    let mut beast = scratch.beast(&["config", "check", good.to_str().unwrap()]);
    beast.env("TCP_PORT_LPO", "not-a-port");
    assert_eq!(run(&mut beast).code, Some(0));
}

#[test]
fn secrets_are_masked_everywhere() {
    let scratch = Scratch::new();
    let env = [
        ("ADMIN_KEY", "s3cret-admin-key"),
        ("DATABASE_URL", "postgres://beast:db-pa55@db:5432/beast"),
    ];
    for args in [
        &["config", "show"][..],
        &["config", "show", "--format", "json"],
        &["serve", "--help"],
        &["config", "show", "--help"],
    ] {
        let mut beast = scratch.beast(args);
        beast.envs(env);
        let ran = run(&mut beast);
        assert_eq!(ran.code, Some(0), "{args:?}: {}", ran.stderr);
        for secret in ["s3cret-admin-key", "db-pa55"] {
            assert!(
                !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
                "{args:?} leaked {secret}"
            );
        }
    }
    assert_eq!(
        shown(&scratch, &[], &env, "ADMIN_KEY"),
        ("********".into(), "env".into())
    );
    assert_eq!(
        shown(&scratch, &[], &env, "DATABASE_URL"),
        (
            "postgres://beast:********@db:5432/beast".into(),
            "env".into()
        )
    );
}
