//! Timers run on the monotonic clock: a step of the wall clock (NTP, an operator's `date -s`)
//! neither closes an idle keep-alive connection nor times out a request on its way, and the
//! governor's windows do not jump. Only prices' ages follow the wall clock.

use std::time::Duration;

use beast_engine::config::setting::IoChoice;
use beast_tests::inproc::InProcess;
use beast_tests::on_both_backends;
use beast_tests::server::{HttpClient, wait_until};

fn io(backend: &str) -> IoChoice {
    if backend == "uring" {
        IoChoice::Uring
    } else {
        IoChoice::Epoll
    }
}

on_both_backends! {
    fn a_wall_clock_step_fires_no_timer(backend) {
        let engine = InProcess::start(io(backend), 1, |options| {
            options.timeouts.idle_ms = 60_000;
            options.timeouts.read_ms = 60_000;
        });
        let request = format!(
            "GET /price?asset=BTC HTTP/1.1\r\nHost: c\r\nX-API-Key: {}\r\n\r\n",
            engine.keys[0]
        );
        let addr = engine.server.addrs().tcp_lpo.expect("an API port");
        let mut idle = HttpClient::connect(addr);
        idle.send(request.as_bytes());
        assert_eq!(idle.response().status, 200);
        let mut partial = HttpClient::connect(addr);
        let (head, rest) = request.split_at(30);
        partial.send(head.as_bytes());

        // An hour forward; then a dozen sweeps on each reactor (one every 100 ms).
        beast_core::clock::shift_wall_clock(3_600_000);
        let node = engine.server.node();
        let turns = |r: usize| node.reactors[r].loop_turns.get();
        let before = (turns(0), turns(1));
        assert!(wait_until(Duration::from_secs(20), || {
            turns(0) > before.0 + 12 && turns(1) > before.1 + 12
        }));

        partial.send(rest.as_bytes());
        let late = partial.response();
        assert_eq!(late.status, 200, "{backend}: the request was not timed out");
        idle.send(request.as_bytes());
        let answer = idle.response();
        assert_eq!(answer.status, 200, "{backend}: the idle connection was kept");
        // Prices' ages do follow the wall clock.
        let age = answer.json()["age_ms"].as_u64().unwrap();
        assert!(age >= 3_600_000, "{backend}: age {age}");
        assert_eq!(answer.json()["stale"], true);
        assert_eq!(node.metrics(0).closed[1].get() + node.metrics(1).closed[1].get(), 0, "no idle close");
        beast_core::clock::shift_wall_clock(-3_600_000);
        assert!(engine.stop().is_empty());
    }
}
