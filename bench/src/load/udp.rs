//! The UDP worker: several connected sockets per thread on one epoll, replies matched by
//! request id (v8) or in order (text, where a lost datagram is skipped over by asset).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::Worker;
use super::flight::{Flight, Pacer, Tally, expire};
use super::mmsg::{self, BATCH, Slots};
use super::request::{self, Form, Requests, Verdict};
use super::timer::event_loop;

/// Socket buffers large enough that a burst of replies is not dropped by the generator itself.
const SOCKET_BUFFER: usize = 4 << 20;
/// A text reply that does not match the oldest request is looked for this far down the queue
/// (the requests in between were lost) before it is called a mismatch.
const TEXT_REORDER_SPAN: usize = 8;
/// How often requests are checked for timeouts.
const SWEEP_EVERY: Duration = Duration::from_millis(5);
const TIMER: Token = Token(usize::MAX);

/// Opens `count` sockets connected to `target`.
pub fn open(target: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    (0..count)
        .map(|_| {
            let socket = Socket::new(
                Domain::for_address(target),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
            let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
            let any: SocketAddr = if target.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            socket.bind(&any.into())?;
            socket.connect(&target.into())?;
            socket.set_nonblocking(true)?;
            Ok(socket.into())
        })
        .collect()
}

struct Sock {
    socket: mio::net::UdpSocket,
    pending: VecDeque<Flight>,
    pacer: Pacer,
    next_request: usize,
    next_id: u32,
}

pub(super) fn drive(
    sockets: Vec<UdpSocket>,
    worker: &Worker<'_>,
    tally: &mut Tally<'_>,
) -> io::Result<()> {
    let (spec, requests, window) = (worker.spec, worker.requests, worker.window);
    let in_flight = worker.window_per_socket();
    let (mut poll, mut timer) = event_loop(TIMER)?;
    let count = sockets.len();
    let mut socks = Vec::with_capacity(count);
    for (i, socket) in sockets.into_iter().enumerate() {
        let mut socket = mio::net::UdpSocket::from_std(socket);
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)?;
        socks.push(Sock {
            socket,
            pending: VecDeque::with_capacity(in_flight),
            pacer: worker.pacer(i, count),
            next_request: worker.first_request(i),
            next_id: 1,
        });
    }
    let mut events = Events::with_capacity(256);
    let mut outgoing = Slots::new();
    let mut incoming = Slots::new();
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        let now = Instant::now();
        let sending_over = tally.sending_over(now);
        if now >= window.drain_until || (sending_over && socks.iter().all(|s| s.pending.is_empty()))
        {
            return Ok(());
        }
        if now >= next_sweep {
            for sock in &mut socks {
                expire(&mut sock.pending, now, spec.timeout, tally);
            }
            next_sweep = now + SWEEP_EVERY;
        }
        // Send what is due; find when the next send is.
        let mut wake = next_sweep.min(window.drain_until);
        if !sending_over {
            for sock in &mut socks {
                fill(sock, in_flight, requests, &mut outgoing, tally, now)?;
                if sock.pending.len() < in_flight
                    && let Some(next) = sock.pacer.next()
                {
                    wake = wake.min(next);
                }
            }
        }
        let timeout = wake.saturating_duration_since(Instant::now());
        if timeout >= Duration::from_millis(2) {
            poll.poll(&mut events, Some(timeout))?;
        } else {
            timer.arm(timeout)?;
            poll.poll(&mut events, None)?;
        }
        for event in &events {
            if event.token() == TIMER {
                timer.clear();
                continue;
            }
            let Some(sock) = socks.get_mut(event.token().0) else {
                continue;
            };
            receive(sock, requests, &mut incoming, tally)?;
        }
        tally.report();
    }
}

