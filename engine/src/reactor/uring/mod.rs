//! The io_uring reactor: one ring per thread (`SINGLE_ISSUER | DEFER_TASKRUN`), so completions
//! run only when this thread asks for them and nothing is shared with other cores.
//!
//! - UDP: one multishot `recvmsg` per socket into a provided-buffer ring; every reply is a
//!   `send` with the peer address, written straight into a preallocated send slot; all replies
//!   of a turn go to the kernel in one `io_uring_enter`. A multishot that ends (no `F_MORE`,
//!   e.g. on `ENOBUFS` when every buffer is in use) is re-armed; `ENOBUFS` is counted.
//! - TCP: one multishot `accept` per listener; each connection then alternates a single `recv`
//!   into its fixed read buffer and a `send` from its write buffer (both may be in flight at
//!   once, on different buffers).
//! - Timers (idle, slowloris, write timeout, governor) are swept every 100 ms; the wait for
//!   completions is bounded by that period.

#![allow(
    unsafe_code,
    reason = "io_uring submissions hand the kernel pointers into our buffers"
)]

mod bufring;

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use self::bufring::BufRing;
use super::conn::{self, Conn, Env, Timer};
use super::governor::Governor;
use super::slab::{Key, Slab};
use super::sockets::Listener;
use super::stall::StallDetector;
use super::{REJECT_OVERLOADED, ReactorSpec, Waker};
use crate::metrics::{CloseReason, ReactorMetrics, UdpDrop};
use crate::node::{Node, wall_ms};
use crate::protocol::udp::{self, MAX_REPLY};
use crate::usage::{AssetList, Meter};

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
const UDP_BUFFERS: u16 = 2048;
const UDP_BUFFER_LEN: usize = 2048;
const BUFFER_GROUP: u16 = 1;
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Completions copied out of the ring per pass.
const BATCH: usize = 512;

/// What a submission was for; packed into its user data with an index and a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    UdpRecv = 1,
    UdpSend = 2,
    Accept = 3,
    Recv = 4,
    Send = 5,
    Cancel = 6,
    Wake = 7,
    Reject = 8,
}

fn user_data(op: Op, index: impl Into<u64>, generation: u32) -> u64 {
    (op as u64) << 56 | (index.into() & 0x00ff_ffff) << 32 | u64::from(generation)
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "fields are masked to their widths"
)]
fn decode(data: u64) -> (Option<Op>, u32, u32) {
    let op = match (data >> 56) as u8 {
        1 => Some(Op::UdpRecv),
        2 => Some(Op::UdpSend),
        3 => Some(Op::Accept),
        4 => Some(Op::Recv),
        5 => Some(Op::Send),
        6 => Some(Op::Cancel),
        7 => Some(Op::Wake),
        8 => Some(Op::Reject),
        _ => None,
    };
    (op, ((data >> 32) & 0x00ff_ffff) as u32, data as u32)
}

/// Probes what this reactor needs; the error explains why io_uring cannot be used.
pub fn probe() -> std::io::Result<()> {
    let ring = build_ring(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let needed = [
        opcode::RecvMsg::CODE,
        opcode::Send::CODE,
        opcode::Recv::CODE,
        opcode::Accept::CODE,
        opcode::AsyncCancel::CODE,
    ];
    if needed.iter().any(|code| !probe.is_supported(*code)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "kernel lacks a needed io_uring operation",
        ));
    }
    let buffers = BufRing::new(&ring, 2, 64, BUFFER_GROUP)?;
    drop(buffers);
    Ok(())
}

fn build_ring(entries: u32) -> std::io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(CQ_ENTRIES.max(entries * 2))
        .setup_submit_all()
        .build(entries)
}

/// A UDP reply waiting for the kernel: its bytes and its destination.
struct SendSlot {
    buf: [u8; MAX_REPLY],
    addr: libc::sockaddr_storage,
    addr_len: libc::socklen_t,
}

