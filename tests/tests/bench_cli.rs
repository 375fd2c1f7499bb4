//! `beast-bench udp` and `beast-bench http` against a real `beast`: both UDP forms and HTTP,
//! bounded by count or duration, open loop on schedule, every reply validated (a wrong answer
//! is counted, not believed), an API key sent, results written as JSON and .hgrm and compared;
//! bad input gets a message and a non-zero exit.

use std::path::Path;
use std::process::{Command, Output};

use beast_tests::server::Beast;
use beast_tests::{Scratch, bench_bin};
use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(bench_bin()).args(args).output().unwrap()
}

/// Runs a load, expects success, returns its JSON result.
fn load(args: &[&str], json: &Path) -> Value {
    let mut all = args.to_vec();
    all.extend(["-q", "--json", json.to_str().unwrap()]);
    let out = bench(&all);
    assert!(
        out.status.success(),
        "{args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn failed(result: &Value) -> u64 {
    result["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

#[test]
fn loads_each_form_and_validates_every_reply() {
    let scratch = Scratch::new();
    let key = scratch.create_key("stress");
    let beast = Beast::start(
        "uring",
        &[
            "--beast-data-dir",
            scratch.path().join("data").to_str().unwrap(),
        ],
    );
    let (udp, http) = (
        beast.addr("udp_lpo").to_string(),
        beast.addr("tcp_lpo").to_string(),
    );
    let json = scratch.path().join("result.json");
    let short = ["-d", "300ms", "--warmup", "50ms"];

    // UDP text over a mixed asset list, and v8 with several symbols per request and a key.
    let text = load(
        &[
            &[
                "udp",
                udp.as_str(),
                "-a",
                "BTC,ETH,PEPE",
                "-c",
                "2",
                "-w",
                "4",
            ][..],
            &short,
        ]
        .concat(),
        &json,
    );
    let v8 = load(
        &[
            &[
                "udp",
                udp.as_str(),
                "--form",
                "v8",
                "-a",
                "BTC,ETH",
                "--per-request",
                "2",
                "--key",
                key.as_str(),
            ][..],
            &short,
        ]
        .concat(),
        &json,
    );
    for (name, result) in [("text", &text), ("v8", &v8)] {
        assert!(result["ok"].as_u64().unwrap() > 0, "{name}: {result}");
        assert_eq!(
            result["ok"], result["sent"],
            "{name}: every request answered well"
        );
        assert_eq!(failed(result), 0, "{name}: {result}");
        assert!(!result["per_second"].as_array().unwrap().is_empty());
    }

    // HTTP, pipelined, bounded by a request count rather than the (long) duration.
    let hgrm = scratch.path().join("http.hgrm");
    let counted = load(
        &[
            "http",
            http.as_str(),
            "-c",
            "4",
            "-w",
            "4",
            "-n",
            "2000",
            "-d",
            "60s",
            "--warmup",
            "0s",
            "--hgrm",
            hgrm.to_str().unwrap(),
        ],
        &json,
    );
    assert_eq!(counted["sent"], 2000, "{counted}");
    assert_eq!(counted["ok"], 2000, "{counted}");
    assert!(
        std::fs::read_to_string(&hgrm)
            .unwrap()
            .contains("Total count    =         2000")
    );

    // Open loop: the schedule is kept (0.5 s at 2000/s is 1000 requests), and the CO-corrected
    // latency can only be at least the service time.
    let open = load(
        &[
            "http",
            http.as_str(),
            "-c",
            "4",
            "-r",
            "2000",
            "-d",
            "500ms",
            "--warmup",
            "0s",
        ],
        &json,
    );
    assert_eq!(open["offered_rps"], 2000.0);
    let sent = open["sent"].as_u64().unwrap();
    assert!((990..=1001).contains(&sent), "sent {sent}: {open}");
    assert!(
        open["latency_us"]["max"].as_u64() >= open["service_us"]["max"].as_u64(),
        "{open}"
    );

    // Wrong answers are counted: an unknown asset is a 404 on HTTP and an error object on UDP.
    let unknown_http = load(
        &[
            &["http", http.as_str(), "-a", "NOPE", "-c", "1"][..],
            &short,
        ]
        .concat(),
        &json,
    );
    assert_eq!(unknown_http["ok"], 0);
    assert!(
        unknown_http["errors"]["http_4xx"].as_u64().unwrap() > 0,
        "{unknown_http}"
    );
    let unknown_udp = load(
        &[&["udp", udp.as_str(), "-a", "NOPE", "-c", "1"][..], &short].concat(),
        &json,
    );
    assert_eq!(unknown_udp["ok"], 0);
    assert!(
        unknown_udp["errors"]["mismatched"].as_u64().unwrap() > 0,
        "{unknown_udp}"
    );

    // Two results side by side.
    let a = scratch.write("a.json", &text.to_string());
    let b = scratch.write("b.json", &v8.to_string());
    let out = bench(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains("req/s A") && table.contains('%'),
        "{table}"
    );
}

#[test]
fn bad_input_gets_a_message_and_a_failing_exit() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["udp", "no-port-here"], 2, "HOST:PORT"),
        (&["udp", "127.0.0.1:9", "-d", "90000s"], 2, "out of range"),
        (
            &["http", "127.0.0.1:9", "-a", "BTC/USD"],
            2,
            "not an asset symbol",
        ),
        (&["http", "127.0.0.1:9", "-r", "0"], 2, "not a rate"),
        (&["run17", "--out", "/tmp/x"], 2, "--udp"),
        (
            &["compare", "/nonexistent/a.json", "/nonexistent/b.json"],
            1,
            "a.json",
        ),
    ];
    for (args, code, message) in cases {
        let out = bench(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // Nothing listens on a port just released: the connection failure is named.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = bench(&["http", &format!("127.0.0.1:{port}"), "-d", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
