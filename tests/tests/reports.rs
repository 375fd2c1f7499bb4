//! The LRS reports (`/reports/{snapshot,ohlc,sources}` on TCP_PORT_LRS) in every format,
//! against a node serving the seed prices: values match what the price API serves, CSV reads
//! back with a CSV reader, the HTML page is laid out by Chromium, bad parameters are refused
//! with the API's JSON errors, and reports are metered as report usage.

use std::process::Command;

use beast_tests::on_both_backends;
use beast_tests::server::{Beast, Response};
use serde_json::Value;

fn get(beast: &Beast, port: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let addr = beast.addr(port);
    let mut client = beast_tests::server::HttpClient::connect(addr);
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    client.send(request.as_bytes());
    client.response()
}

fn report(beast: &Beast, target: &str) -> Response {
    get(beast, "tcp_lrs", target, &[])
}

/// The rows of a CSV document, read by Python's `csv` module (a reader that follows RFC 4180).
fn csv_rows(text: &str) -> Vec<Value> {
    let out = beast_tests::run_with_input(
        Command::new("python3").args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))",
        ]),
        text.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array().unwrap().clone()
}

/// `<tr>` elements inside the page's `<tbody>`, as the browser built them.
fn body_rows(dom: &str) -> usize {
    let body = dom
        .split_once("<tbody>")
        .and_then(|(_, rest)| rest.split_once("</tbody>"))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("no table body in {}", &dom[..dom.len().min(500)]));
    body.matches("<tr>").count()
}

