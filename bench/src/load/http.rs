//! The HTTP/1.1 worker: keep-alive connections on one epoll per thread, up to `window`
//! requests pipelined on each, responses matched in order and framed by Content-Length.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::Worker;
use super::flight::{Flight, Pacer, Tally, expire};
use super::request::{self, Requests, Verdict};
use super::timer::event_loop;

/// Largest response accepted (head and body).
const MAX_RESPONSE: usize = 64 << 10;
/// Bytes read per system call.
const READ_CHUNK: usize = 16 << 10;
const SWEEP_EVERY: Duration = Duration::from_millis(5);
const TIMER: Token = Token(usize::MAX);

/// Opens `count` connections to `target`.
pub fn connect(target: SocketAddr, count: usize) -> io::Result<Vec<TcpStream>> {
    (0..count).map(|_| open(target)).collect()
}

fn open(target: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

struct Conn {
    stream: mio::net::TcpStream,
    /// Request bytes not yet written.
    out: Vec<u8>,
    input: Vec<u8>,
    pending: VecDeque<Flight>,
    pacer: Pacer,
    next_request: usize,
    /// Closed and not reopened: the server refused a new connection.
    dead: bool,
}

pub(super) fn drive(
    streams: Vec<TcpStream>,
    worker: &Worker<'_>,
    tally: &mut Tally<'_>,
) -> io::Result<()> {
    let (spec, requests, window) = (worker.spec, worker.requests, worker.window);
    let depth = worker.window_per_socket();
    let (mut poll, mut timer) = event_loop(TIMER)?;
    let count = streams.len();
    let mut conns = Vec::with_capacity(count);
    for (i, stream) in streams.into_iter().enumerate() {
        let mut stream = mio::net::TcpStream::from_std(stream);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Conn {
            stream,
            out: Vec::with_capacity(4096),
            input: Vec::with_capacity(MAX_RESPONSE),
            pending: VecDeque::with_capacity(depth),
            pacer: worker.pacer(i, count),
            next_request: worker.first_request(i),
            dead: false,
        });
    }
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        let now = Instant::now();
        let sending_over = tally.sending_over(now);
        let idle = |c: &Conn| c.dead || c.pending.is_empty();
        if now >= window.drain_until
            || (sending_over && conns.iter().all(idle))
            || conns.iter().all(|c| c.dead)
        {
            return Ok(());
        }
        if now >= next_sweep {
            for (i, conn) in conns.iter_mut().enumerate() {
                // A response overdue on a connection leaves the ones behind it unmatchable:
                // count them all and start the connection afresh.
                if expire(&mut conn.pending, now, spec.timeout, tally) > 0 {
                    reopen(conn, &poll, Token(i), spec.target, tally)?;
                }
            }
            next_sweep = now + SWEEP_EVERY;
        }
        let mut wake = next_sweep.min(window.drain_until);
        if !sending_over {
            for (i, conn) in conns.iter_mut().enumerate() {
                if conn.dead {
                    continue;
                }
                if let Err(e) = fill(conn, depth, requests, tally, now) {
                    failed(conn, &poll, Token(i), spec.target, tally, &e)?;
                }
                if conn.pending.len() < depth
                    && let Some(next) = conn.pacer.next()
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
        let now = Instant::now();
        for event in &events {
            if event.token() == TIMER {
                timer.clear();
                continue;
            }
            let token = event.token();
            let Some(conn) = conns.get_mut(token.0) else {
                continue;
            };
            if conn.dead {
                continue;
            }
            let outcome =
                flush(conn).and_then(|()| receive(conn, requests, &mut chunk, tally, now));
            if let Err(e) = outcome {
                failed(conn, &poll, token, spec.target, tally, &e)?;
            }
        }
        tally.report();
    }
}

/// Queues requests while the pipeline has room and one is due, then writes what it can.
fn fill(
    conn: &mut Conn,
    depth: usize,
    requests: &Requests,
    tally: &mut Tally<'_>,
    now: Instant,
) -> io::Result<()> {
    let mut queued = false;
    while conn.pending.len() < depth && !tally.sending_over(now) {
        let Some(intended) = conn.pacer.due(now, &tally.window) else {
            break;
        };
        if !tally.claim(intended) {
            break;
        }
        let (bytes, _) = requests.get(conn.next_request);
        conn.out.extend_from_slice(bytes);
        // Stamped as sent when queued: the write below follows at once, and a full socket
        // buffer is the server's backpressure, which the latency should show.
        tally.sent(intended, now);
        conn.pending.push_back(Flight {
            intended,
            sent: now,
            request: conn.next_request,
            id: 0,
        });
        conn.pacer.advance();
        conn.next_request = conn.next_request.wrapping_add(1);
        queued = true;
    }
    if queued { flush(conn) } else { Ok(()) }
}

/// Writes queued request bytes until done or the socket is full.
fn flush(conn: &mut Conn) -> io::Result<()> {
    while !conn.out.is_empty() {
        match conn.stream.write(&conn.out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what arrived and settles every complete response.
fn receive(
    conn: &mut Conn,
    requests: &Requests,
    chunk: &mut [u8],
    tally: &mut Tally<'_>,
    now: Instant,
) -> io::Result<()> {
    loop {
        match conn.stream.read(chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                conn.input
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                settle(conn, requests, tally, now)?;
                // A short read emptied the socket, and bytes arriving later raise a new
                // edge: skip the read that would only say WouldBlock (a system call per
                // response saved, as wrk does).
                if n < chunk.len() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn settle(
    conn: &mut Conn,
    requests: &Requests,
    tally: &mut Tally<'_>,
    now: Instant,
) -> io::Result<()> {
    let mut consumed = 0;
    let mut close = false;
    while let Some(rest) = conn.input.get(consumed..) {
        let response = match parse_response(rest) {
            Parsed::Complete(response) => response,
            Parsed::Partial => break,
            Parsed::Invalid => {
                tally.result.errors.malformed += 1;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed HTTP response",
                ));
            }
        };
        consumed += response.len;
        close |= response.close;
        let Some(flight) = conn.pending.pop_front() else {
            tally.result.errors.malformed += 1;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response to no request",
            ));
        };
        let (_, assets) = requests.get(flight.request);
        let verdict = match response.status {
            200 if assets.is_empty() && !response.body.is_empty() => Verdict::Ok,
            200 => request::check_json(response.body, assets),
            503 if response.body.windows(10).any(|w| w == b"overloaded") => Verdict::Overloaded,
            status => Verdict::Status(status),
        };
        tally.answered(&flight, now, verdict);
    }
    conn.input.drain(..consumed);
    if conn.input.len() > MAX_RESPONSE {
        tally.result.errors.malformed += 1;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "response too large",
        ));
    }
    if close {
        return Err(io::ErrorKind::ConnectionAborted.into());
    }
    Ok(())
}

/// The connection broke: what was in flight on it is lost; open a new one.
fn failed(
    conn: &mut Conn,
    poll: &Poll,
    token: Token,
    target: SocketAddr,
    tally: &mut Tally<'_>,
    error: &io::Error,
) -> io::Result<()> {
    for flight in conn.pending.drain(..) {
        tally.lost_connection(&flight);
    }
    // The server closing after a `Connection: close` answer is normal; anything else counts.
    if error.kind() != io::ErrorKind::ConnectionAborted
        && error.kind() != io::ErrorKind::UnexpectedEof
    {
        tally.result.errors.connection += 1;
    }
    reopen(conn, poll, token, target, tally)
}

fn reopen(
    conn: &mut Conn,
    poll: &Poll,
    token: Token,
    target: SocketAddr,
    tally: &mut Tally<'_>,
) -> io::Result<()> {
    for flight in conn.pending.drain(..) {
        tally.lost_connection(&flight);
    }
    let _ = poll.registry().deregister(&mut conn.stream);
    conn.out.clear();
    conn.input.clear();
    match open(target) {
        Ok(stream) => {
            conn.stream = mio::net::TcpStream::from_std(stream);
            poll.registry().register(
                &mut conn.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )
        }
        Err(_) => {
            tally.result.errors.connection += 1;
            conn.dead = true;
            Ok(())
        }
    }
}

struct Response<'a> {
    status: u16,
    body: &'a [u8],
    /// Bytes of head and body.
    len: usize,
    close: bool,
}