struct UdpPort {
    /// Owns the descriptor registered with the ring at this port's index.
    #[allow(dead_code, reason = "held open for the ring, which uses it by index")]
    socket: UdpSocket,
    /// Template for multishot recvmsg: only the name length matters. Boxed: the kernel keeps
    /// its address while the operation is armed.
    msghdr: Box<libc::msghdr>,
}

/// A connection and the operations it has in flight.
struct ConnIo {
    conn: Conn,
    fd: Option<OwnedFd>,
    recv_in_flight: bool,
    send_in_flight: bool,
    /// Input arrived while a send was in flight: answer it when the send completes.
    input_pending: bool,
    /// Torn down: waiting for in-flight operations before the slot is freed.
    retired: bool,
}

pub struct Reactor {
    // Dropped first: the kernel must be done with every buffer below before they go.
    ring: IoUring,
    buffers: BufRing,
    udp: Vec<UdpPort>,
    listeners: Vec<Listener>,
    accepting: Vec<bool>,
    sends: Box<[SendSlot]>,
    free_sends: Vec<u32>,
    /// Slots whose send was queued this turn: free once the next submission has returned.
    sent: Vec<u32>,
    /// Datagrams answered in the current batch of completions, for the latency histogram.
    udp_answered: u64,
    conns: Slab<ConnIo>,
    governor: Governor,
    waker: Waker,
    wake_buf: Box<[u8; 8]>,
    body: Vec<u8>,
    batch: Box<[(u64, i32, u32)]>,
    spec_index: usize,
    node: std::sync::Arc<Node>,
    limits: super::Limits,
    stall: StallDetector,
    draining: Option<Instant>,
    /// Submissions whose final completion has not arrived yet.
    in_flight: usize,
    meter: Meter,
    assets: AssetList,
}

impl Reactor {
    pub fn new(spec: ReactorSpec) -> std::io::Result<Reactor> {
        let ring = build_ring(SQ_ENTRIES)?;
        let buffers = BufRing::new(&ring, UDP_BUFFERS, UDP_BUFFER_LEN, BUFFER_GROUP)?;
        // Registered descriptors spare the kernel a file lookup and reference per operation.
        let udp_fds: Vec<RawFd> = spec.sockets.udp.iter().map(AsRawFd::as_raw_fd).collect();
        ring.submitter().register_files(&udp_fds)?;
        let udp = spec
            .sockets
            .udp
            .into_iter()
            .map(|socket| {
                // SAFETY: msghdr is plain old data; all-zero is its empty value.
                let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
                msghdr.msg_namelen =
                    libc::socklen_t::try_from(size_of::<libc::sockaddr_storage>()).unwrap_or(128);
                UdpPort { socket, msghdr }
            })
            .collect();
        let slots = spec.limits.udp_send_slots.max(16);
        let sends = (0..slots)
            .map(|_| SendSlot {
                buf: [0; MAX_REPLY],
                // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
                addr: unsafe { std::mem::zeroed() },
                addr_len: 0,
            })
            .collect();
        let accepting = vec![false; spec.sockets.tcp.len()];
        Ok(Reactor {
            ring,
            buffers,
            udp,
            listeners: spec.sockets.tcp,
            accepting,
            sends,
            free_sends: (0..u32::try_from(slots).unwrap_or(u32::MAX))
                .rev()
                .collect(),
            sent: Vec::with_capacity(slots),
            udp_answered: 0,
            conns: Slab::with_capacity(spec.limits.max_connections + super::HEALTH_CONNECTIONS),
            governor: Governor::new(spec.limits.max_connections, spec.limits.success_threshold),
            waker: spec.waker,
            wake_buf: Box::new([0; 8]),
            body: Vec::with_capacity(64 * 1024),
            batch: vec![(0, 0, 0); BATCH].into_boxed_slice(),
            spec_index: spec.index,
            stall: StallDetector::new(spec.limits.stall_threshold),
            node: spec.node,
            limits: spec.limits,
            draining: None,
            in_flight: 0,
            meter: spec.meter,
            assets: AssetList::default(),
        })
    }

