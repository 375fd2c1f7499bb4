//! Three nodes behind one load balancer (nginx's stream module, TCP and UDP, round robin),
//! sharing a Valkey and a PostgreSQL: a key's tier limit holds across the three (the shares of
//! `side::limits`), usage over the three adds up to exactly the answers given, a node that dies
//! leaves and the others take its share, a key revoked on one node is refused by the others
//! within a second, and a Valkey full of poisoned prices changes nothing a client sees.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use beast_tests::server::{Beast, padded, wait_until};
use beast_tests::services::{Nginx, Postgres, PrivateRedis};

const ADMIN: &str = beast_tests::server::CLUSTER_ADMIN;
/// The demo tier's limit, a second, across the cluster.
const DEMO_PER_S: u64 = 3;
/// How long the limit is measured.
const SPAN_S: u64 = 10;

/// One HTTP request on a connection of its own (so the balancer picks a node for each):
/// the status and the body.
fn get_once(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the balancer");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// One UDP request through the balancer: whether it was answered with a price.
fn ask_udp(addr: SocketAddr, request: &[u8]) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(request, addr).unwrap();
    let mut reply = [0u8; 2048];
    socket.recv(&mut reply).is_ok_and(|n| {
        String::from_utf8_lossy(reply.get(..n).unwrap_or_default()).contains("\"price\"")
    })
}

