//! The side thread: everything slow, on one OS thread with a current-thread tokio runtime, so
//! the reactors never wait. It
//! - drains each reactor's usage ring into the journal and delivers the journal to the sinks
//!   ([`usage`]);
//! - reads keys and parameters from the store and publishes them to the reactors as immutable
//!   snapshots ([`keys`]), and carries out admin calls that change the store;
//! - writes prices and node stats to Valkey and reads them back for a warm start ([`cache`]);
//! - writes closed candles of the price history to the store and reads them back at start
//!   ([`candles`]).
//!
//! Reactors talk to it only through a bounded mailbox (`try_send`, never blocking) and read
//! what it publishes through atomics and `ArcSwap`s.

pub mod cache;
pub mod candles;
pub mod deferred;
pub(crate) mod keys;
pub mod limits;
pub mod sink;
pub(crate) mod stats;
pub(crate) mod usage;

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::access::{Access, KeyHash, Tier};
use crate::price::PriceTable;
use crate::usage::UsageEvent;
pub use stats::SideStats;

/// Admin calls the side thread carries out.
#[derive(Debug)]
pub enum Command {
    /// Read the parameters (and keys) from the store now.
    ReloadParams,
    /// Revoke a key in the store (it is already out of the reactors' set). Kept out of every
    /// set the side thread publishes, and retried, until the store has it revoked.
    RevokeKey { id: u64 },
    /// Store the key `/admin/bootstrap-key` created (already in the reactors' set).
    CreateKey {
        hash: KeyHash,
        prefix: String,
        tier: Tier,
        name: String,
    },
    /// Persist the system mode (already in force).
    SystemMode { performance: bool },
    /// A subscription management call over HTTP; answered through [`SideLink::outbox`].
    Subscription(Box<deferred::Call>),
}

/// How subscription calls over HTTP are checked (the `WEBHOOK_*` settings).
#[derive(Clone, Debug)]
pub struct SubscriptionPolicy {
    pub guard: crate::push::guard::Guard,
    pub max_per_key: usize,
    pub secret_overlap_ms: u64,
}

impl Default for SubscriptionPolicy {
    fn default() -> Self {
        SubscriptionPolicy {
            guard: crate::push::guard::Guard::default(),
            max_per_key: 100,
            secret_overlap_ms: 86_400_000,
        }
    }
}

/// Mailbox size: admin calls are rare; a full mailbox answers 503.
const MAILBOX: usize = 64;

/// How reactors reach the side thread.
#[derive(Clone)]
pub struct SideLink {
    commands: mpsc::Sender<Command>,
    pub stats: Arc<SideStats>,
    /// Answers to deferred HTTP calls, collected by each reactor.
    pub outbox: Arc<deferred::Outbox>,
}

impl SideLink {
    /// A link to nothing (benchmarks and unit tests): commands are refused.
    pub fn detached() -> SideLink {
        let (commands, _) = mpsc::channel(1);
        SideLink {
            commands,
            stats: Arc::new(SideStats::default()),
            outbox: Arc::default(),
        }
    }

    /// Hands a command over without waiting; false when the side thread cannot take it.
    pub fn send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }
}

/// What the side thread is configured with.
#[derive(Clone, Debug)]
pub struct SideOptions {
    pub node: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub cache_url: Option<String>,
    pub sqs_queue_url: Option<String>,
    pub aws_region: String,
    /// Whether requests are metered at all.
    pub metering: bool,
    /// Keep each request's raw record besides the rollups (audits).
    pub raw_records: bool,
    /// How often the journal is fsynced (0: every write).
    pub journal_fsync: Duration,
    pub journal_segment_bytes: u64,
    /// Past this the journal gives up its oldest segment.
    pub journal_max_bytes: u64,
    /// Usage older than this many days is deleted from the store.
    pub retention_days: u64,
    /// How often the store is asked whether keys or parameters changed.
    pub keys_poll: Duration,
    /// How long the sinks get to catch up at shutdown before the rest waits in the journal.
    pub shutdown_grace: Duration,
    pub cache_prices_every: Duration,
    pub cache_stats_every: Duration,
    pub stale_after_ms: u64,
    /// A core of its own, when the reactors leave one free (`--reactors` below the CPU count,
    /// pinned): then the side thread's work never takes time from a reactor.
    pub core: Option<core_affinity::CoreId>,
    /// Subscription calls over HTTP.
    pub subscriptions: SubscriptionPolicy,
}

/// The running side thread.
pub struct Side {
    stop: watch::Sender<bool>,
    grace: Arc<Grace>,
    thread: Option<JoinHandle<()>>,
    keys_read: std::sync::mpsc::Receiver<()>,
}

/// When the side thread's work must end after a stop: the sinks deliver until then, and what
/// they have not delivered waits in the journal.
pub(crate) struct Grace {
    grace: Duration,
    deadline: std::sync::Mutex<Option<Instant>>,
}

impl Grace {
    fn new(grace: Duration) -> Grace {
        Grace {
            grace,
            deadline: std::sync::Mutex::new(None),
        }
    }

    fn set(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = Some(deadline);
    }