    fn metrics(&self) -> &ReactorMetrics {
        // Every reactor index has its metrics; the fallback only guards a misconfigured node.
        self.node.metrics(self.spec_index)
    }

    /// Runs until shutdown has drained every connection (or the grace period ran out).
    pub fn run(mut self) -> std::io::Result<()> {
        for index in 0..self.udp.len() {
            self.arm_udp(index);
        }
        for index in 0..self.listeners.len() {
            self.arm_accept(index);
        }
        self.arm_wake();
        self.metrics()
            .connection_limit
            .set(self.governor.limit() as u64);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let wait = next_sweep
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let timespec = types::Timespec::from(wait);
            let args = types::SubmitArgs::new().timespec(&timespec);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                    ) => {}
                Err(e) => return Err(e),
            }
            // Every send queued last turn has been issued by that submission.
            self.free_sends.append(&mut self.sent);
            let started = Instant::now();
            let now_ms = wall_ms();
            let mut events = 0;
            loop {
                let n = self.take_completions();
                if n == 0 {
                    break;
                }
                events += n;
                for i in 0..n {
                    if let Some(&(data, result, flags)) = self.batch.get(i) {
                        self.complete(data, result, flags, started, now_ms);
                    }
                }
                // One clock read per batch: every datagram in it waited this long at most.
                let answered = std::mem::take(&mut self.udp_answered);
                if answered > 0 {
                    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    self.node
                        .metrics(self.spec_index)
                        .udp_latency
                        .record_many_ns(ns, answered);
                }
            }
            self.buffers.publish();
            self.metrics().completions.add(events as u64);
            if started >= next_sweep {
                self.sweep(now_ms);
                next_sweep = started + SWEEP_EVERY;
            }
            let metrics = self.node.metrics(self.spec_index);
            self.stall
                .turn_ended(self.spec_index, started, events, metrics);
            if self.drained() {
                break;
            }
        }
        self.finish();
        Ok(())
    }

    /// Copies up to [`BATCH`] completions out of the ring.
    fn take_completions(&mut self) -> usize {
        let mut cq = self.ring.completion();
        cq.sync();
        let mut n = 0;
        for (slot, cqe) in self.batch.iter_mut().zip(&mut cq) {
            *slot = (cqe.user_data(), cqe.result(), cqe.flags());
            n += 1;
        }
        n
    }

    fn push(&mut self, entry: &squeue::Entry) {
        self.in_flight += 1;
        self.push_uncounted(entry);
    }

    /// Queues an entry whose success posts no completion (`SKIP_SUCCESS`), so it is not
    /// counted as in flight.
    fn push_uncounted(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: every entry built in this file points into memory the reactor owns and
            // keeps at a fixed address until the operation's final completion: boxed send
            // slots, boxed msghdrs, connection buffers that are not resized while an operation
            // uses them, and the buffer ring. Each call site says which.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            // Full: hand the queued entries to the kernel to make room.
            if let Err(e) = self.ring.submit() {
                tracing::error!(reactor = self.spec_index, error = %e, "io_uring submit failed");
                return;
            }
        }
    }

    fn arm_udp(&mut self, index: usize) {
        let Some(port) = self.udp.get(index) else {
            return;
        };
        // The socket is registered at its index; msghdr is boxed in `UdpPort`.
        let fd = types::Fixed(u32::try_from(index).unwrap_or(0));
        let entry = opcode::RecvMsgMulti::new(fd, &*port.msghdr, self.buffers.group())
            .build()
            .user_data(user_data(Op::UdpRecv, index as u64, 0));
        self.push(&entry);
    }

    fn arm_accept(&mut self, index: usize) {
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        let entry = opcode::AcceptMulti::new(types::Fd(listener.socket.as_raw_fd()))
            .build()
            .user_data(user_data(Op::Accept, index as u64, 0));
        if let Some(flag) = self.accepting.get_mut(index) {
            *flag = true;
        }
        self.push(&entry);
    }

    fn arm_wake(&mut self) {
        // wake_buf: boxed, alive as long as the reactor.
        let entry = opcode::Recv::new(
            types::Fd(self.waker.as_raw_fd()),
            self.wake_buf.as_mut_ptr(),
            8,
        )
        .build()
        .user_data(user_data(Op::Wake, 0u64, 0));
        self.push(&entry);
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32, arrived: Instant, now_ms: u64) {
        let (op, index, generation) = decode(data);
        let more = cqueue::more(flags);
        if !more {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        match op {
            Some(Op::UdpRecv) => {
                self.on_udp_recv(index as usize, result, flags, more, arrived, now_ms)
            }
            Some(Op::UdpSend) => {
                // Only failures complete (see `answer_datagram`); the slot is already free, and
                // the reply was counted as sent when it was queued.
                self.in_flight += 1; // sends are not counted in flight: undo the decrement above
                let metrics = self.metrics();
                metrics.udp_drop(UdpDrop::SendError);
                metrics.udp_replies.add(u64::MAX); // wrapping add: minus one
            }
            Some(Op::Accept) => self.on_accept(index as usize, result, more, now_ms),
            Some(Op::Recv) => self.on_recv(Key { index, generation }, result, arrived, now_ms),
            Some(Op::Send) => self.on_send(Key { index, generation }, result, arrived, now_ms),
            Some(Op::Reject) => {
                // The 503 went out (or failed): close the refused connection.
                if let Ok(fd) = RawFd::try_from(index) {
                    // SAFETY: this fd came from accept and was owned by the reject send alone.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            Some(Op::Wake) => {
                if self.draining.is_none() {
                    self.start_draining(now_ms);
                }
            }
            Some(Op::Cancel) | None => {}
        }
    }

    fn on_udp_recv(
        &mut self,
        index: usize,
        result: i32,
        flags: u32,
        more: bool,
        arrived: Instant,
        now_ms: u64,
    ) {
        if result == -libc::ENOBUFS {
            self.metrics().udp_drop(UdpDrop::NoBuffers);
        } else if let (Ok(len), Some(bid)) = (usize::try_from(result), cqueue::buffer_select(flags))
        {
            self.answer_datagram(index, bid, len, arrived, now_ms);
            self.buffers.recycle(bid);
        }
        if !more && self.draining.is_none() {
            self.arm_udp(index);
        }
    }

    fn answer_datagram(
        &mut self,
        index: usize,
        bid: u16,
        len: usize,
        arrived: Instant,
        now_ms: u64,
    ) {
        let metrics = self.node.metrics(self.spec_index);
        let Some(port) = self.udp.get(index) else {
            return;
        };
        let Ok(message) = types::RecvMsgOut::parse(self.buffers.get(bid, len), &port.msghdr) else {
            metrics.udp_drop(UdpDrop::Malformed);
            return;
        };
        if message.is_payload_truncated() {
            metrics.udp_drop(UdpDrop::Truncated);
            return;
        }
        let datagram = message.payload_data();
        let Some(slot_index) = self.free_sends.pop() else {
            metrics.udp_drop(UdpDrop::Overload);
            return;
        };
        let Some(slot) = self.sends.get_mut(slot_index as usize) else {
            return;
        };
        let ctx = udp::Context {
            table: &self.node.table,
            access: &self.node.access,
            fresh: self.node.freshness(now_ms),
        };
        if crate::protocol::udp::v8::is_v8(datagram) {
            metrics.udp_v8.inc();
        } else {
            metrics.udp_text.inc();
        }
        self.assets.room = self.meter.has_room();
        let outcome = udp::answer(datagram, ctx, &mut slot.buf, &mut self.assets);
        let Some(reply_len) = super::account_udp(
            outcome,
            metrics,
            &mut self.meter,
            &self.assets,
            now_ms,
            arrived,
        ) else {
            self.free_sends.push(slot_index);
            return;
        };
        let name = message.name_data();
        let name_len = name.len().min(size_of::<libc::sockaddr_storage>());
        // SAFETY: copies at most sizeof(sockaddr_storage) bytes into the slot's own storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                name.as_ptr(),
                (&raw mut slot.addr).cast::<u8>(),
                name_len,
            );
        }
        slot.addr_len = libc::socklen_t::try_from(name_len).unwrap_or(0);
        self.udp_answered += 1;
        let fd = types::Fixed(u32::try_from(index).unwrap_or(0));
        // MSG_DONTWAIT: the send is done (copied into the socket, or failed with EAGAIN) when
        // the kernel issues it during the next submission, never retried later; so the slot
        // (boxed buffer and address) is free again once that submission has returned, and a
        // success needs no completion at all (SKIP_SUCCESS). Failures still complete.
        let entry = opcode::Send::new(fd, slot.buf.as_ptr(), u32::try_from(reply_len).unwrap_or(0))
            .dest_addr((&raw const slot.addr).cast::<libc::sockaddr>())
            .dest_addr_len(slot.addr_len)
            .flags(libc::MSG_DONTWAIT)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(user_data(Op::UdpSend, slot_index, 0));
        self.sent.push(slot_index);
        metrics.udp_replies.inc();
        self.push_uncounted(&entry);
    }

    fn on_accept(&mut self, index: usize, result: i32, more: bool, now_ms: u64) {
        if !more {
            if let Some(flag) = self.accepting.get_mut(index) {
                *flag = false;
            }
            if self.draining.is_none() {
                self.arm_accept(index);
            }
        }
        if result < 0 {
            if result != -libc::ECANCELED {
                self.metrics().accept_errors.inc();
            }
            return;
        }
        // SAFETY: a successful accept completion carries a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(result) };
        // A connection the kernel accepted before shutdown began may already carry a request:
        // it is served like any other (draining closes it once idle, or after its response).
        let port = self
            .listeners
            .get(index)
            .map_or(crate::protocol::http::routes::PortKind::Api, |l| l.port);
        self.adopt(fd, port, now_ms);
    }

    /// Takes a new connection: admitted (a slab slot and a recv) or refused with 503.
    fn adopt(&mut self, fd: OwnedFd, port: crate::protocol::http::routes::PortKind, now_ms: u64) {
        let governed = port == crate::protocol::http::routes::PortKind::Api;
        if (governed && !self.governor.admits(self.conns.len())) || self.conns.is_full() {
            self.metrics().rejected_overloaded.inc();
            self.governor.record(false);
            let raw = fd.as_raw_fd();
            std::mem::forget(fd); // owned by the reject send until its completion closes it
            // The response is a static byte string.
            let len = u32::try_from(REJECT_OVERLOADED.len()).unwrap_or(0);
            let entry = opcode::Send::new(types::Fd(raw), REJECT_OVERLOADED.as_ptr(), len)
                .build()
                .user_data(user_data(Op::Reject, u32::try_from(raw).unwrap_or(0), 0));
            self.push(&entry);
            return;
        }
        let Some((key, io)) = self.conns.insert_with(|| ConnIo {
            conn: Conn::new(port),
            fd: None,
            recv_in_flight: false,
            send_in_flight: false,
            input_pending: false,
            retired: false,
        }) else {
            return;
        };
        io.conn.reset(port, now_ms);
        io.fd = Some(fd);
        io.recv_in_flight = false;
        io.send_in_flight = false;
        io.input_pending = false;
        io.retired = false;
        let metrics = self.node.metrics(self.spec_index);
        metrics.accepted.inc();
        metrics.open_connections.set(self.conns.len() as u64);
        self.arm_recv(key);
    }

    fn arm_recv(&mut self, key: Key) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        let Some(fd) = io.fd.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        if io.recv_in_flight || io.retired || !io.conn.wants_read() {
            return;
        }
        io.recv_in_flight = true;
        let space = io.conn.read_space();
        // The read buffer is boxed and never resized; nothing else writes to this part of it
        // until the recv completes (processing waits for the completion).
        let entry = opcode::Recv::new(
            types::Fd(fd),
            space.as_mut_ptr(),
            u32::try_from(space.len()).unwrap_or(0),
        )
        .build()
        .user_data(user_data(Op::Recv, key.index, key.generation));
        self.push(&entry);
    }

    fn arm_send(&mut self, key: Key) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        let Some(fd) = io.fd.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        if io.send_in_flight || io.retired || !io.conn.has_output() {
            return;
        }
        io.send_in_flight = true;
        let out = io.conn.pending_output();
        // The write buffer is not touched while a send is in flight: processing waits for the
        // completion, so it is neither written nor resized.
        let entry = opcode::Send::new(
            types::Fd(fd),
            out.as_ptr(),
            u32::try_from(out.len()).unwrap_or(u32::MAX),
        )
        .build()
        .user_data(user_data(Op::Send, key.index, key.generation));
        self.push(&entry);
    }

    fn on_recv(&mut self, key: Key, result: i32, arrived: Instant, now_ms: u64) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        io.recv_in_flight = false;
        if io.retired {
            self.try_free(key);
            return;
        }
        match usize::try_from(result) {
            Ok(0) => io.conn.peer_closed = true, // answer what is buffered, then close
            Ok(n) => io.conn.on_read(n, now_ms),
            Err(_) => {
                self.retire(key, CloseReason::Error);
                return;
            }
        }
        if io.send_in_flight {
            io.input_pending = true;
            return;
        }
        self.service(key, arrived, now_ms);
    }

    fn on_send(&mut self, key: Key, result: i32, arrived: Instant, now_ms: u64) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        io.send_in_flight = false;
        if io.retired {
            self.try_free(key);
            return;
        }
        let Ok(n) = usize::try_from(result) else {
            self.retire(key, CloseReason::Error);
            return;
        };
        if !io.conn.on_written(n, now_ms) {
            self.arm_send(key);
            return;
        }
        if io.conn.closing {
            let reason = io.conn.close_reason;
            self.retire(key, reason);
            return;
        }
        if io.recv_in_flight {
            // The recv's completion answers whatever is buffered by then.
            return;
        }
        io.input_pending = false;
        self.service(key, arrived, now_ms);
    }

    /// Answers what is buffered, then starts the next send and/or recv. Called only when no
    /// recv is in flight: answering moves unanswered bytes within the read buffer.
    fn service(&mut self, key: Key, arrived: Instant, now_ms: u64) {
        let draining = self.draining.is_some() || self.node.is_draining();
        let (served, has_output, closing, reason) = {
            let node = &*self.node;
            let metrics = node.metrics(self.spec_index);
            let Some(io) = self.conns.get_mut(key) else {
                return;
            };
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
            (
                served,
                io.conn.has_output(),
                io.conn.closing,
                io.conn.close_reason,
            )
        };
        self.governor.record_many(served.ok, served.failed);
        if has_output {
            self.arm_send(key);
        } else if closing {
            self.retire(key, reason);
            return;
        }
        if !served.blocked {
            self.arm_recv(key);
        }
    }

    /// Ends a connection: cancels what is in flight; the slot is freed when all has completed.
    fn retire(&mut self, key: Key, reason: CloseReason) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        if io.retired {
            return;
        }
        io.retired = true;
        let (recv, send) = (io.recv_in_flight, io.send_in_flight);
        self.node.metrics(self.spec_index).closed(reason);
        if matches!(reason, CloseReason::Timeout | CloseReason::Error) {
            self.governor.record(false);
        }
        for (in_flight, op) in [(recv, Op::Recv), (send, Op::Send)] {
            if in_flight {
                let entry = opcode::AsyncCancel::new(user_data(op, key.index, key.generation))
                    .build()
                    .user_data(user_data(Op::Cancel, key.index, key.generation));
                self.push(&entry);
            }
        }
        self.try_free(key);
    }

    fn try_free(&mut self, key: Key) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        if io.recv_in_flight || io.send_in_flight {
            return;
        }
        io.fd = None; // closes the socket
        self.conns.remove(key);
        let open = self.conns.len() as u64;
        let m = self.node.metrics(self.spec_index);
        m.open_connections.set(open);
    }

    /// Timers: request and write timeouts, idle connections, the governor's window, and the
    /// drain deadline.
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
            if io.retired {
                continue;
            }
            // Bytes the client sent before shutdown may still sit in the socket, behind a recv
            // whose completion has not been handled yet: such a connection is not idle.
            let idle_while_draining = self.draining.is_some()
                && io.conn.is_idle()
                && !io.send_in_flight
                && !io
                    .fd
                    .as_ref()
                    .is_some_and(|fd| has_unread_data(fd.as_raw_fd()));
            if past_grace || idle_while_draining {
                self.retire(key, CloseReason::Shutdown);
                continue;
            }
            match io.conn.check_timers(now_ms, timeouts) {
                Timer::None => {}
                Timer::Close(reason) => self.retire(key, reason),
                Timer::RequestTimeout if !io.send_in_flight => {
                    let node = &*self.node;
                    let metrics = node.metrics(self.spec_index);
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
                    self.arm_send(key);
                }
                Timer::RequestTimeout => {}
            }
        }
    }

    /// Stops accepting and receiving; connections finish what they started.
    fn start_draining(&mut self, now_ms: u64) {
        self.draining = Some(Instant::now());
        for index in 0..self.listeners.len() {
            if self.accepting.get(index).copied().unwrap_or(false) {
                let entry = opcode::AsyncCancel::new(user_data(Op::Accept, index as u64, 0))
                    .build()
                    .user_data(user_data(Op::Cancel, 0u64, 0));
                self.push(&entry);
            }
        }
        for index in 0..self.udp.len() {
            let entry = opcode::AsyncCancel::new(user_data(Op::UdpRecv, index as u64, 0))
                .build()
                .user_data(user_data(Op::Cancel, 0u64, 0));
            self.push(&entry);
        }
        // Connections already in the kernel's accept queues were made before shutdown and may
        // carry requests: take them, then close the listeners so new ones are refused.
        let listeners = std::mem::take(&mut self.listeners);
        for listener in &listeners {
            while let Ok((stream, _)) = listener.socket.accept() {
                self.adopt(OwnedFd::from(stream), listener.port, now_ms);
            }
        }
        drop(listeners);
        self.sweep(now_ms);
    }

    /// Draining, every connection gone and every operation completed.
    fn drained(&self) -> bool {
        self.draining.is_some() && self.conns.is_empty() && self.in_flight == 0
    }

    fn finish(self) {
        // Replies queued in the last turn go out before the ring closes.
        let _ = self.ring.submit();
        let Reactor {
            ring,
            buffers,
            sends,
            conns,
            udp,
            wake_buf,
            in_flight,
            ..
        } = self;
        drop(ring);
        if in_flight > 0 {
            // The kernel may still reference these after the ring closes; the process is
            // exiting, so leaking them is the safe choice.
            std::mem::forget((buffers, sends, conns, udp, wake_buf));
        }
    }
}

/// True if the socket has received bytes not read yet (a non-blocking peek).
fn has_unread_data(fd: RawFd) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: recv(2) into a one-byte stack buffer we own, on a descriptor we own; MSG_PEEK
    // leaves the data in the socket and MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recv(
            fd,
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
}
