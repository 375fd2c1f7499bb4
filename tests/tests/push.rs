//! The push node (`SERVER_TYPE=WEBHOOK_SERVER`) against real receivers: a UDP socket, and an
//! HTTPS server with its own certificate (Python `http.server` over `ssl`) that verifies every
//! delivery with the PyPI `standardwebhooks` library.

use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use beast_tests::Scratch;
use beast_tests::server::{Beast, wait_until};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// A data directory with one API key (id 1), a self-signed certificate for 127.0.0.1 and
/// localhost (the push node's extra CA), and the secrets file the receiver reads.
struct Home {
    scratch: Scratch,
    /// `DATABASE_URL` for the CLI and the node (the embedded store when `None`).
    database: Option<String>,
}

impl Home {
    fn new() -> Home {
        let scratch = Scratch::new();
        scratch.create_key("pro");
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        scratch.write("cert.pem", &cert.pem());
        scratch.write("key.pem", &signing_key.serialize_pem());
        scratch.write("secrets", "");
        Home {
            scratch,
            database: None,
        }
    }

    fn path(&self, name: &str) -> String {
        self.scratch.path().join(name).display().to_string()
    }

    /// `beast subscriptions …` in this directory (its embedded store); loopback allowed.
    fn subscriptions(&self, args: &[&str]) -> beast_tests::Ran {
        let mut all = vec!["subscriptions"];
        all.extend_from_slice(args);
        let mut command = self.scratch.beast(&all);
        command
            .env("WEBHOOK_ALLOW_NETS", "127.0.0.0/8")
            .env("WEBHOOK_SECRET_OVERLAP_S", "3600");
        if let Some(url) = &self.database {
            command.env("DATABASE_URL", url);
        }
        beast_tests::run(&mut command)
    }

