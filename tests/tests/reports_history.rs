//! The price history: candles are exactly the ticks the feeds sent, they outlive the process
//! (read back after a restart), and candles in the store are served exactly (the text table
//! against a golden file).

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

/// Every interval a venue's candles are kept at, in ms.
const VENUE_INTERVALS: [(&str, u64); 6] = [
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("4h", 14_400_000),
    ("1d", 86_400_000),
];

/// A candle as the test computes it from ticks: open time, open, high, low, close, ticks.
type Expected = (u64, f64, f64, f64, f64, u64);

fn candles_of(ticks: &[(f64, u64)], interval_ms: u64) -> Vec<Expected> {
    let mut candles: Vec<Expected> = Vec::new();
    for &(price, at) in ticks {
        let open = at / interval_ms * interval_ms;
        match candles.last_mut() {
            Some(c) if c.0 == open => {
                c.2 = c.2.max(price);
                c.3 = c.3.min(price);
                c.4 = price;
                c.5 += 1;
            }
            _ => candles.push((open, price, price, price, price, 1)),
        }
    }
    candles
}

fn price(v: &Value) -> f64 {
    v.as_str().and_then(|p| p.parse().ok()).unwrap_or(f64::NAN)
}

on_both_backends! {
    fn candles_are_exact_against_the_ticks_the_simulator_sent(backend) {
        // BTC alone on every venue (so each venue's feed counters are BTC's), at a rate that
        // gives each candle several ticks. Nothing goes stale: the one REST poll is the
        // start-up one, which the node serves only if it lands before the stream's first tick.
        let beast = Beast::start_with(
            backend,
            &["--feeds", "sim", "--sim-rate", "40", "--sim-source", "walk"],
            |command| {
                for venue in ["COINBASE", "GEMINI", "KRAKEN", "GATEIO", "CRYPTOCOM", "OKX"] {
                    command.env(format!("{venue}_PREWARM_ASSETS"), "btc");
                }
                command.env("CACHE_TTL_SECONDS", "86400");
            },
        );
        // Per venue: the ticks streamed and the prices REST answers carried, oldest first.
        type Sent = Vec<(String, Vec<(f64, u64)>, Vec<(f64, u64)>)>;
        let sent_by_venue = || -> Sent {
            let sent = beast.sim_sent("BTC");
            assert_eq!(sent["complete"], true, "the simulator kept every tick");
            let mut venues: Sent = Vec::new();
            for tick in sent["ticks"].as_array().unwrap() {
                let venue = tick["venue"].as_str().unwrap().to_string();
                let entry = (price(&tick["price"]), tick["at_ms"].as_u64().unwrap());
                let index = venues.iter().position(|(v, ..)| *v == venue).unwrap_or_else(|| {
                    venues.push((venue, Vec::new(), Vec::new()));
                    venues.len() - 1
                });
                let (_, stream, rest) = &mut venues[index];
                if tick["channel"] == "rest" { rest.push(entry) } else { stream.push(entry) }
            }
            venues
        };
        assert!(
            beast_tests::server::wait_until(std::time::Duration::from_secs(30), || {
                let sent = sent_by_venue();
                sent.len() == 6 && sent.iter().all(|(_, stream, _)| stream.len() >= 5)
            }),
            "BTC streamed by every venue: {:?}",
            sent_by_venue()
        );
        for venue in ["coinbase", "gemini", "kraken", "gateio", "cryptocom", "okx"] {
            beast.sim_fault(venue, "stall");
        }
        let first = sent_by_venue()
            .iter()
            .flat_map(|(_, stream, rest)| stream.iter().chain(rest).map(|t| t.1))
            .min()
            .unwrap();
        let rows = |venue: Option<&str>, interval: &str, ms: u64| -> Vec<Value> {
            let series = venue.map(|v| format!("&venue={v}")).unwrap_or_default();
            let start = first / ms * ms;
            ohlc(&beast, &format!("asset=BTC{series}&interval={interval}&start={start}"))["rows"]
                .as_array()
                .unwrap()
                .clone()
        };
        let counted = |venue: &str| -> u64 {
            rows(Some(venue), "1m", 60_000).iter().map(|r| r["ticks"].as_u64().unwrap()).sum()
        };
        // Every tick is in once each venue's feed has handed over all it streamed and the
        // candles hold those plus the REST prices the node served (a frame can still be on
        // its way while the stall is switched on, so the log is read again each time).
        let mut sent = Vec::new();
        let mut expected: Vec<(String, Vec<(f64, u64)>)> = Vec::new();
        let caught_up = beast_tests::server::wait_until(std::time::Duration::from_secs(10), || {
            sent = sent_by_venue();
            let metrics = beast.metrics();
            expected.clear();
            sent.iter().all(|(venue, stream, rest)| {
                #[allow(clippy::cast_possible_truncation, reason = "a counter's value")]
                let metric = |name: &str| {
                    beast_tests::server::metric(&metrics, &format!("{name}{{venue=\"{venue}\"}}")) as usize
                };
                let served_rest = metric("beast_feed_rest_prices_applied_total");
                // A REST price is served only before the venue's first stream tick.
                let ticks: Vec<(f64, u64)> =
                    rest.iter().take(served_rest).chain(stream).copied().collect();
                let done = metric("beast_feed_prices_total") == stream.len()
                    && counted(venue) == ticks.len() as u64;
                expected.push((venue.clone(), ticks));
                done
            })
        });
        assert!(
            caught_up,
            "candles hold the ticks sent: {:?}\n{}",
            sent.iter().map(|(v, s, r)| (v, s.len(), r.len(), counted(v))).collect::<Vec<_>>(),
            beast.metrics()
        );

        for (venue, ticks) in &expected {
            for (interval, ms) in VENUE_INTERVALS {
                let got: Vec<Expected> = rows(Some(venue), interval, ms)
                    .iter()
                    .filter(|r| r["ticks"] != 0)
                    .map(|r| {
                        (
                            r["open_time"].as_u64().unwrap(),
                            price(&r["open"]),
                            price(&r["high"]),
                            price(&r["low"]),
                            price(&r["close"]),
                            r["ticks"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(got, candles_of(ticks, ms), "{venue} {interval}");
            }
        }
        // Every venue tick moved the served price once; it stays within the venues' range.
        let all: Vec<f64> = expected.iter().flat_map(|(_, t)| t.iter().map(|p| p.0)).collect();
        let (low, high) = (
            all.iter().copied().fold(f64::INFINITY, f64::min),
            all.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let served = rows(None, "1m", 60_000);
        let served_ticks: u64 = served.iter().map(|r| r["ticks"].as_u64().unwrap()).sum();
        assert_eq!(served_ticks, all.len() as u64);
        for row in served.iter().filter(|r| r["ticks"] != 0) {
            assert!(price(&row["low"]) >= low && price(&row["high"]) <= high, "{row}");
        }
    }
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
