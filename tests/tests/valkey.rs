//! Valkey (the machine's Redis, database 15): fresh prices under `price:{ASSET}`, node stats in
//! `cluster:stats`, and a node started without feeds or seeded prices answers at once from them.

use std::time::Duration;

use beast_tests::server::{Beast, wait_until};
use beast_tests::services::{redis_cli, redis_url};
use serde_json::Value;

beast_tests::on_both_backends! {
    fn prices_and_stats_go_to_valkey_and_warm_start_the_next_node(backend) {
        redis_cli(&["FLUSHDB"]);
        let url = redis_url();
        let writer = Beast::start_with(backend, &[], |c| {
            c.env("CACHE_URL", &url)
                .env("CLUSTER_NODE", "valkey-a")
                .env("BEAST_CACHE_PRICES_EVERY_S", "1");
        });
        assert!(
            wait_until(Duration::from_secs(10), || !redis_cli(&[
                "GET",
                "price:BTC"
            ])
            .is_empty()),
            "price:BTC written"
        );
        let btc: Value = serde_json::from_str(&redis_cli(&["GET", "price:BTC"])).unwrap();
        assert_eq!(btc["price"], "97123.45");
        assert_eq!(btc["source"], "coinbase-ws");
        assert_eq!(btc["node"], "valkey-a");
        assert!(
            redis_cli(&["GET", "price:OLD"]).is_empty(),
            "stale prices are not cached"
        );
        let ttl: i64 = redis_cli(&["TTL", "price:BTC"]).parse().unwrap();
        assert!((1..=600).contains(&ttl), "{ttl}");
        // The first stats may be written before the seeded prices are in the table: wait for a
        // write that has them.
        let stats = || -> Value {
            serde_json::from_str(&redis_cli(&["GET", "cluster:stats:valkey-a"]))
                .unwrap_or(Value::Null)
        };
        assert!(
            wait_until(Duration::from_secs(10), || stats()["priced"] == 4),
            "{}",
            stats()
        );
        assert_eq!(stats()["node"], "valkey-a");
        // A member entry expires by itself: a dead node leaves the cluster within 10 s.
        let ttl: i64 = redis_cli(&["TTL", "cluster:stats:valkey-a"]).parse().unwrap();
        assert!((1..=10).contains(&ttl), "{ttl}");
        assert_eq!(writer.metric("beast_cache_up"), 1.0);

        // No feeds, no seeded prices: the cache is all this node has.
        let reader = Beast::start_with(backend, &["--feeds", "off"], |c| {
            c.env("CACHE_URL", &url).env("CLUSTER_NODE", "valkey-b");
        });
        let price = reader.get("/price?asset=BTC");
        assert_eq!(price.status, 200, "{}", price.body_text());
        assert_eq!(price.json()["price"], "97123.45");
        assert_eq!(reader.metric("beast_warm_start_prices"), 3.0);
        assert_eq!(reader.get("/price?asset=OLD").status, 404);
    }
}

beast_tests::on_both_backends! {
    /// Valkey stopped mid-load: prices are served throughout, the writes fail and are counted,
    /// and when it is back the prices are written again without a restart.
    fn a_valkey_outage_mid_load_does_not_touch_serving(backend) {
        let redis = beast_tests::services::PrivateRedis::start();
        let url = redis.url();
        let beast = Beast::start_with(backend, &[], |c| {
            c.env("CACHE_URL", &url)
                .env("BEAST_CACHE_PRICES_EVERY_S", "1");
        });
        assert!(wait_until(Duration::from_secs(10), || !redis
            .cli(&["GET", "price:BTC"])
            .is_empty()));
        let load = beast_tests::server::Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "30000", "-r", "5000", "-c", "4"],
        );
        redis.stop();
        assert!(wait_until(Duration::from_secs(10), || beast
            .metric("beast_cache_errors_total")
            > 0.0));
        assert_eq!(beast.metric("beast_cache_up"), 0.0);
        redis.resume();
        assert!(
            wait_until(Duration::from_secs(10), || !redis
                .cli(&["GET", "price:BTC"])
                .is_empty()),
            "written again once Valkey is back"
        );
        assert_eq!(beast.metric("beast_cache_up"), 1.0);
        let result = load.finish();
        assert_eq!(result["ok"], 30_000, "{result}");
    }
}
