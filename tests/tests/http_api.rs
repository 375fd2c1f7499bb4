//! The HTTP API on both backends: every route, its JSON, and its status codes.

use beast_tests::server::{BACKENDS, Beast, HttpClient};
use serde_json::Value;

#[test]
fn price_routes() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        // (path, status, error code or asset)
        let cases: &[(&str, u16, &str)] = &[
            ("/price?asset=btc", 200, "BTC"),
            ("/price?asset=ETH", 200, "ETH"),
            ("/price?x=1&asset=PePe", 200, "PEPE"),
            ("/price?asset=NOPE", 404, "unknown_asset"),
            ("/price?asset=SOL", 503, "no_price"),
            ("/price", 400, "bad_request"),
            ("/price?asset=", 400, "bad_request"),
            ("/price?asset=BTC-USD", 400, "invalid_asset"),
            ("/price?asset=%zz", 400, "invalid_asset"),
            ("/nowhere", 404, "not_found"),
            ("/metrics", 404, "not_found"),
        ];
        for (path, status, expected) in cases {
            let response = beast.get(path);
            assert_eq!(
                response.status,
                *status,
                "{backend} {path}: {}",
                response.body_text()
            );
            assert_eq!(
                response.header("content-type").as_deref(),
                Some("application/json")
            );
            let json = response.json();
            let field = if *status == 200 { "asset" } else { "error" };
            assert_eq!(json[field], *expected, "{backend} {path}: {json}");
            if *status != 200 {
                assert!(
                    json["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{json}"
                );
            }
        }
        let btc = beast.get("/price?asset=BTC").json();
        assert_eq!(btc["price"], "97123.45");
        assert_eq!(btc["source"], "coinbase-ws");
        assert!(btc["ts"].as_u64().is_some() && btc["age_ms"].as_u64().is_some());
        assert!(
            btc.get("stale").is_none(),
            "fresh prices carry no stale flag: {btc}"
        );
        assert_eq!(
            beast.get("/price?asset=ETH").json()["price"],
            "3512.50",
            "trailing zero kept"
        );
        assert_eq!(beast.get("/price?asset=PEPE").json()["price"], "0.00001234");
        let old = beast.get("/price?asset=OLD").json();
        assert_eq!(
            (old["stale"].as_bool(), old["ts"].as_u64()),
            (Some(true), Some(1000)),
            "{old}"
        );
        assert!(old["age_ms"].as_u64().unwrap() > 1_000_000);

        // The reports port serves the same API.
        let mut lrs = HttpClient::connect(beast.addr("tcp_lrs"));
        lrs.send(b"GET /price?asset=eth HTTP/1.1\r\n\r\n");
        assert_eq!(lrs.response().json()["asset"], "ETH");
    }
}

#[test]
fn prices_and_assets() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        let list = beast.get("/prices?assets=BTC,eth,NOPE,SOL");
        assert_eq!(list.status, 200);
        let list = list.json();
        let entries = list.as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            (entries[0]["asset"].as_str(), entries[1]["asset"].as_str()),
            (Some("BTC"), Some("ETH"))
        );
        assert_eq!(
            (entries[2]["error"].as_str(), entries[3]["error"].as_str()),
            (Some("unknown_asset"), Some("no_price"))
        );
        assert_eq!(
            beast
                .get("/prices?assets=BTC%2CPEPE")
                .json()
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(beast.get("/prices?assets=,,").status, 400);
        assert_eq!(beast.get("/prices").status, 400);
        let too_many = vec!["BTC"; 65].join(",");
        let response = beast.get(&format!("/prices?assets={too_many}"));
        assert_eq!(
            (response.status, response.json()["error"].as_str()),
            (400, Some("too_many_assets"))
        );

        let assets = beast.get("/assets");
        assert_eq!(assets.status, 200);
        let assets = assets.json();
        let assets = assets.as_array().unwrap();
        assert_eq!(
            assets.len(),
            150,
            "149 prewarmed assets plus the seeded OLD"
        );
        let btc = assets.iter().find(|a| a["asset"] == "BTC").unwrap();
        assert_eq!(btc["price"], "97123.45");
        assert_eq!(btc["sources"][0]["source"], "coinbase-ws");
        let sol = assets.iter().find(|a| a["asset"] == "SOL").unwrap();
        assert_eq!(
            (
                sol["price"].clone(),
                sol["sources"].as_array().map(Vec::len)
            ),
            (Value::Null, Some(0))
        );
    }
}

