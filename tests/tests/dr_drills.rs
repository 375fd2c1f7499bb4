//! The runbook's recovery drills that fit one machine, each against real processes and real
//! services, each measuring its recovery time and printing it beside the runbook's as a line
//! `DRILL<TAB>scenario<TAB>measured<TAB>runbook<TAB>what was checked`. They are not part of the
//! test command (`#[ignore]`: they wait on production timings, minutes in all);
//! `scripts/dr-drills.sh` runs them and collects the lines (docs/DR.md). The production backend
//! (epoll, as on Fargate) and production settings unless a drill says otherwise.

use std::time::{Duration, Instant};

use beast_tests::server::{Beast, wait_until};
use beast_tests::services::{Moto, Postgres, PrivateRedis};

fn report(scenario: &str, measured: Duration, runbook: &str, checked: &str) {
    println!(
        "DRILL\t{scenario}\t{:.2} s\t{runbook}\t{checked}",
        measured.as_secs_f64()
    );
}

fn btc(beast: &Beast) -> serde_json::Value {
    beast.get("/price?asset=BTC").json()
}

/// Container failure: the task is killed (SIGKILL) and a new one starts on the same storage:
/// serving again at once with warm prices from Valkey, every answered request's usage kept.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn container_failure() {
    let redis = PrivateRedis::start();
    let data = beast_tests::Scratch::new();
    let dir = data.path().to_str().unwrap().to_string();
    let url = redis.url();
    let env = |c: &mut std::process::Command| {
        c.env("CACHE_URL", &url)
            .env("BEAST_CACHE_PRICES_EVERY_S", "1");
    };
    let first = Beast::start_with("epoll", &["--beast-data-dir", &dir], env);
    answer_all(&first, "/price?asset=BTC", 100, "answered");
    assert!(wait_until(Duration::from_secs(10), || redis
        .cli(&["EXISTS", "price:BTC"])
        == "1"));
    drop(first); // SIGKILL
    // The new task has no seed and no feeds: its BTC can only come from Valkey.
    let started = Instant::now();
    let second = Beast::start_with("epoll", &["--beast-data-dir", &dir, "--feeds", "off"], env);
    let price = btc(&second);
    let serving = started.elapsed();
    assert_eq!(price["price"], "97123.45", "{price}");
    second.wait_delivered("sqlite");
    drop(second);
    let counted = beast_tests::server::usage_count(&data, &[], &["--beast-data-dir", &dir]);
    // The 100 answered before the kill, and the new node's first.
    assert_eq!(counted, 101, "the journal replayed every answered request");
    report(
        "container failure (kill -9, restart)",
        serving,
        "2–3 min",
        "start to first answer with Valkey's warm price; every answered request metered (101 of 101)",
    );
}

/// Full cluster outage: every node killed at once and started again on its storage: serving
/// at once with warm prices, and the cluster's usage in PostgreSQL exactly the answers given,
/// none lost and none counted twice.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn full_cluster_outage() {
    let redis = PrivateRedis::start();
    let pg = Postgres::start();
    let (url, database) = (redis.url(), pg.url());
    let dirs = [beast_tests::Scratch::new(), beast_tests::Scratch::new()];
    let start = |dir: &beast_tests::Scratch, name: &str, extra: &[&str]| {
        let path = dir.path().to_str().unwrap().to_string();
        let args = [
            &["--beast-data-dir", &path, "--database-url", &database][..],
            extra,
        ]
        .concat();
        Beast::start_with("epoll", &args, |c| {
            c.env("CACHE_URL", &url)
                .env("CLUSTER_NODE", name)
                .env("BEAST_CACHE_PRICES_EVERY_S", "1");
        })
    };
    let nodes = [start(&dirs[0], "a", &[]), start(&dirs[1], "b", &[])];
    for _ in 0..100 {
        for node in &nodes {
            assert_eq!(node.get("/price?asset=BTC").status, 200);
        }
    }
    assert!(wait_until(Duration::from_secs(10), || redis
        .cli(&["EXISTS", "price:BTC"])
        == "1"));
    drop(nodes); // SIGKILL, both
    let started = Instant::now();
    let nodes = [
        start(&dirs[0], "a", &["--feeds", "off"]),
        start(&dirs[1], "b", &["--feeds", "off"]),
    ];
    for node in &nodes {
        assert_eq!(btc(node)["price"], "97123.45");
    }
    let serving = started.elapsed();
    for node in &nodes {
        node.wait_delivered("postgres");
    }
    assert_eq!(
        pg.usage_requests(),
        202,
        "200 before the outage and one from each node after"
    );
    report(
        "Full cluster outage (every node killed, restarted)",
        serving,
        "2–3 min",
        "start of both to both answering with Valkey's warm price; usage in PostgreSQL 202 of 202, none twice",
    );
}

