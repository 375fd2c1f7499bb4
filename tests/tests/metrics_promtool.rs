//! `/metrics` on both health ports passes `promtool check metrics` (Prometheus's own linter:
//! names, units, suffixes, help and type lines), with every family present: all three sinks
//! configured (two of them unreachable), traffic on every protocol.

use beast_tests::server::{Beast, HttpClient, padded, wait_until};
use beast_tests::services::{free_port, promtool};

beast_tests::on_both_backends! {
    fn metrics_pass_promtool_on_both_health_ports(backend) {
        let data = beast_tests::Scratch::new();
        let closed = free_port();
        let beast = Beast::start_with(
            backend,
            &["--beast-data-dir", data.path().to_str().unwrap()],
            |c| {
                c.env(
                    "DATABASE_URL",
                    format!("postgres://beast@127.0.0.1:{closed}/beast"),
                )
                .env(
                    "SQS_USAGE_LOG_QUEUE_URL",
                    format!("http://127.0.0.1:{closed}/000000000000/usage"),
                )
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test");
            },
        );
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
        assert_eq!(beast.get("/nope").status, 404);
        let udp = beast.udp_client("udp_lpo");
        assert!(!udp.ask(&padded("BTC", 128)).is_empty());
        assert!(wait_until(std::time::Duration::from_secs(30), || beast
            .metric("beast_usage_sink_errors_total{sink=\"postgres\"}")
            > 0.0));
        for port in ["health_lpo", "health_lrs"] {
            let mut client = HttpClient::connect(beast.addr(port));
            client.send(b"GET /metrics HTTP/1.1\r\n\r\n");
            let text = client.response().body_text();
            for family in [
                "beast_usage_sink_delivery_seconds",
                "beast_usage_sink_backlog_bytes",
                "beast_usage_journal_max_bytes",
            ] {
                assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
            }
            let (ok, problems) = promtool(&text);
            assert!(ok && problems.trim().is_empty(), "{port}:\n{problems}");
        }
    }
}