enum Parsed<'a> {
    Complete(Response<'a>),
    Partial,
    Invalid,
}

/// Frames one response: status line, headers, Content-Length body (the only framing a price
/// server needs; chunked bodies are reported as malformed). Bytes, not text: this runs once per
/// response and must cost little next to the server's work.
fn parse_response(bytes: &[u8]) -> Parsed<'_> {
    let Some(end) = memchr::memmem::find(bytes, b"\r\n\r\n") else {
        return if bytes.len() > MAX_RESPONSE {
            Parsed::Invalid
        } else {
            Parsed::Partial
        };
    };
    let head_len = end + 4;
    let head = bytes.get(..end).unwrap_or_default();
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status = lines
        .next()
        .filter(|line| line.starts_with(b"HTTP/1."))
        .and_then(|line| line.get(9..12))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else {
        return Parsed::Invalid;
    };
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (
            line.get(..colon).unwrap_or_default(),
            line.get(colon + 1..).unwrap_or_default().trim_ascii(),
        );
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok());
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Invalid;
        }
    }
    let Some(body_len) = content_length.filter(|&n| n <= MAX_RESPONSE) else {
        return Parsed::Invalid;
    };
    match bytes.get(head_len..head_len + body_len) {
        Some(body) => Parsed::Complete(Response {
            status,
            body,
            len: head_len + body_len,
            close,
        }),
        None => Parsed::Partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1";
        let Parsed::Complete(r) = parse_response(ok) else {
            panic!("complete")
        };
        assert_eq!(
            (r.status, r.body, r.len, r.close),
            (200, &b"{}"[..], 40, false)
        );
        let cases: &[(&[u8], &str)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", "partial"),
            (b"HTTP/1.1 200 OK\r\nContent-Le", "partial"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "invalid",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", "invalid"),
            (b"SSH-2.0\r\n\r\n", "invalid"),
            (
                b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
                "close",
            ),
        ];
        for (bytes, expected) in cases {
            let got = match parse_response(bytes) {
                Parsed::Complete(r) if r.close => "close",
                Parsed::Complete(_) => "complete",
                Parsed::Partial => "partial",
                Parsed::Invalid => "invalid",
            };
            assert_eq!(got, *expected, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
