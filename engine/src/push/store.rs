//! The push engine's store worker: a task of its own, so a slow or unreachable store never
//! holds up a delivery. It polls the subscriptions' change counter and reloads on a change,
//! reserves sequence numbers, writes the delivery log (kept, up to a cap, while the store is
//! down), fetches replays, applies retention.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use super::stats::PushStats;
use super::subscription::Subscription;
use crate::store::{DeliveryRow, Replay, Store};

/// Delivery-log rows kept for a store that is down; past it the oldest are given up (counted,
/// logged).
pub const LOG_BUFFER_MAX: usize = 200_000;
/// Rows deleted per retention statement.
const RETENTION_BATCH: u64 = 10_000;

pub enum Job {
    /// Raise these subscriptions' sequence floors; answered with [`Loaded::Reserved`].
    Reserve(Vec<(u64, u64)>),
    Log(Vec<DeliveryRow>),
    /// Disable a subscription, with why (410, or its endpoint failing too long).
    Disable {
        id: u64,
        reason: String,
        now_ms: u64,
    },
    /// Read the deliveries a replay sends again; answered with [`Loaded::Replay`].
    FetchReplay(Replay),
    /// Delete log rows older than this, Unix ms.
    Retention(u64),
}

/// What the worker hands back to the engine.
pub enum Loaded {
    Subscriptions {
        subscriptions: Vec<Subscription>,
        replays: Vec<Replay>,
    },
    Reserved(Vec<(u64, u64)>),
    Replay(Replay, Vec<DeliveryRow>),
}

pub struct StoreWorker {
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub poll: Duration,
    pub stats: Arc<crate::side::SideStats>,
}

fn push(stats: &crate::side::SideStats) -> &PushStats {
    &stats.push
}

