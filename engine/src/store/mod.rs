//! Where keys and usage records live: the embedded SQLite store by default, PostgreSQL when
//! `DATABASE_URL` is set. Both keep the same tables, created by versioned migrations at start.

pub mod sqlite;

use crate::access::{KeyHash, Tier};

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
            StoreError::DataDir { .. } | StoreError::Corrupt(_) | StoreError::TooNew { .. } => {
                false
            }
        }
    }
}
