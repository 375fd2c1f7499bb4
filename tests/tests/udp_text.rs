//! UDP text requests on both backends: answered with the HTTP JSON.

use beast_tests::server::{BACKENDS, Beast, padded};
use serde_json::Value;

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

#[test]
fn text_requests_get_json() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        for port in ["udp_lpo", "udp_lrs"] {
            let udp = beast.udp_client(port);
            let btc = json(&udp.ask(&padded("BTC", 200)));
            assert_eq!(
                (btc["asset"].as_str(), btc["price"].as_str()),
                (Some("BTC"), Some("97123.45")),
                "{backend} {port}"
            );
            assert_eq!(btc["source"], "coinbase-ws");
            assert_eq!(json(&udp.ask(&padded("eth", 200)))["price"], "3512.50");

            let several = json(&udp.ask(&padded("btc,ETH pepe\tNOPE", 600)));
            let entries = several.as_array().unwrap();
            assert_eq!(entries.len(), 4);
            assert_eq!(entries[2]["price"], "0.00001234");
            assert_eq!(entries[3]["error"], "unknown_asset");

            assert_eq!(json(&udp.ask(&padded("SOL", 200)))["error"], "no_price");
            assert_eq!(json(&udp.ask(&padded("OLD", 200)))["stale"], true);
            assert_eq!(
                json(&udp.ask(&padded("BTC-USD", 200)))["error"],
                "invalid_asset"
            );
            let too_many = vec!["BTC"; 33].join(" ");
            assert_eq!(
                json(&udp.ask(&padded(&too_many, 300)))["error"],
                "too_many_assets"
            );
            // NUL padding works as well as spaces.
            let mut nul_padded = b"BTC".to_vec();
            nul_padded.resize(200, 0);
            assert_eq!(json(&udp.ask(&nul_padded))["asset"], "BTC");
        }
        assert!(beast.metric("beast_udp_requests_total{form=\"text\"}") >= 16.0);
        assert!(beast.metric("beast_request_duration_seconds_count{protocol=\"udp\"}") >= 16.0);
    }
}

#[test]
fn a_valid_key_lifts_the_size_rule() {
    for backend in BACKENDS {
        let scratch = beast_tests::Scratch::new();
        let key = scratch.create_key("stress");
        let beast = Beast::start_in(scratch, backend, &[], |_| {});
        let udp = beast.udp_client("udp_lpo");
        let reply = udp.ask(format!("key={key} BTC").as_bytes());
        assert_eq!(json(&reply)["asset"], "BTC", "{backend}");
        let several = json(&udp.ask(format!("key={key} BTC ETH PEPE").as_bytes()));
        assert_eq!(several.as_array().map(Vec::len), Some(3));
        // A wrong key is no key: the unpadded request gets nothing, and the probe proves it.
        assert!(
            udp.ask_then_probe(b"key=wrong-key-000 BTC").is_empty(),
            "{backend}"
        );
    }
}
