//! One HTTP connection's buffers and state, and the logic both backends share: answer every
//! complete request in the read buffer, in order, into the write buffer; enforce the limits and
//! timeouts. The backends only move bytes in and out.
//!
//! Times passed in are the reactor's monotonic clock in ms (timeouts must not jump with the
//! wall clock); only `Env::fresh` carries the wall clock, for prices' ages.
//!
//! Buffers are allocated the first time a slab slot is used and kept when the connection ends,
//! so once warm a new connection allocates nothing. The read buffer holds one whole request at
//! most (an 8 KiB head and a 4 KiB body): a request is answered once all of it has arrived. The
//! write buffer starts at 16 KiB and only grows for the rare large bodies (`/assets`,
//! `/metrics`).
//!
//! A call only the side thread can answer (subscription management: it needs the store) leaves
//! the connection [`Deferred::Waiting`]: later requests on it wait their turn, in order, until
//! the answer comes (or [`DEFERRED_TIMEOUT_MS`] passes: 503).

use std::time::Instant;

use crate::metrics::{CloseReason, ReactorMetrics};
use crate::node::Node;
use crate::price::Freshness;
use crate::protocol::answer::ErrorCode;
use crate::protocol::http::request::{self, HeadError, MAX_BODY, MAX_HEAD, Method, Parsed};
use crate::protocol::http::response::{self, Persist, Status};
use crate::protocol::http::routes::{self, PortKind};
use crate::side::deferred::Answer;
use crate::usage::{AssetList, Meter, Protocol};

pub(crate) const WRITE_CAPACITY: usize = 16 * 1024;
/// Stop answering pipelined requests once this much output waits: the client must read.
const WRITE_HIGH_WATER: usize = 12 * 1024;
/// A deferred call not answered within this gets 503 (the store's own calls time out sooner).
pub(crate) const DEFERRED_TIMEOUT_MS: u64 = 15_000;

/// A call handed to the side thread, and its answer.
#[derive(Debug, Default)]
pub enum Deferred {
    #[default]
    None,
    /// Handed over; nothing after it on this connection is answered until it is.
    Waiting {
        ticket: u64,
        since_ms: u64,
        persist: Persist,
        head_only: bool,
        metered: Option<Metered>,
    },
    /// Answered; written as soon as the write buffer is free.
    Ready {
        answer: Box<Answer>,
        persist: Persist,
        head_only: bool,
        metered: Option<Metered>,
    },
}

/// A deferred call that is usage when answered (the usage report), like a report served at once.
#[derive(Clone, Copy, Debug)]
pub struct Metered {
    key_id: u64,
    since: std::time::Instant,
}

/// Timeouts, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// A started request must be complete within this (408 otherwise).
    pub read_ms: u64,
    /// A connection with nothing to do is closed after this.
    pub idle_ms: u64,
    /// Output must drain within this.
    pub write_ms: u64,
}

pub struct Conn {
    pub read: Box<[u8]>,
    pub read_len: usize,
    pub write: Vec<u8>,
    pub written: usize,
    pub port: PortKind,
    /// Close once the write buffer is flushed (error, `Connection: close`, draining, or the
    /// peer finished sending and everything it sent is answered).
    pub closing: bool,
    /// The peer closed its side: answer what is buffered, read nothing more.
    pub peer_closed: bool,
    /// Why it will close, once `closing`.
    pub close_reason: CloseReason,
    /// A call the side thread is answering.
    pub deferred: Deferred,
    /// Numbers this connection's deferred calls (a late answer to an earlier one is ignored).
    next_ticket: u64,
    /// When the first byte of an incomplete request arrived (0: none pending).
    request_started_ms: u64,
    pub last_active_ms: u64,
    /// When the current output started waiting to be written (0: nothing waiting).
    write_started_ms: u64,
}

/// What a reactor needs to answer requests, fixed for one batch.
pub(crate) struct Env<'a> {
    pub node: &'a Node,
    pub metrics: &'a ReactorMetrics,
    pub fresh: Freshness,
    /// Reusable buffer for response bodies.
    pub body: &'a mut Vec<u8>,
    /// When this batch's input arrived, for the latency histogram.
    pub arrived: Instant,
    pub draining: bool,
    /// Where answered requests' usage records go, and the assets of the one being answered.
    pub meter: &'a mut Meter,
    pub assets: &'a mut AssetList,
}