/// Aurora failover: PostgreSQL goes away and comes back while the node serves: no answer is
/// refused, and delivery catches up with nothing lost.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn aurora_failover() {
    let mut pg = Postgres::start();
    let beast = Beast::start("epoll", &["--database-url", &pg.url()]);
    answer_all(&beast, "/price?asset=BTC", 50, "answered");
    beast.wait_delivered("postgres");
    pg.stop();
    answer_all(&beast, "/price?asset=BTC", 50, "serving through the outage");
    let back = Instant::now();
    pg.resume();
    beast.wait_delivered("postgres");
    let caught_up = back.elapsed();
    assert_eq!(pg.usage_requests(), 100, "every request metered once");
    report(
        "Aurora failover (PostgreSQL restarted)",
        caught_up,
        "30–60 s",
        "served throughout; from the database back to usage delivered, 100 of 100, none twice",
    );
}

/// Aurora moved to a new endpoint by configuration: the database restored from a dump on a
/// new server, the node restarted (as a new task definition would) with the new
/// `DATABASE_URL`: the key still works, and the usage the old endpoint never got (it was
/// already gone) reaches the new one from the journal, none lost, none twice.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn aurora_new_endpoint() {
    let mut old = Postgres::start();
    let new = Postgres::start();
    let data = beast_tests::Scratch::new();
    let dir = data.path().to_str().unwrap().to_string();
    let key = create_key(&data, &old.url(), "pro");
    let path = format!("/price?asset=BTC&key={key}");
    let mut first = Beast::start(
        "epoll",
        &[
            "--beast-data-dir",
            &dir,
            "--database-url",
            &old.url(),
            "--require-key",
            "true",
        ],
    );
    answer_all(&first, &path, 50, "answered");
    first.wait_delivered("postgres");
    // The move: a dump restored on the new server, the old one gone.
    let dump = data.path().join("dump.sql");
    pg_dump(&old.url(), &dump);
    old.stop();
    answer_all(&first, &path, 50, "serving while the database is away");
    psql(&new.url(), &["-f", dump.to_str().unwrap()]);
    assert!(first.signal_and_wait(libc::SIGTERM).success());
    let moved = Instant::now();
    let second = Beast::start(
        "epoll",
        &[
            "--beast-data-dir",
            &dir,
            "--database-url",
            &new.url(),
            "--require-key",
            "true",
        ],
    );
    assert_eq!(second.get(&path).status, 200, "the key came with the data");
    second.wait_delivered("postgres");
    let caught_up = moved.elapsed();
    assert_eq!(
        new.usage_requests(),
        101,
        "50 in the dump, 50 from the journal, 1 after the move"
    );
    report(
        "Aurora moved to a new endpoint (restored dump, new DATABASE_URL)",
        caught_up,
        "30–60 s",
        "restart on the new endpoint to every usage record there (101 of 101, none twice); the key kept working",
    );
}

