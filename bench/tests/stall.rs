//! A server that stalls once: the closed-loop run hides the stall in its p99 (only the one
//! request in flight waited), the open-loop run shows it, because latency is measured from each
//! request's intended send time and every request scheduled during the stall waited for it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use beast_bench::load::{self, Form, LoadSpec, Pace, RunResult};

/// The injected fault: how long the server stops answering.
const STALL: Duration = Duration::from_millis(300);
/// The server stalls after answering this many requests.
const STALL_AFTER: u64 = 500;

/// A UDP price server on 127.0.0.1 that answers every datagram with BTC's price and, once, stops
/// answering for [`STALL`].
struct StallingServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StallingServer {
    fn start() -> StallingServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let reply = br#"{"asset":"BTC","price":"97123.45","source":"test","ts":1}"#;
            let mut buf = [0u8; 2048];
            let mut answered = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let Ok((_, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                socket.send_to(reply, peer).unwrap();
                answered += 1;
                if answered == STALL_AFTER {
                    // The fault under test (a GC pause, a blocked reactor), not a wait.
                    std::thread::sleep(STALL);
                }
            }
        });
        StallingServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StallingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn run(pace: Pace) -> RunResult {
    let server = StallingServer::start();
    let spec = LoadSpec {
        target: server.addr,
        form: Form::UdpText,
        pace,
        connections: 1,
        threads: 1,
        duration: Duration::from_millis(1500),
        warmup: Duration::ZERO,
        max_requests: None,
        assets: vec![String::from("BTC")],
        per_request: 1,
        key: None,
        pad_to: 0,
        path: None,
        timeout: Duration::from_secs(2),
        pin: false,
    };
    let result = load::run(&spec, |_, _| {}).unwrap();
    assert_eq!(result.errors.failed(), 0, "{:?}", result.errors);
    assert!(
        result.answered > STALL_AFTER,
        "the stall happened inside the run: {result:?}"
    );
    result
}

#[test]
fn open_loop_shows_a_stall_that_closed_loop_hides() {
    let closed = run(Pace::Closed { window: 1 });
    let stall_us = u64::try_from(STALL.as_micros()).unwrap();
    // The closed loop saw the stall exactly once: in its max, not in its p99.
    assert!(
        closed.latency_us.max >= stall_us * 9 / 10,
        "closed max {}",
        closed.latency_us.max
    );
    assert!(
        closed.latency_us.p99 < stall_us / 6,
        "closed p99 {}",
        closed.latency_us.p99
    );

    // 2000/s for 1.5 s: the ~600 requests scheduled during the stall (a fifth of the run) all
    // waited for it, so p99 measured from the intended send times is most of the stall.
    let open = run(Pace::Open {
        rate: 2000.0,
        window: 64,
    });
    assert!(
        open.latency_us.p99 >= stall_us / 2,
        "open p99 {}",
        open.latency_us.p99
    );
    assert!(
        open.latency_us.p90 >= stall_us / 10,
        "open p90 {}",
        open.latency_us.p90
    );
    // The requests held back while the window was full show up as generator lag.
    assert!(
        open.generator_lag_us.max >= stall_us / 2,
        "lag {:?}",
        open.generator_lag_us
    );
    assert!(open.offered_rps == Some(2000.0));
}
