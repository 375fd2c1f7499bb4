//! SIGTERM and SIGINT: stop accepting, finish what is in flight, exit 0 in bounded time.

use beast_tests::server::{BACKENDS, Beast, HttpClient};

#[test]
fn sigterm_and_sigint_exit_cleanly() {
    for backend in BACKENDS {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            let mut beast = Beast::start(backend, &[]);
            let idle = HttpClient::connect(beast.addr("tcp_lpo"));
            assert_eq!(beast.get("/price?asset=BTC").status, 200);
            let status = beast.signal_and_wait(signal);
            assert_eq!(
                status.code(),
                Some(0),
                "{backend} signal {signal}: {}",
                beast.stderr_text()
            );
            assert!(beast.stderr_text().contains("shutting down"));
            drop(idle);
        }
    }
}

#[test]
fn a_request_in_flight_is_finished() {
    for backend in BACKENDS {
        let mut beast = Beast::start(backend, &[]);
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        // Half a request is in the server when the signal arrives.
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\nHo");
        assert_eq!(
            beast.get("/health").status,
            200,
            "the partial request reached a reactor"
        );
        beast.signal(libc::SIGTERM);
        beast.wait_until_draining();
        client.send(b"st: x\r\n\r\n");
        let response = client.response();
        assert_eq!(response.status, 200, "{backend}");
        assert_eq!(
            response.header("connection").as_deref(),
            Some("close"),
            "{backend}: the last response closes"
        );
        assert!(client.closed_by_server());
        assert_eq!(beast.wait().code(), Some(0), "{backend}");
    }
}

#[test]
fn a_stuck_client_cannot_hold_shutdown_past_the_grace_period() {
    for backend in BACKENDS {
        let mut beast = Beast::start(backend, &["--shutdown-grace-ms", "300"]);
        let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\nX-Never: ends");
        assert_eq!(beast.get("/health").status, 200);
        assert_eq!(
            beast.signal_and_wait(libc::SIGTERM).code(),
            Some(0),
            "{backend}"
        );
        assert!(client.closed_by_server());
    }
}