    /// The deadline set by the stop, or the whole grace from now.
    pub fn deadline(&self) -> Instant {
        self.deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(|| Instant::now() + self.grace)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error("cannot start the side thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("cannot open the usage journal in {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
}

/// What the side thread works on.
pub struct SideInputs {
    pub access: Arc<Access>,
    pub table: Arc<PriceTable>,
    pub rings: Vec<rtrb::Consumer<UsageEvent>>,
    /// Valkey's warm start writes through this, before the price thread takes it.
    pub feeds: Vec<Arc<beast_feeds::client::FeedStatus>>,
}

/// Starts the side thread. Returns the handle and the link the reactors get.
pub fn start(options: SideOptions, inputs: SideInputs) -> Result<(Side, SideLink), SideError> {
    let stats = Arc::new(SideStats::default());
    let (commands, mailbox) = mpsc::channel(MAILBOX);
    let (stop, stopped) = watch::channel(false);
    let (keys_read_tx, keys_read) = std::sync::mpsc::channel();
    let grace = Arc::new(Grace::new(options.shutdown_grace));
    let thread_grace = Arc::clone(&grace);
    let journal = if options.metering {
        let dir = options.data_dir.join("usage");
        Some(
            crate::usage::journal::Journal::open(&dir, options.journal_segment_bytes).map_err(
                |source| SideError::Journal {
                    path: dir.display().to_string(),
                    source,
                },
            )?,
        )
    } else {
        None
    };
    let thread_stats = Arc::clone(&stats);
    let outbox: Arc<deferred::Outbox> = Arc::default();
    let thread_outbox = Arc::clone(&outbox);
    let thread = std::thread::Builder::new()
        .name("beast-side".into())
        .spawn(move || {
            if let Some(core) = options.core
                && !core_affinity::set_for_current(core)
            {
                tracing::warn!(core = core.id, "could not pin the side thread");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "side thread: cannot build its runtime");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &runtime,
                run(
                    options,
                    inputs,
                    journal,
                    thread_stats,
                    (mailbox, keys_read_tx, thread_outbox),
                    (stopped, &thread_grace),
                ),
            );
            // A store call still on the blocking pool (SQLite waiting for a lock) must not hold
            // the process past its grace: it is abandoned, and its batches stay in the journal.
            let left = thread_grace
                .deadline()
                .saturating_duration_since(Instant::now());
            runtime.shutdown_timeout(left.max(Duration::from_millis(100)));
        })
        .map_err(SideError::Spawn)?;
    Ok((
        Side {
            stop,
            grace,
            thread: Some(thread),
            keys_read,
        },
        SideLink {
            commands,
            stats,
            outbox,
        },
    ))
}

impl Side {
    /// Waits (at most `limit`) until the store's keys were read once (or reading them failed)
    /// and the usage drain runs: a node should not report ready while it would refuse every
    /// key. A usage backlog, however large, is not waited for.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        (0..2).all(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            self.keys_read.recv_timeout(left).is_ok()
        })
    }

    /// Stops after the final drain: call once the reactors have stopped, so every record they
    /// queued is journaled. Sinks get the shutdown grace to catch up.
    pub fn stop(self) {
        let deadline = self.grace.deadline();
        self.stop_by(deadline);
    }

    /// As [`Side::stop`], with the sinks' catching up ended by `deadline` (the end of the
    /// node's shutdown grace, so the process exits within it whatever the usage backlog).
    pub fn stop_by(mut self, deadline: Instant) {
        self.grace.set(deadline);
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("side thread panicked");
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn run(
    options: SideOptions,
    inputs: SideInputs,
    journal: Option<crate::usage::journal::Journal>,
    stats: Arc<SideStats>,
    (mailbox, keys_read, outbox): (
        mpsc::Receiver<Command>,
        std::sync::mpsc::Sender<()>,
        Arc<deferred::Outbox>,
    ),
    (stopped, grace): (watch::Receiver<bool>, &Grace),
) {
    let usage_ready = keys_read.clone();
    let keys = tokio::task::spawn_local(keys::run(
        options.clone(),
        Arc::clone(&inputs.access),
        Arc::clone(&stats),
        (mailbox, keys_read, outbox),
        stopped.clone(),
    ));
    let candles = tokio::task::spawn_local(candles::run(
        options.clone(),
        Arc::clone(&inputs.table),
        Arc::clone(&stats),
        stopped.clone(),
    ));
    let limits = tokio::task::spawn_local(limits::run(
        options.clone(),
        Arc::clone(&inputs.access),
        Arc::clone(&stats),
        stopped.clone(),
    ));
    let cache = tokio::task::spawn_local(cache::run(
        options.clone(),
        Arc::clone(&inputs.table),
        inputs.feeds.clone(),
        Arc::clone(&stats),
        stopped.clone(),
    ));
    if let Some(journal) = journal {
        usage::run(
            &options,
            journal,
            inputs.rings,
            &inputs.table,
            Arc::clone(&stats),
            usage_ready,
            (stopped, grace),
        )
        .await;
    } else {
        let _ = usage_ready.send(());
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }
    let _ = keys.await;
    let _ = cache.await;
    let _ = limits.await;
    let _ = candles.await;
}
