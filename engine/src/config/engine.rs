//! How the serving engine runs: reactors, I/O backend, sockets, limits, start-up inputs.

use super::group::settings_group;
use super::setting::{BindAddr, Int, IoChoice, PathSetting, Switch};

settings_group! {
    /// The serving engine.
    pub struct EngineConfig, args EngineArgs, heading "Engine" {
        /// Reactor threads, one per core; 0 means one per CPU this process may run on.
        reactors: Int<0, 1024> = Int::new(0), env = "BEAST_REACTORS";
        /// I/O backend: auto probes io_uring at start-up and falls back to epoll, saying why.
        io: IoChoice = IoChoice::Auto, env = "BEAST_IO";
        /// Address every port listens on.
        bind: BindAddr = BindAddr(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)), env = "BEAST_BIND";
        /// Pin each reactor to its own CPU.
        pin: Switch = Switch(true), env = "BEAST_PIN";
        /// A reactor loop turn longer than this is logged as a stall.
        stall_threshold_ms: Int<1, 60_000> = Int::new(10), env = "BEAST_STALL_THRESHOLD_MS";
        /// On SIGTERM/SIGINT, in-flight requests get this long to finish before the process exits.
        shutdown_grace_ms: Int<0, 600_000> = Int::new(5_000), env = "BEAST_SHUTDOWN_GRACE_MS";
        /// Refuse price requests without an API key (401); off serves them as anonymous.
        require_key: Switch = Switch(false), env = "BEAST_REQUIRE_KEY";
        /// JSON lines of {"asset","price","source","ts"} that seed the price table at start-up.
        prices: Option<PathSetting> = None, env = "BEAST_PRICES";
        /// Move every seeded price by a small random step twice a second (demonstrations, tests).
        demo_walk: Switch = Switch(false), env = "BEAST_DEMO_WALK";
    }
}