impl Conn {
    pub fn new(port: PortKind) -> Conn {
        Conn {
            read: vec![0u8; MAX_HEAD + MAX_BODY].into_boxed_slice(),
            read_len: 0,
            write: Vec::with_capacity(WRITE_CAPACITY),
            written: 0,
            port,
            closing: false,
            peer_closed: false,
            close_reason: CloseReason::Peer,
            deferred: Deferred::None,
            next_ticket: 0,
            request_started_ms: 0,
            last_active_ms: 0,
            write_started_ms: 0,
        }
    }

    /// Readies a (possibly reused) connection for a new client, keeping its buffers.
    pub fn reset(&mut self, port: PortKind, now_ms: u64) {
        self.read_len = 0;
        self.write.clear();
        if self.write.capacity() > 4 * WRITE_CAPACITY {
            self.write.shrink_to(WRITE_CAPACITY);
        }
        self.written = 0;
        self.port = port;
        self.closing = false;
        self.peer_closed = false;
        self.close_reason = CloseReason::Peer;
        self.deferred = Deferred::None;
        self.request_started_ms = 0;
        self.last_active_ms = now_ms;
        self.write_started_ms = 0;
    }

    /// Room left for the next read.
    pub(crate) fn read_space(&mut self) -> &mut [u8] {
        self.read.get_mut(self.read_len..).unwrap_or_default()
    }

    /// Output not yet written.
    pub(crate) fn pending_output(&self) -> &[u8] {
        self.write.get(self.written..).unwrap_or_default()
    }

    pub(crate) fn has_output(&self) -> bool {
        self.written < self.write.len()
    }

    /// Records `n` bytes read into [`Conn::read_space`].
    pub(crate) fn on_read(&mut self, n: usize, now_ms: u64) {
        self.read_len = (self.read_len + n).min(self.read.len());
        self.last_active_ms = now_ms;
    }

    /// Records `n` bytes written from [`Conn::pending_output`]; true once all is written.
    pub(crate) fn on_written(&mut self, n: usize, now_ms: u64) -> bool {
        self.written = (self.written + n).min(self.write.len());
        self.last_active_ms = now_ms;
        if self.written < self.write.len() {
            return false;
        }
        self.write.clear();
        self.written = 0;
        self.write_started_ms = 0;
        true
    }

    /// True if the read buffer can take more bytes and the connection still wants them. Not
    /// while a deferred call is out: with no receive in flight, its answer can be followed at
    /// once by the requests buffered behind it (answering moves the read buffer's bytes).
    pub(crate) fn wants_read(&self) -> bool {
        !self.closing
            && !self.peer_closed
            && self.read_len < self.read.len()
            && matches!(self.deferred, Deferred::None)
    }

