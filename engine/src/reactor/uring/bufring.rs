//! A provided-buffer ring (kernel 5.19+): memory we own and lend to the kernel, which picks a
//! free buffer for each received datagram and tells us its id in the completion.
//!
//! Layout: a page-aligned array of `BufRingEntry` (the ring, shared with the kernel; the tail
//! lives in the first entry's reserved field) and one contiguous block of equal buffers.
//! Buffers are handed back after their datagram has been answered; the new tail is published
//! once per loop turn.

#![allow(
    unsafe_code,
    reason = "the ring memory is shared with the kernel through raw pointers"
)]

use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::{IoUring, cqueue, squeue};

pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    buffers: Box<[u8]>,
    buffer_len: usize,
    entries: u16,
    tail: u16,
    group: u16,
}

// SAFETY: the raw pointer is owned memory used by one reactor thread only; moving the owner to
// that thread before use is fine.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates `entries` (a power of two, at most 32768) buffers of `buffer_len` bytes and
    /// registers them with `ring` as buffer group `group`.
    pub fn new(
        ring: &IoUring<squeue::Entry, cqueue::Entry>,
        entries: u16,
        buffer_len: usize,
        group: u16,
    ) -> std::io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "buffer ring size must be a power of two up to 32768",
            ));
        }
        let page = 4096;
        let ring_bytes = (usize::from(entries) * size_of::<BufRingEntry>()).div_ceil(page) * page;
        // SAFETY: an anonymous private mapping: no file, no aliasing; checked for failure below.
        let memory = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if memory == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mut this = BufRing {
            ring: memory.cast::<BufRingEntry>(),
            ring_bytes,
            buffers: vec![0u8; usize::from(entries) * buffer_len].into_boxed_slice(),
            buffer_len,
            entries,
            tail: 0,
            group,
        };
        for bid in 0..entries {
            this.recycle(bid);
        }
        this.publish();
        // SAFETY: the ring memory stays mapped until `drop`, which runs after the io_uring that
        // uses it (the reactor declares the ring first), and it holds `entries` entries.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(this.ring as u64, entries, group, 0)?;
        }
        Ok(this)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    /// The first `len` bytes of buffer `bid`.
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buffer_len;
        self.buffers
            .get(start..start + len.min(self.buffer_len))
            .unwrap_or_default()
    }

    /// Hands buffer `bid` back to the kernel (visible after [`BufRing::publish`]).
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid >= self.entries {
            return;
        }
        let slot = usize::from(self.tail & (self.entries - 1));
        let addr = self.buffers.as_ptr() as u64 + (usize::from(bid) * self.buffer_len) as u64;
        // SAFETY: `slot` < entries, within the mapping; the kernel only reads entries between
        // its head and our published tail, and this one is past the published tail.
        let entry = unsafe { &mut *self.ring.add(slot) };
        entry.set_addr(addr);
        entry.set_len(u32::try_from(self.buffer_len).unwrap_or(u32::MAX));
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes recycled buffers to the kernel.
    pub(crate) fn publish(&self) {
        // SAFETY: `ring` is the page-aligned base of an initialised ring; the tail field is the
        // first entry's reserved u16, which the kernel reads and we alone write.
        let tail = unsafe { &*BufRingEntry::tail(self.ring).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
        }
    }
}
