//! Once warm, the request path allocates nothing: the engine runs in this process under a
//! counting global allocator that counts only on reactor threads, then serves 100 000 UDP text,
//! 100 000 UDP v8 and 100 000 HTTP `GET /price` requests through real sockets on each backend,
//! every one with an API key checked against the store's keys and rate-limited, and metered
//! (usage records through the side thread into the embedded store).
//!
//! The load is spread over `KEYS` stress-tier keys so that no key is asked more than its burst
//! (100 000) over the whole run: however fast the machine, no request is rate-limited, and the
//! outcome does not depend on speed.

#![allow(unsafe_code, reason = "a global allocator is an unsafe trait")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use beast_engine::config::setting::IoChoice;
use beast_engine::protocol::udp::v8;
use beast_engine::server::Server;
use beast_tests::inproc::InProcess;
use beast_tests::server::{WAIT, padded};

/// Allocations (alloc, alloc_zeroed, realloc) made on threads that opted in.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

struct Counting;

fn count() {
    // `try_with`: thread-local storage may already be gone while a thread exits.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an
// atomic and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUESTS: usize = 100_000;
const WARM_UP: usize = 2_000;
/// Client sockets per UDP load: enough that both reactors get some (SO_REUSEPORT hashes them;
/// all 16 on one reactor has a chance of 2^-15).
const UDP_CLIENTS: usize = 16;
const CLIENTS: usize = 4;
const WINDOW: usize = 50;
/// Keys the load is spread over: UDP socket `i` and TCP connection `i` use key `i % KEYS`. A key
/// answers its share of both UDP loads, 2 × (REQUESTS + WARM_UP) / KEYS, and one connection's
/// HTTP load, (REQUESTS + WARM_UP) / CLIENTS: about 51 000, inside the stress tier's burst.
const KEYS: usize = 8;
const _: () = assert!(
    UDP_CLIENTS.is_multiple_of(KEYS)
        && CLIENTS <= KEYS
        && 2 * (REQUESTS + WARM_UP) / KEYS + (REQUESTS + WARM_UP) / CLIENTS < 100_000,
    "no key may be asked more than its burst"
);

fn start(io: IoChoice) -> InProcess {
    InProcess::start(io, KEYS, |options| {
        options.stall_threshold = Duration::from_secs(60);
        options.on_reactor_start = Some(Arc::new(|_| COUNTED.with(|c| c.set(true))));
    })
}

/// Sends `total` datagrams over `UDP_CLIENTS` sockets, `WINDOW` at a time per socket, socket `i`
/// sending `requests[i % requests.len()]`, and checks every reply with `valid`.
fn udp_load(
    server: &Server,
    requests: &[Vec<u8>],
    total: usize,
    valid: impl Fn(&[u8]) -> bool + Sync,
) {
    let addr = server.addrs().udp_lpo.expect("a UDP port");
    let valid = &valid;
    std::thread::scope(|scope| {
        for i in 0..UDP_CLIENTS {
            let request = &requests[i % requests.len()];
            scope.spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.connect(addr).unwrap();
                socket.set_read_timeout(Some(WAIT)).unwrap();
                let mut buf = [0u8; 4096];
                let mut done = 0;
                while done < total / UDP_CLIENTS {
                    let burst = WINDOW.min(total / UDP_CLIENTS - done);
                    for _ in 0..burst {
                        socket.send(request).unwrap();
                    }
                    for _ in 0..burst {
                        let n = socket
                            .recv(&mut buf)
                            .expect("reply (none lost on loopback)");
                        assert!(
                            valid(&buf[..n]),
                            "bad reply {:?}",
                            String::from_utf8_lossy(&buf[..n])
                        );
                    }
                    done += burst;
                }
            });
        }
    });
}

/// Sends `total` `GET /price` requests over `connections`, pipelined `WINDOW` at a time,
/// connection `i` with `keys[i % keys.len()]`.
fn http_load(connections: &mut [TcpStream], keys: &[String], total: usize) {
    std::thread::scope(|scope| {
        for (i, stream) in connections.iter_mut().enumerate() {
            let key = &keys[i % keys.len()];
            scope.spawn(move || {
                let request = format!(
                    "GET /price?asset=BTC HTTP/1.1\r\nHost: bench\r\nX-API-Key: {key}\r\n\r\n"
                );
                let batch = request.repeat(WINDOW).into_bytes();
                let mut buf = vec![0u8; 64 * 1024];
                let mut done = 0;
                while done < total / CLIENTS {
                    stream.write_all(&batch).unwrap();
                    let mut pending = Vec::new();
                    let mut answered = 0;
                    while answered < WINDOW {
                        let n = stream.read(&mut buf).expect("read responses");
                        assert!(n > 0, "connection closed");
                        pending.extend_from_slice(&buf[..n]);
                        answered += take_responses(&mut pending);
                    }
                    assert_eq!(answered, WINDOW);
                    done += WINDOW;
                }
            });
        }
    });
}

