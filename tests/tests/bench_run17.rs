//! `beast-bench run17` against `beast serve --feeds sim`: all 13 levels on UDP and HTTP with
//! short levels, server figures from /metrics, a report.json with one entry per level and
//! protocol, and a report.html that headless Chromium lays out with its plots.

use std::path::Path;
use std::process::Command;

use beast_tests::bench_bin;
use beast_tests::server::{Beast, wait_until};
use serde_json::Value;

beast_tests::on_both_backends! {
    fn run17_replays_13_levels_and_draws_the_report(backend) {
        let beast = Beast::start(backend, &["--feeds", "sim", "--sim-rate", "50"]);
        // The simulator's first prices reach the table within a few seconds.
        assert!(
            wait_until(std::time::Duration::from_secs(30), || {
                beast.get("/price?asset=BTC").status == 200
                    && beast.get("/price?asset=ETH").status == 200
            }),
            "BTC and ETH priced from the simulator"
        );
        let out = beast.scratch.path().join("run17");
        let metrics = format!("http://{}/metrics", beast.addr("health_lpo"));
        let run = Command::new(bench_bin())
            .args(["run17", "--udp", &beast.addr("udp_lpo").to_string()])
            .args([
                "--http",
                &beast.addr("tcp_lpo").to_string(),
                "--metrics",
                &metrics,
            ])
            .args([
                "--level-duration",
                "100ms",
                // No warm-up: at concurrency 4096 a closed loop fills every slot at once, and on
                // a loaded machine a debug server may take longer than a short warm-up plus the
                // level to answer them; counted from the first send, every level has answers.
                "--warmup",
                "0s",
                "--assets",
                "BTC,ETH",
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "run17 failed:\n{stderr}");
        assert!(stderr.contains("level 13/13 concurrency 4096"), "{stderr}");

        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        let levels = report["levels"].as_array().unwrap();
        assert_eq!(levels.len(), 26, "13 levels × UDP and HTTP");
        for (i, level) in levels.iter().enumerate() {
            let n = i / 2 + 1;
            assert_eq!(level["level"], n);
            assert_eq!(level["concurrency"], 1u64 << (n - 1));
            assert_eq!(level["protocol"], if i % 2 == 0 { "udp" } else { "http" });
            let result = &level["result"];
            assert!(
                result["ok"].as_u64().unwrap() > 0,
                "level {n} got good answers: {result}"
            );
            assert_eq!(
                result["errors"]["mismatched"], 0,
                "every answer validated: {result}"
            );
            assert_eq!(result["errors"]["malformed"], 0, "{result}");
            assert!(result["latency_us"]["p50"].as_u64().unwrap() > 0);
            let server = &level["server"];
            assert!(
                server["requests"].as_f64().unwrap() >= result["answered"].as_f64().unwrap(),
                "{server}"
            );
        }
        // CPU time is counted in 10 ms ticks: summed over the run, not per short level.
        let server_cpu: f64 = levels
            .iter()
            .map(|l| l["server"]["cpu_cores"].as_f64().unwrap())
            .sum();
        assert!(server_cpu > 0.0, "server CPU from /metrics");
        for knee in report["knees"].as_array().unwrap() {
            assert!(
                knee["protocol"].is_string() && knee.get("level").is_some(),
                "{knee}"
            );
        }
        assert_eq!(report["knees"].as_array().unwrap().len(), 2);
        for protocol in ["udp", "http"] {
            let hgrm = std::fs::read_to_string(out.join(format!("{protocol}-level13.hgrm"))).unwrap();
            assert!(hgrm.contains("Total count"), "{hgrm}");
        }
        check_in_chromium(&out.join("report.html"));
    }
}

/// Opens the page in headless Chromium: the page's own script marks how many plots the browser
/// laid out with lines in them.
fn check_in_chromium(page: &Path) {
    let dom = beast_tests::browser::dump_dom(&format!("file://{}", page.display()));
    // Latency for UDP and HTTP, throughput per level, throughput over time.
    assert!(
        dom.contains(r#"data-plots-rendered="4""#),
        "plots laid out:\n{}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.contains("UDP latency per level") && dom.contains("Throughput over time"));
}
