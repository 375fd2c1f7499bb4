//! What a node reads from outside cannot make a price fresh forever or crowd out its assets: a
//! poisoned shared cache (thousands of entries for unknown assets, times in the future, stale
//! or mislabelled entries) changes nothing a client sees, and a price stamped in the future is
//! restamped when it arrives.

use beast_tests::on_both_backends;
use beast_tests::server::Beast;
use beast_tests::services::PrivateRedis;

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn entry(asset: &str, price: &str, source: &str, ts: u64) -> String {
    serde_json::json!({"asset": asset, "price": price, "source": source, "ts": ts, "node": "x"})
        .to_string()
}

on_both_backends! {
    fn a_poisoned_cache_changes_nothing_a_client_sees(backend) {
        let redis = PrivateRedis::start();
        let now = now_ms();
        let day = 86_400_000;
        // 5 000 entries of assets no node is configured with, a day in the future.
        for chunk in 0..5 {
            let mut args = vec!["MSET".to_string()];
            for i in chunk * 1_000..(chunk + 1) * 1_000 {
                args.push(format!("price:POISON{i}"));
                args.push(entry(&format!("POISON{i}"), "1", "coinbase-ws", now + day));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(redis.cli(&args), "OK");
        }
        // Configured assets: from the future, too old, another asset's, simulated; one sound.
        for (key, value) in [
            ("price:BTC", entry("BTC", "1", "coinbase-ws", now + day)),
            ("price:ETH", entry("ETH", "2", "kraken-ws", now - 3_600_000)),
            ("price:PEPE", entry("DOGE", "3", "okx-ws", now)),
            ("price:SOL", entry("SOL", "4", "sim-coinbase-ws", now)),
            ("price:DOGE", entry("DOGE", "0.5", "okx-ws", now)),
        ] {
            assert_eq!(redis.cli(&["SET", key, &value]), "OK");
        }
        let url = redis.url();
        let beast = Beast::start_with(backend, &["--feeds", "off"], |c| {
            c.env("CACHE_URL", &url);
        });
        assert_eq!(beast.metric("beast_warm_start_prices"), 1.0);
        let doge = beast.get("/price?asset=DOGE");
        assert_eq!((doge.status, doge.json()["price"].as_str()), (200, Some("0.5")));
        for (asset, status) in [("BTC", 503), ("ETH", 503), ("PEPE", 503), ("SOL", 503), ("POISON7", 404)] {
            let answer = beast.get(&format!("/price?asset={asset}"));
            assert_eq!(answer.status, status, "{asset}: {}", answer.body_text());
        }
        let listed = beast.get("/assets").json();
        assert!(
            listed.as_array().unwrap().iter().all(|a| !a["asset"].as_str().unwrap().starts_with("POISON")),
            "no poisoned asset listed"
        );
        assert!(beast.stderr_text().contains("warm start: cached prices refused"));
    }
}

on_both_backends! {
    fn a_price_stamped_in_the_future_is_restamped_on_arrival(backend) {
        let scratch = beast_tests::Scratch::new();
        let later = now_ms() + 86_400_000;
        let prices = scratch.write(
            "future.jsonl",
            &format!("{{\"asset\":\"BTC\",\"price\":\"97000\",\"source\":\"coinbase-ws\",\"ts\":{later}}}\n"),
        );
        let beast = Beast::start_in(scratch, backend, &["--feeds", "off", "--prices", prices.to_str().unwrap()], |_| {});
        let btc = beast.get("/price?asset=BTC").json();
        let ts = btc["ts"].as_u64().unwrap();
        assert!(ts < later, "restamped: {btc}");
        assert!(ts <= now_ms() + 2_000, "no later than now (within the tolerance): {btc}");
    }
}