impl StoreWorker {
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>, out: mpsc::UnboundedSender<Loaded>) {
        let mut store: Option<Store> = None;
        let mut version: Option<i64> = None;
        let mut log: std::collections::VecDeque<DeliveryRow> = std::collections::VecDeque::new();
        let mut poll = tokio::time::interval(self.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_jobs: Vec<Job> = Vec::new();
        loop {
            let job = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => Some(job),
                    // The engine stopped: write what is left, then end.
                    None => {
                        if let Some(s) = store.as_mut() {
                            self.write_log(s, &mut log).await;
                        }
                        return;
                    }
                },
                _ = poll.tick() => None,
            };
            if store.as_ref().is_none_or(Store::is_closed) {
                store = self.open().await;
            }
            let Some(s) = store.as_mut() else {
                if let Some(job) = job {
                    self.keep(job, &mut log, &mut failed_jobs);
                }
                continue;
            };
            // Jobs that failed while the store was away go first.
            let mut earlier = std::mem::take(&mut failed_jobs).into_iter();
            for job in earlier.by_ref() {
                if !self.run_job(s, job, &mut log, &out, &mut failed_jobs).await {
                    break;
                }
            }
            failed_jobs.extend(earlier);
            match job {
                Some(job) => {
                    self.run_job(s, job, &mut log, &out, &mut failed_jobs).await;
                }
                None => {
                    self.write_log(s, &mut log).await;
                    self.poll_version(s, &mut version, &out).await;
                }
            }
        }
    }

    async fn open(&self) -> Option<Store> {
        match Store::open(self.database_url.as_deref(), &self.data_dir).await {
            Ok(store) => Some(store),
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn failed(&self, e: &crate::store::StoreError) {
        let stats = push(&self.stats);
        stats.store_errors.fetch_add(1, Ordering::Relaxed);
        let _ = stats.store_failing_since_ms.compare_exchange(
            0,
            beast_core::clock::wall_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        tracing::warn!(error = %e, "push: store call failed");
    }

    fn worked(&self) {
        push(&self.stats)
            .store_failing_since_ms
            .store(0, Ordering::Relaxed);
    }

    /// A job that cannot run now: log rows join the buffer, the rest wait their turn.
    fn keep(
        &self,
        job: Job,
        log: &mut std::collections::VecDeque<DeliveryRow>,
        failed: &mut Vec<Job>,
    ) {
        match job {
            Job::Log(rows) => self.buffer(log, rows),
            // A retention pass is asked for again later; the rest must happen.
            Job::Retention(_) => {}
            other => failed.push(other),
        }
    }

    fn buffer(&self, log: &mut std::collections::VecDeque<DeliveryRow>, rows: Vec<DeliveryRow>) {
        log.extend(rows);
        let over = log.len().saturating_sub(LOG_BUFFER_MAX);
        if over > 0 {
            log.drain(..over);
            let stats = push(&self.stats);
            let before = stats.log_dropped.fetch_add(over as u64, Ordering::Relaxed);
            if before == 0 || (before + over as u64) / 10_000 != before / 10_000 {
                tracing::error!(
                    dropped_total = before + over as u64,
                    "push: the store has been down too long; oldest delivery-log rows given up"
                );
            }
        }
        push(&self.stats)
            .log_pending
            .store(log.len() as u64, Ordering::Relaxed);
    }

    /// Runs one job; false when the store failed (the job is kept in `failed` for later).
    async fn run_job(
        &self,
        store: &mut Store,
        job: Job,
        log: &mut std::collections::VecDeque<DeliveryRow>,
        out: &mpsc::UnboundedSender<Loaded>,
        failed: &mut Vec<Job>,
    ) -> bool {
        let result = match &job {
            Job::Log(_) => Ok(()),
            Job::Reserve(floors) => store.reserve_seqs(floors.clone()).await.map(|()| {
                let _ = out.send(Loaded::Reserved(floors.clone()));
            }),
            Job::Disable { id, reason, now_ms } => store
                .disable_subscription(*id, reason.clone(), *now_ms)
                .await
                .map(|_| ()),
            Job::FetchReplay(replay) => self.fetch_replay(store, *replay, out).await,
            Job::Retention(before_ms) => self.retention(store, *before_ms).await,
        };
        if let Job::Log(rows) = job {
            self.buffer(log, rows);
            return self.write_log(store, log).await;
        }
        match result {
            Ok(()) => {
                self.worked();
                true
            }
            Err(e) => {
                self.failed(&e);
                self.keep(job, log, failed);
                false
            }
        }
    }

    async fn fetch_replay(
        &self,
        store: &mut Store,
        replay: Replay,
        out: &mpsc::UnboundedSender<Loaded>,
    ) -> Result<(), crate::store::StoreError> {
        let rows = store
            .deliveries(replay.subscription_id, replay.since_ms, 10_000, true)
            .await?;
        store
            .finish_replay(replay.id, beast_core::clock::wall_ms())
            .await?;
        let _ = out.send(Loaded::Replay(replay, rows));
        Ok(())
    }

    async fn retention(
        &self,
        store: &mut Store,
        before_ms: u64,
    ) -> Result<(), crate::store::StoreError> {
        loop {
            let n = store
                .delete_deliveries_before(before_ms, RETENTION_BATCH)
                .await?;
            push(&self.stats)
                .log_retention_deleted
                .fetch_add(n, Ordering::Relaxed);
            if n < RETENTION_BATCH {
                return Ok(());
            }
        }
    }

    /// Writes the buffered log rows; false when the store failed (they stay buffered).
    async fn write_log(
        &self,
        store: &mut Store,
        log: &mut std::collections::VecDeque<DeliveryRow>,
    ) -> bool {
        while !log.is_empty() {
            let n = log.len().min(5_000);
            let rows: Vec<DeliveryRow> = log.iter().take(n).cloned().collect();
            match store.append_deliveries(rows).await {
                Ok(()) => {
                    log.drain(..n);
                    let stats = push(&self.stats);
                    stats.log_written.fetch_add(n as u64, Ordering::Relaxed);
                    stats.log_pending.store(log.len() as u64, Ordering::Relaxed);
                    self.worked();
                }
                Err(e) => {
                    self.failed(&e);
                    return false;
                }
            }
        }
        true
    }

    async fn poll_version(
        &self,
        store: &mut Store,
        version: &mut Option<i64>,
        out: &mpsc::UnboundedSender<Loaded>,
    ) {
        let current = match store.version("subscriptions").await {
            Ok(v) => v,
            Err(e) => return self.failed(&e),
        };
        if *version == Some(current) {
            return;
        }
        let rows = match store.subscriptions(None).await {
            Ok(rows) => rows,
            Err(e) => return self.failed(&e),
        };
        let replays = match store.pending_replays().await {
            Ok(r) => r,
            Err(e) => return self.failed(&e),
        };
        let mut subscriptions = Vec::with_capacity(rows.len());
        for row in rows {
            match Subscription::from_row(row) {
                Ok(sub) => subscriptions.push(sub),
                Err(e) => {
                    tracing::error!(error = %e, "push: a subscription row cannot be read; skipped")
                }
            }
        }
        *version = Some(current);
        self.worked();
        let stats = push(&self.stats);
        stats.loaded.store(true, Ordering::Relaxed);
        stats.reloads.fetch_add(1, Ordering::Relaxed);
        let _ = out.send(Loaded::Subscriptions {
            subscriptions,
            replays,
        });
    }
}
