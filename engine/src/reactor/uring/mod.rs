//! The io_uring driver: one ring per reactor thread (`SINGLE_ISSUER | DEFER_TASKRUN`), so
//! completions run only when this thread asks for them and nothing is shared with other cores.
//!
//! - Connections: each operation the core asks for is one submission (`Recv`, `Send`,
//!   `AsyncCancel`) and its completion is handed back as it comes.
//! - Listeners: one multishot `accept` each.
//! - UDP: one multishot `recvmsg` per socket into a provided-buffer ring; every datagram is
//!   answered as its completion is read, straight into a preallocated send slot, and the reply
//!   is a `send` with the peer's address; all replies of a turn go to the kernel in one
//!   `io_uring_enter`. A multishot that ends (no `F_MORE`, e.g. on `ENOBUFS` when every buffer
//!   is in use) is re-armed; `ENOBUFS` is counted.
//! - An entry the submission queue cannot take waits in a backlog and goes first next time;
//!   `io_uring_enter` failing with `EINTR`, `EAGAIN` or `EBUSY` is retried on the next turn.

#![allow(
    unsafe_code,
    reason = "io_uring submissions hand the kernel pointers into our buffers"
)]

mod bufring;

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use self::bufring::BufRing;
use super::datagram::Answerer;
use super::driver::{Driver, Event, IoBuf};
use super::slab::Key;
use super::sockets::{Listener, ReactorSockets};
use super::{REJECT_OVERLOADED, Waker};
use crate::metrics::UdpDrop;
use crate::protocol::udp::MAX_REPLY;

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
const UDP_BUFFERS: u16 = 2048;
const UDP_BUFFER_LEN: usize = 2048;
const BUFFER_GROUP: u16 = 1;
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

impl Op {
    /// UDP sends post a completion only when they fail (`SKIP_SUCCESS`): they are not counted
    /// as in flight.
    fn counted(self) -> bool {
        self != Op::UdpSend
    }
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

/// Probes what this driver needs; the error explains why io_uring cannot be used.
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

pub struct Uring {
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
    waker: Waker,
    wake_buf: Box<[u8; 8]>,
    batch: Box<[(u64, i32, u32)]>,
    /// Entries the submission queue could not take yet, oldest first.
    backlog: VecDeque<squeue::Entry>,
    /// Submissions whose final completion has not arrived yet.
    in_flight: usize,
    draining: bool,
    index: usize,
}

impl Uring {
    pub fn new(
        sockets: ReactorSockets,
        waker: Waker,
        udp_send_slots: usize,
        index: usize,
    ) -> std::io::Result<Uring> {
        let ring = build_ring(SQ_ENTRIES)?;
        let buffers = BufRing::new(&ring, UDP_BUFFERS, UDP_BUFFER_LEN, BUFFER_GROUP)?;
        let ReactorSockets {
            udp: sockets,
            tcp: listeners,
            ..
        } = sockets;
        // Registered descriptors spare the kernel a file lookup and reference per operation.
        let udp_fds: Vec<RawFd> = sockets.iter().map(AsRawFd::as_raw_fd).collect();
        // A node without UDP ports (a push node) has nothing to register; the kernel refuses
        // an empty table.
        if !udp_fds.is_empty() {
            ring.submitter().register_files(&udp_fds)?;
        }
        let udp = sockets
            .into_iter()
            .map(|socket| {
                // SAFETY: msghdr is plain old data; all-zero is its empty value.
                let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
                msghdr.msg_namelen =
                    libc::socklen_t::try_from(size_of::<libc::sockaddr_storage>()).unwrap_or(128);
                UdpPort { socket, msghdr }
            })
            .collect();
        let slots = udp_send_slots.max(16);
        let sends = (0..slots)
            .map(|_| SendSlot {
                buf: [0; MAX_REPLY],
                // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
                addr: unsafe { std::mem::zeroed() },
                addr_len: 0,
            })
            .collect();
        let mut driver = Uring {
            ring,
            buffers,
            udp,
            accepting: vec![false; listeners.len()],
            listeners,
            sends,
            free_sends: (0..u32::try_from(slots).unwrap_or(u32::MAX))
                .rev()
                .collect(),
            sent: Vec::with_capacity(slots),
            waker,
            wake_buf: Box::new([0; 8]),
            batch: vec![(0, 0, 0); BATCH].into_boxed_slice(),
            backlog: VecDeque::new(),
            in_flight: 0,
            draining: false,
            index,
        };
        for index in 0..driver.udp.len() {
            driver.arm_udp(index);
        }
        for index in 0..driver.listeners.len() {
            driver.arm_accept(index);
        }
        driver.arm_wake();
        Ok(driver)
    }

