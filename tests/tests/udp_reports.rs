//! Reports over UDP on UDP_PORT_LRS (`snapshot BTC ETH`, `ohlc BTC 1m 10`, `sources BTC`): the
//! text table, under the price API's reply-size rule (no larger than the request unless the
//! key's tier lifts it; a public demo key does not), never more than 1 200 bytes, cut at a line
//! with a marker. The price port does not answer them as reports.

use beast_tests::on_both_backends;
use beast_tests::server::{Beast, padded};

const MAX_REPORT_REPLY: usize = 1_200;
const TRUNCATED: &str = "~ truncated\n";

on_both_backends! {
    fn udp_reports_obey_the_reply_size_rule(backend) {
        let scratch = beast_tests::Scratch::new();
        let stress = scratch.create_key("stress");
        let demo = scratch.create_key("demo");
        let data = scratch.path().join("data");
        let beast = Beast::start_in(scratch, backend, &["--beast-data-dir", data.to_str().unwrap()], |_| {});
        let lrs = beast.udp_client("udp_lrs");

        // Padded: the whole table, no larger than the request.
        let request = padded("sources BTC", 600);
        let reply = String::from_utf8(lrs.ask(&request)).unwrap();
        assert!(reply.len() <= request.len());
        assert!(reply.starts_with("sources BTC  asset=BTC  median=97123.45"), "{reply}");
        assert!(reply.contains("\ncoinbase "), "{reply}");
        let snapshot = String::from_utf8(lrs.ask(&padded("snapshot BTC ETH", 900))).unwrap();
        assert_eq!(snapshot.lines().count(), 4, "title, columns, BTC, ETH:\n{snapshot}");

        // At most the newest eight candles; each a row of its own.
        let request = padded("ohlc BTC 1m 100", 1_400);
        let reply = String::from_utf8(lrs.ask(&request)).unwrap();
        assert!(reply.len() <= MAX_REPORT_REPLY, "{}", reply.len());
        assert_eq!(reply.lines().count(), 2 + 8, "{reply}");
        // Longer than the request allows: cut after a whole row, marked.
        let request = padded("ohlc BTC 1m 8", 600);
        let reply = String::from_utf8(lrs.ask(&request)).unwrap();
        assert!(reply.len() <= request.len(), "{}", reply.len());
        assert!(reply.ends_with(TRUNCATED), "{reply}");
        let rows = reply.lines().count() - 3;
        assert!(rows >= 1, "{reply}");

        // A key whose tier lifts the rule gets the table from a short request (still cut at
        // 1 200 bytes); a demo key is no key: its short request gets nothing larger.
        let request = format!("key={stress} ohlc BTC 1m 100");
        let reply = lrs.ask(request.as_bytes());
        assert!(reply.len() > request.len() && reply.len() <= MAX_REPORT_REPLY, "{}", reply.len());
        let request = format!("key={stress} snapshot");
        let reply = String::from_utf8(lrs.ask(request.as_bytes())).unwrap();
        assert!(reply.starts_with("snapshot  at="), "{reply}");
        let request = format!("key={demo} ohlc BTC 1m 100");
        for reply in lrs.ask_then_probe(request.as_bytes()) {
            assert!(reply.len() <= request.len(), "{}", String::from_utf8_lossy(&reply));
        }
        // Unpadded and keyless: even the error is larger than the request, so nothing comes.
        assert!(lrs.ask_then_probe(b"sources BTC").is_empty());

        // A bad request gets the API's JSON error, if it fits.
        let reply = String::from_utf8(lrs.ask(&padded("ohlc BTC 2m", 200))).unwrap();
        assert!(reply.starts_with(r#"{"error":"bad_request","message":"interval is one of"#), "{reply}");
        let reply = String::from_utf8(lrs.ask(&padded("sources NOPE", 200))).unwrap();
        assert!(reply.contains(r#""error":"unknown_asset""#), "{reply}");

        // The price port answers the same words as assets, not as a report.
        let lpo = beast.udp_client("udp_lpo");
        let reply = String::from_utf8(lpo.ask(&padded("sources BTC", 600))).unwrap();
        assert!(reply.starts_with("[{\"error\":\"unknown_asset\""), "{reply}");
        // Prices are still answered on the LRS port.
        let reply = String::from_utf8(lrs.ask(&padded("BTC", 200))).unwrap();
        assert!(reply.contains(r#""price":"97123.45""#), "{reply}");
    }
}
