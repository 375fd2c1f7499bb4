//! HTTP errors on both backends: each bad request gets its status and a JSON error; framing
//! errors close the connection; slow, idle and excess clients are cut off.

use beast_tests::server::{BACKENDS, Beast, HttpClient};

fn send_raw(beast: &Beast, raw: &[u8]) -> (u16, serde_json::Value, Option<String>, bool) {
    let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
    client.send(raw);
    let response = client.response();
    let closed = client.closed_by_server();
    (
        response.status,
        response.json(),
        response.header("connection"),
        closed,
    )
}

#[test]
fn bad_requests_get_their_status() {
    let long_uri = format!("GET /price?asset={} HTTP/1.1\r\n\r\n", "A".repeat(3000));
    let many_headers = format!("GET /health HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(40));
    let huge_header = format!("GET /health HTTP/1.1\r\nX-A: {}\r\n\r\n", "b".repeat(9000));
    // (request, status, error code, connection closes)
    let cases: Vec<(Vec<u8>, u16, &str, bool)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400, "bad_request", true),
        (
            b"GET /price?asset=BTC HTTP/9.9\r\n\r\n".to_vec(),
            400,
            "bad_request",
            true,
        ),
        (
            b"POST /price?asset=BTC HTTP/1.1\r\nContent-Length: 99999\r\n\r\n".to_vec(),
            413,
            "payload_too_large",
            true,
        ),
        (
            b"GET /price?asset=BTC HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            400,
            "bad_request",
            true,
        ),
        (long_uri.into_bytes(), 414, "uri_too_long", true),
        (many_headers.into_bytes(), 431, "headers_too_large", true),
        (huge_header.into_bytes(), 431, "headers_too_large", true),
        (
            b"DELETE /price?asset=BTC HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
            true,
        ),
    ];
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        for (raw, status, code, closes) in &cases {
            let (got, json, connection, closed) = send_raw(&beast, raw);
            let what = String::from_utf8_lossy(&raw[..raw.len().min(40)]).into_owned();
            assert_eq!(
                (got, json["error"].as_str()),
                (*status, Some(*code)),
                "{backend} {what}"
            );
            assert_eq!(closed, *closes, "{backend} {what}");
            if *closes {
                assert_eq!(connection.as_deref(), Some("close"), "{backend} {what}");
            }
        }
        // 405 names what is allowed and keeps the connection.
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(b"POST /price?asset=BTC HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
        let response = client.response();
        assert_eq!(
            (response.status, response.header("allow").as_deref()),
            (405, Some("GET, HEAD"))
        );
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\n\r\n");
        assert_eq!(
            client.response().status,
            200,
            "the body was skipped, the connection kept"
        );
    }
}

#[test]
fn a_slow_request_gets_408() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &["--http-read-timeout-seconds", "1"]);
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\nHost: slo");
        let response = client.response(); // the server speaks first, after the timeout
        assert_eq!(
            (response.status, response.json()["error"].as_str()),
            (408, Some("request_timeout")),
            "{backend}"
        );
        assert!(client.closed_by_server());
        assert!(beast.metric("beast_http_errors_total{code=\"request_timeout\"}") >= 1.0);
    }
}

beast_tests::on_both_backends! {
    /// A body still arriving is a request not yet complete: the read timeout applies (the idle
    /// timeout, 300 s by default, once let a trickling body hold a connection).
    fn a_slow_body_gets_408(backend) {
        let beast = Beast::start(backend, &["--http-read-timeout-seconds", "1"]);
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(b"POST /price HTTP/1.1\r\nHost: b\r\nContent-Length: 100\r\n\r\nabc");
        // Answered once the body is whole: it never is.
        let late = client.response();
        assert_eq!(
            (late.status, late.json()["error"].as_str()),
            (408, Some("request_timeout")),
            "{backend}: then timed out within the read timeout"
        );
        assert!(client.closed_by_server());
    }
}

#[test]
fn idle_connections_are_closed() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &["--http-idle-timeout-seconds", "1"]);
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\n\r\n");
        assert_eq!(client.response().status, 200);
        assert!(
            client.closed_by_server(),
            "{backend}: an idle keep-alive connection is closed"
        );
        assert!(beast.metric("beast_connections_closed_total{reason=\"idle\"}") >= 1.0);
    }
}

#[test]
fn the_governor_refuses_connections_past_its_limit() {
    for backend in BACKENDS {
        // 2 connections for the node: one per reactor.
        let beast = Beast::start(backend, &["--adaptive-max-concurrent", "2"]);
        let mut clients: Vec<HttpClient> = (0..6)
            .map(|_| HttpClient::connect(beast.addr("tcp_lpo")))
            .collect();
        let mut statuses = Vec::new();
        for client in &mut clients {
            client.send(b"GET /price?asset=BTC HTTP/1.1\r\n\r\n");
            let response = client.response();
            if response.status == 503 {
                assert_eq!(response.json()["error"], "overloaded");
                assert_eq!(response.header("retry-after").as_deref(), Some("1"));
            }
            statuses.push(response.status);
        }
        let admitted = statuses.iter().filter(|s| **s == 200).count();
        assert!((1..=2).contains(&admitted), "{backend}: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == 503).count(),
            6 - admitted,
            "{backend}: {statuses:?}"
        );
        assert!(beast.metric("beast_connections_rejected_total") >= 4.0);
    }
}