fn create_key(database: &str, tier: &str) -> String {
    let scratch = beast_tests::Scratch::new();
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

/// Whether `node` has `key` in force.
fn knows(node: &Beast, key: &str) -> bool {
    node.request(
        "GET",
        &format!("/admin/key-status?key={key}"),
        &[("X-Admin-Key", ADMIN)],
    )
    .json()["active"]
        == true
}

beast_tests::on_both_backends! {
    fn three_nodes_behind_a_balancer_share_each_keys_limit(backend) {
        let redis = PrivateRedis::start();
        let pg = Postgres::start();
        let (url, database) = (redis.url(), pg.url());
        // Poison first: 5 000 prices of assets nobody configured and BTC's own, all stamped an
        // hour ahead, so each would be "fresh" for an hour if it were believed.
        let future = beast_core::clock::wall_ms() + 3_600_000;
        let poisoned = redis.cli(&[
            "EVAL",
            "for i = 1, 5000 do redis.call('SET', 'price:POISON' .. i, cjson.encode({asset = 'POISON' .. i, price = '1', source = 'coinbase-ws', ts = tonumber(ARGV[1])})) end
             redis.call('SET', 'price:BTC', cjson.encode({asset = 'BTC', price = '1', source = 'coinbase-ws', ts = tonumber(ARGV[1])}))
             return redis.call('DBSIZE')",
            "0",
            &future.to_string(),
        ]);
        assert_eq!(poisoned, "5001");

        let mut nodes: Vec<Beast> = ["node-a", "node-b", "node-c"]
            .iter()
            .map(|name| Beast::cluster_node(backend, &url, &database, name))
            .collect();
        let lb = Nginx::start(
            &nodes.iter().map(|n| n.addr("tcp_lpo")).collect::<Vec<_>>(),
            &nodes.iter().map(|n| n.addr("udp_lpo")).collect::<Vec<_>>(),
        );
        let all_live = |nodes: &[Beast], n: f64| {
            nodes.iter().all(|node| {
                let m = node.metrics();
                beast_tests::server::metric(&m, "beast_cluster_live_nodes") == n
                    && (beast_tests::server::metric(&m, "beast_cluster_limit_default_share")
                        - 1.0 / n)
                        .abs()
                        < 1e-3
            })
        };
        assert!(
            wait_until(Duration::from_secs(20), || all_live(&nodes, 3.0)),
            "three live nodes, each with a third of an unasked key's limit"
        );

        // The poison changed nothing: the first node found nothing but poison and took none of
        // it (the others may start warm from the first one's real prices), BTC is the seeded
        // price on every node, the poisoned assets are unknown.
        assert_eq!(nodes[0].metric("beast_warm_start_prices"), 0.0);
        for _ in 0..6 {
            let (status, body) = get_once(lb.tcp, "/price?asset=BTC");
            assert_eq!(status, 200, "{body}\n{}", lb.log());
            assert!(body.contains("\"97123.45\""), "{body}");
            assert_eq!(get_once(lb.tcp, "/price?asset=POISON7").0, 404);
        }

        // The demo key's limit across the three: as fast as one client can ask, by HTTP and by
        // UDP in turn, for SPAN_S seconds.
        let demo = create_key(&database, "demo");
        assert!(
            wait_until(Duration::from_secs(1), || nodes.iter().all(|n| knows(n, &demo))),
            "the new key is in force on every node within a second"
        );
        let http_path = format!("/price?asset=BTC&key={demo}");
        let udp_request = padded(&format!("key={demo} BTC"), 512);
        let (mut asked, mut answered) = (0u64, 0u64);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(SPAN_S) {
            let ok = if asked % 2 == 0 {
                let (status, body) = get_once(lb.tcp, &http_path);
                assert!(status == 200 || status == 429, "{body}");
                status == 200
            } else {
                ask_udp(lb.udp, &udp_request)
            };
            asked += 1;
            answered += u64::from(ok);
        }
        // The stated bound: limit × t + one second's burst at most; at least limit × (t − 1)
        // (the first window's shares are the even split, before any demand is known).
        let (low, high) = (DEMO_PER_S * (SPAN_S - 1), DEMO_PER_S * (SPAN_S + 1));
        assert!(
            (low..=high).contains(&answered),
            "{answered} of {asked} answered in {SPAN_S} s across three nodes: the demo tier allows {DEMO_PER_S}/s in all"
        );
        eprintln!("{answered} of {asked} answered in {SPAN_S} s");
        assert!(asked > 20 * answered, "the client asked far past the limit: {asked}");

        // The shares follow the demand: a client of one node alone gets more than that
        // node's even third (at most 6 × 1 + 1 in 6 s), within the cluster's bound (3 × 6 + 3).
        let direct = nodes[0].addr("tcp_lpo");
        let (mut alone, started) = (0u64, Instant::now());
        while started.elapsed() < Duration::from_secs(6) {
            alone += u64::from(get_once(direct, &http_path).0 == 200);
        }
        eprintln!("{alone} answered in 6 s by node-a alone");
        assert!((9..=21).contains(&alone), "{alone} answered in 6 s by one node");
        answered += alone;

        // Usage over the three is exactly the answers given.
        for node in &nodes {
            node.wait_delivered("postgres");
        }
        let metered: u64 = pg
            .query(
                "SELECT COALESCE(SUM(r.requests), 0) FROM usage_rollups r JOIN api_keys k ON k.id = r.key_id WHERE k.tier = 'demo'",
            )
            .parse()
            .unwrap();
        assert_eq!(metered, answered, "usage in PostgreSQL against answers seen");

        // `beast cluster status` shows each node's lease state.
        let scratch = beast_tests::Scratch::new();
        let status = beast_tests::run(&mut scratch.beast(&["cluster", "status", "--cache-url", &url]));
        assert_eq!(status.code, Some(0), "{}", status.stderr);
        assert!(status.stdout.starts_with("3 live node(s)"), "{}", status.stdout);
        assert_eq!(status.stdout.matches("  shared").count(), 3, "{}", status.stdout);

        // A node killed without a word: the others keep serving through the balancer, its
        // entry expires, and the survivors take half of each limit and of the connections.
        let pro = create_key(&database, "pro");
        assert!(wait_until(Duration::from_secs(1), || nodes.iter().all(|n| knows(n, &pro))));
        let mut dead = nodes.pop().unwrap();
        let dead_port = dead.addr("tcp_lpo");
        assert!(!dead.signal_and_wait(libc::SIGKILL).success());
        // An io_uring node's sockets outlive its process for a moment (the kernel tears the
        // ring down after the exit): a connection that lands then is reset, as any request
        // in flight to a dying node would be. Once the port refuses, the balancer passes every
        // request to the others.
        let died = Instant::now();
        assert!(wait_until(Duration::from_secs(5), || TcpStream::connect(dead_port).is_err()));
        eprintln!("node-c's port refused connections {:?} after its exit", died.elapsed());
        let pro_path = format!("/price?asset=BTC&key={pro}");
        for _ in 0..12 {
            let (status, body) = get_once(lb.tcp, &pro_path);
            assert_eq!(status, 200, "{body}\n{}", lb.log());
        }
        assert!(
            wait_until(Duration::from_secs(30), || redis.cli(&["EXISTS", "cluster:stats:node-c"]) == "0"
                && all_live(&nodes, 2.0)),
            "node-c's entry expired and the others count two"
        );
        assert!(
            wait_until(Duration::from_secs(15), || nodes.iter().all(|n| n.metric("beast_connections_limit") > 2_000.0)),
            "each survivor's connection share grows past a third of 6000"
        );

        // Revoked through one node, refused by the other within a second.
        let gone = nodes[0].request("POST", &format!("/admin/invalidate-key?key={pro}"), &[("X-Admin-Key", ADMIN)]);
        assert_eq!(gone.status, 200, "{}", gone.body_text());
        assert!(
            wait_until(Duration::from_secs(1), || nodes[1].get(&pro_path).status == 401),
            "node-b refuses the key revoked on node-a"
        );

        // The lease state per tier, as the admin view shows it.
        let view = nodes[1].request("GET", "/admin/cluster", &[("X-Admin-Key", ADMIN)]).json();
        assert_eq!(view["limits"]["mode"], "shared", "{view}");
        assert!(view["governor"]["cluster"]["total"].as_u64() > Some(0), "{view}");
        assert_eq!(redis.cli(&["EXISTS", "{adaptive:lpo}:total"]), "1");

        // Valkey gone: each node holds every key to its limit ÷ the last known live nodes
        // (two), never to the whole and never unlimited. One node asked as fast as a client
        // can for 3 s gets 1.5/s: at most 1.5 × 3 + its burst of one.
        redis.stop();
        let fallback = "beast_cluster_limit_mode{mode=\"fallback\"}";
        assert!(
            wait_until(Duration::from_secs(10), || nodes.iter().all(|n| n.metric(fallback) == 1.0)),
            "both nodes fall back"
        );
        let status = nodes[0]
            .request("GET", &format!("/admin/key-status?key={demo}"), &[("X-Admin-Key", ADMIN)])
            .json();
        assert_eq!(status["node_share"], 0.5, "{status}");
        let (mut asked, mut answered) = (0u64, 0u64);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            asked += 1;
            answered += u64::from(get_once(direct, &http_path).0 == 200);
        }
        assert!(
            (3..=6).contains(&answered),
            "{answered} of {asked} answered in 3 s by one node at half of 3/s"
        );
        drop(lb);
    }
}
