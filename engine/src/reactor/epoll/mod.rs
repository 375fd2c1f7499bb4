//! The epoll reactor (mio), for kernels or sandboxes without io_uring: the same sockets, the
//! same connection state machine and limits, readiness instead of completions.
//!
//! - UDP: on readiness, `recvmmsg` batches of 64, each answered into a reply buffer, then one
//!   `sendmmsg` per batch. A socket is drained in bounded rounds so a UDP flood cannot starve
//!   TCP on the same reactor; a socket with more waiting is revisited without sleeping.
//! - TCP: non-blocking accept until `WouldBlock`; connections are edge-triggered: read until
//!   `WouldBlock` or the buffer is full, answer, write until `WouldBlock`.

mod mmsg;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram};
use mio::{Events, Interest, Poll, Token};

use self::mmsg::Mmsg;
use super::conn::{self, Conn, Env, Timer};
use super::governor::Governor;
use super::slab::{Key, Slab};
use super::{REJECT_OVERLOADED, ReactorSpec};
use crate::metrics::{CloseReason, ReactorMetrics, UdpDrop};
use crate::node::{Node, wall_ms};
use crate::protocol::http::routes::PortKind;
use crate::protocol::udp;
use crate::usage::{AssetList, Meter};

const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// recvmmsg batches per socket per turn before other work gets a go.
const UDP_ROUNDS: usize = 16;
const WAKE: Token = Token(usize::MAX);
const LISTENER_BASE: usize = 1 << 16;
const UDP_BASE: usize = 1 << 17;
const CONN_BASE: usize = 1 << 20;

fn conn_token(key: Key) -> Token {
    Token(CONN_BASE + ((key.index as usize) << 32 | key.generation as usize))
}

fn token_key(token: Token) -> Option<Key> {
    let raw = token.0.checked_sub(CONN_BASE)?;
    Some(Key {
        index: u32::try_from(raw >> 32).ok()?,
        generation: u32::try_from(raw & 0xffff_ffff).ok()?,
    })
}

struct ConnIo {
    conn: Conn,
    stream: Option<TcpStream>,
}

pub struct Reactor {
    poll: Poll,
    events: Events,
    /// This turn's events, copied out so handling one may borrow the reactor mutably.
    ready: Vec<(Token, bool, bool)>,
    udp: Vec<UdpSocket>,
    /// Sockets that may have datagrams left after their last round.
    udp_pending: Vec<bool>,
    mmsg: Mmsg,
    listeners: Vec<(TcpListener, PortKind)>,
    conns: Slab<ConnIo>,
    governor: Governor,
    waker: UnixDatagram,
    body: Vec<u8>,
    index: usize,
    node: std::sync::Arc<Node>,
    limits: super::Limits,
    stall: super::stall::StallDetector,
    draining: Option<Instant>,
    meter: Meter,
    assets: AssetList,
}

impl Reactor {
    pub fn new(spec: ReactorSpec) -> std::io::Result<Reactor> {
        let poll = Poll::new()?;
        let mut udp = Vec::new();
        for (i, socket) in spec.sockets.udp.into_iter().enumerate() {
            let mut socket = UdpSocket::from_std(socket);
            poll.registry()
                .register(&mut socket, Token(UDP_BASE + i), Interest::READABLE)?;
            udp.push(socket);
        }
        let mut listeners = Vec::new();
        for (i, listener) in spec.sockets.tcp.into_iter().enumerate() {
            let mut socket = TcpListener::from_std(listener.socket);
            poll.registry()
                .register(&mut socket, Token(LISTENER_BASE + i), Interest::READABLE)?;
            listeners.push((socket, listener.port));
        }
        let mut waker = UnixDatagram::from_std(spec.waker);
        poll.registry()
            .register(&mut waker, WAKE, Interest::READABLE)?;
        Ok(Reactor {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            udp_pending: vec![false; udp.len()],
            udp,
            mmsg: Mmsg::new(),
            listeners,
            conns: Slab::with_capacity(spec.limits.max_connections + super::HEALTH_CONNECTIONS),
            governor: Governor::new(spec.limits.max_connections, spec.limits.success_threshold),
            waker,
            body: Vec::with_capacity(64 * 1024),
            index: spec.index,
            stall: super::stall::StallDetector::new(spec.limits.stall_threshold),
            node: spec.node,
            limits: spec.limits,
            draining: None,
            meter: spec.meter,
            assets: AssetList::default(),
        })
    }

    fn metrics(&self) -> &ReactorMetrics {
        self.node.metrics(self.index)
    }

