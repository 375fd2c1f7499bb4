//! Batched UDP sends and receives (sendmmsg/recvmmsg): one system call for up to [`BATCH`]
//! datagrams, as udpload does, so the generator's per-request cost stays well under the
//! server's and a comparison with udpload compares servers, not system-call counts.
#![allow(
    unsafe_code,
    reason = "sendmmsg and recvmmsg have no safe wrapper among our dependencies"
)]

use std::io;
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Bytes per datagram slot: the largest request built and the largest reply accepted.
pub const SLOT: usize = 4096;

/// [`BATCH`] datagram slots and their lengths.
pub struct Slots {
    bytes: Vec<u8>,
    lens: [usize; BATCH],
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            bytes: vec![0; BATCH * SLOT],
            lens: [0; BATCH],
        }
    }

    /// Slot `i`, whole, for filling.
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.bytes.get_mut(i * SLOT..(i + 1) * SLOT)
    }

    pub fn set_len(&mut self, i: usize, len: usize) {
        if let Some(l) = self.lens.get_mut(i) {
            *l = len.min(SLOT);
        }
    }

    /// The datagram in slot `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let len = self.lens.get(i).copied().unwrap_or(0);
        self.bytes.get(i * SLOT..i * SLOT + len).unwrap_or_default()
    }

    /// iovecs and message headers over the first `count` slots; each iovec spans `len(i)` bytes
    /// (sending) or the whole slot (receiving).
    fn headers(
        &mut self,
        count: usize,
        whole: bool,
    ) -> ([libc::iovec; BATCH], [libc::mmsghdr; BATCH]) {
        let base = self.bytes.as_mut_ptr();
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        for (i, iov) in iovecs.iter_mut().enumerate().take(count.min(BATCH)) {
            // `wrapping_add` keeps this safe code: the pointer stays inside `bytes` (i < BATCH).
            iov.iov_base = base.wrapping_add(i * SLOT).cast();
            iov.iov_len = if whole {
                SLOT
            } else {
                self.lens.get(i).copied().unwrap_or(0)
            };
        }
        // SAFETY: mmsghdr is plain data (pointers and integers) for which all-zero is valid.
        let headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        (iovecs, headers)
    }
}

impl Default for Slots {
    fn default() -> Self {
        Slots::new()
    }
}

/// A batch size as the system calls take it (at most [`BATCH`], so it always fits).
fn c_uint(count: usize) -> libc::c_uint {
    libc::c_uint::try_from(count.min(BATCH)).unwrap_or(0)
}

fn link(iovecs: &mut [libc::iovec; BATCH], headers: &mut [libc::mmsghdr; BATCH], count: usize) {
    for (header, iov) in headers.iter_mut().zip(iovecs.iter_mut()).take(count) {
        header.msg_hdr.msg_iov = iov;
        header.msg_hdr.msg_iovlen = 1;
        header.msg_len = 0;
    }
}

/// Sends the first `count` slots on connected socket `fd`; returns how many went (0 when the
/// socket buffer is full).
pub fn send(fd: RawFd, slots: &mut Slots, count: usize) -> io::Result<usize> {
    let count = count.min(BATCH);
    if count == 0 {
        return Ok(0);
    }
    let (mut iovecs, mut headers) = slots.headers(count, false);
    link(&mut iovecs, &mut headers, count);
    // SAFETY: `headers[..count]` point at `iovecs`, which point into `slots.bytes`; all of
    // them outlive the call, and the kernel only reads them.
    let sent =
        unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), c_uint(count), libc::MSG_DONTWAIT) };
    match usize::try_from(sent) {
        Ok(n) => Ok(n),
        Err(_) => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(error)
            }
        }
    }
}

/// Receives up to [`BATCH`] datagrams from `fd` into the slots; returns how many (0 when none
/// is waiting). `slots.get(i)` is datagram `i`.
pub fn recv(fd: RawFd, slots: &mut Slots) -> io::Result<usize> {
    let (mut iovecs, mut headers) = slots.headers(BATCH, true);
    link(&mut iovecs, &mut headers, BATCH);
    // SAFETY: every header points at one iovec spanning one SLOT-byte slot of `slots.bytes`,
    // all alive and exclusively borrowed for the call; the kernel writes at most SLOT bytes
    // per slot. A null timeout is allowed.
    let received = unsafe {
        libc::recvmmsg(
            fd,
            headers.as_mut_ptr(),
            c_uint(BATCH),
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let n = match usize::try_from(received) {
        Ok(n) => n,
        Err(_) => {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(error)
            };
        }
    };
    for (i, header) in headers.iter().enumerate().take(n) {
        slots.set_len(i, usize::try_from(header.msg_len).unwrap_or(0));
    }
    Ok(n)
}
