//! Nodes sharing a Valkey know each other: each writes `cluster:stats:<node>` with a 10 s
//! expiry every 3 s, the live nodes are the unexpired entries, and each node's connection
//! governor takes `ADAPTIVE_MAX_CONCURRENT` ÷ live nodes. A node that dies leaves by itself
//! (its entry expires) and the others' shares grow back.

use std::time::Duration;

use beast_tests::server::{Beast, wait_until};
use beast_tests::services::PrivateRedis;

fn node(backend: &str, url: &str, name: &str) -> Beast {
    Beast::start_with(backend, &[], |c| {
        c.env("CACHE_URL", url)
            .env("CLUSTER_NODE", name)
            .env("ADAPTIVE_MAX_CONCURRENT", "6000");
    })
}

beast_tests::on_both_backends! {
    fn live_nodes_split_the_connection_limit_and_a_dead_node_leaves(backend) {
        let redis = PrivateRedis::start();
        let url = redis.url();
        let a = node(backend, &url, "node-a");
        let mut b = node(backend, &url, "node-b");
        let shared = |n: &Beast| n.metric("beast_cluster_live_nodes") == 2.0 && n.metric("beast_connections_limit") == 3_000.0;
        assert!(
            wait_until(Duration::from_secs(20), || shared(&a) && shared(&b)),
            "each node takes half: a {} / {}, b {} / {}",
            a.metric("beast_cluster_live_nodes"),
            a.metric("beast_connections_limit"),
            b.metric("beast_cluster_live_nodes"),
            b.metric("beast_connections_limit")
        );
        let ttl: i64 = redis.cli(&["TTL", "cluster:stats:node-b"]).parse().unwrap();
        assert!((1..=10).contains(&ttl), "{ttl}");

        // Killed without a word: its entry expires, and the survivor's share grows back.
        assert!(!b.signal_and_wait(libc::SIGKILL).success());
        assert!(
            wait_until(Duration::from_secs(30), || a.metric("beast_cluster_live_nodes") == 1.0),
            "node-b left: {}",
            redis.cli(&["KEYS", "cluster:stats:*"])
        );
        assert!(redis.cli(&["EXISTS", "cluster:stats:node-b"]) == "0");
        assert!(
            wait_until(Duration::from_secs(10), || a.metric("beast_connections_limit") > 3_000.0),
            "node-a's limit grows back towards 6000: {}",
            a.metric("beast_connections_limit")
        );
    }
}