on_both_backends! {
    fn every_report_in_every_format(backend) {
        let beast = Beast::start(backend, &[]);
        let prices = beast.get("/assets").json();

        // snapshot: the served prices and each venue's, as /assets has them.
        let snapshot = report(&beast, "/reports/snapshot");
        assert_eq!(snapshot.status, 200);
        assert_eq!(snapshot.header("content-type").as_deref(), Some("application/json"));
        let snapshot = snapshot.json();
        let rows = snapshot["rows"].as_array().unwrap();
        assert_eq!(rows.len(), prices.as_array().unwrap().len());
        for (row, asset) in rows.iter().zip(prices.as_array().unwrap()) {
            assert_eq!(row["asset"], asset["asset"]);
            assert_eq!(row["price"], asset["price"]);
            assert_eq!(row["source"], asset["source"]);
        }
        let btc = &rows[0];
        assert_eq!((btc["asset"].as_str(), btc["coinbase"].as_str()), (Some("BTC"), Some("97123.45")));
        assert_eq!(btc["kraken"], Value::Null);
        let old = rows.iter().find(|r| r["asset"] == "OLD").unwrap();
        assert_eq!(old["stale"], true);

        // ohlc: the seed price is the one tick of the served series; every other minute is a
        // gap (no prices), never a repeated close.
        let ohlc = report(&beast, "/reports/ohlc?asset=BTC&interval=1m&limit=5").json();
        assert_eq!((ohlc["asset"].as_str(), ohlc["interval"].as_str(), ohlc["series"].as_str()), (Some("BTC"), Some("1m"), Some("served")));
        let rows = ohlc["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        let ticked: Vec<&Value> = rows.iter().filter(|r| r["ticks"] != 0).collect();
        assert_eq!(ticked.len(), 1, "{rows:?}");
        for field in ["open", "high", "low", "close"] {
            assert_eq!(ticked[0][field], "97123.45");
        }
        assert_eq!(ticked[0]["venues"], 1);
        for gap in rows.iter().filter(|r| r["ticks"] == 0) {
            assert_eq!((gap["open"].clone(), gap["close"].clone()), (Value::Null, Value::Null));
        }
        let last = rows.last().unwrap();
        assert_eq!(last["closed"], false, "the current minute is open");
        for pair in rows.windows(2) {
            assert_eq!(pair[1]["open_time"].as_u64().unwrap() - pair[0]["open_time"].as_u64().unwrap(), 60_000);
            assert_eq!(pair[0]["close_time"].as_u64().unwrap() + 1, pair[1]["open_time"].as_u64().unwrap());
        }
        // A venue's own series.
        let coinbase = report(&beast, "/reports/ohlc?asset=BTC&venue=coinbase&limit=2").json();
        assert_eq!(coinbase["series"], "coinbase");
        let kraken = report(&beast, "/reports/ohlc?asset=BTC&venue=kraken&limit=2").json();
        assert!(kraken["rows"].as_array().unwrap().iter().all(|r| r["ticks"] == 0));

        // sources: each venue against the median of the fresh ones.
        let sources = report(&beast, "/reports/sources?asset=BTC").json();
        assert_eq!(sources["median"], "97123.45");
        let venues = sources["rows"].as_array().unwrap();
        assert_eq!(venues.len(), 1);
        assert_eq!((venues[0]["venue"].as_str(), venues[0]["deviation_bps"].as_i64(), venues[0]["outlier"].as_bool()), (Some("coinbase"), Some(0), Some(false)));

        // CSV: Binance's kline order where it applies; a gap is empty fields.
        let csv = report(&beast, "/reports/ohlc?asset=BTC&interval=1m&limit=5&format=csv");
        assert_eq!(csv.header("content-type").as_deref(), Some("text/csv; charset=utf-8"));
        let text = csv.body_text();
        assert!(text.starts_with("open_time,open,high,low,close,close_time,ticks,venues,closed\r\n"), "{text}");
        let read = csv_rows(&text);
        assert_eq!(read.len(), 5);
        for (csv_row, json_row) in read.iter().zip(rows) {
            assert_eq!(csv_row["open_time"].as_str().unwrap(), json_row["open_time"].to_string());
            assert_eq!(csv_row["close"].as_str().unwrap(), json_row["close"].as_str().unwrap_or(""));
        }
        let snapshot_csv = csv_rows(&report(&beast, "/reports/snapshot?format=csv").body_text());
        assert_eq!(snapshot_csv[0]["asset"], "BTC");
        assert_eq!(snapshot_csv[0]["coinbase"], "97123.45");

        // The format also comes from Accept.
        for (accept, content_type) in [
            ("text/csv", "text/csv; charset=utf-8"),
            ("text/plain", "text/plain; charset=utf-8"),
            ("text/html,*/*;q=0.8", "text/html; charset=utf-8"),
            ("*/*", "application/json"),
        ] {
            let answer = get(&beast, "tcp_lrs", "/reports/sources?asset=BTC", &[("Accept", accept)]);
            assert_eq!(answer.header("content-type").as_deref(), Some(content_type), "{accept}");
        }

        // txt: a title with the facts, then aligned columns.
        let txt = report(&beast, "/reports/sources?asset=BTC&format=txt").body_text();
        let lines: Vec<&str> = txt.lines().collect();
        assert!(lines[0].starts_with("sources BTC  asset=BTC  median=97123.45"), "{txt}");
        assert!(lines[1].starts_with("venue      source                 price"), "{txt}");
        assert_eq!(lines[1].find("price").map(|at| at + 5), lines[2].find("97123.45").map(|at| at + 8), "prices right-aligned under their column:\n{txt}");

        // html: one page, no external resource, laid out by Chromium with a row per candle.
        let page = report(&beast, "/reports/ohlc?asset=BTC&interval=1m&limit=30&format=html");
        assert_eq!(page.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
        let html = page.body_text();
        assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("src="), "self-contained");
        assert!(html.contains("<svg"), "a chart");
        let base = format!("http://{}", beast.addr("tcp_lrs"));
        let dom = beast_tests::browser::dump_dom(&format!("{base}/reports/ohlc?asset=BTC&interval=1m&limit=30&format=html"));
        assert_eq!(body_rows(&dom), 30);
        assert!(dom.contains("<rect"), "the seed tick is drawn as a candle");
        let dom = beast_tests::browser::dump_dom(&format!("{base}/reports/snapshot?format=html"));
        assert_eq!(body_rows(&dom), rows_of(&snapshot));
        beast_tests::browser::screenshot(
            &format!("{base}/reports/ohlc?asset=BTC&interval=1m&limit=30&format=html"),
            &beast.scratch.path().join(format!("ohlc-{backend}.png")),
        );
    }
}

fn rows_of(report: &Value) -> usize {
    report["rows"].as_array().unwrap().len()
}

on_both_backends! {
    fn bad_report_requests_get_the_api_errors(backend) {
        let beast = Beast::start(backend, &[]);
        let cases = [
            ("/reports/volume", 404, "not_found", "snapshot, ohlc, sources"),
            ("/reports/ohlc?asset=BTC&interval=2m", 400, "bad_request", "1s, 1m, 5m, 15m, 1h, 4h, 1d"),
            ("/reports/ohlc?asset=BTC&limit=0", 400, "bad_request", "1 to 1000"),
            ("/reports/ohlc?asset=BTC&limit=1001", 400, "bad_request", "1 to 1000"),
            ("/reports/ohlc?asset=BTC&start=20&end=10", 400, "bad_request", "start <= end"),
            ("/reports/ohlc?asset=BTC&start=yesterday", 400, "bad_request", "Unix times in ms"),
            ("/reports/ohlc?asset=BTC&venue=binance", 400, "bad_request", "coinbase, gemini"),
            ("/reports/ohlc", 400, "bad_request", "missing asset"),
            ("/reports/sources?asset=NOPE", 404, "unknown_asset", "unknown asset"),
            ("/reports/ohlc?asset=BTC&format=xml", 406, "not_acceptable", "json, csv, html or txt"),
            ("/reports/snapshot?key=not-a-key", 401, "invalid_api_key", "unknown or revoked"),
        ];
        for (target, status, error, says) in cases {
            let answer = report(&beast, target);
            assert_eq!(answer.status, status, "{target}: {}", answer.body_text());
            let json = answer.json();
            assert_eq!(json["error"], error, "{target}");
            assert!(json["message"].as_str().unwrap().contains(says), "{target}: {json}");
        }
        let png = get(&beast, "tcp_lrs", "/reports/snapshot", &[("Accept", "image/png")]);
        assert_eq!(png.status, 406);
        // Reports are the LRS port's: the price port does not serve them.
        assert_eq!(get(&beast, "tcp_lpo", "/reports/snapshot", &[]).status, 404);
        // The LRS port still serves prices.
        assert_eq!(get(&beast, "tcp_lrs", "/price?asset=BTC", &[]).status, 200);
        // 1000 rows is the most, and allowed.
        let most = report(&beast, "/reports/ohlc?asset=BTC&interval=1s&limit=1000");
        assert_eq!(most.status, 200);
        // The served price keeps 300 one-second candles: older ones are not shown as gaps.
        assert_eq!(rows_of(&most.json()), 300);
    }
}

on_both_backends! {
    fn reports_are_metered_as_report_usage(backend) {
        let scratch = beast_tests::Scratch::new();
        let key = scratch.create_key("pro");
        let mut beast = Beast::start_in(scratch, backend, &[], |_| {});
        for target in ["/reports/ohlc?asset=BTC", "/reports/sources?asset=ETH", "/reports/snapshot"] {
            assert_eq!(report(&beast, target).status, 200);
        }
        // The usage report is answered by the side thread, and metered like the others.
        assert_eq!(get(&beast, "tcp_lrs", "/reports/usage", &[("X-API-Key", &key)]).status, 200);
        assert_eq!(get(&beast, "tcp_lpo", "/price?asset=BTC", &[]).status, 200);
        assert!(beast.signal_and_wait(libc::SIGTERM).success());
        let db = rusqlite::Connection::open(beast.scratch.path().join("data/beast.db")).unwrap();
        let mut rows: Vec<(String, String, i64)> = db
            .prepare("SELECT protocol, asset, SUM(requests) FROM usage_rollups GROUP BY protocol, asset ORDER BY protocol, asset")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("http".into(), "BTC".into(), 1),
                ("http-report".into(), "*".into(), 2),
                ("http-report".into(), "BTC".into(), 1),
                ("http-report".into(), "ETH".into(), 1),
            ]
        );
    }
}

