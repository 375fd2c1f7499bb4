//! What a public endpoint gets from hostile clients, at volume, on both backends: 10⁶ random
//! and mutated datagrams and 10⁵ mutated HTTP requests (no reply larger than its request for
//! a datagram without a key that lifts the limit; every HTTP reply is HTTP; a valid request
//! answered afterwards), 10 000 idle connections and 500 slowloris connections while clients
//! keep getting `/price` answers, a storm of connections reset as soon as they are made
//! without the connection limit shrinking, and datagrams from sources no reply can reach
//! (raw sockets: 127.0.0.1 at ports nobody holds, port 0 among them) without a real client
//! losing a reply.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use beast_engine::protocol::udp::v8;
use beast_tests::Rng;
use beast_tests::server::{Beast, HttpClient, padded, wait_until};

/// A node with a demo-tier key (a public key is no key: it lifts nothing), and the key.
fn node(backend: &str) -> (Beast, String) {
    let scratch = beast_tests::Scratch::new();
    let demo = scratch.create_key("demo");
    let beast = Beast::start_in(scratch, backend, &[], |c| {
        c.env("HTTP_READ_TIMEOUT_SECONDS", "2");
    });
    (beast, demo)
}

/// Datagrams a client could send, none with a key that lifts the reply limit.
fn valid_datagrams(demo: &str) -> Vec<Vec<u8>> {
    let mut out = vec![
        b"BTC".to_vec(),
        b"BTC ETH,NOPE".to_vec(),
        format!("key={demo} BTC").into_bytes(),
        b"key=not-a-key-at-all BTC".to_vec(),
        b"snapshot BTC ETH".to_vec(),
        b"ohlc BTC 1m 5".to_vec(),
        padded("BTC", 300),
    ];
    let mut buf = [0u8; 1024];
    for (key, symbols) in [
        (None, &[&b"BTC"[..]][..]),
        (Some(demo.as_bytes()), &[&b"BTC"[..], b"ETH"][..]),
    ] {
        let len =
            v8::encode_request(&mut buf, 9, key, symbols, v8::reply_len(symbols.len())).unwrap();
        out.push(buf[..len].to_vec());
    }
    out
}

beast_tests::on_both_backends! {
    fn a_million_hostile_datagrams_get_no_amplified_reply(backend) {
        let (beast, demo) = node(backend);
        let valid = valid_datagrams(&demo);
        let mut rng = Rng(0x5EED_0000_0000_0017);
        let mut sent = 0u64;
        for port in ["udp_lpo", "udp_lrs"] {
            let udp = beast.udp_client(port);
            // Rounds of 50 datagrams of one length, then a probe: every reply before the
            // probe's answers one of them, so none may be longer than that length.
            for round in 0..10_000 {
                let len = 1 + rng.below(1472);
                for _ in 0..50 {
                    let pick = rng.below(valid.len());
                    let mut datagram = rng.mutate(&valid[pick]);
                    datagram.resize(len, b' ');
                    udp.send(&datagram);
                }
                sent += 50;
                for reply in udp
                    .ask_then_probe(&padded("ETH", 200))
                    .iter()
                    .filter(|r| !r.starts_with(b"{\"asset\":\"ETH\""))
                {
                    assert!(reply.len() <= len, "{backend} {port} round {round}: {}-byte reply to {len}-byte datagrams", reply.len());
                }
            }
        }
        assert_eq!(sent, 1_000_000);
        let udp = beast.udp_client("udp_lpo");
        assert!(udp.ask(&padded("BTC", 200)).starts_with(b"{\"asset\":\"BTC\""), "{backend}: still answering");
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
    }
}

