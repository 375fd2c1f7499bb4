//! The epoll driver (mio, edge-triggered), for kernels and sandboxes without io_uring (ECS
//! Fargate's seccomp profile among them): the same operations as io_uring, done with
//! readiness. A receive or send the core asks for is performed when its socket is ready (at
//! once if it is known to be) and reported as a completion.
//!
//! Readiness is tracked per connection: set by epoll's events, cleared when a read or write
//! would block (or a read came back short: the socket is drained, and the next arrival raises
//! a new edge). An operation started on a socket known to be ready joins the run queue and is
//! attempted in the same turn; a turn takes at most [`RUN_BUDGET`] of them and leaves the rest
//! for the next, which then does not wait. So no connection depends on an edge that already
//! fired, and none can keep the others waiting.
//!
//! UDP: on readiness, `recvmmsg` batches of 64, each datagram answered into a reply buffer,
//! one `sendmmsg` per batch (a reply the kernel refuses is counted and skipped, the rest still
//! go); a socket is drained in bounded rounds so a flood cannot starve TCP, and one with more
//! waiting is revisited without sleeping.

#![allow(
    unsafe_code,
    reason = "reads and writes go straight into the core's connection buffers"
)]

mod mmsg;

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use mio::net::{TcpListener, UdpSocket, UnixDatagram};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use self::mmsg::Mmsg;
use super::datagram::Answerer;
use super::driver::{Driver, Event, IoBuf};
use super::slab::Key;
use super::sockets::ReactorSockets;
use super::{REJECT_OVERLOADED, Waker};
use crate::protocol::http::routes::PortKind;

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

/// How much of each kind of work one turn takes before the others get a go: recvmmsg batches
/// per socket, connections accepted per listener, connection operations attempted.
const UDP_ROUNDS: usize = 16;
const ACCEPT_BUDGET: usize = 256;
const RUN_BUDGET: usize = 1024;

/// Tokens: the wake-up socket, then listeners, UDP sockets and connections in ranges of their
/// own (a connection's token is its slab key).
const WAKE: Token = Token(usize::MAX);
const LISTENER_BASE: usize = 1 << 16;
const UDP_BASE: usize = 1 << 17;
const CONN_BASE: usize = 1 << 20;

/// What the driver keeps for one connection.
struct Conn {
    key: Key,
    fd: RawFd,
    readable: bool,
    writable: bool,
    /// The peer's end of the stream (or an error) was reported: a read that comes back short
    /// has not seen it yet, and no new edge will come for it.
    read_closed: bool,
    recv: Option<IoBuf>,
    send: Option<IoBuf>,
    /// In the run queue.
    queued: bool,
}

impl Conn {
    fn runnable(&self) -> bool {
        (self.recv.is_some() && self.readable) || (self.send.is_some() && self.writable)
    }
}

pub struct Epoll {
    poll: Poll,
    events: Events,
    /// This wait's events, copied out of `events`.
    /// Each event's token, and whether it reports input, the input's end, and room for output.
    ready: Vec<(Token, bool, bool, bool)>,
    udp: Vec<UdpSocket>,
    /// Sockets that may have datagrams left after their last round.
    udp_pending: Vec<bool>,
    mmsg: Mmsg,
    listeners: Vec<(TcpListener, PortKind)>,
    accept_pending: Vec<bool>,
    waker: UnixDatagram,
    woken: bool,
    /// By slab index.
    conns: Vec<Option<Conn>>,
    run: VecDeque<Key>,
    /// Completions produced outside a reap (cancellations), handed over by the next one.
    done: Vec<Event>,
}

impl Epoll {
    pub fn new(sockets: ReactorSockets, waker: Waker) -> std::io::Result<Epoll> {
        let poll = Poll::new()?;
        let mut udp = Vec::new();
        for (i, socket) in sockets.udp.into_iter().enumerate() {
            let mut socket = UdpSocket::from_std(socket);
            poll.registry()
                .register(&mut socket, Token(UDP_BASE + i), Interest::READABLE)?;
            udp.push(socket);
        }
        let mut listeners = Vec::new();
        for (i, listener) in sockets.tcp.into_iter().enumerate() {
            let mut socket = TcpListener::from_std(listener.socket);
            poll.registry()
                .register(&mut socket, Token(LISTENER_BASE + i), Interest::READABLE)?;
            listeners.push((socket, listener.port));
        }
        let mut waker = UnixDatagram::from_std(waker);
        poll.registry()
            .register(&mut waker, WAKE, Interest::READABLE)?;
        Ok(Epoll {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            udp_pending: vec![false; udp.len()],
            udp,
            mmsg: Mmsg::new(),
            accept_pending: vec![false; listeners.len()],
            listeners,
            waker,
            woken: false,
            conns: Vec::new(),
            run: VecDeque::with_capacity(RUN_BUDGET),
            done: Vec::new(),
        })
    }

