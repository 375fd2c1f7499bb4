//! `beast serve --feeds sim`, end to end: every prewarmed subscription priced and served over
//! HTTP and UDP; a dropped venue reconnects; a stalled venue goes stale, the REST fallback keeps
//! its prices fresh and the stream takes over again when it resumes; garbage and error frames
//! are counted; over wss:// (the default) and ws://. Its prices are labelled simulated
//! everywhere (`sim-coinbase-ws`, `"simulated":true`).

use std::time::Duration;

use beast_tests::server::{Beast, padded, wait_until};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(30);

fn start(backend: &str, extra: &[&str]) -> Beast {
    let mut args = vec!["--feeds", "sim", "--sim-rate", "100"];
    args.extend_from_slice(extra);
    Beast::start(backend, &args)
}

fn assets(beast: &Beast) -> Vec<Value> {
    beast
        .get("/assets")
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

beast_tests::on_both_backends! {
    fn all_150_subscriptions_are_priced_and_served(backend) {
        let beast = start(backend, &[]);
        assert_eq!(beast.ready["feeds"], "sim");
        let priced = wait_until(SETTLE, || {
            let assets = assets(&beast);
            assets.len() == 149 && assets.iter().all(|a| a["price"].is_string())
        });
        let listed = assets(&beast);
        let unpriced: Vec<&Value> = listed
            .iter()
            .filter(|a| !a["price"].is_string())
            .map(|a| &a["asset"])
            .collect();
        assert!(priced, "unpriced after {SETTLE:?}: {unpriced:?}");
        // 150 subscriptions: every asset has one venue source, CRO has two.
        let all_sources = wait_until(SETTLE, || {
            assets(&beast)
                .iter()
                .map(|a| a["sources"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
                == 150
        });
        assert!(all_sources, "not every subscription delivered");
        let cro = assets(&beast)
            .into_iter()
            .find(|a| a["asset"] == "CRO")
            .unwrap();
        let mut sources: Vec<&str> = cro["sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["source"].as_str())
            .collect();
        sources.sort_unstable();
        assert_eq!(sources, ["sim-cryptocom-ws", "sim-kraken-ws"]);

        // Served over HTTP and UDP, one asset from each venue.
        let udp = beast.udp_client("udp_lpo");
        for (asset, source) in [
            ("BTC", "sim-coinbase-ws"),
            ("CHILLGUY", "sim-gemini-ws"),
            ("KSM", "sim-kraken-ws"),
            ("S", "sim-gateio-ws"),
            ("1INCH", "sim-cryptocom-ws"),
            ("W", "sim-okx-ws"),
        ] {
            let http = beast.get(&format!("/price?asset={asset}"));
            assert_eq!(http.status, 200, "{asset}");
            let json = http.json();
            assert_eq!(
                (json["asset"].as_str(), json["source"].as_str()),
                (Some(asset), Some(source))
            );
            assert!(json.get("stale").is_none(), "{json}");
            // Simulated prices never pass for real ones.
            assert_eq!(json["simulated"], true, "{json}");
            let reply: Value = serde_json::from_slice(&udp.ask(&padded(asset, 200))).unwrap();
            assert_eq!((&reply["asset"], &reply["simulated"]), (&asset.into(), &true.into()));
        }
        {
            use beast_engine::protocol::udp::v8;
            let mut request = [0u8; 64];
            let len = v8::encode_request(&mut request, 9, None, &[b"BTC"], v8::reply_len(1)).unwrap();
            let reply = udp.ask(&request[..len]);
            let record = v8::parse_reply(&reply).unwrap().1.next().unwrap().unwrap();
            assert_ne!(record.flags & v8::RECORD_SIMULATED, 0, "the v8 record's simulated flag: {record:?}");
        }
        let health = beast.health();
        assert_eq!(health["simulated"], true, "{health}");
        assert!(beast.metrics().contains("simulated=\"true\""));
        for feed in health["feeds"].as_array().unwrap() {
            assert_eq!(feed["state"], "streaming", "{feed}");
            assert_eq!(feed["parse_errors"], 0, "{feed}");
        }
        assert!(beast.metric("beast_feed_state{venue=\"okx\",state=\"streaming\"}") == 1.0);
        assert!(beast.metric("beast_feed_messages_total{venue=\"kraken\"}") > 0.0);
    }
}

beast_tests::on_both_backends! {
    fn a_dropped_venue_reconnects_and_keeps_serving(backend) {
        let beast = start(backend, &[]);
        assert!(wait_until(SETTLE, || beast.feed("okx")["state"] == "streaming"));
        // TIA (an OKX-only asset) is priced by the stream before the drop (its first price
        // may come from the start-up REST poll), or there is nothing to keep.
        let source = || beast.get("/price?asset=TIA").json()["source"].as_str().map(str::to_string);
        assert!(wait_until(SETTLE, || source().as_deref() == Some("sim-okx-ws")));
        assert_eq!(beast.feed("okx")["reconnects"], 0);
        beast.sim_fault("okx", "drop");
        assert!(
            wait_until(SETTLE, || beast.feed("okx")["reconnects"].as_u64()
                >= Some(1)),
            "okx reconnected"
        );
        assert!(
            wait_until(SETTLE, || beast.feed("okx")["state"] == "streaming"),
            "okx streams again"
        );
        // The price never stopped being served.
        let tia = beast.get("/price?asset=TIA");
        assert_eq!(
            (tia.status, tia.json()["source"].as_str()),
            (200, Some("sim-okx-ws"))
        );
        assert!(beast.metric("beast_feed_reconnects_total{venue=\"okx\"}") >= 1.0);
    }
}

beast_tests::on_both_backends! {
    fn a_stalled_venue_falls_back_to_rest_until_it_resumes(backend) {
        // A 2 s stale limit and a 200 ms REST poll keep the test short.
        let beast = start(backend, &["--cache-ttl-seconds", "2", "--rest-poll-ms", "200"]);
        let source = |asset: &str| {
            beast.get(&format!("/price?asset={asset}")).json()["source"]
                .as_str()
                .map(str::to_string)
        };
        assert!(wait_until(SETTLE, || source("KSM").as_deref() == Some("sim-kraken-ws")));
        beast.sim_fault("kraken", "stall");
        assert!(
            wait_until(SETTLE, || beast.feed("kraken")["rest_fallback"] == true),
            "REST fallback in use"
        );
        assert!(
            wait_until(SETTLE, || source("KSM").as_deref() == Some("sim-kraken-rest")),
            "served from REST"
        );
        let ksm = beast.get("/price?asset=KSM").json();
        assert!(
            ksm.get("stale").is_none(),
            "the REST fallback keeps it fresh: {ksm}"
        );
        // Any state of a feed working its way back; "streaming" too, since a reconnect to the stalled
        // venue gets its handshake and first snapshot before the stall shows again.
        let state = beast.feed("kraken")["state"].clone();
        assert!(
            matches!(
                state.as_str(),
                Some("stale" | "backoff" | "connecting" | "subscribed" | "streaming")
            ),
            "{state}"
        );
        assert!(beast.metric("beast_feed_rest_prices_total{venue=\"kraken\"}") >= 1.0);

        beast.sim_fault("kraken", "resume");
        assert!(
            wait_until(SETTLE, || source("KSM").as_deref() == Some("sim-kraken-ws")),
            "the stream takes over again"
        );
        assert!(
            wait_until(SETTLE, || beast.feed("kraken")["rest_fallback"] == false),
            "REST fallback idle again"
        );
    }
}

beast_tests::on_both_backends! {
    fn rest_outages_and_bad_frames_are_counted_not_fatal(backend) {
        let beast = start(backend, &["--cache-ttl-seconds", "2", "--rest-poll-ms", "200"]);
        assert!(wait_until(SETTLE, || beast.feed("gateio")["state"] == "streaming"));
        beast.sim_fault("gateio", "garbage");
        beast.sim_fault("gateio", "error");
        assert!(
            wait_until(SETTLE, || beast.feed("gateio")["parse_errors"].as_u64()
                >= Some(3)),
            "garbage counted"
        );
        assert!(
            wait_until(SETTLE, || beast.feed("gateio")["exchange_errors"].as_u64()
                >= Some(1)),
            "error frame counted"
        );
        assert_eq!(
            beast.feed("gateio")["state"],
            "streaming",
            "bad frames do not end a connection"
        );

        // Stall a venue whose REST is down too: its prices go stale, everything else is served.
        beast.sim_fault("okx", "refuse-rest");
        beast.sim_fault("okx", "stall");
        assert!(
            wait_until(SETTLE, || beast.get("/price?asset=TIA").json()["stale"]
                == true),
            "TIA goes stale"
        );
        assert!(wait_until(SETTLE, || beast
            .metric("beast_feed_rest_errors_total{venue=\"okx\"}")
            >= 1.0));
        assert_eq!(beast.get("/price?asset=BNB").status, 200);
        beast.sim_fault("okx", "allow-rest");
        assert!(
            wait_until(SETTLE, || beast
                .get("/price?asset=TIA")
                .json()
                .get("stale")
                .is_none()),
            "fresh again from REST"
        );
    }
}

beast_tests::on_both_backends! {
    fn plain_websockets_work_too(backend) {
        let beast = start(backend, &["--sim-tls", "false", "--sim-source", "walk"]);
        assert!(wait_until(SETTLE, || beast.health()["feeds"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["state"] == "streaming"))));
        assert!(
            beast.stderr_text().contains("url=ws://127.0.0.1"),
            "connected over ws://"
        );
    }
}

#[test]
fn the_standalone_simulator_serves_rest_and_control() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let scratch = beast_tests::Scratch::new();
    let cert = scratch.path().join("sim.pem");
    let mut child = scratch
        .beast(&[
            "sim",
            "--plain-port",
            "0",
            "--tls-port",
            "0",
            "--cert-out",
            cert.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(
        ready["venues"]["okx"]["wss"]
            .as_str()
            .unwrap()
            .starts_with("wss://127.0.0.1:")
    );
    let plain: std::net::SocketAddr = ready["plain"].as_str().unwrap().parse().unwrap();

    let mut client = beast_tests::server::HttpClient::connect(plain);
    client.send(b"GET /okx/api/v5/market/ticker?instId=TIA-USDT HTTP/1.1\r\n\r\n");
    let ticker = client.response().json();
    assert_eq!(
        (
            ticker["code"].as_str(),
            ticker["data"][0]["instId"].as_str()
        ),
        (Some("0"), Some("TIA-USDT"))
    );

    let mut client = beast_tests::server::HttpClient::connect(plain);
    client.send(b"POST /control/okx/refuse-rest HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(client.response().json()["okx"]["refuse_rest"], true);
    let mut client = beast_tests::server::HttpClient::connect(plain);
    client.send(b"GET /okx/api/v5/market/ticker?instId=TIA-USDT HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 503);
    let mut client = beast_tests::server::HttpClient::connect(plain);
    client.send(b"POST /control/okx/explode HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(client.response().status, 404);

    // SIGTERM ends it cleanly.
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code, reason = "sending a signal to our own child process")]
    let sent = unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), libc::SIGTERM) };
    assert_eq!(sent, 0);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
