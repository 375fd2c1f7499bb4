//! Random bytes at every port: the server answers within the rules, never crashes, and keeps
//! serving. 10 000 random datagrams and hundreds of random HTTP byte strings per backend.
use std::io::{Read, Write};
use std::net::TcpStream;

use beast_tests::Rng;
use beast_tests::server::{BACKENDS, Beast, WAIT, padded};

#[test]
fn random_datagrams() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        let mut rng = Rng(0x5EED_0000_0000_0001);
        for port in ["udp_lpo", "udp_lrs"] {
            let udp = beast.udp_client(port);
            for round in 0..100 {
                // 50 datagrams, then a probe: every reply before the probe must obey the size rule.
                let sent: Vec<Vec<u8>> = (0..50).map(|_| rng.bytes(1500)).collect();
                for datagram in &sent {
                    udp.send(datagram);
                }
                let max_sent = sent.iter().map(Vec::len).max().unwrap_or(0);
                for reply in udp
                    .ask_then_probe(&padded("ETH", 200))
                    .iter()
                    .filter(|r| !r.starts_with(b"{\"asset\":\"ETH\""))
                {
                    assert!(
                        reply.len() <= max_sent,
                        "{backend} round {round}: {}-byte reply",
                        reply.len()
                    );
                }
            }
        }
        let total = beast.metric("beast_udp_requests_total{form=\"text\"}")
            + beast.metric("beast_udp_requests_total{form=\"v8\"}");
        assert!(total >= 10_000.0, "{backend}: {total} datagrams counted");
        assert_eq!(
            beast.get("/price?asset=BTC").status,
            200,
            "{backend}: still serving"
        );
    }
}

#[test]
fn random_http_bytes() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &["--http-read-timeout-seconds", "1"]);
        let mut rng = Rng(0x5EED_0000_0000_0002);
        for round in 0..300 {
            let mut stream = TcpStream::connect(beast.addr(if round % 3 == 0 {
                "health_lpo"
            } else {
                "tcp_lpo"
            }))
            .unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut bytes = rng.bytes(12_000);
            if round % 2 == 0 {
                bytes.extend_from_slice(b"\r\n\r\n"); // end most heads so they are judged at once
            }
            let _ = stream.write_all(&bytes);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            // Whatever comes back must be HTTP, and the server must close or answer in time.
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
            assert!(
                reply.is_empty() || reply.starts_with(b"HTTP/1.1 "),
                "{backend} round {round}: {:?}",
                String::from_utf8_lossy(&reply[..reply.len().min(80)])
            );
        }
        assert_eq!(
            beast.get("/price?asset=BTC").status,
            200,
            "{backend}: still serving"
        );
        assert!(beast.metric("beast_http_errors_total{code=\"bad_request\"}") >= 10.0);
    }
}
