//! What an I/O backend does for the reactor core: move bytes, nothing else.
//!
//! The core ([`super::core`]) owns every connection, its state, its timers and its accounting;
//! it asks a [`Driver`] for one operation at a time per direction and per connection (a
//! receive into the connection's read space, a send from its pending output) and is told when
//! each has completed. io_uring does that literally (one submission, one completion); epoll
//! does it with readiness: it performs the system call when the socket is ready and reports the
//! result as a completion (monoio's `driver/op/` is the model: one type per operation, both
//! backends). Datagrams never reach the core's connection machinery: a driver answers each one
//! through the shared [`super::datagram::Answerer`] as it receives it.

use std::os::fd::{OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::datagram::Answerer;
use super::slab::Key;
use crate::protocol::http::routes::PortKind;

/// A connection buffer an operation reads into or writes from. The core keeps it allocated,
/// unmoved and untouched from the operation's start until its completion has been handed back
/// (a connection's read buffer is a boxed slice, its write buffer is neither written nor
/// resized while a send is in flight).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IoBuf {
    pub ptr: *mut u8,
    pub len: usize,
}

impl IoBuf {
    pub fn of(bytes: &mut [u8]) -> IoBuf {
        IoBuf {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
        }
    }

    /// For a send: the kernel only reads from it.
    pub(crate) fn of_output(bytes: &[u8]) -> IoBuf {
        IoBuf {
            ptr: bytes.as_ptr().cast_mut(),
            len: bytes.len(),
        }
    }
}

/// What a driver reports to the core.
#[derive(Debug)]
pub(crate) enum Event {
    /// A listener of a port of this kind accepted a connection.
    Accepted { port: PortKind, fd: OwnedFd },
    /// A receive ended: bytes read, 0 at end of stream, or `-errno` (`-ECANCELED` when it was
    /// cancelled before it finished).
    Received { key: Key, result: i32 },
    /// A send ended: bytes written (possibly fewer than asked), or `-errno`.
    Sent { key: Key, result: i32 },
    /// The reactor's wake-up socket was written: drain and stop.
    Wake,
}

/// An I/O backend.
pub(crate) trait Driver {
    /// Starts a receive into `buf` for connection `key` on `fd`: ends with [`Event::Received`].
    fn recv(&mut self, key: Key, fd: RawFd, buf: IoBuf);

    /// Starts a send of `buf` for connection `key` on `fd`: ends with [`Event::Sent`].
    fn send(&mut self, key: Key, fd: RawFd, buf: IoBuf);

    /// Asks the connection's operations in flight (`recv`, `send`) to end now; each still
    /// completes, with `-ECANCELED` if it had not finished.
    fn cancel(&mut self, key: Key, fd: RawFd, recv: bool, send: bool);

    /// Connection `key` has no operation in flight and its descriptor `fd` closes after this
    /// call: drop whatever the driver keeps for it.
    fn forget(&mut self, key: Key, fd: RawFd);

    /// Writes the static overload response on a refused connection, then closes it.
    fn reject(&mut self, fd: OwnedFd);

    /// Stops accepting and receiving datagrams (shutdown). Connections already waiting in the
    /// kernel's accept queues were made before it: they are pushed to `events` as accepted.
    fn stop_listening(&mut self, events: &mut Vec<Event>);

    /// Waits until there is work or `until` passes (at once when work is already waiting).
    fn wait(&mut self, until: Instant) -> std::io::Result<()>;

    /// Moves what is ready: answers datagrams through `answer` and pushes the other
    /// completions to `events`. Bounded: what it leaves makes the next [`Driver::wait`] return
    /// at once. `arrived` is when the wait ended (latency is measured from it).
    fn reap(&mut self, answer: &mut Answerer, arrived: Instant, events: &mut Vec<Event>);

    /// No operation is still owed a completion (shutdown may end).
    fn idle(&self) -> bool;

    /// The reactor is done: release the kernel's side.
    fn finish(self);
}

/// How long a driver waits at most, so timers run even when nothing happens.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(100);
