//! The reactor's event loop, one implementation for both backends: the connection slab and each
//! connection's operation state, admission (the governor, the health ports' own cap), timers,
//! shutdown, close accounting and the turn's bookkeeping. A [`Driver`] only moves bytes: the
//! core asks it for a receive or a send and is told when each has completed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conn::{self, Conn, Timer};
use super::datagram::Answerer;
use super::driver::{Driver, Event, IoBuf, MAX_WAIT};
use super::governor::Governor;
use super::slab::{Key, Slab};
use super::stall::StallDetector;
use super::{HEALTH_CONNECTIONS, Limits};
use crate::metrics::{CloseReason, ReactorMetrics};
use crate::protocol::http::routes::PortKind;

const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// An API connection idle this long may be closed to admit a new one at the limit.
const API_EVICT_AFTER_MS: u64 = 1_000;
/// Reap-and-handle rounds per turn: completions that arm new work (epoll attempts a receive
/// re-armed on a socket it knows is readable at once) are followed a few times, then the next
/// turn goes on where this one stopped, without waiting.
const ROUNDS: usize = 8;
/// A turn starts no further round past this: heavy answers (reports) keep turns short, and the
/// sweep, the watchdog's view and the stall detector see the loop come round.
const TURN_BUDGET: Duration = Duration::from_millis(1);
/// Past the shutdown grace, how long the loop still waits for cancelled operations to
/// complete before it exits anyway.
const EXIT_MARGIN: Duration = Duration::from_millis(500);

/// Which of a connection's operations are in flight (at most one receive and one send, on
/// different buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ops {
    None,
    Recv,
    Send,
    Both,
}

impl Ops {
    fn of(recv: bool, send: bool) -> Ops {
        match (recv, send) {
            (false, false) => Ops::None,
            (true, false) => Ops::Recv,
            (false, true) => Ops::Send,
            (true, true) => Ops::Both,
        }
    }

    fn recv(self) -> bool {
        matches!(self, Ops::Recv | Ops::Both)
    }

    fn send(self) -> bool {
        matches!(self, Ops::Send | Ops::Both)
    }

    fn set_recv(&mut self, on: bool) {
        *self = Ops::of(on, self.send());
    }

    fn set_send(&mut self, on: bool) {
        *self = Ops::of(self.recv(), on);
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// Closed for the client; the slot is freed once its operations have completed.
    Retiring,
}

struct Slot {
    conn: Conn,
    fd: Option<OwnedFd>,
    ops: Ops,
    phase: Phase,
}

pub(crate) struct Core {
    index: usize,
    answer: Answerer,
    conns: Slab<Slot>,
    /// Open connections of each kind of port: the API ports under the governor, the health
    /// ports under their own cap.
    api_open: usize,
    health_open: usize,
    governor: Governor,
    limits: Limits,
    stall: StallDetector,
    draining: Option<Instant>,
    next_sweep: Instant,
}

impl Core {
    pub fn new(index: usize, answer: Answerer, limits: Limits) -> Core {
        Core {
            index,
            answer,
            conns: Slab::with_capacity(limits.max_connections + HEALTH_CONNECTIONS),
            api_open: 0,
            health_open: 0,
            governor: Governor::new(limits.max_connections, limits.success_threshold),
            stall: StallDetector::new(limits.stall_threshold),
            limits,
            draining: None,
            next_sweep: Instant::now() + SWEEP_EVERY,
        }
    }

    fn metrics(&self) -> &ReactorMetrics {
        self.answer.metrics()
    }

    /// The reactor's monotonic clock, in ms: every timer runs on it.
    fn mono_ms(&self) -> u64 {
        self.answer.node().mono_ms()
    }