    fn push(&mut self, entry: squeue::Entry, counted: bool) {
        if counted {
            self.in_flight += 1;
        }
        if !self.backlog.is_empty() {
            self.backlog.push_back(entry);
            return;
        }
        // SAFETY: every entry built in this file points into memory that stays allocated and
        // unmoved until the operation's final completion: boxed send slots and msghdrs, the
        // buffer ring, the waker's boxed buffer, and connection buffers the core keeps fixed
        // while the operation is in flight (see `IoBuf`). Each call site says which.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            // Full: hand the queued entries to the kernel to make room, else keep it for later.
            let _ = self.ring.submit();
            // SAFETY: as above.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                self.backlog.push_back(entry);
            }
        }
    }

    /// Moves backlogged entries into the submission queue while it has room.
    fn flush_backlog(&mut self) {
        while let Some(entry) = self.backlog.front() {
            // SAFETY: as in `push`: the entry's memory is still reserved for it.
            if unsafe { self.ring.submission().push(entry) }.is_err() {
                return;
            }
            self.backlog.pop_front();
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
        self.push(entry, true);
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
        self.push(entry, true);
    }

    fn arm_wake(&mut self) {
        // wake_buf: boxed, alive as long as the driver.
        let entry = opcode::Recv::new(
            types::Fd(self.waker.as_raw_fd()),
            self.wake_buf.as_mut_ptr(),
            8,
        )
        .build()
        .user_data(user_data(Op::Wake, 0u64, 0));
        self.push(entry, true);
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

    fn complete(
        &mut self,
        (data, result, flags): (u64, i32, u32),
        answer: &mut Answerer,
        events: &mut Vec<Event>,
    ) {
        let (op, index, generation) = decode(data);
        let more = cqueue::more(flags);
        if !more && op.is_none_or(Op::counted) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let key = Key { index, generation };
        match op {
            Some(Op::UdpRecv) => self.on_udp_recv(index as usize, result, flags, more, answer),
            // Only failures complete: the slot is already free again.
            Some(Op::UdpSend) => answer.send_failed(1),
            Some(Op::Accept) => self.on_accept(index as usize, result, more, answer, events),
            Some(Op::Recv) => events.push(Event::Received { key, result }),
            Some(Op::Send) => events.push(Event::Sent { key, result }),
            Some(Op::Reject) => {
                // The 503 went out (or failed): close the refused connection.
                if let Ok(fd) = RawFd::try_from(index) {
                    // SAFETY: this fd came from accept and was owned by the reject send alone.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            Some(Op::Wake) => events.push(Event::Wake),
            Some(Op::Cancel) | None => {}
        }
    }

    fn on_udp_recv(
        &mut self,
        index: usize,
        result: i32,
        flags: u32,
        more: bool,
        answer: &mut Answerer,
    ) {
        if result == -libc::ENOBUFS {
            answer.metrics().udp_drop(UdpDrop::NoBuffers);
        } else if let (Ok(len), Some(bid)) = (usize::try_from(result), cqueue::buffer_select(flags))
        {
            self.answer_datagram(index, bid, len, answer);
            self.buffers.recycle(bid);
        }
        if !more && !self.draining {
            self.arm_udp(index);
        }
    }

    fn answer_datagram(&mut self, index: usize, bid: u16, len: usize, answer: &mut Answerer) {
        let Some(port) = self.udp.get(index) else {
            return;
        };
        let Ok(message) = types::RecvMsgOut::parse(self.buffers.get(bid, len), &port.msghdr) else {
            answer.metrics().udp_drop(UdpDrop::Malformed);
            return;
        };
        let Some(&slot_index) = self.free_sends.last() else {
            answer.metrics().udp_drop(UdpDrop::Overload);
            return;
        };
        let Some(slot) = self.sends.get_mut(slot_index as usize) else {
            return;
        };
        let name = message.name_data();
        let Some(reply_len) = answer.datagram(
            index,
            message.payload_data(),
            name,
            message.is_payload_truncated(),
            &mut slot.buf,
        ) else {
            return;
        };
        self.free_sends.pop();
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
        self.push(entry, false);
    }

    fn on_accept(
        &mut self,
        index: usize,
        result: i32,
        more: bool,
        answer: &mut Answerer,
        events: &mut Vec<Event>,
    ) {
        if !more {
            if let Some(flag) = self.accepting.get_mut(index) {
                *flag = false;
            }
            if !self.draining {
                self.arm_accept(index);
            }
        }
        if result < 0 {
            if result != -libc::ECANCELED {
                answer.metrics().accept_errors.inc();
            }
            return;
        }
        // SAFETY: a successful accept completion carries a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(result) };
        let port = self
            .listeners
            .get(index)
            .map_or(crate::protocol::http::routes::PortKind::Api, |l| l.port);
        events.push(Event::Accepted { port, fd });
    }
}

impl Driver for Uring {
    fn recv(&mut self, key: Key, fd: RawFd, buf: IoBuf) {
        // `buf` is the connection's read space (see `IoBuf`).
        let entry = opcode::Recv::new(
            types::Fd(fd),
            buf.ptr,
            u32::try_from(buf.len).unwrap_or(u32::MAX),
        )
        .build()
        .user_data(user_data(Op::Recv, key.index, key.generation));
        self.push(entry, true);
    }

    fn send(&mut self, key: Key, fd: RawFd, buf: IoBuf) {
        // `buf` is the connection's pending output (see `IoBuf`).
        let entry = opcode::Send::new(
            types::Fd(fd),
            buf.ptr,
            u32::try_from(buf.len).unwrap_or(u32::MAX),
        )
        .build()
        .user_data(user_data(Op::Send, key.index, key.generation));
        self.push(entry, true);
    }

    fn cancel(&mut self, key: Key, _fd: RawFd, recv: bool, send: bool) {
        for (in_flight, op) in [(recv, Op::Recv), (send, Op::Send)] {
            if in_flight {
                let entry = opcode::AsyncCancel::new(user_data(op, key.index, key.generation))
                    .build()
                    .user_data(user_data(Op::Cancel, key.index, key.generation));
                self.push(entry, true);
            }
        }
    }

    fn forget(&mut self, _key: Key, _fd: RawFd) {}

    fn reject(&mut self, fd: OwnedFd) {
        let raw = fd.as_raw_fd();
        std::mem::forget(fd); // owned by the reject send until its completion closes it
        // The response is a static byte string.
        let len = u32::try_from(REJECT_OVERLOADED.len()).unwrap_or(0);
        let entry = opcode::Send::new(types::Fd(raw), REJECT_OVERLOADED.as_ptr(), len)
            .build()
            .user_data(user_data(Op::Reject, u32::try_from(raw).unwrap_or(0), 0));
        self.push(entry, true);
    }

    fn stop_listening(&mut self, events: &mut Vec<Event>) {
        self.draining = true;
        for index in 0..self.listeners.len() {
            if self.accepting.get(index).copied().unwrap_or(false) {
                let entry = opcode::AsyncCancel::new(user_data(Op::Accept, index as u64, 0))
                    .build()
                    .user_data(user_data(Op::Cancel, 0u64, 0));
                self.push(entry, true);
            }
        }
        for index in 0..self.udp.len() {
            let entry = opcode::AsyncCancel::new(user_data(Op::UdpRecv, index as u64, 0))
                .build()
                .user_data(user_data(Op::Cancel, 0u64, 0));
            self.push(entry, true);
        }
        // Connections already in the kernel's accept queues were made before shutdown and may
        // carry requests: take them, then close the listeners so new ones are refused.
        for listener in std::mem::take(&mut self.listeners) {
            while let Ok((stream, _)) = listener.socket.accept() {
                events.push(Event::Accepted {
                    port: listener.port,
                    fd: OwnedFd::from(stream),
                });
            }
        }
    }

    fn wait(&mut self, until: Instant) -> std::io::Result<()> {
        self.flush_backlog();
        let ready = !self.backlog.is_empty() || !self.ring.completion().is_empty();
        let wait = if ready {
            std::time::Duration::ZERO
        } else {
            until
                .saturating_duration_since(Instant::now())
                .max(std::time::Duration::from_millis(1))
        };
        let timespec = types::Timespec::from(wait);
        let args = types::SubmitArgs::new().timespec(&timespec);
        let want = usize::from(!ready);
        match self.ring.submitter().submit_with_args(want, &args) {
            Ok(_) => {}
            // Timed out, interrupted, or the kernel asks us to reap first: the next turn
            // submits again.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e),
        }
        // Every UDP send queued last turn has been issued by that submission.
        self.free_sends.append(&mut self.sent);
        Ok(())
    }

    fn reap(&mut self, answer: &mut Answerer, _arrived: Instant, events: &mut Vec<Event>) {
        loop {
            let n = self.take_completions();
            if n == 0 {
                break;
            }
            for i in 0..n {
                if let Some(&completion) = self.batch.get(i) {
                    self.complete(completion, answer, events);
                }
            }
            answer.end_batch();
        }
        self.buffers.publish();
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.backlog.is_empty()
    }

    fn finish(self) {
        // Replies queued in the last turn go out before the ring closes.
        let _ = self.ring.submit();
        let Uring {
            ring,
            buffers,
            sends,
            udp,
            wake_buf,
            in_flight,
            index,
            ..
        } = self;
        drop(ring);
        if in_flight > 0 {
            tracing::debug!(
                reactor = index,
                in_flight,
                "io_uring closed with operations in flight"
            );
            // The kernel may still reference these after the ring closes; the process is
            // exiting, so leaking them is the safe choice (connection buffers are the core's,
            // and it is gone by now: a connection with an operation in flight is leaked by it).
            std::mem::forget((buffers, sends, udp, wake_buf));
        }
    }
}