    /// Answers every complete request buffered, in order, while output has room. Stops at an
    /// incomplete request (waiting for more bytes) or after a response that closes.
    pub fn process(&mut self, env: &mut Env<'_>, now_ms: u64) -> Served {
        let mut served = Served::default();
        let mut consumed = 0;
        while !self.closing && self.write.len() < WRITE_HIGH_WATER {
            match std::mem::take(&mut self.deferred) {
                Deferred::None => {}
                Deferred::Ready {
                    answer,
                    persist,
                    head_only,
                    metered,
                } => {
                    self.write_deferred(env, &answer, persist, head_only, metered, now_ms);
                    served.ok += 1;
                    continue;
                }
                waiting @ Deferred::Waiting { .. } => {
                    self.deferred = waiting;
                    break;
                }
            }
            let available = self.read_len - consumed;
            if available == 0 {
                self.request_started_ms = 0;
                break;
            }
            let data = self.read.get(consumed..self.read_len).unwrap_or_default();
            let head = match request::parse(data) {
                Parsed::Partial => {
                    if self.request_started_ms == 0 {
                        self.request_started_ms = now_ms;
                    }
                    break;
                }
                Parsed::Error(error) => {
                    let (code, message): (ErrorCode, &[u8]) = match error {
                        HeadError::Malformed(why) => (ErrorCode::BadRequest, why.as_bytes()),
                        HeadError::UriTooLong => (
                            ErrorCode::UriTooLong,
                            b"request target longer than 2048 bytes",
                        ),
                        HeadError::HeadersTooLarge => (
                            ErrorCode::HeadersTooLarge,
                            b"request head larger than 8 KiB or over 32 headers",
                        ),
                        HeadError::BodyTooLarge => (
                            ErrorCode::PayloadTooLarge,
                            b"request body larger than 4 KiB",
                        ),
                    };
                    self.fail(env, now_ms, code, message);
                    served.ok += 1; // the client's fault, not the server's
                    consumed = self.read_len;
                    break;
                }
                Parsed::Complete(head) => head,
            };
            // A body still arriving is a request not yet complete: the read timeout runs, so
            // a slow body cannot hold the connection for the idle timeout.
            let whole = head.head_len + head.content_length;
            let Some(request_body) = data.get(head.head_len..whole) else {
                if self.request_started_ms == 0 {
                    self.request_started_ms = now_ms;
                }
                break;
            };
            consumed += whole;
            self.request_started_ms = 0;
            let persist = if !head.keep_alive || env.draining {
                Persist::Close
            } else if head.http10 {
                Persist::KeepAlive10
            } else {
                Persist::KeepAlive
            };
            let head_only = head.method == Method::Head;
            let reply =
                match routes::deferred_call(&head, env.node, self.port, request_body, env.body) {
                    // Like a report served at once, it is refused when it could not be metered.
                    Some(Ok(call)) if call.is_usage() && !env.meter.has_room() => {
                        env.metrics.usage_dropped.inc();
                        routes::metering_behind(env.body)
                    }
                    Some(Ok(mut call)) => {
                        self.next_ticket += 1;
                        call.waiter.ticket = self.next_ticket;
                        self.deferred = Deferred::Waiting {
                            ticket: self.next_ticket,
                            since_ms: now_ms,
                            persist,
                            head_only,
                            metered: call.is_usage().then_some(Metered {
                                key_id: call.owner,
                                since: env.arrived,
                            }),
                        };
                        served.deferred = Some(call);
                        break;
                    }
                    Some(Err(refused)) => refused,
                    None => {
                        env.assets.room = env.meter.has_room();
                        routes::respond(&head, env.node, env.fresh, self.port, env.body, env.assets)
                    }
                };

            if !env.assets.room && reply.error == Some(ErrorCode::Overloaded) {
                env.metrics.usage_dropped.inc();
            }
            if let Some(refused) = reply.denied {
                env.metrics.deny(refused);
            }
            // A request is metered when it got at least one price (a `/prices` list with an
            // unknown asset still delivered the others).
            if !env.assets.is_empty() && reply.status == Status::Ok && head.method == Method::Get {
                let latency_ns = u64::try_from(env.arrived.elapsed().as_nanos()).unwrap_or(0);
                if env.meter.record(
                    reply.key_id,
                    reply.protocol,
                    env.fresh.now_ms,
                    latency_ns,
                    env.assets.as_slice(),
                ) {
                    env.metrics.usage_recorded.inc();
                } else {
                    env.metrics.usage_dropped.inc();
                }
            }
            if self.write_started_ms == 0 {
                self.write_started_ms = now_ms;
            }
            response::write(
                &mut self.write,
                reply.status,
                reply.content_type,
                env.body,
                persist,
                head_only,
                reply.extra,
            );
            env.metrics.http_response(reply.status);
            // Only the server failing to keep up is a failure to the governor: not a client's
            // error, not a price that is not there yet.
            if reply.error == Some(ErrorCode::Overloaded) {
                served.failed += 1;
            } else {
                served.ok += 1;
            }
            if let Some(code) = reply.error {
                env.metrics.http_error(code);
            }
            env.metrics
                .http_latency
                .record_ns(u64::try_from(env.arrived.elapsed().as_nanos()).unwrap_or(u64::MAX));
            if persist == Persist::Close {
                self.closing = true;
                self.close_reason = CloseReason::Peer;
            }
        }
        served.blocked =
            !self.closing && self.write.len() >= WRITE_HIGH_WATER && consumed < self.read_len;
        if self.peer_closed && !served.blocked && !self.closing {
            // Everything the peer sent is answered (a trailing partial request never will be).
            self.closing = true;
            self.close_reason = CloseReason::Peer;
        }
        // Keep the unanswered bytes at the front of the buffer.
        if consumed > 0 {
            self.read.copy_within(consumed..self.read_len, 0);
            self.read_len -= consumed;
        }
        served
    }

    /// The side thread's answer to this connection's deferred call `ticket` (a stale one is
    /// dropped): written at once when `may_write` (no send in flight), else at the next
    /// [`Conn::process`]. True when output was added.
    pub(crate) fn answered(
        &mut self,
        env: &mut Env<'_>,
        ticket: u64,
        answer: Box<Answer>,
        may_write: bool,
        now_ms: u64,
    ) -> bool {
        let Deferred::Waiting {
            ticket: waiting,
            persist,
            head_only,
            metered,
            ..
        } = self.deferred
        else {
            return false;
        };
        if ticket != waiting {
            return false;
        }
        if may_write {
            self.deferred = Deferred::None;
            self.write_deferred(env, &answer, persist, head_only, metered, now_ms);
            true
        } else {
            self.deferred = Deferred::Ready {
                answer,
                persist,
                head_only,
                metered,
            };
            false
        }
    }