    /// Runs the loop until shutdown has drained every connection (or the grace has passed).
    pub fn run<D: Driver>(mut self, mut driver: D) -> std::io::Result<()> {
        self.metrics()
            .connection_limit
            .set(self.governor.limit() as u64);
        let mut events = Vec::with_capacity(1024);
        loop {
            let until = self.next_sweep.min(Instant::now() + MAX_WAIT);
            driver.wait(until)?;
            let arrived = Instant::now();
            let metrics = self.answer.metrics();
            metrics.turn_started_ms.set(self.mono_ms().max(1));
            self.answer.begin(arrived, beast_core::clock::wall_ms());
            let mut handled = 0;
            for _ in 0..ROUNDS {
                driver.reap(&mut self.answer, arrived, &mut events);
                if events.is_empty() {
                    break;
                }
                handled += events.len();
                for event in events.drain(..) {
                    self.handle(event, &mut driver);
                }
                if arrived.elapsed() >= TURN_BUDGET {
                    break;
                }
            }
            self.metrics().completions.add(handled as u64);
            if arrived >= self.next_sweep {
                self.sweep(&mut driver);
                self.next_sweep = arrived + SWEEP_EVERY;
            }
            let metrics = self.answer.node().metrics(self.index);
            self.stall.turn_ended(self.index, arrived, handled, metrics);
            metrics.turn_started_ms.set(0);
            if self.finished(&driver) {
                break;
            }
        }
        let idle = driver.idle();
        driver.finish();
        if !idle {
            // Past the grace with operations still in flight: the kernel may still write into
            // connection buffers, and the process is exiting, so they are leaked, not freed.
            std::mem::forget(self.conns);
        }
        Ok(())
    }

    fn finished<D: Driver>(&self, driver: &D) -> bool {
        let Some(at) = self.draining else {
            return false;
        };
        (self.conns.is_empty() && driver.idle())
            || at.elapsed() > self.limits.drain_grace + EXIT_MARGIN
    }

    fn handle<D: Driver>(&mut self, event: Event, driver: &mut D) {
        match event {
            Event::Accepted { port, fd } => self.adopt(port, fd, driver),
            Event::Received { key, result } => self.received(key, result, driver),
            Event::Sent { key, result } => self.sent(key, result, driver),
            Event::Wake => {
                if self.draining.is_none() {
                    self.start_draining(driver);
                }
            }
        }
    }

    /// A new connection: admitted (a slot and a receive) or refused with 503. API ports are
    /// admitted up to the governor's limit, health ports up to their own cap; at either, the
    /// longest-idle connection of the same kind makes room: an idle keep-alive connection
    /// costs its client one reconnect, while a flood of idle connections must not lock every
    /// other client out (nor a load balancer's check). Connections that are busy (a request
    /// being read, answered or written) are never closed for another, nor API connections idle
    /// for under [`API_EVICT_AFTER_MS`]: a burst past the limit is refused, not traded.
    fn adopt<D: Driver>(&mut self, port: PortKind, fd: OwnedFd, driver: &mut D) {
        let admitted = if port.is_api() {
            self.governor.admits(self.api_open) || self.evict_idle(true, API_EVICT_AFTER_MS, driver)
        } else {
            self.health_open < HEALTH_CONNECTIONS || self.evict_idle(false, 0, driver)
        };
        if !admitted || self.conns.is_full() {
            if port.is_api() {
                self.governor.refused();
            }
            self.metrics().rejected_overloaded.inc();
            driver.reject(fd);
            return;
        }
        let now = self.mono_ms();
        let Some((key, slot)) = self.conns.insert_with(|| Slot {
            conn: Conn::new(port),
            fd: None,
            ops: Ops::None,
            phase: Phase::Open,
        }) else {
            driver.reject(fd);
            return;
        };
        slot.conn.reset(port, now);
        slot.fd = Some(fd);
        slot.ops = Ops::None;
        slot.phase = Phase::Open;
        *self.open_on(port) += 1;
        let metrics = self.metrics();
        metrics.accepted.inc();
        metrics.open_connections.set(self.conns.len() as u64);
        self.arm_recv(key, driver);
    }

    /// The count of open connections `port` is under: the API ports' (the governor's) or the
    /// health ports'.
    fn open_on(&mut self, port: PortKind) -> &mut usize {
        if port.is_api() {
            &mut self.api_open
        } else {
            &mut self.health_open
        }
    }

    /// Closes the API (or health) connection idle the longest, if it has been idle for
    /// `min_idle_ms`; true if there was one.
    fn evict_idle<D: Driver>(&mut self, api: bool, min_idle_ms: u64, driver: &mut D) -> bool {
        let idle_since = self.mono_ms().saturating_sub(min_idle_ms);
        let mut oldest: Option<(Key, u64)> = None;
        for index in 0..self.conns.slot_count() {
            let Some(key) = self.conns.key_at(index) else {
                continue;
            };
            let Some(slot) = self.conns.get_mut(key) else {
                continue;
            };
            if slot.phase == Phase::Open
                && slot.conn.port.is_api() == api
                && slot.conn.is_idle()
                && slot.conn.last_active_ms <= idle_since
                && oldest.is_none_or(|(_, at)| slot.conn.last_active_ms < at)
            {
                oldest = Some((key, slot.conn.last_active_ms));
            }
        }
        let Some((key, _)) = oldest else {
            return false;
        };
        self.retire(key, CloseReason::Idle, driver);
        true
    }