#[test]
fn health_and_metrics() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        for port in ["tcp_lpo", "health_lpo", "health_lrs"] {
            let mut client = HttpClient::connect(beast.addr(port));
            client.send(b"GET /health HTTP/1.1\r\n\r\n");
            let health = client.response();
            assert_eq!(health.status, 200, "{port}");
            let json = health.json();
            assert_eq!(
                (json["status"].as_str(), json["io"].as_str()),
                (Some("serving"), Some(backend)),
                "{json}"
            );
            assert_eq!(
                (
                    json["reactors"].as_u64(),
                    json["priced"].as_u64(),
                    json["stale"].as_u64()
                ),
                (Some(2), Some(4), Some(1))
            );
        }
        beast.get("/price?asset=BTC");
        beast.get("/price?asset=NOPE");
        let metrics = beast.metrics();
        for series in [
            "beast_http_responses_total{status=\"200\"}",
            "beast_http_errors_total{code=\"unknown_asset\"}",
            "beast_assets_priced",
            "beast_request_duration_seconds_count{protocol=\"http\"}",
        ] {
            assert!(
                beast_tests::server::metric(&metrics, series) >= 1.0,
                "{series} in\n{metrics}"
            );
        }
        // The reactor that served has turned its loop (the other may not have yet).
        let turns: f64 = ["0", "1"]
            .iter()
            .map(|r| {
                let series = format!("beast_reactor_loop_turns_total{{reactor=\"{r}\"}}");
                beast_tests::server::metric(&metrics, &series)
            })
            .sum();
        assert!(turns >= 1.0, "{metrics}");
        let mut client = HttpClient::connect(beast.addr("health_lpo"));
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\n\r\n");
        assert_eq!(
            client.response().status,
            404,
            "the health port serves no prices"
        );
    }
}

#[test]
fn connection_semantics() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        let addr = beast.addr("tcp_lpo");

        // Keep-alive: many requests, one connection.
        let mut client = HttpClient::connect(addr);
        for asset in ["BTC", "ETH", "PEPE", "BTC"] {
            client.send(format!("GET /price?asset={asset} HTTP/1.1\r\n\r\n").as_bytes());
            let response = client.response();
            assert_eq!(
                (response.status, response.header("connection")),
                (200, None)
            );
        }

        // HTTP/1.0 closes by default, keeps alive on request.
        let mut client = HttpClient::connect(addr);
        client.send(b"GET /price?asset=BTC HTTP/1.0\r\n\r\n");
        assert_eq!(
            client.response().header("connection").as_deref(),
            Some("close")
        );
        assert!(client.closed_by_server());
        let mut client = HttpClient::connect(addr);
        client.send(b"GET /price?asset=BTC HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(
            client.response().header("connection").as_deref(),
            Some("keep-alive")
        );
        client.send(b"GET /price?asset=ETH HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(client.response().json()["asset"], "ETH");

        // Connection: close is honoured.
        let mut client = HttpClient::connect(addr);
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_eq!(
            client.response().header("connection").as_deref(),
            Some("close")
        );
        assert!(client.closed_by_server());

        // HEAD: the head of the GET response, no body.
        let mut client = HttpClient::connect(addr);
        client.send(b"HEAD /price?asset=BTC HTTP/1.1\r\n\r\n");
        let head = client.head_response();
        assert_eq!(head.status, 200);
        assert!(
            head.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap()
                > 50
        );
        client.send(b"GET /price?asset=ETH HTTP/1.1\r\n\r\n");
        assert_eq!(
            client.response().json()["asset"],
            "ETH",
            "nothing followed the HEAD response"
        );
    }
}
