//! Usage metering on the embedded store (no store configured): one record per request answered
//! with prices, on every protocol, exactly once across SIGTERM and kill -9, stored as rollups
//! that do not grow with the requests; a store locked by another process does not hold up
//! serving; and a node whose configured stores are all down keeps serving and keeps every
//! record in its journal.

use std::time::Duration;

use beast_engine::protocol::udp::v8;
use beast_tests::Scratch;
use beast_tests::server::{Beast, Load, padded, usage_count, wait_until};

const LIMIT: Duration = Duration::from_secs(30);

/// The data directory `beast keys create` in `data` uses, and so every node of a test.
fn dir(data: &Scratch) -> String {
    data.path().join("data").to_str().unwrap().to_string()
}

fn serve(data: &Scratch, backend: &str) -> Beast {
    Beast::start(backend, &["--beast-data-dir", &dir(data)])
}

beast_tests::on_both_backends! {
    fn every_protocol_is_metered_once_per_priced_answer(backend) {
        let data = Scratch::new();
        let key = data.create_key("pro");
        let beast = serve(&data, backend);
        // Priced: 2 HTTP, 1 UDP text, 1 v8 (with the key) = 4 records.
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
        assert_eq!(
            beast
                .get(&format!("/prices?assets=BTC,ETH&key={key}"))
                .status,
            200
        );
        let udp = beast.udp_client("udp_lpo");
        assert!(
            udp.ask(&padded("ETH", 200))
                .starts_with(b"{\"asset\":\"ETH\"")
        );
        let mut request = [0u8; 128];
        let len =
            v8::encode_request(&mut request, 3, Some(key.as_bytes()), &[b"BTC", b"ETH"], 0).unwrap();
        assert_eq!(
            v8::parse_reply(&udp.ask(&request[..len])).unwrap().0.status,
            0
        );
        // Also priced: every asset (`/assets`, recorded as `*`), and a list with one unknown asset
        // (the others were answered): 6 records.
        assert_eq!(beast.get("/assets").status, 200);
        assert_eq!(beast.get("/prices?assets=ETH,NOPE").status, 200);
        // Not priced, so not records: unknown asset, no price, refused key.
        assert_eq!(beast.get("/price?asset=NOPE").status, 404);
        assert_eq!(beast.get("/price?asset=SOL").status, 503);
        assert_eq!(
            beast.get("/price?asset=BTC&key=bk_not_a_key_000").status,
            401
        );
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_sink_delivered_total{sink=\"sqlite\"}")
            == 6.0));
        assert_eq!(beast.metric("beast_usage_recorded_total"), 6.0);
        assert_eq!(
            usage_count(&data, &[], &["--beast-data-dir", &dir(&data)]),
            6
        );
        assert_eq!(
            usage_count(
                &data,
                &[],
                &["--beast-data-dir", &dir(&data), "--key", &key]
            ),
            2
        );
        assert_eq!(
            usage_count(
                &data,
                &[],
                &[
                    "--beast-data-dir",
                    &dir(&data),
                    "--since",
                    "2999-01-01T00:00:00Z"
                ]
            ),
            0
        );
        let bad = data
            .beast(&["usage", "count", "--since", "yesterday"])
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
    }
}

beast_tests::on_both_backends! {
    fn sigterm_and_kill_9_neither_lose_nor_double_records(backend) {
        let data = Scratch::new();
        let home = dir(&data);
        let dir = ["--beast-data-dir", home.as_str()];
        // SIGTERM mid-load: every answer the client got is a record, delivered before exit or
        // replayed from the journal at the next start.
        let mut beast = serve(&data, backend);
        let load = Load::start(
            "udp",
            beast.addr("udp_lpo"),
            &["-d", "5s", "-r", "10000", "-c", "4"],
        );
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_recorded_total")
            > 5000.0));
        assert!(beast.signal_and_wait(libc::SIGTERM).success());
        let first = load.finish()["ok"].as_u64().unwrap();
        assert!(first < 50_000, "stopped mid-load");
        // kill -9 once everything answered is journaled.
        let beast = serve(&data, backend);
        let second =
            Load::start("http", beast.addr("tcp_lpo"), &["-n", "20000", "-c", "8"]).finish()["ok"]
                .as_u64()
                .unwrap();
        assert_eq!(second, 20_000);
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_journaled_total")
            == 20_000.0));
        drop(beast); // SIGKILL
        let again = serve(&data, backend);
        again.wait_delivered("sqlite");
        assert_eq!(usage_count(&data, &[], &dir), first + second);
    }
}

beast_tests::on_both_backends! {
    fn metering_can_be_turned_off(backend) {
        let data = Scratch::new();
        let beast = Beast::start(
            backend,
            &["--beast-data-dir", &dir(&data), "--usage-metering", "false"],
        );
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
        assert_eq!(beast.metric("beast_usage_journaled_total"), 0.0);
        assert!(!data.path().join("usage").exists(), "no journal");
    }
}