    fn received<D: Driver>(&mut self, key: Key, result: i32, driver: &mut D) {
        let now = self.mono_ms();
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.ops.set_recv(false);
        if slot.phase == Phase::Retiring {
            self.try_free(key, driver);
            return;
        }
        match usize::try_from(result) {
            Ok(0) => slot.conn.peer_closed = true, // answer what is buffered, then close
            Ok(n) => slot.conn.on_read(n, now),
            Err(_) => {
                self.retire(key, CloseReason::Error, driver);
                return;
            }
        }
        // With a send in flight, its completion answers what is buffered by then.
        if !slot.ops.send() {
            self.service(key, driver);
        }
    }

    fn sent<D: Driver>(&mut self, key: Key, result: i32, driver: &mut D) {
        let now = self.mono_ms();
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.ops.set_send(false);
        if slot.phase == Phase::Retiring {
            self.try_free(key, driver);
            return;
        }
        let Ok(n) = usize::try_from(result) else {
            self.retire(key, CloseReason::Error, driver);
            return;
        };
        if !slot.conn.on_written(n, now) {
            self.arm_send(key, driver);
            return;
        }
        if slot.conn.closing {
            let reason = slot.conn.close_reason;
            self.retire(key, reason, driver);
            return;
        }
        // With a receive in flight, its completion answers what is buffered by then.
        if !slot.ops.recv() {
            self.service(key, driver);
        }
    }

    /// Answers what is buffered, then starts the next send and/or receive. Called only with
    /// no receive in flight: answering moves unanswered bytes within the read buffer.
    fn service<D: Driver>(&mut self, key: Key, driver: &mut D) {
        let draining = self.draining.is_some() || self.answer.node().is_draining();
        let now = self.mono_ms();
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let mut served = slot.conn.process(&mut self.answer.env(draining), now);
        if let Some(mut call) = served.deferred.take() {
            call.waiter.reactor = self.index;
            call.waiter.conn = (key.index, key.generation);
            let ticket = call.waiter.ticket;
            if !self
                .answer
                .node()
                .link
                .send(crate::side::Command::Subscription(call))
            {
                // The side thread's mailbox is full: the call is refused at once.
                let busy = Box::new(crate::side::deferred::Answer::unavailable(
                    "the side thread is busy; try again",
                ));
                slot.conn.answered(
                    &mut self.answer.env(draining),
                    ticket,
                    busy,
                    !slot.ops.send(),
                    now,
                );
            }
        }
        let (has_output, closing, reason) = (
            slot.conn.has_output(),
            slot.conn.closing,
            slot.conn.close_reason,
        );
        self.governor.record_many(served.ok, served.failed);
        if has_output {
            self.arm_send(key, driver);
        } else if closing {
            self.retire(key, reason, driver);
            return;
        }
        if !served.blocked {
            self.arm_recv(key, driver);
        }
    }

    fn arm_recv<D: Driver>(&mut self, key: Key, driver: &mut D) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(fd) = slot.fd.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        if slot.ops.recv() || slot.phase == Phase::Retiring || !slot.conn.wants_read() {
            return;
        }
        slot.ops.set_recv(true);
        // The read buffer is boxed and never resized, and nothing touches this part of it until
        // the receive completes: processing waits for that completion.
        driver.recv(key, fd, IoBuf::of(slot.conn.read_space()));
    }