    /// Creates a subscription; returns it (with its secret).
    fn create(&self, target: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "create", "--owner", "1", "--target", target, "--assets", "BTC,ETH",
        ];
        args.extend_from_slice(extra);
        let ran = self.subscriptions(&args);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        serde_json::from_str(&ran.stdout).unwrap()
    }

    fn show(&self, id: u64) -> Value {
        let ran = self.subscriptions(&["show", &id.to_string()]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        serde_json::from_str(&ran.stdout).unwrap()
    }

    fn deliveries(&self, id: u64) -> Vec<Value> {
        let ran = self.subscriptions(&["deliveries", &id.to_string(), "--since", "0"]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        ran.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn add_secret(&self, secret: &str) {
        let mut all = std::fs::read_to_string(self.scratch.path().join("secrets")).unwrap();
        all.push_str(secret);
        all.push('\n');
        self.scratch.write("secrets", &all);
    }

    /// The push node on this directory's store.
    fn node_on(&self, backend: &str, allow_loopback: bool) -> Beast {
        self.node_with(backend, allow_loopback, &[])
    }

    fn node_with(&self, backend: &str, allow_loopback: bool, env: &[(&str, &str)]) -> Beast {
        let data = self.path("data");
        let ca = self.path("cert.pem");
        Beast::start_with(backend, &["--demo-walk", "true"], |c| {
            c.env("SERVER_TYPE", "WEBHOOK_SERVER")
                .env("BEAST_DATA_DIR", &data)
                .env("WEBHOOK_CA_FILE", &ca)
                .env("WEBHOOK_RETRY_BASE_MS", "200")
                .env("WEBHOOK_POLL_MS", "100")
                .env("WEBHOOK_BREAKER_COOLDOWN_MS", "1000");
            if allow_loopback {
                c.env("WEBHOOK_ALLOW_NETS", "127.0.0.0/8");
            }
            if let Some(url) = &self.database {
                c.env("DATABASE_URL", url);
            }
            for (name, value) in env {
                c.env(name, value);
            }
        })
    }
}

/// The Python HTTPS receiver; one JSON line per request it answered.
struct Receiver {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<Value>,
}

impl Receiver {
    fn start(home: &Home) -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/receivers/webhook_receiver.py");
        let mut child = Command::new("python3")
            .args([
                script,
                &home.path("cert.pem"),
                &home.path("key.pem"),
                &home.path("secrets"),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 receiver");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let first = lines.recv_timeout(LIMIT).expect("receiver ready");
        let port = u16::try_from(first["port"].as_u64().unwrap()).unwrap();
        Receiver { child, port, lines }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The next request to `path`, in arrival order (others are kept in `seen` for later).
    fn next(&self, path: &str, seen: &mut Vec<Value>) -> Value {
        if let Some(at) = seen.iter().position(|v| v["path"] == path) {
            return seen.remove(at);
        }
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let got = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no delivery to {path}; seen {seen:?}"));
            if got["path"] == path {
                return got;
            }
            seen.push(got);
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn udp_receiver() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    socket
}

fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).expect("a datagram");
    buf[..n].to_vec()
}

beast_tests::on_both_backends! {
    fn udp_subscribers_get_json_and_v8_on_an_interval_and_on_a_move(backend) {
        udp_deliveries(backend);
    }
}

fn udp_deliveries(backend: &str) {
    let home = Home::new();
    let (json, v8, moves) = (udp_receiver(), udp_receiver(), udp_receiver());
    let addr = |s: &UdpSocket| format!("udp://{}", s.local_addr().unwrap());
    home.create(&addr(&json), &["--every-s", "1"]);
    home.create(&addr(&v8), &["--every-s", "1", "--format", "v8"]);
    home.create(&addr(&moves), &["--move-bps", "1", "--min-gap-ms", "300"]);
    let node = home.node_on(backend, true);
    assert_eq!(node.ready["io"], backend);
    assert!(
        node.ready["tcp_lpo"].is_null(),
        "no API listener: {}",
        node.ready
    );
    let mut last = None;
    for _ in 0..3 {
        let doc: Value = serde_json::from_slice(&recv(&json)).unwrap();
        assert_eq!(doc["type"], "price.update");
        assert_eq!(doc["data"]["trigger"], "interval");
        assert_eq!(doc["data"]["prices"][0]["asset"], "BTC");
        assert_eq!(doc["data"]["prices"][1]["asset"], "ETH");
        let seq = doc["data"]["seq"].as_u64().unwrap();
        assert!(last.is_none_or(|l| seq == l + 1), "{seq} after {last:?}");
        last = Some(seq);
    }
    let datagram = recv(&v8);
    assert_eq!(&datagram[..3], &[0xA7, 0xBE, 8], "v8 magic and version");
    assert_eq!(datagram[8], 2, "two records");
    assert_eq!(&datagram[9..12], &[1, 1, 1], "part 1 of 1, a push");
    assert_eq!(datagram.len(), 12 + 2 * 24);
    let moved: Value = serde_json::from_slice(&recv(&moves)).unwrap();
    assert_eq!(moved["data"]["trigger"], "move");
    // Never more than the trigger allows: one a second on the interval.
    let sent_before = node.metric("beast_push_deliveries_total{protocol=\"udp\",outcome=\"sent\"}");
    assert!(sent_before >= 4.0);
    let metrics = node.metrics();
    assert!(
        metrics.contains("beast_push_latency_seconds_bucket{protocol=\"udp\",trigger=\"move\"")
    );
    let (clean, said) = beast_tests::services::promtool(&metrics);
    assert!(clean, "promtool: {said}");
    assert!(
        beast_tests::server::metric(&metrics, "beast_push_subscriptions{state=\"active\"}") == 3.0
    );
}

beast_tests::on_both_backends! {
    fn https_deliveries_verify_retry_and_410_disables(backend) {
        let home = Home::new();
        let receiver = Receiver::start(&home);
        let ok = home.create(&receiver.url("/ok"), &["--every-s", "1"]);
        home.add_secret(ok["secret"].as_str().unwrap());
        let flaky = home.create(&receiver.url("/flaky/2"), &["--every-s", "60"]);
        home.add_secret(flaky["secret"].as_str().unwrap());
        let gone = home.create(&receiver.url("/gone"), &["--every-s", "1"]);
        let node = home.node_on(backend, true);
        let mut seen = Vec::new();
        // Every delivery verifies with the subscription's secret (and with no other).
        for _ in 0..2 {
            let got = receiver.next("/ok", &mut seen);
            assert_eq!(got["verified"], serde_json::json!([true, false]), "{got}");
            assert_eq!(got["prices"], 2);
        }
        // 503 with Retry-After twice, then 200: the same message, attempted three times.
        let first = receiver.next("/flaky/2", &mut seen);
        let second = receiver.next("/flaky/2", &mut seen);
        let third = receiver.next("/flaky/2", &mut seen);
        assert_eq!(
            (first["status"].as_u64(), third["status"].as_u64()),
            (Some(503), Some(200))
        );
        assert_eq!(first["id"], third["id"], "one message id across attempts");
        assert_eq!(second["verified"], serde_json::json!([false, true]));
        let waited = third["received_ms"].as_u64().unwrap() - second["received_ms"].as_u64().unwrap();
        assert!(waited >= 900, "Retry-After: 1 honoured ({waited} ms)");
        // 410 disables the subscription, with the reason.
        let gone_id = gone["id"].as_u64().unwrap();
        assert!(wait_until(LIMIT, || home.show(gone_id)["state"] == "disabled"));
        assert!(
            home.show(gone_id)["disabled_reason"]
                .as_str()
                .unwrap()
                .contains("410")
        );
        // The log has every attempt.
        let flaky_id = flaky["id"].as_u64().unwrap();
        assert!(wait_until(LIMIT, || home.deliveries(flaky_id).len() >= 3));
        let outcomes: Vec<String> = home
            .deliveries(flaky_id)
            .iter()
            .map(|r| format!("{}:{}", r["attempt"], r["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(
            outcomes[..3],
            ["1:failed", "2:failed", "3:delivered"],
            "{outcomes:?}"
        );
        assert!(node.metric("beast_push_retries_total") >= 2.0);
    }
}

beast_tests::on_both_backends! {
    fn a_refused_and_a_stalled_endpoint_do_not_delay_a_healthy_one(backend) {
        let home = Home::new();
        let receiver = Receiver::start(&home);
        let closed = beast_tests::services::free_port();
        home.create(
            &format!("https://127.0.0.1:{closed}/refused"),
            &["--every-s", "1"],
        );
        home.create(&receiver.url("/stall"), &["--every-s", "1"]);
        let healthy = home.create(&receiver.url("/ok"), &["--every-s", "1"]);
        home.add_secret(healthy["secret"].as_str().unwrap());
        let _node = home.node_on(backend, true);
        let mut seen = Vec::new();
        // The stalled endpoint holds its connection for 20 s (past the 10 s timeout) and the
        // refused one fails at once, over and over; the healthy one meanwhile gets every delivery
        // as it is made: milliseconds normally, and far below the stall or the timeout here.
        receiver.next("/stall", &mut seen);
        for _ in 0..5 {
            let got = receiver.next("/ok", &mut seen);
            assert_eq!(got["verified"], serde_json::json!([true]));
            let lag = got["lag_ms"].as_i64().unwrap();
            assert!(lag < 5_000, "a healthy delivery waited {lag} ms");
        }
    }
}

beast_tests::on_both_backends! {
    fn ssrf_targets_are_refused_at_creation_and_at_connect(backend) {
        let home = Home::new();
        for target in [
            "udp://127.0.0.1:9999",
            "https://169.254.169.254/latest/meta-data",
            "https://169.254.170.2/v2/credentials",
            "https://[::1]/",
            "udp://10.0.0.1:53",
            "https://[::ffff:192.168.1.1]/",
            "udp://100.64.0.1:9",
            "udp://224.0.0.1:9",
            "https://0.0.0.0/",
            "https://localhost/",
        ] {
            let ran = beast_tests::run(&mut home.scratch.beast(&[
                "subscriptions",
                "create",
                "--owner",
                "1",
                "--target",
                target,
                "--assets",
                "BTC",
                "--every-s",
                "1",
            ]));
            assert_eq!(ran.code, Some(2), "{target}: {}", ran.stdout);
            assert!(
                ran.stderr.contains("not reachable from this service"),
                "{target}: {}",
                ran.stderr
            );
        }
        // Allowed when it was created, refused at connect by a node without the allow-list: a
        // name that resolves to 127.0.0.1.
        let receiver = Receiver::start(&home);
        let sub = home.create(
            &format!("https://127.0.0.1:{}/ok", receiver.port),
            &["--every-s", "1"],
        );
        let udp = udp_receiver();
        let udp_sub = home.create(
            &format!("udp://{}", udp.local_addr().unwrap()),
            &["--every-s", "1"],
        );
        let node = home.node_on(backend, false);
        assert!(wait_until(LIMIT, || node
            .metric("beast_push_ssrf_blocked_total")
            >= 2.0));
        let id = sub["id"].as_u64().unwrap();
        assert!(wait_until(LIMIT, || home
            .deliveries(id)
            .iter()
            .any(|r| r["outcome"] == "blocked")));
        udp.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        assert!(
            udp.recv(&mut [0u8; 64]).is_err(),
            "no datagram to a refused address"
        );
        let _ = udp_sub;
    }
}

beast_tests::on_both_backends! {
    fn during_a_rotation_both_secrets_sign(backend) {
        let home = Home::new();
        let receiver = Receiver::start(&home);
        let sub = home.create(&receiver.url("/ok"), &["--every-s", "1"]);
        home.add_secret(sub["secret"].as_str().unwrap());
        let _node = home.node_on(backend, true);
        let mut seen = Vec::new();
        assert_eq!(
            receiver.next("/ok", &mut seen)["verified"],
            serde_json::json!([true])
        );
        let id = sub["id"].as_u64().unwrap().to_string();
        let ran = home.subscriptions(&["rotate-secret", &id]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let rotated: Value = serde_json::from_str(&ran.stdout).unwrap();
        home.add_secret(rotated["secret"].as_str().unwrap());
        // Within a second the node signs with both: each verifies.
        assert!(wait_until(LIMIT, || {
            let got = receiver.next("/ok", &mut seen);
            got["signatures"] == 2 && got["verified"] == serde_json::json!([true, true])
        }));
    }
}

beast_tests::on_both_backends! {
    fn after_kill_9_subscriptions_resume_and_the_log_is_intact(backend) {
        let home = Home::new();
        let receiver = Receiver::start(&home);
        let sub = home.create(&receiver.url("/ok"), &["--every-s", "1"]);
        home.add_secret(sub["secret"].as_str().unwrap());
        let id = sub["id"].as_u64().unwrap();
        let node = home.node_on(backend, true);
        let mut seen = Vec::new();
        let mut last = 0;
        for _ in 0..3 {
            last = receiver.next("/ok", &mut seen)["seq"].as_u64().unwrap();
        }
        // The log reaches the store within a second or two.
        assert!(wait_until(LIMIT, || home.deliveries(id).len() >= 2));
        drop(node); // SIGKILL
        let logged = home.deliveries(id);
        let node = home.node_on(backend, true);
        let next = receiver.next("/ok", &mut seen)["seq"].as_u64().unwrap();
        assert!(
            next > last,
            "sequence numbers never go back: {next} after {last}"
        );
        assert!(wait_until(LIMIT, || home.deliveries(id).len() > logged.len()));
        let after = home.deliveries(id);
        assert_eq!(
            after[..logged.len()],
            logged[..],
            "rows written before the kill are kept"
        );
        assert!(
            node.metric("beast_push_deliveries_total{protocol=\"https\",outcome=\"delivered\"}") >= 1.0
        );
    }
}

beast_tests::on_both_backends! {
    fn in_postgres_given_up_deliveries_are_replayed(backend) {
        let pg = beast_tests::services::Postgres::start();
        let mut home = Home::new();
        home.database = Some(pg.url());
        let key = beast_tests::run(
            home.scratch
                .beast(&["keys", "create", "--tier", "pro"])
                .env("DATABASE_URL", pg.url()),
        );
        assert_eq!(key.code, Some(0), "{}", key.stderr);
        let receiver = Receiver::start(&home);
        // The first request gets 503; with no retries, the delivery is given up (its body kept).
        let sub = home.create(&receiver.url("/flaky/1"), &["--every-s", "3600"]);
        home.add_secret(sub["secret"].as_str().unwrap());
        let id = sub["id"].as_u64().unwrap();
        let _node = home.node_with(backend, true, &[("WEBHOOK_RETRIES", "0")]);
        let mut seen = Vec::new();
        let first = receiver.next("/flaky/1", &mut seen);
        assert_eq!(first["status"], 503);
        assert!(wait_until(LIMIT, || home
            .deliveries(id)
            .iter()
            .any(|r| r["outcome"] == "gave_up")));
        assert_eq!(
            pg.query(&format!("SELECT count(*) FROM push_deliveries WHERE subscription_id = {id} AND payload IS NOT NULL")),
            "1"
        );
        let ran = home.subscriptions(&["replay", &id.to_string(), "--since", "0"]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        assert!(ran.stdout.contains("\"replayed\":1"), "{}", ran.stdout);
        // The same message, sent again (same webhook-id, a fresh signature), now delivered.
        let again = receiver.next("/flaky/1", &mut seen);
        assert_eq!(
            (again["id"].clone(), again["status"].as_u64()),
            (first["id"].clone(), Some(200))
        );
        assert_eq!(again["verified"], serde_json::json!([true]));
        assert!(wait_until(LIMIT, || home
            .deliveries(id)
            .iter()
            .any(|r| r["outcome"] == "delivered")));
    }
}