/// Aurora data loss: the database restored from a backup older than the last deliveries.
/// Keys and parameters come back with it; the usage it lost is counted and logged as a gap
/// (`beast_usage_sink_gap_records_total`), and delivery goes on.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn aurora_data_loss() {
    let pg = Postgres::start();
    let data = beast_tests::Scratch::new();
    let path = format!(
        "/price?asset=BTC&key={}",
        create_key(&data, &pg.url(), "pro")
    );
    let beast = Beast::start(
        "epoll",
        &["--database-url", &pg.url(), "--require-key", "true"],
    );
    let ask = |n: usize| answer_all(&beast, &path, n, "answered");
    ask(50);
    beast.wait_delivered("postgres");
    let backup = data.path().join("backup.sql");
    pg_dump(&pg.url(), &backup);
    ask(50);
    beast.wait_delivered("postgres");
    // The loss: the backup restored into a new database, which then takes the old one's
    // place (so the node, reconnecting, never finds a half-restored one).
    let admin = pg.url().replace("/beast", "/postgres");
    psql(&admin, &["-c", "CREATE DATABASE restored"]);
    psql(
        &pg.url().replace("/beast", "/restored"),
        &["-f", backup.to_str().unwrap()],
    );
    psql(
        &admin,
        &[
            "-c",
            "DROP DATABASE beast WITH (FORCE)",
            "-c",
            "ALTER DATABASE restored RENAME TO beast",
        ],
    );
    let restored = Instant::now();
    ask(10);
    let gap = "beast_usage_sink_gap_records_total{sink=\"postgres\"}";
    assert!(
        wait_until(Duration::from_secs(60), || beast.metric(gap) == 50.0),
        "the lost usage counted: {}",
        beast.metric(gap)
    );
    beast.wait_delivered("postgres");
    let resumed = restored.elapsed();
    assert_eq!(pg.usage_requests(), 60, "the backup's 50 and the 10 after");
    report(
        "Aurora data loss (restored from an older backup)",
        resumed,
        "restore time",
        "the key came back with the data; from the restore to delivery going on, the 50 records lost counted and logged as a gap",
    );
}

/// ElastiCache flushed, then stopped and restarted: the cache is written again within one
/// write interval; the node serves throughout.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn elasticache_flush_and_restart() {
    let redis = PrivateRedis::start();
    // Live (simulated) prices, so there is always a fresh one to write.
    let beast = Beast::start_with("epoll", &["--feeds", "sim"], |c| {
        c.env("CACHE_URL", redis.url());
    });
    // Prices are written every 30 s (BEAST_CACHE_PRICES_EVERY_S), and at once when the node's
    // stats write (every 3 s) finds its own entry gone.
    let every = Duration::from_secs(31);
    assert!(wait_until(every, || redis.cli(&["EXISTS", "price:BTC"]) == "1"));
    let flushed = Instant::now();
    redis.cli(&["FLUSHALL"]);
    assert!(wait_until(every, || redis.cli(&["EXISTS", "price:BTC"]) == "1"));
    let after_flush = flushed.elapsed();
    redis.stop();
    assert!(wait_until(Duration::from_secs(10), || beast
        .metric("beast_cache_up")
        == 0.0));
    assert_eq!(
        beast.get("/price?asset=BTC").status,
        200,
        "serving without Valkey"
    );
    let restarted = Instant::now();
    redis.resume();
    assert!(wait_until(every, || redis.cli(&["EXISTS", "price:BTC"]) == "1"));
    let after_restart = restarted.elapsed();
    report(
        "ElastiCache flushed",
        after_flush,
        "~16 s (rebuilt)",
        "flush to price:BTC written again",
    );
    report(
        "ElastiCache stopped and restarted",
        after_restart,
        "~16 s (rebuilt)",
        "restart to price:BTC written again; answers served throughout",
    );
}