beast_tests::on_both_backends! {
    fn a_hundred_thousand_mutated_http_requests_get_http_answers(backend) {
        let (beast, demo) = node(backend);
        let addr = beast.addr("tcp_lpo");
        let valid: Vec<Vec<u8>> = [
            "GET /price?asset=BTC HTTP/1.1\r\nHost: a\r\n\r\n".to_string(),
            format!("GET /prices?assets=BTC,ETH HTTP/1.1\r\nX-API-Key: {demo}\r\n\r\n"),
            "GET /price?asset=%42TC HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_string(),
            "POST /admin/reload-params HTTP/1.1\r\nX-Admin-Key: x\r\nContent-Length: 2\r\n\r\n{}".to_string(),
            "GET /reports/ohlc?asset=BTC&interval=1m&format=csv HTTP/1.1\r\nAccept: text/csv\r\n\r\n".to_string(),
            "GET /price?asset=BTC HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n".to_string(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        let mut rng = Rng(0x5EED_0000_0000_0018);
        let mut reply = Vec::new();
        for i in 0..100_000 {
            let pick = rng.below(valid.len());
            let request = rng.mutate(&valid[pick]);
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = stream.write_all(&request);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            reply.clear();
            let _ = stream.read_to_end(&mut reply);
            assert!(
                reply.is_empty() || reply.starts_with(b"HTTP/1.1 "),
                "{backend} request {i} {:?}: {:?}",
                String::from_utf8_lossy(&request),
                String::from_utf8_lossy(&reply[..reply.len().min(120)])
            );
        }
        assert_eq!(beast.get("/price?asset=BTC").status, 200, "{backend}: still serving");
        assert!(beast.metric("beast_http_errors_total{code=\"bad_request\"}") > 1_000.0);
    }
}

beast_tests::on_both_backends! {
    fn a_partial_request_then_the_clients_end_is_closed_at_once(backend) {
        // A head cut short, then FIN (the FIN arrives with the bytes): the node closes at once,
        // not after its read timeout (two minutes here; the client waits at most 30 s).
        let beast = Beast::start_with(backend, &[], |c| {
            c.env("HTTP_READ_TIMEOUT_SECONDS", "120");
        });
        for partial in [&b"GET /price?asset="[..], b"GET /price?asset=BTC HTTP/1.1\r\nContent-Length: 9\r\n\r\nab"] {
            let mut stream = TcpStream::connect(beast.addr("tcp_lpo")).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            stream.write_all(partial).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            assert!(stream.read_to_end(&mut reply).is_ok(), "{backend}: closed, not left to time out");
        }
    }
}

beast_tests::on_both_backends! {
    fn idle_and_slowloris_connections_do_not_lock_clients_out(backend) {
        let (beast, _) = node(backend);
        let addr = beast.addr("tcp_lpo");
        // A client connected before the flood, asking throughout.
        let mut client = HttpClient::connect(addr);
        let ask = |client: &mut HttpClient| {
            client.send(b"GET /price?asset=BTC HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(client.response().status, 200, "{backend}");
        };
        ask(&mut client);
        // 500 slowloris connections: a head one byte at a time, never finished.
        let mut slow: Vec<TcpStream> = (0..500)
            .map(|_| {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(b"GET /price?asset=BTC HTTP/1.1\r\nX-Slow: ").unwrap();
                stream
            })
            .collect();
        // 10 000 connections that never send a byte: past the node's 6 000 the first are
        // refused, then, once they have idled a second, each new one takes the place of the
        // longest idle.
        let idle: Vec<TcpStream> = (0..10_000).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let started = Instant::now();
        // The slowloris heads time out (HTTP_READ_TIMEOUT_SECONDS=2) while they trickle;
        // the client keeps its answers meanwhile.
        let mut timed_out = 0.0;
        while timed_out < 500.0 && started.elapsed() < Duration::from_secs(30) {
            ask(&mut client);
            for stream in &mut slow {
                let _ = stream.write_all(b"a");
            }
            timed_out = beast.metric("beast_http_responses_total{status=\"408\"}");
        }
        assert_eq!(timed_out, 500.0, "{backend}: every slowloris head timed out");
        // New clients get in: each closes a connection idle for over a second, if it must.
        for _ in 0..50 {
            let (status, body) = {
                let mut fresh = HttpClient::connect(addr);
                fresh.send(b"GET /price?asset=BTC HTTP/1.1\r\nHost: a\r\n\r\n");
                let r = fresh.response();
                (r.status, r.body_text())
            };
            assert_eq!(status, 200, "{backend}: {body}");
        }
        ask(&mut client);
        drop(idle);
        assert!(
            wait_until(Duration::from_secs(20), || beast.metric("beast_connections_open") <= 2.0),
            "{backend}: the flood's connections are gone"
        );
    }
}

beast_tests::on_both_backends! {
    fn a_storm_of_resets_does_not_shrink_the_connection_limit(backend) {
        let (beast, _) = node(backend);
        let addr = beast.addr("tcp_lpo");
        let limit = beast.metric("beast_connections_limit");
        // Two threads connect and reset (SO_LINGER 0) 15 000 times each, half of them
        // mid-request, while a client keeps asking.
        let started = Instant::now();
        let storm: Vec<_> = (0..2)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..15_000 {
                        let Ok(mut stream) = TcpStream::connect(addr) else {
                            continue;
                        };
                        if (i + t) % 2 == 0 {
                            let _ = stream.write_all(b"GET /price?asset=BTC HTTP/1.1\r\n");
                        }
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    }
                })
            })
            .collect();
        let mut client = HttpClient::connect(addr);
        while !storm.iter().all(std::thread::JoinHandle::is_finished) {
            client.send(b"GET /price?asset=BTC HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(client.response().status, 200, "{backend}");
        }
        for thread in storm {
            thread.join().unwrap();
        }
        let rate = 30_000.0 / started.elapsed().as_secs_f64();
        eprintln!("{backend}: 30 000 connect-and-reset at {rate:.0}/s");
        assert_eq!(beast.metric("beast_connections_limit"), limit, "{backend}: the limit held");
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
    }
}

/// A UDP datagram to `to` from 127.0.0.1 at `source_port`, which nobody here holds (0 among
/// them): a raw socket, so it needs CAP_NET_RAW (the test suite runs as root).
fn send_from(source_port: u16, to: SocketAddr, payload: &[u8], socket: &socket2::Socket) {
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut packet = Vec::with_capacity(8 + payload.len());
    packet.extend_from_slice(&source_port.to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&0u16.to_be_bytes()); // no checksum (allowed on IPv4)
    packet.extend_from_slice(payload);
    socket
        .send_to(&packet, &socket2::SockAddr::from(to))
        .unwrap();
}

beast_tests::on_both_backends! {
    fn datagrams_from_unreachable_sources_cost_others_no_replies(backend) {
        let (beast, _) = node(backend);
        let to = beast.addr("udp_lpo");
        let raw = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::UDP),
        )
        .expect("a raw socket (CAP_NET_RAW)");
        let udp = beast.udp_client("udp_lpo");
        let request = padded("BTC", 200);
        let mut rng = Rng(0x5EED_0000_0000_0019);
        // 20 000 spoofed datagrams, 20 between each of a real client's 1 000 requests: the
        // client gets every reply.
        for i in 0..1_000 {
            for _ in 0..20 {
                // Ports from 1 to 9: privileged, nobody listens there; and 0.
                let port = u16::try_from(rng.below(10)).unwrap_or(0);
                send_from(port, to, &request, &raw);
            }
            let reply = udp.ask(&request);
            assert!(reply.starts_with(b"{\"asset\":\"BTC\""), "{backend} request {i}");
        }
        let dropped = beast.metric("beast_udp_dropped_total{reason=\"bad_source\"}");
        assert!(dropped > 0.0, "{backend}: port-0 datagrams are dropped, not answered");
    }
}
