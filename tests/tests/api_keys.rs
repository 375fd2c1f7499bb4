//! API keys on the request path: tiers' rate limits hold across every reactor and protocol, a
//! revoked key is refused within a second, and a node that requires keys refuses requests
//! without one: 401 `invalid_api_key`, 429 `rate_limited` with Retry-After, UDP errors no
//! larger than the request unless the key is valid.

use std::time::{Duration, Instant};

use beast_engine::protocol::udp::v8;
use beast_tests::Scratch;
use beast_tests::server::{BACKENDS, Beast, Load, wait_until};

/// The demo tier: 3 per second, a burst of 3. GCRA on one atomic word per key is exact across
/// reactors: over any `t` seconds a key gets at most `3 t + 3` answers, and a key that keeps
/// asking gets at least `3 t`. Over 10 s: 30 to 33 (34 allows for the clock tick at either end).
#[test]
fn a_3_qps_key_gets_3_per_second_across_reactors_and_protocols() {
    let scratch = Scratch::new();
    let key = scratch.create_key("demo");
    let beast = Beast::start_in(scratch, "uring", &[], |_| {});
    let keyed = ["--key", key.as_str(), "-d", "10s"];
    // HTTP on 4 connections and UDP on 4 sockets: both reactors and both protocols share the key.
    let http = Load::start(
        "http",
        beast.addr("tcp_lpo"),
        &[&keyed[..], &["-c", "4", "-r", "200"]].concat(),
    );
    let udp = Load::start(
        "udp",
        beast.addr("udp_lpo"),
        &[&keyed[..], &["-c", "4", "-r", "200"]].concat(),
    );
    let (http, udp) = (http.finish(), udp.finish());
    let answered = http["ok"].as_u64().unwrap() + udp["ok"].as_u64().unwrap();
    assert!(
        (30..=34).contains(&answered),
        "3/s over 10 s: {answered}\nhttp {http}\nudp {udp}"
    );
    assert!(
        http["errors"]["http_429"].as_u64().unwrap() > 1000,
        "{http}"
    );
    let limited = beast.metric("beast_requests_denied_total{reason=\"rate_limited\"}");
    assert!(limited > 3000.0, "{limited}");
    // Only the answered ones are usage records.
    assert_eq!(beast.metric("beast_usage_recorded_total"), answered as f64);
    // The refusal itself: 429, JSON, Retry-After.
    let refused = (0..10)
        .map(|_| beast.get(&format!("/price?asset=BTC&key={key}")))
        .find(|r| r.status == 429)
        .expect("a 429 while hammering");
    assert_eq!(refused.json()["error"], "rate_limited");
    assert_eq!(refused.header("Retry-After").as_deref(), Some("1"));
}

#[test]
fn a_revoked_key_is_refused_within_a_second() {
    for backend in BACKENDS {
        let scratch = Scratch::new();
        let key = scratch.create_key("pro");
        let cli = Scratch::new();
        let data = scratch.path().join("data");
        let beast = Beast::start_in(scratch, backend, &[], |_| {});
        let path = format!("/price?asset=BTC&key={key}");
        assert_eq!(beast.get(&path).status, 200);
        let out = cli
            .beast(&[
                "keys",
                "revoke",
                &key,
                "--beast-data-dir",
                data.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let revoked = Instant::now();
        assert!(
            wait_until(Duration::from_secs(1), || beast.get(&path).status == 401),
            "{backend}: still served {:?} after the revoke",
            revoked.elapsed()
        );
        let refused = beast.get(&path);
        assert_eq!(refused.json()["error"], "invalid_api_key");
        // UDP refuses it too (v8: a header-only reply with the invalid-key status).
        let mut request = [0u8; 128];
        let len = v8::encode_request(&mut request, 9, Some(key.as_bytes()), &[b"BTC"], 0).unwrap();
        let reply = beast.udp_client("udp_lpo").ask(&request[..len]);
        assert_eq!(reply.len(), v8::HEADER_LEN);
        assert_eq!(
            v8::parse_reply(&reply).unwrap().0.status,
            v8::ReplyStatus::InvalidKey as u8
        );
    }
}

#[test]
fn a_node_that_requires_keys_refuses_requests_without_one() {
    let scratch = Scratch::new();
    let key = scratch.create_key("basic");
    let beast = Beast::start_in(scratch, "epoll", &["--require-key", "true"], |_| {});
    let missing = beast.get("/price?asset=BTC");
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"], "invalid_api_key");
    assert_eq!(
        beast
            .request("GET", "/prices?assets=BTC,ETH", &[("X-API-Key", &key)])
            .status,
        200
    );
    assert_eq!(beast.get("/health").status, 200, "health needs no key");
    let udp = beast.udp_client("udp_lpo");
    // Text: the refusal fits a padded request, and an unpadded one gets nothing.
    let mut padded = b"BTC".to_vec();
    padded.resize(200, b' ');
    let reply: serde_json::Value = serde_json::from_slice(&udp.ask(&padded)).unwrap();
    assert_eq!(reply["error"], "invalid_api_key");
    assert!(udp.ask_then_probe(b"BTC").is_empty());
    assert!(
        udp.ask(format!("key={key} BTC").as_bytes())
            .starts_with(b"{\"asset\":\"BTC\"")
    );
    assert!(beast.metric("beast_requests_denied_total{reason=\"missing_key\"}") >= 3.0);
}
