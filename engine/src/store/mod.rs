//! Where keys and usage live: the embedded SQLite store by default, PostgreSQL when
//! `DATABASE_URL` is set. Both keep the same tables, created by versioned migrations at start.
//!
//! Every call on the embedded store runs on tokio's blocking pool, never on the thread that
//! awaits it: a call may wait up to the busy timeout while another process (`beast keys
//! create`) holds the database, or for an fsync, and the side thread's drain must not wait.

pub(crate) mod postgres;
pub mod sqlite;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::access::{KeyHash, Tier};
use crate::usage::apply::Applied;
use crate::usage::batch::Batch;
use postgres::PgStore;
use sqlite::SqliteStore;

/// A key as the store keeps it (its hash, never the key).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredKey {
    pub id: u64,
    #[serde(skip)]
    pub hash: KeyHash,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub name: String,
    #[serde(serialize_with = "tier_name")]
    pub tier: Tier,
    pub created_ms: u64,
    pub revoked_ms: Option<u64>,
}

fn tier_name<S: serde::Serializer>(tier: &Tier, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tier.name())
}

/// A new key to store.
pub struct NewKey<'a> {
    pub hash: KeyHash,
    pub prefix: &'a str,
    pub name: &'a str,
    pub tier: Tier,
    pub now_ms: u64,
}

/// A push subscription's columns, as both stores read and write them (the push engine turns
/// them into its model).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub id: u64,
    pub owner: u64,
    pub target: String,
    /// Comma-separated symbols.
    pub assets: String,
    pub every_s: Option<u32>,
    pub move_bps: Option<u32>,
    pub min_gap_ms: u64,
    pub format: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until_ms: u64,
    pub state: String,
    pub reason: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub seq_floor: u64,
}

/// Usage of one key in one hour or day, for one asset and protocol (the usage report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    /// Start of the hour or day, Unix ms.
    pub period_ms: u64,
    pub asset: String,
    pub protocol: String,
    pub requests: u64,
    pub prices: u64,
}

/// What the usage report asks the store for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageReportQuery {
    pub key_id: u64,
    pub since_ms: u64,
    pub until_ms: u64,
    /// An hour or a day, in ms.
    pub period_ms: u64,
    /// Most rows returned.
    pub limit: u64,
}

/// One stored candle of the price history (prices as decimal text, as written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandleRow {
    pub asset: String,
    /// `served` or a venue's name.
    pub series: String,
    /// `1s` ... `1d`.
    pub interval: String,
    pub open_ms: u64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub ticks: u64,
    pub venues: u8,
}

/// One row of the push delivery log: an HTTPS attempt, or the UDP datagrams of one
/// subscription, minute and outcome rolled up (`count`, sequence numbers `seq..=seq_last`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryRow {
    pub subscription_id: u64,
    pub protocol: String,
    pub seq: u64,
    pub seq_last: u64,
    pub count: u64,
    pub attempt: u32,
    pub ts_ms: u64,
    pub outcome: String,
    pub status: Option<u16>,
    pub error: String,
    pub latency_ms: u64,
    /// The body of a delivery given up, kept for replay.
    #[serde(skip)]
    pub payload: Option<String>,
}

/// A request to send a subscription's failed deliveries again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replay {
    pub id: u64,
    pub subscription_id: u64,
    pub since_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("embedded store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the store holds a row this version cannot read: {0}")]
    Corrupt(String),
    #[error("the store's schema is version {found}, newer than this beast ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("PostgreSQL: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    #[error("the store did not answer within {}s", postgres::TIMEOUT.as_secs())]
    Timeout,
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
    #[error("the embedded store's call was cut short: {0}")]
    Interrupted(String),
}

impl StoreError {
    /// Worth trying again later (the store is busy or unreachable), as opposed to a fault in
    /// the data or the configuration.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            // A closed connection, a refused one, a server shutting down: worth retrying. An
            // error the server reported about the statement itself is not.
            StoreError::Postgres(e) => e.as_db_error().is_none_or(|db| {
                db.code().code().starts_with("08")
                    || db.code().code().starts_with("57")
                    || db.code().code().starts_with("53")
            }),
            StoreError::Timeout | StoreError::Interrupted(_) => true,
            StoreError::DataDir { .. }
            | StoreError::Corrupt(_)
            | StoreError::TooNew { .. }
            | StoreError::Tls(_) => false,
        }
    }
}

/// Which usage to count.
#[derive(Clone, Copy, Debug, Default)]
pub struct UsageQuery {
    pub key_id: Option<u64>,
    /// Usage is kept per minute: counting starts at the start of this time's minute.
    pub since_ms: Option<u64>,
}