    /// A waiting call the side thread did not answer in time: 503, and later answers dropped.
    pub(crate) fn deferred_timeout(&mut self, env: &mut Env<'_>, now_ms: u64) {
        let Deferred::Waiting {
            persist, head_only, ..
        } = self.deferred
        else {
            return;
        };
        self.deferred = Deferred::None;
        let answer = Answer::unavailable("the store did not answer in time; try again");
        self.write_deferred(env, &answer, persist, head_only, None, now_ms);
    }

    fn write_deferred(
        &mut self,
        env: &mut Env<'_>,
        answer: &Answer,
        persist: Persist,
        head_only: bool,
        metered: Option<Metered>,
        now_ms: u64,
    ) {
        if let Some(metered) = metered.filter(|_| answer.status == Status::Ok) {
            let latency_ns = u64::try_from(metered.since.elapsed().as_nanos()).unwrap_or(0);
            let all = [crate::usage::ALL_ASSETS];
            if env.meter.record(
                metered.key_id,
                Protocol::HttpReport,
                env.fresh.now_ms,
                latency_ns,
                &all,
            ) {
                env.metrics.usage_recorded.inc();
            } else {
                env.metrics.usage_dropped.inc();
            }
        }
        self.start_output(now_ms);
        response::write(
            &mut self.write,
            answer.status,
            answer.content_type,
            &answer.body,
            persist,
            head_only,
            answer.extra,
        );
        env.metrics.http_response(answer.status);
        if let Some(code) = answer.error {
            env.metrics.http_error(code);
        }
        if persist == Persist::Close {
            self.closing = true;
            self.close_reason = CloseReason::Peer;
        }
    }

    /// Answers with an error and closes after it is written.
    pub fn fail(&mut self, env: &mut Env<'_>, now_ms: u64, code: ErrorCode, message: &[u8]) {
        self.start_output(now_ms);
        response::write_error_response(
            &mut self.write,
            env.body,
            code,
            message,
            Persist::Close,
            b"",
        );
        env.metrics.http_response(response::status_of(code));
        env.metrics.http_error(code);
        self.closing = true;
        self.close_reason = if code == ErrorCode::RequestTimeout {
            CloseReason::Timeout
        } else {
            CloseReason::Error
        };
    }

    fn start_output(&mut self, now_ms: u64) {
        if self.write_started_ms == 0 {
            self.write_started_ms = now_ms;
        }
    }

    /// The periodic check: what this connection's clock says must happen now.
    pub(crate) fn check_timers(&self, now_ms: u64, timeouts: Timeouts) -> Timer {
        if self.write_started_ms != 0
            && now_ms.saturating_sub(self.write_started_ms) > timeouts.write_ms
        {
            return Timer::Close(CloseReason::Timeout);
        }
        if self.closing {
            return Timer::None;
        }
        if let Deferred::Waiting { since_ms, .. } = self.deferred {
            return if now_ms.saturating_sub(since_ms) > DEFERRED_TIMEOUT_MS {
                Timer::DeferredTimeout
            } else {
                Timer::None
            };
        }
        if self.request_started_ms != 0
            && now_ms.saturating_sub(self.request_started_ms) > timeouts.read_ms
        {
            return Timer::RequestTimeout;
        }
        if self.read_len == 0
            && !self.has_output()
            && now_ms.saturating_sub(self.last_active_ms) > timeouts.idle_ms
        {
            return Timer::Close(CloseReason::Idle);
        }
        Timer::None
    }

    /// An idle keep-alive connection (nothing buffered either way) can be closed at once when
    /// the server drains.
    pub(crate) fn is_idle(&self) -> bool {
        self.read_len == 0 && !self.has_output() && matches!(self.deferred, Deferred::None)
    }
}

/// Responses written by one call to [`Conn::process`], for the connection governor, and the
/// call it left for the side thread.
#[derive(Debug, Default)]
pub struct Served {
    /// Answered.
    pub ok: u32,
    /// Refused because the node could not keep up (`503 overloaded`).
    pub failed: u32,
    /// Stopped because output is full while whole requests still wait in the read buffer:
    /// write first, then call [`Conn::process`] again (and read nothing meanwhile).
    pub blocked: bool,
    /// A call for the side thread (its waiter's ticket set; reactor and connection are the
    /// caller's to fill in).
    pub deferred: Option<Box<crate::side::deferred::Call>>,
}

