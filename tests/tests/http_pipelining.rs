//! Pipelined requests are answered in order, however they are split or batched.

use beast_tests::server::{BACKENDS, Beast, HttpClient};

#[test]
fn pipelined_requests_are_answered_in_order() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        let assets = ["BTC", "ETH", "NOPE", "PEPE", "SOL", "OLD"];
        let expected: Vec<u16> = vec![200, 200, 404, 200, 503, 200];

        // 16 rounds of the six in one write (96 requests, more than a write buffer holds).
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        let batch: String = (0..16)
            .flat_map(|_| assets.iter())
            .map(|a| format!("GET /price?asset={a} HTTP/1.1\r\nHost: p\r\n\r\n"))
            .collect();
        client.send(batch.as_bytes());
        for round in 0..16 {
            for (asset, status) in assets.iter().zip(&expected) {
                let response = client.response();
                assert_eq!(response.status, *status, "{backend} round {round} {asset}");
                if *status == 200 {
                    assert_eq!(response.json()["asset"], *asset);
                }
            }
        }

        // Requests split at awkward places, one byte at a time at the end.
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        let text = "GET /price?asset=BTC HTTP/1.1\r\n\r\nGET /price?asset=ETH HTTP/1.1\r\n\r\nGET /price?asset=PEPE HTTP/1.1\r\n\r\n";
        let (a, b) = text.split_at(40);
        client.send(a.as_bytes());
        for byte in b.as_bytes() {
            client.send(&[*byte]);
        }
        for asset in ["BTC", "ETH", "PEPE"] {
            assert_eq!(client.response().json()["asset"], asset, "{backend}");
        }

        // A close in the middle of a pipeline: answered up to it, then closed.
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\n\r\nGET /price?asset=ETH HTTP/1.1\r\nConnection: close\r\n\r\nGET /price?asset=PEPE HTTP/1.1\r\n\r\n");
        assert_eq!(client.response().json()["asset"], "BTC");
        assert_eq!(client.response().json()["asset"], "ETH");
        assert!(
            client.try_response().is_none(),
            "{backend}: nothing after Connection: close"
        );
    }
}

beast_tests::on_both_backends! {
    /// 6 000 requests in one write: every one answered, in order. (The epoll reactor once
    /// answered 640 and then hung: data left in an edge-triggered socket after its per-turn
    /// budget, and nothing to wake it.)
    fn six_thousand_pipelined_requests_are_all_answered(backend) {
        let beast = Beast::start(backend, &[]);
        let mut client = HttpClient::connect(beast.addr("health_lpo"));
        // All of it written before any answer is read (it fits the sockets' buffers).
        client.send("GET /health HTTP/1.1\r\nHost: p\r\n\r\n".repeat(6_000).as_bytes());
        for i in 0..6_000 {
            let response = client.response();
            assert_eq!(response.status, 200, "{backend}: response {i}");
        }
    }
}