/// Every exchange's WebSocket lost (the simulator stalls all six streams): prices come from
/// the REST fallback, then from the streams again once the venues return.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn websocket_feeds_lost_on_every_exchange() {
    let beast = Beast::start("epoll", &["--feeds", "sim"]);
    let source = || {
        btc(&beast)["source"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let venues = ["coinbase", "gemini", "kraken", "gateio", "cryptocom", "okx"];
    assert!(wait_until(Duration::from_secs(30), || source().ends_with("-ws")));
    let lost = Instant::now();
    for venue in venues {
        beast.sim_fault(venue, "stall");
    }
    // What a client asking throughout gets: the oldest price it is served, and never one
    // marked stale.
    let mut oldest_ms = 0;
    assert!(
        wait_until(Duration::from_secs(60), || {
            let price = btc(&beast);
            assert!(price.get("stale").is_none(), "a stale answer: {price}");
            oldest_ms = oldest_ms.max(price["age_ms"].as_u64().unwrap_or(0));
            price["source"]
                .as_str()
                .is_some_and(|s| s.ends_with("-rest"))
        }),
        "fresh prices from REST: {}",
        btc(&beast)
    );
    let on_rest = lost.elapsed();
    let back = Instant::now();
    for venue in venues {
        beast.sim_fault(venue, "resume");
    }
    assert!(wait_until(Duration::from_secs(120), || source()
        .ends_with("-ws")
        && venues.iter().all(|v| beast.feed(v)["state"] == "streaming")));
    let streaming = back.elapsed();
    report(
        "WebSocket feeds lost on every exchange: REST fallback",
        on_rest,
        "1–2 min (reconnect)",
        &format!(
            "streams stalled to BTC from REST (the stale limit is 9 s); no answer stale, the oldest price served {:.1} s old",
            oldest_ms as f64 / 1000.0
        ),
    );
    report(
        "WebSocket feeds lost on every exchange: streams back",
        streaming,
        "1–2 min (reconnect)",
        "venues back to all six streaming and BTC from a stream",
    );
}

/// SQS unreachable, then back: usage waits in the journal and reaches the queue, each batch
/// once.
#[test]
#[ignore = "a recovery drill: scripts/dr-drills.sh"]
fn sqs_outage() {
    let moto = Moto::start();
    let queue = beast_tests::services::create_queue(&moto.endpoint(), "drill.fifo", true);
    let beast = Beast::start_with("epoll", &[], |c| {
        c.env("SQS_USAGE_LOG_QUEUE_URL", &queue)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
    });
    moto.pause();
    answer_all(
        &beast,
        "/price?asset=BTC",
        100,
        "serving through the outage",
    );
    assert!(wait_until(Duration::from_secs(30), || beast
        .metric("beast_usage_sink_errors_total{sink=\"sqs\"}")
        > 0.0));
    let back = Instant::now();
    moto.resume();
    beast.wait_delivered("sqs");
    let caught_up = back.elapsed();
    let (records, batches, messages) = beast_tests::services::sqs_records(&moto.endpoint(), &queue);
    assert_eq!(
        (records, batches),
        (100, messages),
        "every record, each batch once"
    );
    report(
        "SQS outage (unreachable, then back)",
        caught_up,
        "messages kept 4 days",
        "queue back to every record delivered, 100 of 100, no batch twice",
    );
}

/// Asks `path` `n` times; every answer must be 200.
fn answer_all(beast: &Beast, path: &str, n: usize, why: &str) {
    for _ in 0..n {
        assert_eq!(beast.get(path).status, 200, "{why}");
    }
}

/// A key of `tier` made with the CLI against `database`.
fn create_key(scratch: &beast_tests::Scratch, database: &str, tier: &str) -> String {
    let made = beast_tests::run(&mut scratch.beast(&[
        "keys",
        "create",
        "--tier",
        tier,
        "--database-url",
        database,
    ]));
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    made.stdout.trim().to_string()
}

fn pg_dump(database: &str, file: &std::path::Path) {
    let dumped = std::process::Command::new("pg_dump")
        .arg(database)
        .arg("-f")
        .arg(file)
        .status()
        .unwrap();
    assert!(dumped.success(), "pg_dump");
}

fn psql(database: &str, args: &[&str]) {
    let ran = std::process::Command::new("psql")
        .arg(database)
        .args(["-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ran.success(), "psql {args:?}");
}
