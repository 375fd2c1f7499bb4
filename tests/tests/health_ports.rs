//! The health ports have connections of their own, capped apart from the API's: idle
//! connections to them cannot take the API's connections, and the longest-idle one makes room
//! for a new check, so a load balancer's health check gets through whoever holds the rest.

use std::net::TcpStream;
use std::time::Duration;

use beast_tests::on_both_backends;
use beast_tests::server::{Beast, HttpClient, wait_until};

on_both_backends! {
    fn idle_health_connections_shut_out_no_one(backend) {
        let beast = Beast::start_with(backend, &[], |c| {
            c.env("ADAPTIVE_MAX_CONCURRENT", "40");
        });
        // Far more idle connections than both reactors' health caps (64 each).
        let idle: Vec<TcpStream> = (0..600)
            .map(|_| TcpStream::connect(beast.addr("health_lpo")).unwrap())
            .collect();
        assert!(wait_until(Duration::from_secs(10), || beast
            .metric("beast_connections_accepted_total")
            >= 600.0));
        assert!(beast.metric("beast_connections_open") <= 128.0);
        // The API port still takes its own, and a new health check is answered.
        // (At most 20 on each reactor, wherever the kernel puts them.)
        let api: Vec<HttpClient> = (0..20).map(|_| HttpClient::connect(beast.addr("tcp_lpo"))).collect();
        for mut client in api {
            client.send(b"GET /price?asset=BTC HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(client.response().status, 200, "{backend}");
        }
        for _ in 0..5 {
            let mut check = HttpClient::connect(beast.addr("health_lpo"));
            check.send(b"GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
            assert_eq!(check.response().status, 200, "{backend}");
        }
        drop(idle);
    }
}