/// Removes every whole `200 OK` response from the front of `pending`; returns how many.
fn take_responses(pending: &mut Vec<u8>) -> usize {
    let mut count = 0;
    loop {
        let Some(head_end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            return count;
        };
        let head = std::str::from_utf8(&pending[..head_end]).expect("ASCII head");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok())
            .expect("length");
        if pending.len() < head_end + 4 + length {
            return count;
        }
        pending.drain(..head_end + 4 + length);
        count += 1;
    }
}

fn run(io: IoChoice) {
    let engine = start(io);
    let (server, keys) = (&engine.server, engine.keys.clone());
    let text: Vec<Vec<u8>> = keys
        .iter()
        .map(|key| padded(&format!("key={key} BTC"), 200))
        .collect();
    let v8_requests: Vec<Vec<u8>> = keys
        .iter()
        .map(|key| {
            let mut request = [0u8; 128];
            let len = v8::encode_request(
                &mut request,
                1,
                Some(key.as_bytes()),
                &[b"BTC"],
                v8::reply_len(1),
            )
            .unwrap();
            request[..len].to_vec()
        })
        .collect();
    let text_ok = |reply: &[u8]| reply.starts_with(b"{\"asset\":\"BTC\",\"price\":\"97123.45\"");
    let v8_ok =
        |reply: &[u8]| v8::parse_reply(reply).is_ok_and(|(h, _)| h.status == 0 && h.count == 1);
    let mut connections: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let stream = TcpStream::connect(server.addrs().tcp_lpo.expect("an API port")).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        })
        .collect();

    // Warm up every path, every reactor, every connection.
    udp_load(server, &text, WARM_UP, text_ok);
    udp_load(server, &v8_requests, WARM_UP, v8_ok);
    http_load(&mut connections, &keys, WARM_UP);

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    udp_load(server, &text, REQUESTS, text_ok);
    let after_text = ALLOCATIONS.load(Ordering::Relaxed);
    udp_load(server, &v8_requests, REQUESTS, v8_ok);
    let after_v8 = ALLOCATIONS.load(Ordering::Relaxed);
    http_load(&mut connections, &keys, REQUESTS);
    let after_http = ALLOCATIONS.load(Ordering::Relaxed);

    let served = |name: &str| -> u64 {
        let m = &server.node().reactors;
        match name {
            "udp" => m.iter().map(|r| r.udp_replies.get()).sum(),
            _ => m.iter().map(|r| r.http_responses[0].get()).sum(),
        }
    };
    assert!(
        served("udp") >= (2 * (REQUESTS + WARM_UP)) as u64,
        "{io:?}: UDP replies {}",
        served("udp")
    );
    assert!(
        served("http") >= (REQUESTS + WARM_UP) as u64,
        "{io:?}: HTTP responses {}",
        served("http")
    );
    assert!(
        server.node().reactors.iter().all(|r| r.udp_text.get() > 0),
        "{io:?}: every reactor served"
    );
    // Control: a path that does allocate (rendering /metrics) is seen by the counter, so the
    // zeros above are measured, not missed.
    let mut health = TcpStream::connect(server.addrs().health_lpo.expect("a health port")).unwrap();
    health.set_read_timeout(Some(WAIT)).unwrap();
    health
        .write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut metrics = String::new();
    health.read_to_string(&mut metrics).unwrap();
    assert!(metrics.contains("beast_udp_replies_total"));
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > after_http,
        "{io:?}: the counter sees reactor allocations"
    );
    drop(connections);
    let node = Arc::clone(server.node());
    let errors = engine.stop();
    assert!(errors.is_empty(), "{errors:?}");
    // Every answered request was metered: nothing dropped, all of it journaled and stored.
    let dropped: u64 = node.reactors.iter().map(|r| r.usage_dropped.get()).sum();
    let journaled = node.side.journaled.load(Ordering::Relaxed);
    assert_eq!(dropped, 0, "{io:?}: usage records dropped");
    assert!(
        journaled >= (3 * (REQUESTS + WARM_UP)) as u64,
        "{io:?}: journaled {journaled}"
    );
    let delivered = node
        .side
        .sink(beast_engine::side::sink::SinkKind::Sqlite)
        .delivered
        .load(Ordering::Relaxed);
    assert_eq!(delivered, journaled, "{io:?}: all delivered to the store");
    assert_eq!(
        (
            after_text - before,
            after_v8 - after_text,
            after_http - after_v8
        ),
        (0, 0, 0),
        "{io:?}: reactor allocations during 100 000 UDP text, v8 and HTTP requests"
    );
}

#[test]
fn the_request_path_allocates_nothing_on_io_uring() {
    run(IoChoice::Uring);
}

#[test]
fn the_request_path_allocates_nothing_on_epoll() {
    run(IoChoice::Epoll);
}
