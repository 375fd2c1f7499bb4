//! Where keys and usage records live: the embedded SQLite store by default, PostgreSQL when
//! `DATABASE_URL` is set. Both keep the same tables, created by versioned migrations at start.

pub mod postgres;
pub mod sqlite;

use std::path::Path;

use crate::access::{KeyHash, Tier};
use crate::usage::record::UsageRecord;
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
}

impl StoreError {
    /// Worth trying again later (the store is busy or unreachable), as opposed to a fault in
    /// the data or the configuration.
    pub fn is_retryable(&self) -> bool {
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
            StoreError::Timeout => true,
            StoreError::DataDir { .. }
            | StoreError::Corrupt(_)
            | StoreError::TooNew { .. }
            | StoreError::Tls(_) => false,
        }
    }
}

/// Which usage records to count.
#[derive(Clone, Copy, Debug, Default)]
pub struct UsageQuery {
    pub key_id: Option<u64>,
    pub since_ms: Option<u64>,
}

/// The configured store: one interface over both, for the CLI and the side thread. SQLite calls
/// run inline (they take well under a millisecond on the local disk).
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// PostgreSQL when `database_url` is given, the embedded store in `data_dir` otherwise.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Store, StoreError> {
        match database_url {
            Some(url) => Ok(Store::Postgres(PgStore::connect(url).await?)),
            None => Ok(Store::Sqlite(SqliteStore::open(data_dir)?)),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// A PostgreSQL connection that has dropped must be replaced.
    pub fn is_closed(&self) -> bool {
        match self {
            Store::Sqlite(_) => false,
            Store::Postgres(pg) => pg.is_closed(),
        }
    }

    pub async fn create_key(&mut self, key: &NewKey<'_>) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.create_key(key),
            Store::Postgres(p) => p.create_key(key).await,
        }
    }

    pub async fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        match self {
            Store::Sqlite(s) => s.keys(),
            Store::Postgres(p) => p.keys().await,
        }
    }

    pub async fn revoke_key(&mut self, id: u64, now_ms: u64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.revoke_key(id, now_ms),
            Store::Postgres(p) => p.revoke_key(id, now_ms).await,
        }
    }

    pub async fn version(&mut self, name: &str) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.version(name),
            Store::Postgres(p) => p.version(name).await,
        }
    }

    pub async fn insert_usage(&mut self, records: &[UsageRecord]) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_usage(records),
            Store::Postgres(p) => p.insert_usage(records).await,
        }
    }

    pub async fn count_usage(&mut self, query: &UsageQuery) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.count_usage(query),
            Store::Postgres(p) => p.count_usage(query).await,
        }
    }

    pub async fn params(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.params(),
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
            Store::Sqlite(s) => s.set_param(name, value, now_ms),
            Store::Postgres(p) => p.set_param(name, value, now_ms).await,
        }
    }
}
