//! The push engine of a `WEBHOOK_SERVER` node: it reads the active subscriptions from the store
//! and pushes prices to their targets, over UDP (fire and forget) or HTTPS (Standard Webhooks
//! signatures, retries, a queue and circuit breaker per endpoint), with a delivery log.
//!
//! It runs on a thread of its own ("beast-push") with a current-thread runtime: the feeds, the
//! price thread, the side thread and the reactors never wait for it, and it reads prices from
//! the shared table without a lock.

pub mod api;
mod endpoint;
mod engine;
pub mod guard;
mod https;
pub mod manage;
mod payload;
pub mod sign;
pub mod stats;
mod store;
pub mod subscription;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::price::PriceTable;
use crate::side::SideStats;

pub use payload::{UDP_MAX, V8_PER_DATAGRAM, V8_PUSH_FLAG};

/// How the push engine runs (from the `WEBHOOK_*` settings).
#[derive(Clone)]
pub struct PushOptions {
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub guard: guard::Guard,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    pub retry_base_ms: u64,
    pub retry_after_max_ms: u64,
    pub endpoint_in_flight: usize,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
    /// Subscriptions of an endpoint failing this long are disabled (0: never).
    pub disable_after_ms: u64,
    pub log_retention_days: u64,
    pub poll: Duration,
    pub stale_after_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Tls(String),
    #[error("cannot start the push thread: {0}")]
    Spawn(std::io::Error),
}

/// The running engine.
pub struct PushEngine {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PushEngine {
    pub fn start(
        options: PushOptions,
        table: Arc<PriceTable>,
        stats: Arc<SideStats>,
    ) -> Result<PushEngine, PushError> {
        let tls = https::tls_config(options.ca_file.as_deref()).map_err(PushError::Tls)?;
        let client = https::Client::new(tls, options.guard.clone(), options.timeout);
        stats
            .push
            .configured
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("beast-push".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::error!(error = %e, "push thread: cannot build its runtime");
                        return;
                    }
                };
                runtime.block_on(run(options, table, stats, client, stopped));
                // Attempts still in flight are abandoned (their rows are not logged).
                runtime.shutdown_timeout(Duration::from_millis(500));
            })
            .map_err(PushError::Spawn)?;
        Ok(PushEngine {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops, handing the last delivery-log rows to the store until `deadline`.
    pub fn stop_by(mut self, deadline: Instant) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::park_timeout(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("push thread did not stop within the grace; leaving it");
            }
        }
    }
}

async fn run(
    options: PushOptions,
    table: Arc<PriceTable>,
    stats: Arc<SideStats>,
    client: https::Client,
    stopped: watch::Receiver<bool>,
) {
    let (jobs_tx, jobs_rx) = mpsc::channel(1_024);
    let (loaded_tx, loaded_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let worker = store::StoreWorker {
        database_url: options.database_url.clone(),
        data_dir: options.data_dir.clone(),
        poll: options.poll,
        stats: Arc::clone(&stats),
    };
    let worker = tokio::spawn(worker.run(jobs_rx, loaded_tx));
    let engine = engine::Engine::new(options, table, stats, client, jobs_tx, done_tx);
    engine.run(loaded_rx, done_rx, stopped).await;
    // The engine dropped its job sender: the worker writes what is left and ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
}
