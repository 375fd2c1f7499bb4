//! Where state lives: the embedded store and journals on disk, and the optional external stores.

use std::path::PathBuf;

use super::group::settings_group;
use super::setting::{CacheKind, DatabaseKind, HttpKind, Int, Name, PathSetting, Switch, Url};

settings_group! {
    /// Stores. With none of the URLs set, the engine runs on its embedded store alone.
    pub struct StoreConfig, args StoreArgs, heading "Stores" {
        /// Directory of the embedded store (SQLite) and the usage journals.
        beast_data_dir: PathSetting = PathSetting(PathBuf::from("./data")), env = "BEAST_DATA_DIR";
        /// Valkey/Redis URL for the shared price cache and node stats.
        cache_url: Option<Url<CacheKind>> = None, env = "CACHE_URL";
        /// PostgreSQL (Aurora) URL for keys, parameters and usage records.
        database_url: Option<Url<DatabaseKind>> = None, env = "DATABASE_URL";
        /// Alias of DATABASE_URL, used when DATABASE_URL is not set.
        aurora_url: Option<Url<DatabaseKind>> = None, env = "AURORA_URL";
        /// SQS queue URL that receives usage records.
        sqs_usage_log_queue_url: Option<Url<HttpKind>> = None, env = "SQS_USAGE_LOG_QUEUE_URL";
        /// AWS region of the SQS queue.
        aws_region: Name = Name("us-east-1".into()), env = "AWS_REGION";
        /// Meter every request answered with prices: exact counts per minute, key, asset, protocol and latency bucket.
        usage_metering: Switch = Switch(true), env = "BEAST_USAGE_METERING";
        /// Also store one raw record per request (audits): rows grow with the request rate.
        usage_raw_records: Switch = Switch(false), env = "BEAST_USAGE_RAW_RECORDS";
        /// Days usage is kept in the store; older rows are deleted in small batches.
        usage_retention_days: Int<1, 36_500> = Int::new(93), env = "USAGE_RETENTION_DAYS";
        /// How often the usage journal is fsynced, ms (0: every write). A process crash loses no journaled record either way; a machine crash loses at most this much.
        journal_fsync_ms: Int<0, 60_000> = Int::new(1_000), env = "BEAST_JOURNAL_FSYNC_MS";
        /// Most bytes the usage journal keeps for sinks that are down; past it the oldest undelivered usage is given up (counted, logged) and serving goes on.
        journal_max_bytes: Int<1_048_576, 1_099_511_627_776> = Int::new(4 << 30), env = "BEAST_JOURNAL_MAX_BYTES";
        /// How often the store is asked whether keys or parameters changed, ms.
        keys_poll_ms: Int<50, 60_000> = Int::new(250), env = "BEAST_KEYS_POLL_MS";
        /// Seconds between writes of fresh prices to Valkey.
        cache_prices_every_s: Int<1, 3_600> = Int::new(30), env = "BEAST_CACHE_PRICES_EVERY_S";
    }
}

impl StoreConfig {
    /// The PostgreSQL URL in effect: DATABASE_URL, else AURORA_URL.
    pub fn database(&self) -> Option<&Url<DatabaseKind>> {
        self.database_url.as_ref().or(self.aurora_url.as_ref())
    }
}
