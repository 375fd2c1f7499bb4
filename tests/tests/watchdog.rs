//! A loop turn that never returns is reported while it runs (which reactor, how long), not
//! only once it ends. The engine runs in this process; a global allocator holds a reactor
//! thread inside its turn (answering `/metrics` allocates) until the test lets it go.

#![allow(unsafe_code, reason = "a global allocator is an unsafe trait")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beast_engine::config::setting::IoChoice;
use beast_tests::inproc::InProcess;
use beast_tests::on_both_backends;
use beast_tests::server::{HttpClient, wait_until};

/// While set, a reactor thread that allocates waits until it is cleared.
static HOLD: AtomicBool = AtomicBool::new(false);

thread_local! {
    static REACTOR: Cell<bool> = const { Cell::new(false) };
}

struct Holding;

fn maybe_hold() {
    if REACTOR.try_with(Cell::get).unwrap_or(false) {
        while HOLD.load(Ordering::Relaxed) {
            std::thread::park_timeout(Duration::from_millis(1));
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; holding only reads an
// atomic and a const-initialised thread-local and parks, none of which allocates.
unsafe impl GlobalAlloc for Holding {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        maybe_hold();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Holding = Holding;

on_both_backends! {
    fn a_turn_that_never_returns_is_reported(backend) {
        let io = if backend == "uring" { IoChoice::Uring } else { IoChoice::Epoll };
        let engine = InProcess::start(io, 0, |options| {
            options.stall_threshold = Duration::from_millis(10);
            options.on_reactor_start = Some(Arc::new(|_| REACTOR.with(|r| r.set(true))));
        });
        let node = Arc::clone(engine.server.node());
        let stuck = || node.reactors.iter().map(|r| r.loop_stuck.get()).sum::<u64>();
        // Both loops running (each has finished a turn) before any allocation is held.
        assert!(wait_until(Duration::from_secs(10), || node
            .reactors
            .iter()
            .all(|r| r.loop_turns.get() > 0)));
        HOLD.store(true, Ordering::Relaxed);
        let mut client = HttpClient::connect(engine.server.addrs().health_lpo.expect("a health port"));
        client.send(b"GET /metrics HTTP/1.1\r\nHost: w\r\n\r\n");
        assert!(
            wait_until(Duration::from_secs(20), || stuck() > 0),
            "{backend}: the watchdog saw the held turn"
        );
        HOLD.store(false, Ordering::Relaxed);
        assert_eq!(client.response().status, 200, "{backend}: the turn ended");
        assert_eq!(stuck(), 1, "reported once");
        assert!(node.reactors.iter().map(|r| r.loop_stalls.get()).sum::<u64>() >= 1);
        assert!(engine.stop().is_empty());
    }
}
