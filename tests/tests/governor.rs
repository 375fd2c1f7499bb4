//! The connection governor shrinks its limit only when the server fails to keep up. What
//! clients do cannot shrink it for everyone: connections reset at once (SO_LINGER 0), requests
//! that time out (408), and the governor's own refusals past the limit.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use beast_tests::on_both_backends;
use beast_tests::server::{Beast, HttpClient, wait_until};

fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

on_both_backends! {
    fn what_clients_do_does_not_shrink_the_limit(backend) {
        // 40 connections per node: 20 per reactor.
        let beast = Beast::start_with(backend, &[], |c| {
            c.env("ADAPTIVE_MAX_CONCURRENT", "40")
                .env("HTTP_READ_TIMEOUT_SECONDS", "1");
        });
        let addr = beast.addr("tcp_lpo");
        let limit = beast.metric("beast_connections_limit");
        assert_eq!(limit, 40.0);
        // 2 000 connections reset as soon as they are made, some mid-request, ten at a time:
        // each batch is closed before the next, so none meets the limit however fast this
        // client is against the server (a burst past it would be refused, not reset).
        for batch in 0..200 {
            for i in 0..10 {
                let mut stream = TcpStream::connect(addr).unwrap();
                if (batch + i) % 2 == 0 {
                    let _ = stream.write_all(b"GET /price?asset=BTC HTTP/1.1\r\n\r\n");
                }
                reset(stream);
            }
            // Only the scrape's own connection may still be open.
            assert!(
                wait_until(Duration::from_secs(20), || beast
                    .metric("beast_connections_open")
                    <= 1.0),
                "{backend}: batch {batch} not closed"
            );
        }
        // Every reset took its turn as a connection: none was refused.
        assert_eq!(beast.metric("beast_connections_rejected_total"), 0.0, "{backend}");
        // 10 slow requests, each answered 408 after the read timeout.
        let slow: Vec<HttpClient> = (0..10)
            .map(|_| {
                let mut client = HttpClient::connect(addr);
                client.send(b"GET /price?asset=BTC HTTP/1.1\r\nHost");
                client
            })
            .collect();
        for mut client in slow {
            assert_eq!(client.response().status, 408, "{backend}");
        }
        // 200 connections past the limit: the first 40 are held, the rest refused.
        let held: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(addr).unwrap()).collect();
        assert!(wait_until(Duration::from_secs(10), || beast
            .metric("beast_connections_rejected_total")
            >= 150.0));
        drop(held);
        // The governor's windows close every second: let a few pass (an idle reactor turns
        // every 100 ms), then the limit is where it was.
        let turns = || beast.metric("beast_reactor_loop_turns_total{reactor=\"0\"}");
        let before = turns();
        assert!(wait_until(Duration::from_secs(20), || turns() > before + 30.0));
        assert_eq!(beast.metric("beast_connections_limit"), limit, "{backend}");
        assert_eq!(beast.get("/price?asset=BTC").status, 200, "{backend}");
    }
}
