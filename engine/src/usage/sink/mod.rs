//! Where usage records are delivered: the configured store (embedded SQLite, or PostgreSQL)
//! and, when configured, an SQS queue. Each sink reads the journal on its own cursor.

pub mod sqs;

use std::path::PathBuf;

use crate::store::{Store, StoreError};
use crate::usage::record::UsageRecord;
use sqs::{SqsClient, SqsError};

/// The sinks a node can have, in the order `/metrics` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Sqlite,
    Postgres,
    Sqs,
}

pub const SINK_KINDS: [SinkKind; 3] = [SinkKind::Sqlite, SinkKind::Postgres, SinkKind::Sqs];

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Sqlite => "sqlite",
            SinkKind::Postgres => "postgres",
            SinkKind::Sqs => "sqs",
        }
    }

    /// Rows per delivery: PostgreSQL's micro-batch is 300 rows; SQS sends them 10 per call.
    /// SQLite runs on the side thread itself, so its transactions stay short (300 rows, about
    /// half a millisecond) lest they hold up a reactor sharing the core.
    pub fn batch(self) -> usize {
        300
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sqs(#[from] SqsError),
}

impl SinkError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Store(e) => e.is_retryable(),
            SinkError::Sqs(e) => e.is_retryable(),
        }
    }
}

/// A sink and its connection, opened (and reopened) on demand.
pub enum Sink {
    Store {
        kind: SinkKind,
        database_url: Option<String>,
        data_dir: PathBuf,
        store: Option<Store>,
    },
    Sqs(SqsClient),
}

impl Sink {
    pub fn store(database_url: Option<String>, data_dir: PathBuf) -> Sink {
        Sink::Store {
            kind: if database_url.is_some() {
                SinkKind::Postgres
            } else {
                SinkKind::Sqlite
            },
            database_url,
            data_dir,
            store: None,
        }
    }

    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Store { kind, .. } => *kind,
            Sink::Sqs(_) => SinkKind::Sqs,
        }
    }

    /// Delivers records; `Ok(n)`: n of them were new to the sink (the rest were there already).
    pub async fn deliver(&mut self, records: &[UsageRecord]) -> Result<u64, SinkError> {
        match self {
            Sink::Store {
                database_url,
                data_dir,
                store,
                ..
            } => {
                if store.as_ref().is_none_or(Store::is_closed) {
                    *store = None;
                    *store = Some(Store::open(database_url.as_deref(), data_dir).await?);
                }
                let Some(open) = store.as_mut() else {
                    return Ok(0);
                };
                match open.insert_usage(records).await {
                    Ok(n) => Ok(n),
                    Err(e) => {
                        // Reconnect next time: a dropped connection may look like any error.
                        if e.is_retryable() {
                            *store = None;
                        }
                        Err(e.into())
                    }
                }
            }
            Sink::Sqs(client) => {
                client.send(records).await?;
                Ok(records.len() as u64)
            }
        }
    }
}