    /// The connection at `key`, registered with epoll on first use.
    fn conn(&mut self, key: Key, fd: RawFd) -> Option<&mut Conn> {
        let index = key.index as usize;
        if self.conns.len() <= index {
            self.conns.resize_with(index + 1, || None);
        }
        let fresh = self
            .conns
            .get(index)
            .is_none_or(|c| c.as_ref().is_none_or(|c| c.key != key));
        if fresh {
            if self
                .poll
                .registry()
                .register(
                    &mut SourceFd(&fd),
                    conn_token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                return None;
            }
            // A new socket can take output; whether input waits, its first event says.
            *self.conns.get_mut(index)? = Some(Conn {
                key,
                fd,
                readable: false,
                writable: true,
                read_closed: false,
                recv: None,
                send: None,
                queued: false,
            });
        }
        self.conns.get_mut(index)?.as_mut()
    }

    fn schedule(&mut self, key: Key) {
        let Some(Some(conn)) = self.conns.get_mut(key.index as usize) else {
            return;
        };
        if conn.key == key && !conn.queued && conn.runnable() {
            conn.queued = true;
            self.run.push_back(key);
        }
    }

    /// Performs what is pending on the connection and ready.
    fn attempt(&mut self, key: Key, events: &mut Vec<Event>) {
        let Some(Some(conn)) = self.conns.get_mut(key.index as usize) else {
            return;
        };
        if conn.key != key {
            return;
        }
        conn.queued = false;
        if conn.readable
            && let Some(buf) = conn.recv
        {
            // SAFETY: `buf` is the connection's read space, which the core keeps allocated,
            // unmoved and untouched until this receive's completion (see `IoBuf`).
            let n = unsafe { libc::recv(conn.fd, buf.ptr.cast(), buf.len, libc::MSG_DONTWAIT) };
            match outcome(n) {
                Err(libc::EAGAIN) => conn.readable = false,
                Err(libc::EINTR) => {}
                result => {
                    let result = result.unwrap_or_else(|errno| -errno);
                    // A short read drained the socket: the next arrival raises a new edge. Not
                    // so its end: a FIN that came with the last bytes raised its edge with
                    // them, so the next receive must run to see it (and return 0).
                    if usize::try_from(result).is_ok_and(|n| n > 0 && n < buf.len)
                        && !conn.read_closed
                    {
                        conn.readable = false;
                    }
                    conn.recv = None;
                    events.push(Event::Received { key, result });
                }
            }
        }
        if conn.writable
            && let Some(buf) = conn.send
        {
            // SAFETY: `buf` is the connection's pending output, which the core neither writes
            // nor resizes until this send's completion (see `IoBuf`).
            let n = unsafe {
                libc::send(
                    conn.fd,
                    buf.ptr.cast_const().cast(),
                    buf.len,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            match outcome(n) {
                Err(libc::EAGAIN) => conn.writable = false,
                Err(libc::EINTR) => {}
                result => {
                    let result = result.unwrap_or_else(|errno| -errno);
                    if usize::try_from(result).is_ok_and(|n| n < buf.len) {
                        conn.writable = false;
                    }
                    conn.send = None;
                    events.push(Event::Sent { key, result });
                }
            }
        }
        // Interrupted: try again.
        if conn.runnable() {
            conn.queued = true;
            self.run.push_back(key);
        }
    }

    fn drain_udp(&mut self, socket: usize, answer: &mut Answerer) {
        let Some(fd) = self.udp.get(socket).map(AsRawFd::as_raw_fd) else {
            return;
        };
        let mut more = false;
        for _ in 0..UDP_ROUNDS {
            match self.mmsg.receive(fd) {
                Ok(0) => {
                    more = false;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "recvmmsg failed");
                    break;
                }
            };
            self.mmsg.answer_each(|datagram, from, truncated, reply| {
                answer.datagram(socket, datagram, from, truncated, reply)
            });
            answer.send_failed(self.mmsg.flush(fd));
            answer.end_batch();
            // Under load more has arrived while this batch was answered: reading again at
            // once costs one call when nothing has, where going back to epoll costs one always.
            more = true;
        }
        if let Some(pending) = self.udp_pending.get_mut(socket) {
            *pending = more;
        }
    }

    fn accept(&mut self, index: usize, events: &mut Vec<Event>, answer: &Answerer) {
        let Some((listener, port)) = self.listeners.get(index) else {
            return;
        };
        let port = *port;
        for _ in 0..ACCEPT_BUDGET {
            match listener.accept() {
                Ok((stream, _)) => events.push(Event::Accepted {
                    port,
                    fd: OwnedFd::from(stream),
                }),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Some(pending) = self.accept_pending.get_mut(index) {
                        *pending = false;
                    }
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    answer.metrics().accept_errors.inc();
                    return;
                }
            }
        }
    }
}

/// A `recv`/`send` return value as bytes, or its `errno`.
fn outcome(n: isize) -> Result<i32, i32> {
    if n >= 0 {
        return Ok(i32::try_from(n).unwrap_or(i32::MAX));
    }
    Err(std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO))
}

