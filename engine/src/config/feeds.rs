//! Where prices come from: the live exchanges, the built-in simulator, or nothing.

use super::group::settings_group;
use super::setting::{FeedMode, Int, SimSource, Switch, VenueName};

settings_group! {
    /// Exchange feeds and the exchange simulator.
    pub struct FeedConfig, args FeedArgs, heading "Feeds" {
        /// Price source: the live exchanges, the built-in simulator, or none (--prices only).
        feeds: FeedMode = FeedMode::Live, env = "BEAST_FEEDS";
        /// A venue whose fresh price is served instead of the median of fresh sources.
        primary_source: Option<VenueName> = None, env = "BEAST_PRIMARY_SOURCE";
        /// How often the REST fallback polls a venue for the assets its stream has not priced for
        /// half of `--cache-ttl-seconds` (so the REST price is in before the stream's goes stale).
        rest_poll_ms: Int<100, 600_000> = Int::new(2000), env = "BEAST_REST_POLL_MS";
        /// Feeds reach the in-process simulator over wss:// (its generated certificate trusted).
        sim_tls: Switch = Switch(true), env = "BEAST_SIM_TLS";
        /// Price frames per second on each simulated connection.
        sim_rate: Int<1, 100_000> = Int::new(25), env = "BEAST_SIM_RATE";
        /// What drives the simulator's prices: the recorded sessions or a random walk.
        sim_source: SimSource = SimSource::Samples, env = "BEAST_SIM_SOURCE";
    }
}
