//! Batched UDP I/O for the epoll backend: `recvmmsg` fills up to [`BATCH`] datagrams per
//! system call, `sendmmsg` sends up to [`BATCH`] replies per call. Every buffer, address and
//! header is allocated once; the headers point into them.

#![allow(
    unsafe_code,
    reason = "recvmmsg/sendmmsg take raw pointers to our buffers"
)]

use std::os::fd::RawFd;

use crate::protocol::udp::MAX_REPLY;

pub const BATCH: usize = 64;
pub(crate) const RECV_LEN: usize = 2048;

struct Side<const LEN: usize> {
    bufs: Box<[[u8; LEN]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl<const LEN: usize> Side<LEN> {
    fn new() -> Side<LEN> {
        // SAFETY: these libc structs are plain old data; all-zero is a valid value.
        let zeroed_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut side = Side {
            bufs: vec![[0u8; LEN]; BATCH].into_boxed_slice(),
            addrs: vec![zeroed_addr; BATCH].into_boxed_slice(),
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ]
            .into_boxed_slice(),
            // SAFETY: as above.
            hdrs: (0..BATCH)
                .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
                .collect(),
        };
        // Point each header at its own iovec and address, and each iovec at its buffer. The
        // boxed slices never move, so the pointers stay valid for the life of `side`.
        for i in 0..BATCH {
            let (Some(buf), Some(iov), Some(addr), Some(hdr)) = (
                side.bufs.get_mut(i),
                side.iovs.get_mut(i),
                side.addrs.get_mut(i),
                side.hdrs.get_mut(i),
            ) else {
                continue;
            };
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = LEN;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = socklen(size_of::<libc::sockaddr_storage>());
        }
        side
    }
}

fn socklen(len: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(len).unwrap_or(0)
}

pub(crate) struct Mmsg {
    recv: Side<RECV_LEN>,
    send: Side<MAX_REPLY>,
    received: usize,
    queued: usize,
}

impl Default for Mmsg {
    fn default() -> Self {
        Mmsg::new()
    }
}

impl Mmsg {
    pub fn new() -> Mmsg {
        Mmsg {
            recv: Side::new(),
            send: Side::new(),
            received: 0,
            queued: 0,
        }
    }

    /// Receives up to [`BATCH`] datagrams; 0 when none is waiting.
    pub fn receive(&mut self, fd: RawFd) -> std::io::Result<usize> {
        for (hdr, iov) in self.recv.hdrs.iter_mut().zip(self.recv.iovs.iter_mut()) {
            iov.iov_len = RECV_LEN;
            hdr.msg_hdr.msg_namelen = socklen(size_of::<libc::sockaddr_storage>());
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        // SAFETY: the headers point at buffers, iovecs and addresses owned by `self.recv`,
        // sized as declared; the kernel writes only within them.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.recv.hdrs.as_mut_ptr(),
                libc::c_uint::try_from(BATCH).unwrap_or(1),
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.received = 0;
        if n < 0 {
            let error = std::io::Error::last_os_error();
            return if error.kind() == std::io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(error)
            };
        }
        self.received = usize::try_from(n).unwrap_or(0);
        Ok(self.received)
    }

    /// Calls `answer(datagram, from, truncated, reply)` for each datagram of the last receive
    /// (`from`: the sender's `sockaddr` bytes); when it returns a length, that many bytes of
    /// `reply` are queued for the sender.
    pub(crate) fn answer_each(
        &mut self,
        mut answer: impl FnMut(&[u8], &[u8], bool, &mut [u8]) -> Option<usize>,
    ) {
        self.queued = 0;
        for i in 0..self.received {
            let (Some(from), Some(buf), Some(from_addr)) = (
                self.recv.hdrs.get(i),
                self.recv.bufs.get(i),
                self.recv.addrs.get(i),
            ) else {
                break;
            };
            let len = usize::try_from(from.msg_len).unwrap_or(0).min(RECV_LEN);
            let truncated = from.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let name_len =
                (from.msg_hdr.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
            // SAFETY: the address is plain old data owned by `self.recv`; viewed as bytes, at
            // most its own size.
            let from_bytes = unsafe {
                std::slice::from_raw_parts(
                    (from_addr as *const libc::sockaddr_storage).cast::<u8>(),
                    name_len,
                )
            };
            let slot = self.queued;
            let (Some(reply), Some(to_addr), Some(iov), Some(hdr)) = (
                self.send.bufs.get_mut(slot),
                self.send.addrs.get_mut(slot),
                self.send.iovs.get_mut(slot),
                self.send.hdrs.get_mut(slot),
            ) else {
                break;
            };
            if let Some(reply_len) = answer(
                buf.get(..len).unwrap_or_default(),
                from_bytes,
                truncated,
                reply,
            ) {
                *to_addr = *from_addr;
                iov.iov_len = reply_len.min(MAX_REPLY);
                hdr.msg_hdr.msg_namelen = from.msg_hdr.msg_namelen;
                self.queued += 1;
            }
        }
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queued
    }

    /// Sends every queued reply; returns how many the kernel refused. `sendmmsg` stops at a
    /// reply it cannot send: that one is counted and skipped, and the rest still go. Replies
    /// the socket would not take right now (its buffer full) are given up: UDP may drop.
    pub fn flush(&mut self, fd: RawFd) -> u64 {
        let mut at = 0;
        let mut failed = 0;
        while at < self.queued {
            let remaining = self.queued - at;
            let Some(first) = self.send.hdrs.get_mut(at) else {
                break;
            };
            // SAFETY: the headers from `at` on point at buffers, iovecs and addresses owned by
            // `self.send`; the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    first,
                    libc::c_uint::try_from(remaining).unwrap_or(1),
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(n) {
                Ok(0) => break,
                Ok(sent) => at += sent,
                Err(_) => match std::io::Error::last_os_error().kind() {
                    std::io::ErrorKind::Interrupted => {}
                    std::io::ErrorKind::WouldBlock => {
                        failed += remaining as u64;
                        break;
                    }
                    // This reply cannot be sent (a bad destination): skip it.
                    _ => {
                        failed += 1;
                        at += 1;
                    }
                },
            }
        }
        self.queued = 0;
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn receives_and_replies_in_batches() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for word in ["one", "two", "skip", "three"] {
            client
                .send_to(word.as_bytes(), server.local_addr().unwrap())
                .unwrap();
        }
        let mut mmsg = Mmsg::new();
        let mut got = Vec::new();
        while got.len() < 4 {
            let n = mmsg.receive(server.as_raw_fd()).unwrap();
            mmsg.answer_each(|payload, _from, truncated, reply| {
                assert!(!truncated);
                got.push(String::from_utf8(payload.to_vec()).unwrap());
                (payload != b"skip").then(|| {
                    reply[..payload.len()].copy_from_slice(payload);
                    payload.len()
                })
            });
            assert!(mmsg.queued() <= n);
            assert_eq!(mmsg.flush(server.as_raw_fd()), 0, "none refused");
        }
        let mut buf = [0u8; 16];
        for word in ["one", "two", "three"] {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (word.as_bytes(), server.local_addr().unwrap())
            );
        }
        assert_eq!(
            mmsg.receive(server.as_raw_fd()).unwrap(),
            0,
            "nothing waiting"
        );
    }
}