impl Driver for Epoll {
    fn recv(&mut self, key: Key, fd: RawFd, buf: IoBuf) {
        let Some(conn) = self.conn(key, fd) else {
            self.done.push(Event::Received {
                key,
                result: -libc::EBADF,
            });
            return;
        };
        conn.recv = Some(buf);
        self.schedule(key);
    }

    fn send(&mut self, key: Key, fd: RawFd, buf: IoBuf) {
        let Some(conn) = self.conn(key, fd) else {
            self.done.push(Event::Sent {
                key,
                result: -libc::EBADF,
            });
            return;
        };
        conn.send = Some(buf);
        self.schedule(key);
    }

    fn cancel(&mut self, key: Key, _fd: RawFd, recv: bool, send: bool) {
        let Some(Some(conn)) = self.conns.get_mut(key.index as usize) else {
            return;
        };
        if conn.key != key {
            return;
        }
        if recv && conn.recv.take().is_some() {
            self.done.push(Event::Received {
                key,
                result: -libc::ECANCELED,
            });
        }
        if send && conn.send.take().is_some() {
            self.done.push(Event::Sent {
                key,
                result: -libc::ECANCELED,
            });
        }
    }

    fn forget(&mut self, key: Key, fd: RawFd) {
        if let Some(slot) = self.conns.get_mut(key.index as usize)
            && slot.as_ref().is_some_and(|c| c.key == key)
        {
            *slot = None;
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    fn reject(&mut self, fd: OwnedFd) {
        // Best effort on a fresh socket: its send buffer is empty, so this fits.
        let mut stream = std::net::TcpStream::from(fd);
        let _ = stream.write(REJECT_OVERLOADED);
    }

    fn stop_listening(&mut self, events: &mut Vec<Event>) {
        // Connections already in the kernel's accept queues were made before shutdown and may
        // carry requests: take them, then close the listeners so new ones are refused.
        for (mut listener, port) in std::mem::take(&mut self.listeners) {
            while let Ok((stream, _)) = listener.accept() {
                events.push(Event::Accepted {
                    port,
                    fd: OwnedFd::from(stream),
                });
            }
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_pending.clear();
        for mut socket in self.udp.drain(..) {
            let _ = self.poll.registry().deregister(&mut socket);
        }
        self.udp_pending.clear();
    }

    fn wait(&mut self, until: Instant) -> std::io::Result<()> {
        let busy = !self.run.is_empty()
            || !self.done.is_empty()
            || self.woken
            || self.udp_pending.iter().any(|p| *p)
            || self.accept_pending.iter().any(|p| *p);
        let timeout = if busy {
            std::time::Duration::ZERO
        } else {
            until.saturating_duration_since(Instant::now())
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        // Copied out, so handling one may borrow the driver mutably.
        self.ready.clear();
        self.ready.extend(self.events.iter().map(|event| {
            (
                event.token(),
                event.is_readable() || event.is_read_closed() || event.is_error(),
                event.is_read_closed() || event.is_error(),
                event.is_writable() || event.is_write_closed() || event.is_error(),
            )
        }));
        for i in 0..self.ready.len() {
            let Some(&(token, readable, read_closed, writable)) = self.ready.get(i) else {
                break;
            };
            match token {
                WAKE => self.woken = true,
                Token(t) if (UDP_BASE..CONN_BASE).contains(&t) => {
                    if let Some(pending) = self.udp_pending.get_mut(t - UDP_BASE) {
                        *pending = true;
                    }
                }
                Token(t) if (LISTENER_BASE..UDP_BASE).contains(&t) => {
                    if let Some(pending) = self.accept_pending.get_mut(t - LISTENER_BASE) {
                        *pending = true;
                    }
                }
                token => {
                    let Some(key) = token_key(token) else {
                        continue;
                    };
                    if let Some(Some(conn)) = self.conns.get_mut(key.index as usize)
                        && conn.key == key
                    {
                        conn.readable |= readable;
                        conn.read_closed |= read_closed;
                        conn.writable |= writable;
                        self.schedule(key);
                    }
                }
            }
        }
        Ok(())
    }

    fn reap(&mut self, answer: &mut Answerer, _arrived: Instant, events: &mut Vec<Event>) {
        events.append(&mut self.done);
        if std::mem::take(&mut self.woken) {
            let mut buf = [0u8; 8];
            while self.waker.recv(&mut buf).is_ok() {}
            events.push(Event::Wake);
        }
        for socket in 0..self.udp.len() {
            if self.udp_pending.get(socket).copied().unwrap_or(false) {
                self.drain_udp(socket, answer);
            }
        }
        for index in 0..self.listeners.len() {
            if self.accept_pending.get(index).copied().unwrap_or(false) {
                self.accept(index, events, answer);
            }
        }
        for _ in 0..RUN_BUDGET.min(self.run.len()) {
            let Some(key) = self.run.pop_front() else {
                break;
            };
            self.attempt(key, events);
        }
    }

    fn idle(&self) -> bool {
        // Every operation completes within the turn that performs it, or at cancellation.
        self.done.is_empty()
    }

    fn finish(self) {}
}
