//! A one-shot timerfd that wakes the event loop with microsecond precision.
//!
//! epoll's own timeout is whole milliseconds: an open-loop generator waiting on it would send
//! in 1 ms bursts and charge up to a millisecond of its own lateness to every latency it
//! measures from the intended send time.
#![allow(
    unsafe_code,
    reason = "timerfd and prctl have no safe wrapper among our dependencies"
)]

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

pub struct Timer {
    fd: File,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create takes no pointers; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nothing else.
        let fd = unsafe { File::from_raw_fd(fd) };
        Ok(Timer { fd })
    }

    /// Fires once, `after` from now (a zero delay would disarm the timer, so at least 1 µs).
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_micros(1));
        let value = libc::timespec {
            tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(after.subsec_nanos()),
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec on the stack; a null old-value pointer is allowed.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes an expiry, so that the next one is reported again.
    pub fn clear(&mut self) {
        let mut expirations = [0u8; 8];
        let _ = self.fd.read(&mut expirations);
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Lets this thread's timers fire within a microsecond instead of the default 50 µs slack.
fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and no pointers.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
}

/// A load thread's event loop: a poll with a timer registered under `token`, on a thread whose
/// timers fire within a microsecond.
pub fn event_loop(token: Token) -> io::Result<(Poll, Timer)> {
    tight_timer_slack();
    let poll = Poll::new()?;
    let timer = Timer::new()?;
    poll.registry()
        .register(&mut SourceFd(&timer.as_raw_fd()), token, Interest::READABLE)?;
    Ok((poll, timer))
}