    fn arm_send<D: Driver>(&mut self, key: Key, driver: &mut D) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(fd) = slot.fd.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        if slot.ops.send() || slot.phase == Phase::Retiring || !slot.conn.has_output() {
            return;
        }
        slot.ops.set_send(true);
        // The write buffer is neither written nor resized while a send is in flight:
        // processing waits for the completion.
        driver.send(key, fd, IoBuf::of_output(slot.conn.pending_output()));
    }

    /// Ends a connection for its client: what is in flight is cancelled, and the slot is freed
    /// once all of it has completed.
    fn retire<D: Driver>(&mut self, key: Key, reason: CloseReason, driver: &mut D) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if slot.phase == Phase::Retiring {
            return;
        }
        slot.phase = Phase::Retiring;
        let port = slot.conn.port;
        let ops = slot.ops;
        if let Some(fd) = slot.fd.as_ref().map(AsRawFd::as_raw_fd)
            && ops != Ops::None
        {
            driver.cancel(key, fd, ops.recv(), ops.send());
        }
        let open = self.open_on(port);
        *open = open.saturating_sub(1);
        self.metrics().closed(reason);
        self.try_free(key, driver);
    }

    fn try_free<D: Driver>(&mut self, key: Key, driver: &mut D) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if slot.ops != Ops::None {
            return;
        }
        if let Some(fd) = slot.fd.take() {
            driver.forget(key, fd.as_raw_fd());
            drop(fd); // closes the socket
        }
        self.conns.remove(key);
        self.metrics().open_connections.set(self.conns.len() as u64);
    }

    /// Timers: request and write timeouts, idle connections, the governor's window, and the
    /// drain deadline.
    fn sweep<D: Driver>(&mut self, driver: &mut D) {
        let now = self.mono_ms();
        self.collect_answers(driver);
        let side = &self.answer.node().side;
        self.governor.share(side.live_nodes.load(Ordering::Relaxed));
        self.governor.tick(now);
        let counts = self.governor.take_counts();
        for (total, n) in [
            (&side.governor.successes, counts.successes),
            (&side.governor.total, counts.total),
            (&side.governor.throttled, counts.throttled),
        ] {
            if n > 0 {
                total.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.metrics()
            .connection_limit
            .set(self.governor.limit() as u64);
        let timeouts = self.limits.timeouts;
        let past_grace = self
            .draining
            .is_some_and(|at| at.elapsed() > self.limits.drain_grace);
        for index in 0..self.conns.slot_count() {
            let Some(key) = self.conns.key_at(index) else {
                continue;
            };
            let Some(slot) = self.conns.get_mut(key) else {
                continue;
            };
            if slot.phase == Phase::Retiring {
                continue;
            }
            // Bytes the client sent before shutdown may still sit in the socket, behind a
            // receive whose completion has not come yet: such a connection is not idle.
            let idle_while_draining = self.draining.is_some()
                && slot.conn.is_idle()
                && !slot.ops.send()
                && !slot.fd.as_ref().is_some_and(has_unread_data);
            if past_grace || idle_while_draining {
                self.retire(key, CloseReason::Shutdown, driver);
                continue;
            }
            match slot.conn.check_timers(now, timeouts) {
                Timer::None => {}
                Timer::Close(reason) => self.retire(key, reason, driver),
                Timer::RequestTimeout if !slot.ops.send() => {
                    conn::request_timeout(&mut slot.conn, &mut self.answer.env(true), now);
                    self.arm_send(key, driver);
                }
                Timer::RequestTimeout => {}
                Timer::DeferredTimeout if !slot.ops.send() => {
                    slot.conn
                        .deferred_timeout(&mut self.answer.env(self.draining.is_some()), now);
                    self.arm_send(key, driver);
                }
                Timer::DeferredTimeout => {}
            }
        }
    }

    /// Writes the side thread's answers to this reactor's deferred calls.
    fn collect_answers<D: Driver>(&mut self, driver: &mut D) {
        let mut answers = Vec::new();
        self.answer
            .node()
            .link
            .outbox
            .take(self.index, &mut answers);
        let now = self.mono_ms();
        let draining = self.draining.is_some();
        for answer in answers {
            let (index, generation) = answer.waiter.conn;
            let key = Key { index, generation };
            let Some(slot) = self.conns.get_mut(key) else {
                continue; // the client left
            };
            if slot.phase == Phase::Retiring {
                continue;
            }
            let may_write = !slot.ops.send();
            if slot.conn.answered(
                &mut self.answer.env(draining),
                answer.waiter.ticket,
                Box::new(answer.answer),
                may_write,
                now,
            ) {
                self.arm_send(key, driver);
            }
            // Requests that waited behind the call are answered next.
            if let Some(slot) = self.conns.get(key)
                && !slot.ops.recv()
                && !slot.ops.send()
            {
                self.service(key, driver);
            }
        }
    }

    /// Stops accepting and receiving; connections finish what they started.
    fn start_draining<D: Driver>(&mut self, driver: &mut D) {
        self.draining = Some(Instant::now());
        let mut queued = Vec::new();
        driver.stop_listening(&mut queued);
        for event in queued {
            self.handle(event, driver);
        }
        self.sweep(driver);
    }
}

/// True if the socket has received bytes not read yet (a non-blocking peek).
fn has_unread_data(fd: &OwnedFd) -> bool {
    let mut byte = [std::mem::MaybeUninit::new(0u8); 1];
    socket2::SockRef::from(fd)
        .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        .is_ok_and(|n| n > 0)
}
