//! A sequence lock for one writer and any number of readers, built only from atomics.
//!
//! Readers copy the words between two loads of the sequence number and retry if a write
//! overlapped; they never store to shared memory, so readers on other cores never pull the line
//! into exclusive state and never slow each other down. The protocol is the fence-based one from
//! Hans Boehm, "Can seqlocks get along with programming language memory models?" (MSPC 2012):
//! every shared word is an atomic accessed `Relaxed`, ordered by the acquire/release fences, so
//! there is no data race and no `unsafe`.
//!
//! Writer: `seq += 1` (odd: write in progress), release fence, store the words, `seq += 1` with
//! release. Reader: load `seq` with acquire; if odd, retry; load the words; acquire fence; load
//! `seq` again; equal means the copy is whole.

use std::sync::atomic::{AtomicU64, Ordering, fence};

/// A 64-bit atomic cell. The model-checking test swaps in loom's atomics through this trait.
pub trait AtomicWord: Send + Sync {
    fn new(value: u64) -> Self;
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
    fn fence(order: Ordering);
}

impl AtomicWord for AtomicU64 {
    fn new(value: u64) -> Self {
        AtomicU64::new(value)
    }
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline(always)]
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order);
    }
    #[inline(always)]
    fn fence(order: Ordering) {
        fence(order);
    }
}

/// `N` words guarded by a sequence number.
pub struct SeqLock<const N: usize, W: AtomicWord = AtomicU64> {
    seq: W,
    words: [W; N],
}

impl<const N: usize, W: AtomicWord> SeqLock<N, W> {
    pub fn new(initial: [u64; N]) -> Self {
        SeqLock {
            seq: W::new(0),
            words: initial.map(W::new),
        }
    }

    /// The sequence number: even when no write is in progress, and it grows by 2 per write,
    /// so a reader can tell whether anything changed since it last looked.
    #[inline]
    pub fn version(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// One attempt: the words and their version, or `None` if a write overlapped.
    #[inline]
    pub fn try_read(&self) -> Option<([u64; N], u64)> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let words =
            std::array::from_fn(|i| self.words.get(i).map_or(0, |w| w.load(Ordering::Relaxed)));
        W::fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        (before == after).then_some((words, before))
    }

    /// Reads a whole copy, retrying at most `attempts` times. A write takes a few nanoseconds,
    /// so a reader that keeps failing is looking at a writer that stopped mid-write: the bound
    /// keeps the request path from spinning forever on it.
    #[inline]
    pub fn read_bounded(&self, attempts: u32) -> Option<[u64; N]> {
        for _ in 0..attempts {
            if let Some((words, _)) = self.try_read() {
                return Some(words);
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Stores a new value.
    ///
    /// There must be exactly one writer per lock. This is not `unsafe` (every access is atomic,
    /// so two writers cannot cause undefined behaviour), but two writers could interleave and
    /// let a reader accept a mix of their values. The price table enforces one writer by
    /// handing out a single non-`Clone` writer handle.
    #[inline]
    pub fn write(&self, value: [u64; N]) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        W::fence(Ordering::Release);
        for (word, v) in self.words.iter().zip(value) {
            word.store(v, Ordering::Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written() {
        let lock: SeqLock<3> = SeqLock::new([1, 2, 3]);
        assert_eq!(lock.try_read(), Some(([1, 2, 3], 0)));
        lock.write([4, 5, 6]);
        assert_eq!(lock.try_read(), Some(([4, 5, 6], 2)));
        assert_eq!(lock.read_bounded(1), Some([4, 5, 6]));
        assert_eq!(lock.version(), 2);
    }

    #[test]
    fn a_write_in_progress_is_never_returned() {
        let lock: SeqLock<2> = SeqLock::new([0, 0]);
        // Simulate a writer stopped between its two sequence increments.
        lock.seq.store(1, Ordering::Relaxed);
        assert_eq!(lock.try_read(), None);
        assert_eq!(lock.read_bounded(100), None);
    }
}