/// What a connection's timers ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    None,
    /// The request did not arrive whole in time: answer 408 and close.
    RequestTimeout,
    /// The side thread did not answer a deferred call in time: answer 503.
    DeferredTimeout,
    Close(CloseReason),
}

/// Answers a request that timed out.
pub fn request_timeout(conn: &mut Conn, env: &mut Env<'_>, now_ms: u64) {
    conn.fail(
        env,
        now_ms,
        ErrorCode::RequestTimeout,
        b"request not completed in time",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Access;
    use crate::price::PriceTable;
    use crate::side::SideLink;
    use beast_core::Symbol;

    fn node() -> Node {
        let (table, mut writer) = PriceTable::new(4);
        writer.add_asset(&Symbol::parse(b"BTC").unwrap()).unwrap();
        Node::new(
            "test".into(),
            table,
            std::sync::Arc::new(Access::new(false, 1)),
            SideLink::detached(),
            9_000,
            "test",
            1,
        )
    }

    fn feed(conn: &mut Conn, node: &Node, bytes: &[u8], now_ms: u64) -> String {
        conn.read_space()[..bytes.len()].copy_from_slice(bytes);
        conn.on_read(bytes.len(), now_ms);
        let mut body = Vec::new();
        let (mut meter, mut assets) = (Meter::off(), AssetList::default());
        let mut env = Env {
            node,
            metrics: &node.reactors[0],
            fresh: node.freshness(now_ms),
            body: &mut body,
            arrived: Instant::now(),
            draining: false,
            meter: &mut meter,
            assets: &mut assets,
        };
        conn.process(&mut env, now_ms);
        let out = String::from_utf8_lossy(conn.pending_output()).into_owned();
        conn.on_written(conn.pending_output().len(), now_ms);
        out
    }

    #[test]
    fn answers_pipelined_requests_in_order() {
        let node = node();
        let mut conn = Conn::new(PortKind::Api);
        let out = feed(&mut conn, &node, b"GET /price?asset=BTC HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /price?asset=XYZ HTTP/1.1\r\n\r\n", 1);
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["503", "404", "404"]);
        assert!(!conn.closing);
    }

    #[test]
    fn waits_for_a_whole_request_and_times_out_a_slow_one() {
        let node = node();
        let mut conn = Conn::new(PortKind::Api);
        let timeouts = Timeouts {
            read_ms: 5_000,
            idle_ms: 300_000,
            write_ms: 5_000,
        };
        assert_eq!(
            feed(&mut conn, &node, b"GET /price?asset=BTC HT", 1_000),
            ""
        );
        assert_eq!(conn.check_timers(5_999, timeouts), Timer::None);
        assert_eq!(feed(&mut conn, &node, b"TP/1.1\r\nHost", 2_000), "");
        assert_eq!(
            conn.check_timers(6_001, timeouts),
            Timer::RequestTimeout,
            "the clock runs from the first byte"
        );
        let out = feed(&mut conn, &node, b": x\r\n\r\n", 3_000);
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        assert_eq!(conn.check_timers(6_001, timeouts), Timer::None);
        assert_eq!(
            conn.check_timers(303_001, timeouts),
            Timer::Close(CloseReason::Idle)
        );
    }

    #[test]
    fn waits_for_whole_bodies_and_closes_when_asked() {
        let node = node();
        let mut conn = Conn::new(PortKind::Api);
        let out = feed(
            &mut conn,
            &node,
            b"POST /price HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel",
            1,
        );
        assert_eq!(out, "", "answered once the body is whole");
        let out = feed(&mut conn, &node, b"loGET /health HTTP/1.0\r\n\r\n", 2);
        assert!(out.starts_with("HTTP/1.1 405"), "{out}");
        let health = out.rfind("HTTP/1.1 ").unwrap();
        assert!(
            out[health..].starts_with("HTTP/1.1 503") && out.contains("Connection: close"),
            "{out}"
        );
        assert!(conn.closing);
    }

    #[test]
    fn malformed_input_closes_after_the_error() {
        let node = node();
        let mut conn = Conn::new(PortKind::Api);
        let out = feed(&mut conn, &node, b"\x16\x03\x01garbage\r\n\r\n", 1);
        assert!(
            out.starts_with("HTTP/1.1 400") && out.contains("Connection: close"),
            "{out}"
        );
        assert!(conn.closing);
        assert_eq!(conn.close_reason, CloseReason::Error);
    }
}
