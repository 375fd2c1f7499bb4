//! Nodes sharing a Valkey and a PostgreSQL know each other: each writes `cluster:stats:<node>`
//! with a 10 s expiry every 3 s, the live nodes are the unexpired entries (shown by `beast
//! cluster status` and `/admin/cluster`), and each node's connection governor takes
//! `ADAPTIVE_MAX_CONCURRENT` ÷ live nodes. A node that dies leaves by itself (its entry
//! expires) and the others' shares grow back. A key made or revoked anywhere is in force on
//! every node within a second.

use std::time::Duration;

use beast_tests::server::{Beast, wait_until};
use beast_tests::services::{Postgres, PrivateRedis};
use serde_json::Value;

const ADMIN: &str = beast_tests::server::CLUSTER_ADMIN;

fn cluster_status(cache: &str) -> Vec<Value> {
    let scratch = beast_tests::Scratch::new();
    let ran = beast_tests::run(&mut scratch.beast(&[
        "cluster",
        "status",
        "--json",
        "--cache-url",
        cache,
    ]));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    ran.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

beast_tests::on_both_backends! {
    fn live_nodes_split_the_connection_limit_and_a_dead_node_leaves(backend) {
        let redis = PrivateRedis::start();
        let pg = Postgres::start();
        let (url, database) = (redis.url(), pg.url());
        let a = Beast::cluster_node(backend, &url, &database, "node-a");
        let mut b = Beast::cluster_node(backend, &url, &database, "node-b");
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
        let names = |nodes: &[Value]| -> Vec<String> {
            nodes.iter().map(|n| n["node"].as_str().unwrap_or_default().to_string()).collect()
        };
        let status = cluster_status(&url);
        assert_eq!(names(&status), ["node-a", "node-b"], "{status:?}");
        assert!(status.iter().all(|n| n["version"].is_string() && n["keys_version"].is_u64()), "{status:?}");
        let view = a.request("GET", "/admin/cluster", &[("X-Admin-Key", ADMIN)]).json();
        assert_eq!(view["live_nodes"], 2, "{view}");
        assert_eq!(names(view["nodes"].as_array().unwrap()), ["node-a", "node-b"]);

        // A key made with the CLI against the shared store, then revoked through one node's
        // admin call: in force, then refused, on both within a second.
        let scratch = beast_tests::Scratch::new();
        let made = beast_tests::run(&mut scratch.beast(&["keys", "create", "--tier", "pro", "--database-url", &database]));
        assert_eq!(made.code, Some(0), "{}", made.stderr);
        let key = made.stdout.trim().to_string();
        let path = format!("/price?asset=BTC&key={key}");
        let everywhere = |status: u16| a.get(&path).status == status && b.get(&path).status == status;
        assert!(wait_until(Duration::from_secs(1), || everywhere(200)), "the new key works on both");
        let gone = a.request("POST", &format!("/admin/invalidate-key?key={key}"), &[("X-Admin-Key", ADMIN)]);
        assert_eq!(gone.status, 200, "{}", gone.body_text());
        assert!(wait_until(Duration::from_secs(1), || everywhere(401)), "refused on both");

        // Killed without a word: its entry expires, and the survivor's share grows back.
        assert!(!b.signal_and_wait(libc::SIGKILL).success());
        assert!(
            wait_until(Duration::from_secs(30), || a.metric("beast_cluster_live_nodes") == 1.0),
            "node-b left: {}",
            redis.cli(&["KEYS", "cluster:stats:*"])
        );
        assert!(redis.cli(&["EXISTS", "cluster:stats:node-b"]) == "0");
        assert_eq!(names(&cluster_status(&url)), ["node-a"]);
        assert!(
            wait_until(Duration::from_secs(10), || a.metric("beast_connections_limit") > 3_000.0),
            "node-a's limit grows back towards 6000: {}",
            a.metric("beast_connections_limit")
        );
    }
}