/// Sends, in batches, while the window has room and a request is due.
fn fill(
    sock: &mut Sock,
    in_flight: usize,
    requests: &Requests,
    slots: &mut Slots,
    tally: &mut Tally<'_>,
    now: Instant,
) -> io::Result<()> {
    while sock.pending.len() < in_flight && !tally.sending_over(now) {
        // Stage what is due into the batch; the pacer and ids move only for what was sent.
        let mut pacer = sock.pacer;
        let mut staged = 0;
        let mut intended_at = [now; BATCH];
        while staged < BATCH && sock.pending.len() + staged < in_flight {
            let Some(intended) = pacer.due(now, &tally.window) else {
                break;
            };
            let (bytes, _) = requests.get(sock.next_request.wrapping_add(staged));
            let Some(out) = slots
                .slot_mut(staged)
                .and_then(|slot| slot.get_mut(..bytes.len()))
            else {
                break;
            };
            if !tally.claim(intended) {
                break;
            }
            out.copy_from_slice(bytes);
            if requests.form == Form::UdpV8
                && let Some(field) = out.get_mut(4..8)
            {
                field.copy_from_slice(&id_after(sock.next_id, staged).to_le_bytes());
            }
            slots.set_len(staged, bytes.len());
            if let Some(slot) = intended_at.get_mut(staged) {
                *slot = intended;
            }
            pacer.advance();
            staged += 1;
        }
        if staged == 0 {
            break;
        }
        let sent = match mmsg::send(sock.socket.as_raw_fd(), slots, staged) {
            Ok(sent) => sent,
            // ECONNREFUSED from an earlier ICMP port-unreachable: the target is not there (yet).
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tally.result.errors.connection += 1;
                0
            }
            Err(e) => return Err(e),
        };
        tally.unclaim(intended_at.get(sent..staged).unwrap_or_default());
        let sent_at = Instant::now();
        for (k, &intended) in intended_at.iter().enumerate().take(sent) {
            tally.sent(intended, sent_at);
            sock.pending.push_back(Flight {
                intended,
                sent: sent_at,
                request: sock.next_request.wrapping_add(k),
                id: if requests.form == Form::UdpV8 {
                    id_after(sock.next_id, k)
                } else {
                    0
                },
            });
            sock.pacer.advance();
        }
        sock.next_request = sock.next_request.wrapping_add(sent);
        sock.next_id = id_after(sock.next_id, sent);
        // A full socket buffer: try again on the next turn, the schedule keeps its times.
        if sent < staged {
            break;
        }
    }
    Ok(())
}

/// The v8 request id `k` requests after `id` (ids are a per-socket sequence).
fn id_after(id: u32, k: usize) -> u32 {
    id.wrapping_add(u32::try_from(k).unwrap_or(0))
}

/// Reads every waiting reply and settles the requests they answer.
fn receive(
    sock: &mut Sock,
    requests: &Requests,
    slots: &mut Slots,
    tally: &mut Tally<'_>,
) -> io::Result<()> {
    loop {
        let count = match mmsg::recv(sock.socket.as_raw_fd(), slots) {
            Ok(0) => return Ok(()),
            Ok(count) => count,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tally.result.errors.connection += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        for i in 0..count {
            let reply = slots.get(i);
            match requests.form {
                Form::UdpV8 => settle_v8(sock, requests, reply, tally, now),
                _ => settle_text(sock, requests, reply, tally, now),
            }
        }
        if count < BATCH {
            return Ok(());
        }
    }
}

fn settle_v8(
    sock: &mut Sock,
    requests: &Requests,
    reply: &[u8],
    tally: &mut Tally<'_>,
    now: Instant,
) {
    let Some(id) = request::v8_id(reply) else {
        tally.result.errors.malformed += 1;
        return;
    };
    let Some(at) = sock.pending.iter().position(|f| f.id == id) else {
        // A reply to a request already timed out, or garbage.
        if request::check_v8(reply, id, 0) == Verdict::Malformed {
            tally.result.errors.malformed += 1;
        }
        return;
    };
    if let Some(flight) = sock.pending.remove(at) {
        let (_, assets) = requests.get(flight.request);
        tally.answered(&flight, now, request::check_v8(reply, id, assets.len()));
    }
}

fn settle_text(
    sock: &mut Sock,
    requests: &Requests,
    reply: &[u8],
    tally: &mut Tally<'_>,
    now: Instant,
) {
    let verdict_for = |flight: &Flight| request::check_json(reply, requests.get(flight.request).1);
    // Usually the oldest request; if it was lost, a later one.
    let matched = sock
        .pending
        .iter()
        .take(TEXT_REORDER_SPAN)
        .position(|f| verdict_for(f) == Verdict::Ok);
    match matched {
        Some(at) => {
            // The requests before it were lost; `sent − answered` counts them.
            sock.pending.drain(..at);
            if let Some(flight) = sock.pending.pop_front() {
                tally.answered(&flight, now, Verdict::Ok);
            }
        }
        None => {
            if let Some(flight) = sock.pending.pop_front() {
                let verdict = verdict_for(&flight);
                tally.answered(&flight, now, verdict);
            } else {
                tally.result.errors.malformed += 1;
            }
        }
    }
}
