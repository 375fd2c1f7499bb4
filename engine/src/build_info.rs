//! Facts about this build, for `beast version`, /health and logs.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("BEAST_GIT_COMMIT");
pub const TARGET: &str = env!("BEAST_TARGET");
pub const PROFILE: &str = env!("BEAST_PROFILE");

/// The I/O backends compiled into this binary, in preference order.
pub fn io_backends() -> Vec<&'static str> {
    let mut backends = Vec::new();
    if cfg!(feature = "uring") {
        backends.push("uring");
    }
    if cfg!(feature = "epoll") {
        backends.push("epoll");
    }
    backends
}