on_both_backends! {
    fn the_usage_report_is_the_callers_own(backend) {
        let scratch = beast_tests::Scratch::new();
        let mine = scratch.create_key("pro");
        let theirs = scratch.create_key("pro");
        let data = scratch.path().join("data");
        let beast = Beast::start_in(
            scratch,
            backend,
            &["--beast-data-dir", data.to_str().unwrap(), "--admin-key", "admin-secret-0123456789"],
            |_| {},
        );
        for _ in 0..3 {
            assert_eq!(get(&beast, "tcp_lpo", "/price?asset=BTC", &[("X-API-Key", &mine)]).status, 200);
        }
        assert_eq!(get(&beast, "tcp_lrs", "/reports/sources?asset=ETH", &[("X-API-Key", &mine)]).status, 200);
        assert_eq!(get(&beast, "tcp_lpo", "/price?asset=ETH", &[("X-API-Key", &theirs)]).status, 200);
        // The usage report is itself metered (asset `*`, once its record is delivered): the
        // rows compared are the others, read until the store has them all.
        let priced_rows = |report: &Value| -> Vec<(String, String, u64)> {
            report["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .filter(|r| r["asset"] != "*")
                        .map(|r| (r["asset"].as_str().unwrap().into(), r["protocol"].as_str().unwrap().into(), r["requests"].as_u64().unwrap()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let expected: Vec<(String, String, u64)> =
            vec![("BTC".into(), "http".into(), 3), ("ETH".into(), "http-report".into(), 1)];
        let mut own = Value::Null;
        assert!(
            beast_tests::server::wait_until(std::time::Duration::from_secs(10), || {
                let answer = get(&beast, "tcp_lrs", "/reports/usage", &[("X-API-Key", &mine)]);
                own = answer.json();
                answer.status == 200 && priced_rows(&own) == expected
            }),
            "{own}"
        );
        let key_id = own["key_id"].as_u64().unwrap();

        // By day, as CSV.
        let csv = get(&beast, "tcp_lrs", "/reports/usage?by=day&format=csv", &[("X-API-Key", &mine)]);
        let read: Vec<Value> = csv_rows(&csv.body_text()).into_iter().filter(|r| r["asset"] != "*").collect();
        assert_eq!(read.len(), 2, "{read:?}");
        assert_eq!(read[0]["requests"], "3");

        // Another key's usage: only with the admin key.
        let other = key_id + 1;
        let target = format!("/reports/usage?key_id={other}");
        let refused = get(&beast, "tcp_lrs", &target, &[("X-API-Key", &mine)]);
        assert_eq!(refused.status, 401);
        assert_eq!(refused.json()["error"], "unauthorized");
        let wrong = get(&beast, "tcp_lrs", &target, &[("X-API-Key", &mine), ("X-Admin-Key", "not-the-admin-key")]);
        assert_eq!(wrong.status, 401);
        let admin = get(&beast, "tcp_lrs", &target, &[("X-API-Key", &mine), ("X-Admin-Key", "admin-secret-0123456789")]).json();
        assert_eq!(admin["key_id"], other);
        assert_eq!(admin["rows"][0]["asset"], "ETH");
        assert_eq!(admin["rows"][0]["requests"], 1);

        // Without a key there is nothing of one's own to show.
        assert_eq!(get(&beast, "tcp_lrs", "/reports/usage", &[]).status, 401);
        let bad = get(&beast, "tcp_lrs", "/reports/usage?by=week", &[("X-API-Key", &mine)]);
        assert_eq!((bad.status, bad.json()["message"].as_str().unwrap()), (400, "by is hour or day"));
    }
}

on_both_backends! {
    fn reports_agree_with_the_simulators_prices(backend) {
        let beast = Beast::start(backend, &["--feeds", "sim", "--sim-rate", "100", "--sim-source", "walk"]);
        let sources = |b: &Beast| report(b, "/reports/sources?asset=BTC").json();
        assert!(
            beast_tests::server::wait_until(std::time::Duration::from_secs(30), || {
                sources(&beast)["fresh"].as_u64() >= Some(1)
            }),
            "BTC priced by the simulator (its one subscribed venue)"
        );
        // Stop every venue's prices; once the last frames in flight are in, every report
        // agrees with the others (checked again until it does, within the bound).
        for venue in ["coinbase", "gemini", "kraken", "gateio", "cryptocom", "okx"] {
            beast.sim_fault(venue, "stall");
        }
        let price = |v: &Value| v.as_str().map(|p| p.parse::<f64>().unwrap());
        let consistent = || -> Result<(), String> {
            let sources = sources(&beast);
            let snapshot = report(&beast, "/reports/snapshot?assets=BTC").json();
            let btc = &snapshot["rows"][0];
            let rows = sources["rows"].as_array().cloned().unwrap_or_default();
            let mut fresh: Vec<f64> = rows
                .iter()
                .filter(|r| r["stale"] == false)
                .filter_map(|r| price(&r["price"]))
                .collect();
            fresh.sort_by(f64::total_cmp);
            let n = fresh.len();
            let median = if n % 2 == 1 { fresh[n / 2] } else { (fresh[n / 2 - 1] + fresh[n / 2]) / 2.0 };
            if price(&sources["median"]).is_none_or(|m| (m - median).abs() > 1e-9) {
                return Err(format!("median: {sources}"));
            }
            for row in &rows {
                let venue = row["venue"].as_str().unwrap();
                // Each venue's last price is the snapshot's, and the close of its newest candle
                // (candles print prices canonically, 97121.4; quotes as the venue wrote them).
                if row["price"] != btc[venue] {
                    return Err(format!("{venue}: {row} against {btc}"));
                }
                let candles = report(&beast, &format!("/reports/ohlc?asset=BTC&venue={venue}&interval=1m&limit=2")).json();
                let newest = candles["rows"].as_array().unwrap().iter().rev().find(|c| c["ticks"] != 0).cloned().unwrap_or_default();
                let (close, high, low) = (price(&newest["close"]), price(&newest["high"]), price(&newest["low"]));
                if close != price(&row["price"]) || high < close || low > close {
                    return Err(format!("{venue}: {candles}"));
                }
                let last = price(&row["price"]).unwrap();
                #[allow(clippy::cast_possible_truncation, reason = "basis points of a price")]
                let deviation = ((last - median) / median * 10_000.0).round() as i64;
                if row["deviation_bps"].as_i64() != Some(deviation) {
                    return Err(format!("{venue}: deviation {row}"));
                }
            }
            // The served price's newest candle closes at the served price.
            let served = report(&beast, "/reports/ohlc?asset=BTC&interval=1m&limit=2").json();
            let newest = served["rows"].as_array().unwrap().iter().rev().find(|c| c["ticks"] != 0).cloned().unwrap_or_default();
            if price(&newest["close"]) != price(&btc["price"]) || newest["venues"].as_u64() < Some(1) {
                return Err(format!("served: {served} against {btc}"));
            }
            Ok(())
        };
        let agreed = beast_tests::server::wait_until(std::time::Duration::from_secs(5), || consistent().is_ok());
        assert!(agreed, "{:?}", consistent());
    }
}