impl UsageQuery {
    pub(crate) fn since_minute_ms(&self) -> i64 {
        let minute = crate::usage::batch::minute_of(self.since_ms.unwrap_or(0));
        i64::try_from(minute).unwrap_or(i64::MAX)
    }
}

/// The configured store: one interface over both, for the CLI and the side thread.
pub enum Store {
    Sqlite(Arc<Mutex<SqliteStore>>),
    Postgres(PgStore),
}

/// Runs `call` on the embedded store from tokio's blocking pool.
async fn on_sqlite<T: Send + 'static>(
    store: &Arc<Mutex<SqliteStore>>,
    call: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        // A call that panicked left no transaction open (rusqlite rolls back on drop).
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        call(&mut store)
    })
    .await
    .map_err(|e| StoreError::Interrupted(e.to_string()))?
}

impl Store {
    /// PostgreSQL when `database_url` is given, the embedded store in `data_dir` otherwise.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Store, StoreError> {
        match database_url {
            Some(url) => Ok(Store::Postgres(PgStore::connect(url).await?)),
            None => {
                let dir = data_dir.to_path_buf();
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir))
                    .await
                    .map_err(|e| StoreError::Interrupted(e.to_string()))??;
                Ok(Store::Sqlite(Arc::new(Mutex::new(store))))
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// A PostgreSQL connection that has dropped must be replaced.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Store::Sqlite(_) => false,
            Store::Postgres(pg) => pg.is_closed(),
        }
    }

    pub async fn create_key(&mut self, key: &NewKey<'_>) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let (hash, prefix, name, tier, now_ms) = (
                    key.hash,
                    key.prefix.to_string(),
                    key.name.to_string(),
                    key.tier,
                    key.now_ms,
                );
                on_sqlite(s, move |s| {
                    s.create_key(&NewKey {
                        hash,
                        prefix: &prefix,
                        name: &name,
                        tier,
                        now_ms,
                    })
                })
                .await
            }
            Store::Postgres(p) => p.create_key(key).await,
        }
    }

    pub async fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, SqliteStore::keys).await,
            Store::Postgres(p) => p.keys().await,
        }
    }

    pub async fn revoke_key(&mut self, id: u64, now_ms: u64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.revoke_key(id, now_ms)).await,
            Store::Postgres(p) => p.revoke_key(id, now_ms).await,
        }
    }

    pub async fn version(&mut self, name: &str) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let name = name.to_string();
                on_sqlite(s, move |s| s.version(&name)).await
            }
            Store::Postgres(p) => p.version(name).await,
        }
    }

    /// Applies a delivery of usage batches, each at most once (see [`crate::usage::apply`]).
    pub async fn apply_usage(
        &mut self,
        batches: Vec<Batch>,
        raw: bool,
    ) -> Result<Applied, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.apply_usage(&batches, raw)).await,
            Store::Postgres(p) => p.apply_usage(batches, raw).await,
        }
    }

    /// One key's usage by period, asset and protocol, from the rollups, oldest first.
    pub async fn usage_report(
        &mut self,
        query: UsageReportQuery,
    ) -> Result<Vec<UsageRow>, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.usage_report(&query)).await,
            Store::Postgres(p) => p.usage_report(&query).await,
        }
    }

    /// Requests answered, from the rollups.
    pub async fn count_usage(&mut self, query: &UsageQuery) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let query = *query;
                on_sqlite(s, move |s| s.count_usage(&query)).await
            }
            Store::Postgres(p) => p.count_usage(query).await,
        }
    }

    /// Deletes at most `limit` usage rows older than `before_ms`; how many.
    pub async fn delete_usage_before(
        &mut self,
        before_ms: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => {
                on_sqlite(s, move |s| s.delete_usage_before(before_ms, limit)).await
            }
            Store::Postgres(p) => p.delete_usage_before(before_ms, limit).await,
        }
    }

    /// Readies the store for retention's deletes (SQLite: incremental vacuum); true when
    /// that took work.
    pub async fn prepare_retention(&mut self) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, SqliteStore::enable_incremental_vacuum).await,
            Store::Postgres(_) => Ok(false),
        }
    }

    pub async fn params(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, SqliteStore::params).await,
            Store::Postgres(p) => p.params().await,
        }
    }

    pub async fn set_param(
        &mut self,
        name: &str,
        value: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => {
                let (name, value) = (name.to_string(), value.to_string());
                on_sqlite(s, move |s| s.set_param(&name, &value, now_ms)).await
            }
            Store::Postgres(p) => p.set_param(name, value, now_ms).await,
        }
    }

    pub async fn create_subscription(&mut self, row: SubscriptionRow) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.create_subscription(&row)).await,
            Store::Postgres(p) => p.create_subscription(&row).await,
        }
    }

    /// Every subscription, or one owner's, by id.
    pub async fn subscriptions(
        &mut self,
        owner: Option<u64>,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.subscriptions(owner)).await,
            Store::Postgres(p) => p.subscriptions(owner).await,
        }
    }

    /// Writes a subscription's settable columns (target, assets, trigger, format, secrets,
    /// state, updated time); false when it no longer exists. The push engine sees it at its
    /// next poll.
    pub async fn update_subscription(&mut self, row: SubscriptionRow) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.update_subscription(&row)).await,
            Store::Postgres(p) => p.update_subscription(&row).await,
        }
    }

    /// Disables an active subscription with the reason, touching nothing else (an owner's
    /// change made meanwhile stays); false when it is not active any more.
    pub async fn disable_subscription(
        &mut self,
        id: u64,
        reason: String,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => {
                on_sqlite(s, move |s| s.disable_subscription(id, &reason, now_ms)).await
            }
            Store::Postgres(p) => p.disable_subscription(id, &reason, now_ms).await,
        }
    }

    /// Deletes a subscription (its delivery log stays until retention); false when absent.
    pub async fn delete_subscription(&mut self, id: u64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.delete_subscription(id)).await,
            Store::Postgres(p) => p.delete_subscription(id).await,
        }
    }

    /// Raises subscriptions' sequence floors (never lowers one), in one transaction.
    pub async fn reserve_seqs(&mut self, floors: Vec<(u64, u64)>) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.reserve_seqs(&floors)).await,
            Store::Postgres(p) => p.reserve_seqs(&floors).await,
        }
    }

    pub async fn append_deliveries(&mut self, rows: Vec<DeliveryRow>) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.append_deliveries(&rows)).await,
            Store::Postgres(p) => p.append_deliveries(&rows).await,
        }
    }

    /// A subscription's delivery log from `since_ms` on, oldest first, at most `limit` rows;
    /// `gave_up_only` keeps the deliveries a replay would send again.
    pub async fn deliveries(
        &mut self,
        subscription_id: u64,
        since_ms: u64,
        limit: u64,
        gave_up_only: bool,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                on_sqlite(s, move |s| {
                    s.deliveries(subscription_id, since_ms, limit, gave_up_only)
                })
                .await
            }
            Store::Postgres(p) => {
                p.deliveries(subscription_id, since_ms, limit, gave_up_only)
                    .await
            }
        }
    }

    /// Asks the push engine to send a subscription's given-up deliveries since `since_ms` again.
    pub async fn request_replay(
        &mut self,
        subscription_id: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => {
                on_sqlite(s, move |s| {
                    s.request_replay(subscription_id, since_ms, now_ms)
                })
                .await
            }
            Store::Postgres(p) => p.request_replay(subscription_id, since_ms, now_ms).await,
        }
    }

    pub async fn pending_replays(&mut self) -> Result<Vec<Replay>, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, SqliteStore::pending_replays).await,
            Store::Postgres(p) => p.pending_replays().await,
        }
    }

    pub async fn finish_replay(&mut self, id: u64, now_ms: u64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.finish_replay(id, now_ms)).await,
            Store::Postgres(p) => p.finish_replay(id, now_ms).await,
        }
    }

    /// Deletes at most `limit` delivery-log rows older than `before_ms`; how many.
    pub async fn delete_deliveries_before(
        &mut self,
        before_ms: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => {
                on_sqlite(s, move |s| s.delete_deliveries_before(before_ms, limit)).await
            }
            Store::Postgres(p) => p.delete_deliveries_before(before_ms, limit).await,
        }
    }

    /// Writes candles, replacing any stored with the same key (a candle written open at
    /// shutdown and again once closed).
    pub async fn save_candles(&mut self, rows: Vec<CandleRow>) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.save_candles(&rows)).await,
            Store::Postgres(p) => p.save_candles(&rows).await,
        }
    }

    /// The candles of each interval opened at or after its bound, `(interval, since_ms)`.
    pub async fn load_candles(
        &mut self,
        since: Vec<(String, u64)>,
    ) -> Result<Vec<CandleRow>, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.load_candles(&since)).await,
            Store::Postgres(p) => p.load_candles(&since).await,
        }
    }

    /// Deletes candles older than the history keeps, `(interval, before_ms)`.
    pub async fn delete_candles_before(
        &mut self,
        before: Vec<(String, u64)>,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => on_sqlite(s, move |s| s.delete_candles_before(&before)).await,
            Store::Postgres(p) => p.delete_candles_before(&before).await,
        }
    }
}
