//! Thread-per-core reactors. Each reactor is one OS thread, pinned to its own CPU, with its own
//! sockets (`SO_REUSEPORT`) and its own event loop on io_uring or, where io_uring is missing or
//! blocked, epoll. Reactors share nothing mutable: they read the price table, write only their
//! own metrics, and learn of shutdown through their own wake-up socket.

pub(crate) mod conn;
mod core;
mod datagram;
mod driver;
#[cfg(feature = "epoll")]
mod epoll;
pub(crate) mod governor;
pub(crate) mod slab;
pub(crate) mod sockets;
pub(crate) mod stall;
#[cfg(feature = "uring")]
mod uring;

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use crate::config::setting::IoChoice;
use crate::node::Node;

pub use conn::Timeouts;
pub use sockets::{BindError, BoundAddrs, Ports, ReactorSockets};

/// The end of a wake-up socket a reactor listens on; a datagram on it means "drain and stop".
pub(crate) type Waker = UnixDatagram;

/// Connections a reactor keeps beyond the governor's limit for the health ports, which the
/// governor does not refuse: load balancer health checks must get through an overload.
pub(crate) const HEALTH_CONNECTIONS: usize = 64;

/// What a connection past the governor's limit gets before it is closed.
pub(crate) const REJECT_OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 60\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{\"error\":\"overloaded\",\"message\":\"too many open connections\"}";

/// Per-reactor limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections this reactor serves at once (its share of the node's limit).
    pub max_connections: usize,
    pub success_threshold: f64,
    pub timeouts: Timeouts,
    pub stall_threshold: Duration,
    /// UDP replies that may wait for the kernel at once.
    pub udp_send_slots: usize,
    /// How long in-flight requests get after shutdown starts.
    pub drain_grace: Duration,
}

/// Everything a reactor thread starts with.
pub struct ReactorSpec {
    pub index: usize,
    /// Where this reactor's usage records go.
    pub meter: crate::usage::Meter,
    pub sockets: ReactorSockets,
    pub node: Arc<Node>,
    pub limits: Limits,
    pub waker: Waker,
}

/// The I/O backend in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Uring,
    Epoll,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("io_uring was asked for but cannot be used: {0}")]
    UringUnavailable(String),
    #[error("the {0} backend is not compiled into this binary")]
    NotCompiled(&'static str),
}

/// Picks the backend. With `auto`, io_uring is probed and, if it cannot be used, epoll is
/// chosen and the reason returned for the one log line that says so.
pub(crate) fn select_backend(choice: IoChoice) -> Result<(Backend, Option<String>), BackendError> {
    match choice {
        IoChoice::Epoll if cfg!(feature = "epoll") => Ok((Backend::Epoll, None)),
        IoChoice::Epoll => Err(BackendError::NotCompiled("epoll")),
        IoChoice::Uring => match probe_uring() {
            Ok(()) => Ok((Backend::Uring, None)),
            Err(reason) => Err(BackendError::UringUnavailable(reason)),
        },
        IoChoice::Auto => match probe_uring() {
            Ok(()) => Ok((Backend::Uring, None)),
            Err(_) if !cfg!(feature = "epoll") => Err(BackendError::NotCompiled("epoll")),
            Err(reason) => Ok((Backend::Epoll, Some(reason))),
        },
    }
}

/// Why io_uring cannot serve here, in words an operator can act on.
pub fn probe_uring() -> Result<(), String> {
    #[cfg(feature = "uring")]
    {
        // On a thread of its own: tearing a ring down queues kernel work to the thread that
        // made it, which interrupts that thread's blocking socket calls with EINTR (seen as
        // a client's read failing in the caller of `Server::start`).
        let probed = std::thread::Builder::new()
            .name("uring-probe".into())
            .spawn(uring::probe)
            .map_err(|e| format!("cannot start the io_uring probe: {e}"))?
            .join()
            .map_err(|_| "the io_uring probe panicked".to_string())?;
        probed.map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::EPERM) => "permission denied (EPERM): a seccomp profile (Docker's default blocks io_uring) or kernel.io_uring_disabled",
                Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)",
                Some(libc::ENOMEM) => "out of locked memory (ENOMEM): raise RLIMIT_MEMLOCK (ulimit -l)",
                Some(libc::EINVAL) => "the kernel lacks SINGLE_ISSUER/DEFER_TASKRUN or buffer rings (EINVAL): needs Linux 6.1+",
                _ => "",
            };
            if why.is_empty() { format!("io_uring set-up failed: {e}") } else { why.to_string() }
        })
    }
    #[cfg(not(feature = "uring"))]
    Err("io_uring is not compiled into this binary".to_string())
}

/// Runs one reactor on the calling thread until it has drained after shutdown. `started` is
/// told whether set-up worked, before the loop begins.
pub fn run(
    backend: Backend,
    spec: ReactorSpec,
    started: impl FnOnce(std::io::Result<()>),
) -> std::io::Result<()> {
    fn report<R>(
        made: std::io::Result<R>,
        started: impl FnOnce(std::io::Result<()>),
    ) -> std::io::Result<R> {
        match made {
            Ok(driver) => {
                started(Ok(()));
                Ok(driver)
            }
            Err(e) => {
                started(Err(std::io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }
    let ReactorSpec {
        index,
        meter,
        sockets,
        node,
        limits,
        waker,
    } = spec;
    let answerer = datagram::Answerer::new(node, index, meter, sockets.udp_reports.clone());
    let core = core::Core::new(index, answerer, limits);
    match backend {
        #[cfg(feature = "uring")]
        Backend::Uring => core.run(report(
            uring::Uring::new(sockets, waker, limits.udp_send_slots, index),
            started,
        )?),
        #[cfg(feature = "epoll")]
        Backend::Epoll => core.run(report(epoll::Epoll::new(sockets, waker), started)?),
        #[allow(
            unreachable_patterns,
            reason = "reachable when a backend is compiled out"
        )]
        _ => {
            let _ = (core, sockets, waker);
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "backend not compiled in",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overload_response_is_well_formed() {
        let text = std::str::from_utf8(REJECT_OVERLOADED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "overloaded");
    }
}
