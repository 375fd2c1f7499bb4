//! Subscription management over HTTP on an API node, with the owner's API key: the calls wait
//! for the store on the side thread while the connection keeps its order.

use beast_tests::on_both_backends;
use beast_tests::server::{Beast, HttpClient, Response};
use serde_json::Value;

fn call(beast: &Beast, method: &str, path: &str, key: Option<&str>, body: &str) -> Response {
    let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
    let key = key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    client.send(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{key}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    client.response()
}

fn json(response: &Response) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&response.body)))
}

on_both_backends! {
    fn owners_manage_their_subscriptions_over_http(backend) {
        let scratch = beast_tests::Scratch::new();
        let owner = scratch.create_key("pro");
        let stranger = scratch.create_key("basic");
        let beast = Beast::start_in(scratch, backend, &[], |c| {
            c.env("WEBHOOK_ALLOW_NETS", "127.0.0.0/8");
        });
        let spec = r#"{"target":"udp://127.0.0.1:9","assets":["btc","ETH"],"every_s":5}"#;
        // No key: no owner.
        let refused = call(&beast, "POST", "/subscriptions", None, spec);
        assert_eq!(refused.status, 401, "{backend}");
        assert_eq!(json(&refused)["error"], "invalid_api_key");
        // Created: the secret is shown this once.
        let created = call(&beast, "POST", "/subscriptions", Some(&owner), spec);
        assert_eq!(created.status, 201, "{backend}: {}", String::from_utf8_lossy(&created.body));
        let sub = json(&created);
        assert!(sub["secret"].as_str().unwrap().starts_with("whsec_"));
        assert_eq!(sub["assets"], serde_json::json!(["BTC", "ETH"]));
        let id = sub["id"].as_u64().unwrap();
        let path = format!("/subscriptions/{id}");
        let listed = call(&beast, "GET", "/subscriptions", Some(&owner), "");
        assert_eq!(json(&listed).as_array().unwrap().len(), 1);
        assert!(!String::from_utf8_lossy(&listed.body).contains("whsec_"), "no secret in lists");
        // Another key sees nothing of it.
        assert_eq!(call(&beast, "GET", &path, Some(&stranger), "").status, 404);
        assert_eq!(json(&call(&beast, "GET", "/subscriptions", Some(&stranger), "")), serde_json::json!([]));
        // Pause, twice.
        let paused = call(&beast, "POST", &format!("{path}/pause"), Some(&owner), "");
        assert_eq!((paused.status, json(&paused)["state"].clone()), (200, "paused".into()));
        assert_eq!(call(&beast, "POST", &format!("{path}/pause"), Some(&owner), "").status, 409);
        // Bad input gets a JSON error that says why.
        for (body, needle) in [
            ("{", "body"),
            (r#"{"target":"udp://127.0.0.1:9","assets":[],"every_s":1}"#, "assets"),
            (r#"{"target":"https://169.254.169.254/","assets":["BTC"],"every_s":1}"#, "not reachable"),
            (r#"{"target":"udp://127.0.0.1:9","assets":["BTC"]}"#, "trigger"),
        ] {
            let bad = call(&beast, "POST", "/subscriptions", Some(&owner), body);
            assert_eq!(bad.status, 400, "{body}");
            let error = json(&bad);
            assert_eq!(error["error"], "bad_request");
            assert!(error["message"].as_str().unwrap().contains(needle), "{body}: {error}");
        }
        let put = call(&beast, "PUT", "/subscriptions", Some(&owner), "");
        assert_eq!(put.status, 405);
        assert!(put.header("Allow").is_some());
        // Pipelined behind a waiting call, a price request is answered after it, in order.
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(
            format!(
                "GET {path} HTTP/1.1\r\nX-API-Key: {owner}\r\n\r\nGET /price?asset=BTC HTTP/1.1\r\n\r\n"
            )
            .as_bytes(),
        );
        let first = client.response();
        assert_eq!(json(&first)["id"], id, "{backend}");
        assert_eq!(json(&client.response())["asset"], "BTC");
        // Deleted.
        assert_eq!(call(&beast, "DELETE", &path, Some(&owner), "").status, 200);
        assert_eq!(call(&beast, "GET", &path, Some(&owner), "").status, 404);
        assert_eq!(beast.metric("beast_http_responses_total{status=\"201\"}"), 1.0);
    }
}
