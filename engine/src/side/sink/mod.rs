//! Where usage is delivered: the configured store (embedded SQLite, or PostgreSQL) and, when
//! configured, an SQS queue. Each sink reads the journal on its own cursor.

pub mod sqs;

use std::path::PathBuf;

use std::time::Duration;

use crate::store::{Store, StoreError};
use crate::usage::apply::Applied;
use crate::usage::batch::Batch;
use sqs::{SqsClient, SqsError};

/// The sinks a node can have, in the order `/metrics` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Sqlite,
    Postgres,
    Sqs,
}

pub(crate) const SINK_KINDS: [SinkKind; 3] = [SinkKind::Sqlite, SinkKind::Postgres, SinkKind::Sqs];

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Sqlite => "sqlite",
            SinkKind::Postgres => "postgres",
            SinkKind::Sqs => "sqs",
        }
    }

    /// Most batches per delivery. A store merges them into one transaction of rollups (a few
    /// rows per key and asset, however many requests); SQS sends each as one message, 10 per
    /// call, [`sqs::CONCURRENT_CALLS`] calls at a time.
    pub fn batches(self) -> usize {
        match self {
            SinkKind::Sqlite | SinkKind::Postgres => 2_000,
            SinkKind::Sqs => sqs::BATCH * sqs::CONCURRENT_CALLS,
        }
    }

    /// How long a sink lets batches gather before a delivery: the stores' rows per second are
    /// the distinct rollups per interval, not the requests.
    pub(crate) fn flush_every(self) -> Duration {
        match self {
            SinkKind::Sqlite | SinkKind::Postgres => Duration::from_secs(1),
            SinkKind::Sqs => Duration::from_millis(250),
        }
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
    /// The sink did not answer in time: the next delivery is made smaller.
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, SinkError::Store(StoreError::Timeout))
    }

    pub(crate) fn is_retryable(&self) -> bool {
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
        /// Write raw records too (audits).
        raw: bool,
        store: Option<Store>,
    },
    Sqs(SqsClient),
}

impl Sink {
    pub fn store(database_url: Option<String>, data_dir: PathBuf, raw: bool) -> Sink {
        Sink::Store {
            kind: if database_url.is_some() {
                SinkKind::Postgres
            } else {
                SinkKind::Sqlite
            },
            database_url,
            data_dir,
            raw,
            store: None,
        }
    }

    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Store { kind, .. } => *kind,
            Sink::Sqs(_) => SinkKind::Sqs,
        }
    }

    /// Delivers batches; once it returns `Ok` they are durable in the sink.
    pub async fn deliver(&mut self, batches: Vec<Batch>) -> Result<Applied, SinkError> {
        match self {
            Sink::Store {
                database_url,
                data_dir,
                raw,
                store,
                ..
            } => {
                if store.as_ref().is_none_or(Store::is_closed) {
                    *store = None;
                    *store = Some(Store::open(database_url.as_deref(), data_dir).await?);
                }
                let Some(open) = store.as_mut() else {
                    return Ok(Applied::default());
                };
                match open.apply_usage(batches, *raw).await {
                    Ok(applied) => Ok(applied),
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
                let records = batches.iter().map(|b| b.records).sum();
                let messages = batches.len() as u64;
                client.send(batches).await?;
                Ok(Applied {
                    applied: records,
                    duplicates: 0,
                    rows: messages,
                    gap: 0,
                })
            }
        }
    }

    /// The store, opened if need be (for retention); none for SQS or while it cannot be
    /// reached.
    pub async fn open_or_connect(&mut self) -> Option<&mut Store> {
        let Sink::Store {
            database_url,
            data_dir,
            store,
            ..
        } = self
        else {
            return None;
        };
        if store.as_ref().is_none_or(Store::is_closed) {
            *store = Store::open(database_url.as_deref(), data_dir).await.ok();
        }
        store.as_mut()
    }
}
