//! The push engine of a `WEBHOOK_SERVER` node: where it may deliver, and how hard it tries.

use super::group::settings_group;
use super::setting::{Int, NetList, PathSetting};

settings_group! {
    /// Push to subscribers (`SERVER_TYPE=WEBHOOK_SERVER`); `beast subscriptions` uses the limits.
    pub struct PushConfig, args PushArgs, heading "Push" {
        /// Networks deliveries may reach although the SSRF guard refuses them (loopback, private, link-local, CGNAT…), such as 127.0.0.0/8 for local receivers.
        webhook_allow_nets: NetList = NetList::default(), env = "WEBHOOK_ALLOW_NETS";
        /// PEM file of extra CA certificates trusted for HTTPS deliveries, beside the Mozilla roots.
        webhook_ca_file: Option<PathSetting> = None, env = "WEBHOOK_CA_FILE";
        /// Whole-attempt timeout of an HTTPS delivery (connect, TLS, request, response), ms.
        webhook_timeout_ms: Int<100, 60_000> = Int::new(10_000), env = "WEBHOOK_TIMEOUT_MS";
        /// HTTPS attempts after the first one fails.
        webhook_retries: Int<0, 10> = Int::new(3), env = "WEBHOOK_RETRIES";
        /// First retry delay, ms; doubled each retry, with ±50 % jitter.
        webhook_retry_base_ms: Int<10, 600_000> = Int::new(1_000), env = "WEBHOOK_RETRY_BASE_MS";
        /// Longest Retry-After honoured, seconds.
        webhook_retry_after_max_s: Int<1, 3_600> = Int::new(60), env = "WEBHOOK_RETRY_AFTER_MAX_S";
        /// HTTPS attempts in flight at once per endpoint (host:port).
        webhook_endpoint_in_flight: Int<1, 64> = Int::new(4), env = "WEBHOOK_ENDPOINT_IN_FLIGHT";
        /// Consecutive failures that open an endpoint's circuit breaker.
        webhook_breaker_failures: Int<1, 1_000> = Int::new(5), env = "WEBHOOK_BREAKER_FAILURES";
        /// How long an open breaker waits before one probe, ms.
        webhook_breaker_cooldown_ms: Int<100, 3_600_000> = Int::new(30_000), env = "WEBHOOK_BREAKER_COOLDOWN_MS";
        /// Subscriptions of an endpoint that has failed this long are disabled, seconds (0: never).
        webhook_disable_after_s: Int<0, 2_592_000> = Int::new(86_400), env = "WEBHOOK_DISABLE_AFTER_S";
        /// Days the delivery log is kept.
        webhook_log_retention_days: Int<1, 3_650> = Int::new(30), env = "WEBHOOK_LOG_RETENTION_DAYS";
        /// Subscriptions one API key may own.
        webhook_max_per_key: Int<1, 100_000> = Int::new(100), env = "WEBHOOK_MAX_PER_KEY";
        /// How long a rotated secret keeps signing beside the new one, seconds.
        webhook_secret_overlap_s: Int<0, 2_592_000> = Int::new(86_400), env = "WEBHOOK_SECRET_OVERLAP_S";
        /// How often the push node asks the store whether subscriptions changed, ms.
        webhook_poll_ms: Int<50, 60_000> = Int::new(250), env = "WEBHOOK_POLL_MS";
    }
}