beast_tests::on_both_backends! {
    fn with_every_store_down_prices_are_served_and_records_kept(backend) {
        let data = Scratch::new();
        let closed = beast_tests::services::free_port();
        let beast = Beast::start_with(backend, &["--beast-data-dir", &dir(&data)], |c| {
            c.env(
                "DATABASE_URL",
                format!("postgres://beast@127.0.0.1:{closed}/beast"),
            )
            .env("CACHE_URL", format!("redis://127.0.0.1:{closed}/0"))
            .env(
                "SQS_USAGE_LOG_QUEUE_URL",
                format!("http://127.0.0.1:{closed}/000000000000/usage"),
            )
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("BEAST_CACHE_PRICES_EVERY_S", "1");
        });
        for _ in 0..100 {
            assert_eq!(beast.get("/price?asset=BTC").status, 200);
        }
        assert_eq!(beast.get("/health").status, 200);
        assert!(wait_until(LIMIT, || {
            beast.metric("beast_usage_sink_errors_total{sink=\"postgres\"}") > 0.0
                && beast.metric("beast_usage_sink_errors_total{sink=\"sqs\"}") > 0.0
                && beast.metric("beast_cache_errors_total") > 0.0
        }));
        assert_eq!(beast.metric("beast_usage_journaled_total"), 100.0);
        let journal = beast.metric("beast_usage_journal_bytes");
        assert!(journal > 0.0);
        for sink in ["postgres", "sqs"] {
            assert_eq!(
                beast.metric(&format!(
                    "beast_usage_sink_backlog_bytes{{sink=\"{sink}\"}}"
                )),
                journal,
                "{sink}: the whole journal waits"
            );
        }
        assert_eq!(beast.metric("beast_store_up"), 0.0);
        assert_eq!(beast.metric("beast_usage_dropped_total"), 0.0);
        let log = beast.stderr_text();
        assert!(
            !log.contains("test@") && !log.contains("AWS_SECRET"),
            "{log}"
        );
    }
}

fn rollup_rows(data: &Scratch) -> i64 {
    let db = rusqlite::Connection::open(data.path().join("data/beast.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM usage_rollups", [], |r| r.get(0))
        .unwrap()
}

beast_tests::on_both_backends! {
    fn the_store_grows_with_keys_and_assets_not_with_requests(backend) {
        let data = Scratch::new();
        let beast = serve(&data, backend);
        let result = Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "100000", "-c", "8", "-w", "8", "-a", "BTC,ETH"],
        )
        .finish();
        assert_eq!(result["ok"], 100_000);
        beast.wait_delivered("sqlite");
        assert_eq!(
            usage_count(&data, &[], &["--beast-data-dir", &dir(&data)]),
            100_000
        );
        // One row per asset, latency bucket and minute at most (the run may straddle minutes).
        let rows = rollup_rows(&data);
        assert!(rows <= 2 * 9 * 3, "{rows} rows for 100 000 requests");
        let written = beast.metric("beast_usage_sink_rows_written_total{sink=\"sqlite\"}");
        let deliveries = beast.metric("beast_usage_sink_deliveries_total{sink=\"sqlite\"}");
        assert!(
            written <= deliveries * 2.0 * 9.0,
            "{written} rows in {deliveries} deliveries"
        );
        let size: u64 = ["beast.db", "beast.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(data.path().join("data").join(f)).ok())
            .map(|m| m.len())
            .sum();
        assert!(size < 2 << 20, "{size} bytes");
    }
}

beast_tests::on_both_backends! {
    /// Another process holding the database (as `beast keys create` may, here for longer than the
    /// busy timeout) only delays delivery: the drain goes on, every request is answered and
    /// journaled, and the store gets every record once the lock is gone.
    fn a_locked_embedded_store_never_holds_up_serving(backend) {
        let data = Scratch::new();
        let beast = serve(&data, backend);
        let db = rusqlite::Connection::open(data.path().join("data/beast.db")).unwrap();
        db.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let result = Load::start(
            "udp",
            beast.addr("udp_lpo"),
            &["-n", "20000", "-r", "5000", "-c", "4"],
        )
        .finish();
        assert_eq!(result["ok"], 20_000, "{result}");
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_journaled_total")
            == 20_000.0));
        assert_eq!(beast.metric("beast_usage_dropped_total"), 0.0);
        assert!(
            wait_until(LIMIT, || beast
                .metric("beast_usage_sink_errors_total{sink=\"sqlite\"}")
                > 0.0),
            "the sink waited out its busy timeout"
        );
        assert_eq!(
            beast.metric("beast_usage_sink_delivered_total{sink=\"sqlite\"}"),
            0.0
        );
        db.execute_batch("COMMIT").unwrap();
        beast.wait_delivered("sqlite");
        assert_eq!(
            usage_count(&data, &[], &["--beast-data-dir", &dir(&data)]),
            20_000
        );
    }
}