    pub fn run(mut self) -> std::io::Result<()> {
        self.metrics()
            .connection_limit
            .set(self.governor.limit() as u64);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let busy = self.udp_pending.iter().any(|p| *p);
            let wait = if busy {
                Duration::ZERO
            } else {
                next_sweep.saturating_duration_since(Instant::now())
            };
            match self.poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let started = Instant::now();
            let now_ms = wall_ms();
            self.ready.clear();
            self.ready.extend(self.events.iter().map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed(),
                    e.is_writable(),
                )
            }));
            let tokens = self.ready.len();
            for i in 0..tokens {
                if let Some(&(token, readable, writable)) = self.ready.get(i) {
                    self.dispatch(token, readable, writable, started, now_ms);
                }
            }
            for socket in 0..self.udp.len() {
                if self.udp_pending.get(socket).copied().unwrap_or(false) {
                    self.drain_udp(socket, started, now_ms);
                }
            }
            self.metrics().completions.add(tokens as u64);
            if started >= next_sweep {
                self.sweep(now_ms);
                next_sweep = started + SWEEP_EVERY;
            }
            let metrics = self.node.metrics(self.index);
            self.stall.turn_ended(self.index, started, tokens, metrics);
            if self.draining.is_some() && self.conns.is_empty() {
                return Ok(());
            }
        }
    }

    fn dispatch(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        arrived: Instant,
        now_ms: u64,
    ) {
        match token {
            WAKE => {
                let mut buf = [0u8; 8];
                while self.waker.recv(&mut buf).is_ok() {}
                if self.draining.is_none() {
                    self.start_draining(now_ms);
                }
            }
            Token(t) if (UDP_BASE..CONN_BASE).contains(&t) => {
                if self.draining.is_none() {
                    self.drain_udp(t - UDP_BASE, arrived, now_ms);
                }
            }
            Token(t) if (LISTENER_BASE..UDP_BASE).contains(&t) => {
                self.accept(t - LISTENER_BASE, now_ms)
            }
            token => {
                let Some(key) = token_key(token) else { return };
                if readable {
                    self.service(key, arrived, now_ms);
                } else if writable {
                    self.flush(key, arrived, now_ms);
                }
            }
        }
    }

    fn drain_udp(&mut self, socket: usize, arrived: Instant, now_ms: u64) {
        let Some(fd) = self.udp.get(socket).map(AsRawFd::as_raw_fd) else {
            return;
        };
        let node = &*self.node;
        let metrics = node.metrics(self.index);
        let ctx = udp::Context {
            table: &node.table,
            access: &node.access,
            fresh: node.freshness(now_ms),
        };
        let (meter, assets) = (&mut self.meter, &mut self.assets);
        let mut more = false;
        for _ in 0..UDP_ROUNDS {
            let received = match self.mmsg.receive(fd) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "recvmmsg failed");
                    break;
                }
            };
            self.mmsg.answer_each(|datagram, truncated, reply| {
                if truncated {
                    metrics.udp_drop(UdpDrop::Truncated);
                    return None;
                }
                if udp::v8::is_v8(datagram) {
                    metrics.udp_v8.inc();
                } else {
                    metrics.udp_text.inc();
                }
                assets.room = meter.has_room();
                let outcome = udp::answer(datagram, ctx, reply, assets);
                super::account_udp(outcome, metrics, meter, assets, now_ms, arrived)
            });
            let queued = self.mmsg.queued();
            let sent = self.mmsg.flush(fd).unwrap_or(0);
            // One clock read per batch: every datagram in it waited this long at most.
            let ns = u64::try_from(arrived.elapsed().as_nanos()).unwrap_or(u64::MAX);
            metrics.udp_latency.record_many_ns(ns, queued as u64);
            metrics.udp_replies.add(sent as u64);
            for _ in sent..queued {
                metrics.udp_drop(UdpDrop::SendError);
            }
            more = received == mmsg::BATCH;
            if !more {
                break;
            }
        }
        if let Some(pending) = self.udp_pending.get_mut(socket) {
            *pending = more;
        }
    }

    fn accept(&mut self, index: usize, now_ms: u64) {
        loop {
            let Some((listener, port)) = self.listeners.get(index) else {
                return;
            };
            let port = *port;
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.metrics().accept_errors.inc();
                    return;
                }
            };
            if self.draining.is_some() {
                continue; // dropped: closed
            }
            let governed = port == PortKind::Api;
            if (governed && !self.governor.admits(self.conns.len())) || self.conns.is_full() {
                self.metrics().rejected_overloaded.inc();
                self.governor.record(false);
                // Best effort on a fresh socket: its send buffer is empty, so this fits.
                let _ = stream.write(REJECT_OVERLOADED);
                continue;
            }
            let Some((key, io)) = self.conns.insert_with(|| ConnIo {
                conn: Conn::new(port),
                stream: None,
            }) else {
                return;
            };
            io.conn.reset(port, now_ms);
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    conn_token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.conns.remove(key);
                continue;
            }
            io.stream = Some(stream);
            let open = self.conns.len() as u64;
            let m = self.node.metrics(self.index);
            m.accepted.inc();
            m.open_connections.set(open);
        }
    }

    /// Reads what is there, answers it, writes the answers; repeats while a full read buffer
    /// may have left bytes in the socket.
    fn service(&mut self, key: Key, arrived: Instant, now_ms: u64) {
        let draining = self.draining.is_some() || self.node.is_draining();
        let node = &*self.node;
        let metrics = node.metrics(self.index);
        let mut outcome = None;
        for _ in 0..64 {
            let Some(io) = self.conns.get_mut(key) else {
                return;
            };
            let Some(stream) = io.stream.as_mut() else {
                return;
            };
            let mut filled = false;
            while io.conn.wants_read() {
                match stream.read(io.conn.read_space()) {
                    Ok(0) => io.conn.peer_closed = true,
                    Ok(n) => {
                        io.conn.on_read(n, now_ms);
                        filled = !io.conn.wants_read();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        outcome = Some(CloseReason::Error);
                        break;
                    }
                }
            }
            if outcome.is_some() {
                break;
            }
            let mut env = Env {
                node,
                metrics,
                fresh: node.freshness(now_ms),
                body: &mut self.body,
                meter: &mut self.meter,
                assets: &mut self.assets,
                arrived,
                draining,
            };
            let served = io.conn.process(&mut env, now_ms);
            self.governor.record_many(served.ok, served.failed);
            match write_out(io) {
                Err(reason) => {
                    outcome = Some(reason);
                    break;
                }
                Ok(false) => break, // the socket is full: a writable event resumes
                Ok(true) => {}
            }
            if io.conn.closing && !io.conn.has_output() {
                outcome = Some(io.conn.close_reason);
                break;
            }
            // Go round again while whole requests wait behind a full write buffer, or while a
            // full read buffer may have left bytes in the socket.
            if !served.blocked && !filled {
                break;
            }
        }
        if let Some(reason) = outcome {
            self.close(key, reason);
        }
    }

    /// The socket can take more output.
    fn flush(&mut self, key: Key, arrived: Instant, now_ms: u64) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        match write_out(io) {
            Err(reason) => self.close(key, reason),
            Ok(false) => {}
            Ok(true) if io.conn.closing => {
                let reason = io.conn.close_reason;
                self.close(key, reason);
            }
            // Output drained: answer anything that waited behind it.
            Ok(true) if io.conn.read_len > 0 => self.service(key, arrived, now_ms),
            Ok(true) => {}
        }
    }

    fn close(&mut self, key: Key, reason: CloseReason) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(mut stream) = io.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        self.conns.remove(key);
        if matches!(reason, CloseReason::Timeout | CloseReason::Error) {
            self.governor.record(false);
        }
        let open = self.conns.len() as u64;
        let m = self.node.metrics(self.index);
        m.closed(reason);
        m.open_connections.set(open);
    }

    fn sweep(&mut self, now_ms: u64) {
        if let Some(limit) = self.governor.tick(now_ms) {
            self.metrics().connection_limit.set(limit as u64);
        }
        let timeouts = self.limits.timeouts;
        let past_grace = self
            .draining
            .is_some_and(|at| at.elapsed() > self.limits.drain_grace);
        for index in 0..self.conns.slot_count() {
            let Some(key) = self.conns.key_at(index) else {
                continue;
            };
            let Some(io) = self.conns.get_mut(key) else {
                continue;
            };
            // Bytes the client sent before shutdown may be unread: such a connection is not idle.
            let unread = io
                .stream
                .as_ref()
                .is_some_and(|s| s.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0));
            if past_grace || (self.draining.is_some() && io.conn.is_idle() && !unread) {
                self.close(key, CloseReason::Shutdown);
                continue;
            }
            match io.conn.check_timers(now_ms, timeouts) {
                Timer::None => {}
                Timer::Close(reason) => self.close(key, reason),
                Timer::RequestTimeout => {
                    let node = &*self.node;
                    let metrics = node.metrics(self.index);
                    let mut env = Env {
                        node,
                        metrics,
                        fresh: node.freshness(now_ms),
                        body: &mut self.body,
                        meter: &mut self.meter,
                        assets: &mut self.assets,
                        arrived: Instant::now(),
                        draining: true,
                    };
                    conn::request_timeout(&mut io.conn, &mut env);
                    self.governor.record(false);
                    match write_out(io) {
                        Err(reason) => self.close(key, reason),
                        Ok(true) => self.close(key, CloseReason::Timeout),
                        Ok(false) => {}
                    }
                }
            }
        }
    }

    fn start_draining(&mut self, now_ms: u64) {
        // Connections already in the kernel's accept queues were made before shutdown and may
        // carry requests: take them, then close the listeners so new ones are refused.
        for index in 0..self.listeners.len() {
            self.accept(index, now_ms);
        }
        self.draining = Some(Instant::now());
        for (mut listener, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for mut socket in self.udp.drain(..) {
            let _ = self.poll.registry().deregister(&mut socket);
        }
        self.udp_pending.clear();
        self.sweep(now_ms);
    }
}

/// Writes pending output until done (`Ok(true)`) or the socket is full (`Ok(false)`).
fn write_out(io: &mut ConnIo) -> Result<bool, CloseReason> {
    let Some(stream) = io.stream.as_mut() else {
        return Err(CloseReason::Error);
    };
    while io.conn.has_output() {
        match stream.write(io.conn.pending_output()) {
            Ok(0) => return Err(CloseReason::Error),
            Ok(n) => {
                io.conn.on_written(n, io.conn.last_active_ms);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(CloseReason::Error),
        }
    }
    Ok(true)
}
