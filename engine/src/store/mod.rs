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
}
