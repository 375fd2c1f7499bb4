//! The price history outlives the process: candles the node made are read back after a
//! restart, and candles in the store are served exactly (the text table against a golden file).

use beast_tests::on_both_backends;
use beast_tests::server::Beast;
use serde_json::Value;

fn ohlc(beast: &Beast, query: &str) -> Value {
    let mut client = beast_tests::server::HttpClient::connect(beast.addr("tcp_lrs"));
    client.send(format!("GET /reports/ohlc?{query} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let answer = client.response();
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    answer.json()
}

fn ticks(report: &Value) -> u64 {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ticks"].as_u64().unwrap())
        .sum()
}

on_both_backends! {
    fn candles_survive_a_restart(backend) {
        let scratch = beast_tests::Scratch::new();
        let data = scratch.path().join("data");
        // The data directory outlives both processes (each has a scratch directory of its own).
        let args = ["--beast-data-dir", data.to_str().unwrap()];
        let mut first = Beast::start(backend, &args);
        // The seed price is one tick today (the last two days cover a midnight in between).
        assert_eq!(ticks(&ohlc(&first, "asset=BTC&interval=1d&limit=2")), 1);
        assert!(first.signal_and_wait(libc::SIGTERM).success());
        let second = Beast::start(backend, &args);
        // Read back, and the second start's seed tick added to it.
        let days = ohlc(&second, "asset=BTC&interval=1d&limit=2");
        assert_eq!(ticks(&days), 2, "{days}");
        assert_eq!(ticks(&ohlc(&second, "asset=BTC&venue=coinbase&interval=1d&limit=2")), 2);
        assert!(second.metric("beast_history_candles_restored") > 0.0);
    }
}

on_both_backends! {
    fn candles_survive_a_restart_in_postgres(backend) {
        let pg = beast_tests::services::Postgres::start();
        let url = pg.url();
        let args = ["--database-url", url.as_str()];
        let mut first = Beast::start(backend, &args);
        assert_eq!(ticks(&ohlc(&first, "asset=ETH&interval=1h&limit=2")), 1);
        assert!(first.signal_and_wait(libc::SIGTERM).success());
        assert_ne!(pg.query("SELECT COUNT(*) FROM candles WHERE asset = 'ETH'"), "0");
        let second = Beast::start(backend, &args);
        assert_eq!(ticks(&ohlc(&second, "asset=ETH&interval=1h&limit=2")), 2);
    }
}

on_both_backends! {
    fn a_node_on_an_empty_disk_reads_the_history_back_from_valkey(backend) {
        let redis = beast_tests::services::PrivateRedis::start();
        let url = redis.url();
        let first_dir = beast_tests::Scratch::new();
        let first_data = first_dir.path().join("data");
        let mut first = Beast::start(
            backend,
            &["--beast-data-dir", first_data.to_str().unwrap(), "--cache-url", &url],
        );
        assert_eq!(ticks(&ohlc(&first, "asset=PEPE&interval=4h&limit=2")), 1);
        assert!(first.signal_and_wait(libc::SIGTERM).success());
        assert!(redis.cli(&["EXISTS", "candles:PEPE:served:4h"]).contains('1'));
        // A replacement task: a fresh disk, the same Valkey.
        let second_dir = beast_tests::Scratch::new();
        let second_data = second_dir.path().join("data");
        let second = Beast::start(
            backend,
            &["--beast-data-dir", second_data.to_str().unwrap(), "--cache-url", &url],
        );
        assert_eq!(ticks(&ohlc(&second, "asset=PEPE&interval=4h&limit=2")), 2);
        assert_eq!(ticks(&ohlc(&second, "asset=PEPE&venue=okx&interval=4h&limit=2")), 2);
    }
}

/// 2026-11-01T00:00:00Z and the four days after it; the third has no candle.
const DAY: u64 = 86_400_000;
const NOV_1: u64 = 1_793_491_200_000;

fn store_candles(data: &std::path::Path) {
    drop(beast_engine::store::sqlite::SqliteStore::open(data).unwrap());
    let db = rusqlite::Connection::open(data.join("beast.db")).unwrap();
    // (day, open, high, low, close, ticks, a bit per venue)
    let rows = [
        (0, "97000.5", "98100", "96500.25", "97800", 86_400, 0b111),
        (
            1, "97800", "99000.1", "97700", "98950.75", 86_123, 0b10_0101,
        ),
        (3, "99500", "99600", "95000", "95100.05", 80_000, 0b11),
        (4, "95100.05", "96000", "94000", "95999.99", 86_400, 0b1111),
    ];
    for (day, open, high, low, close, ticks, venues) in rows {
        db.execute(
            "INSERT INTO candles (asset, series, interval, open_ms, open, high, low, close, ticks, venues)
             VALUES ('BTC', 'served', '1d', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![i64::try_from(NOV_1 + day * DAY).unwrap(), open, high, low, close, ticks, venues],
        )
        .unwrap();
    }
}

on_both_backends! {
    fn stored_candles_are_served_exactly(backend) {
        let scratch = beast_tests::Scratch::new();
        let data = scratch.path().join("data");
        store_candles(&data);
        let beast = Beast::start_in(scratch, backend, &["--beast-data-dir", data.to_str().unwrap()], |_| {});
        let query = format!("asset=BTC&interval=1d&start={NOV_1}&end={}", NOV_1 + 4 * DAY + 1);
        let mut client = beast_tests::server::HttpClient::connect(beast.addr("tcp_lrs"));
        client.send(format!("GET /reports/ohlc?{query}&format=txt HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let txt = client.response().body_text();
        let golden = include_str!("golden/ohlc-btc-1d.txt");
        assert_eq!(txt, golden, "\n{txt}");
        let json = ohlc(&beast, &query);
        assert_eq!(json["rows"][2]["open"], Value::Null, "the day without a candle is a gap");
        assert_eq!(json["rows"][1]["close"], "98950.75");
    }
}
