//! Usage records from the reactors' rings to the journal, and from the journal to each sink.
//!
//! Every 5 ms the drain turns the rings' events into records (id: this run's random boot id
//! and a counter), appends them to the journal in one write, and wakes the sinks. Each sink
//! delivers what is past its cursor in batches of its size, at least every 100 ms when records
//! trickle in, and moves its cursor only once the batch is accepted. A failed delivery is
//! retried from the journal with a growing pause (100 ms to 2 s): a sink that is down simply
//! falls behind, however long the outage.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::stats::{SinkStats, add, get, set};
use super::{SideOptions, SideStats};
use crate::price::{AssetId, PriceTable};
use crate::usage::journal::{Cursor, Journal, Position};
use crate::usage::record::encode_frame;
use crate::usage::sink::sqs::SqsClient;
use crate::usage::sink::{Sink, SinkKind};
use crate::usage::{Assembler, UsageEvent};

const DRAIN_EVERY: Duration = Duration::from_millis(5);
/// A sink with less than a full batch waiting delivers at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Encoded records kept in memory while the journal cannot be written (a full disk). Past this
/// the rings are left to fill, and the reactors then refuse price requests (503) rather than
/// answer without a record.
const MAX_UNWRITTEN: usize = 16 << 20;

/// State the drain and the sinks share on the side thread.
struct Shared {
    journal: RefCell<Journal>,
    /// Each running sink's cursor, for deleting segments all of them passed.
    cursors: RefCell<Vec<Position>>,
    /// Rung after each append.
    appended: Notify,
    stats: Arc<SideStats>,
    boot: u64,
}

pub async fn run(
    options: &SideOptions,
    journal: Journal,
    rings: Vec<rtrb::Consumer<UsageEvent>>,
    table: &PriceTable,
    stats: Arc<SideStats>,
    ready: std::sync::mpsc::Sender<()>,
    mut stopped: watch::Receiver<bool>,
) {
    let boot = boot_id();
    set(&stats.journal_bytes, journal.disk_bytes());
    let mut sinks = vec![Sink::store(
        options.database_url.clone(),
        options.data_dir.clone(),
    )];
    if let Some(url) = &options.sqs_queue_url {
        sinks.push(Sink::Sqs(SqsClient::new(url, &options.aws_region)));
    }
    let cursors: Vec<Cursor> = sinks
        .iter()
        .map(|s| Cursor::load(&journal, s.kind().name()))
        .collect();
    let shared = Rc::new(Shared {
        cursors: RefCell::new(cursors.iter().map(|c| c.pos).collect()),
        journal: RefCell::new(journal),
        appended: Notify::new(),
        stats,
        boot,
    });
    let (done_tx, done_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    // What the journal held at start, counted before anything is added or delivered so the
    // queue depth is right from the first scrape; the count yields, so keys load meanwhile.
    let start_end = shared.journal.borrow().end();
    for (sink, cursor) in sinks.iter().zip(&cursors) {
        let stats = shared.stats.sink(sink.kind());
        set(
            &stats.pending,
            backlog(&shared, cursor.pos, start_end).await,
        );
        stats.configured.store(true, Ordering::Relaxed);
    }
    let _ = ready.send(());
    for (index, (sink, cursor)) in sinks.into_iter().zip(cursors).enumerate() {
        tasks.push(tokio::task::spawn_local(deliver(
            Rc::clone(&shared),
            index,
            sink,
            cursor,
            done_rx.clone(),
            options.shutdown_grace,
        )));
    }
    drain_until_stopped(&shared, rings, table, &options.node, &mut stopped).await;
    let _ = done_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    if let Err(e) = shared.journal.borrow_mut().sync() {
        tracing::error!(error = %e, "usage journal: final sync failed");
    }
}

/// Records between `from` and `until`, counted in steps that let the other tasks (keys, the
/// drain) run: a journal left by a long outage may hold millions.
async fn backlog(shared: &Shared, mut from: Position, until: Position) -> u64 {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        let read = shared
            .journal
            .borrow()
            .read_until(from, until, 10_000, &mut buf);
        match read {
            Ok((records, next)) if !records.is_empty() => {
                n += records.len() as u64;
                from = next;
            }
            _ => return n,
        }
        tokio::task::yield_now().await;
    }
}

fn boot_id() -> u64 {
    let mut bytes = [0u8; 8];
    if crate::access::key::random_bytes(&mut bytes).is_err() {
        // /dev/urandom missing: time and pid still make collisions vanishingly unlikely.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return u64::try_from(nanos % (1 << 64)).unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_le_bytes(bytes)
}

async fn drain_until_stopped(
    shared: &Shared,
    mut rings: Vec<rtrb::Consumer<UsageEvent>>,
    table: &PriceTable,
    node: &str,
    stopped: &mut watch::Receiver<bool>,
) {
    let mut drain = Drain {
        assemblers: rings.iter().map(|_| Assembler::default()).collect(),
        frames: Vec::with_capacity(1 << 20),
        unwritten: 0,
        assets: Vec::with_capacity(256),
        seq: 0,
    };
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        // After the stop the reactors have ended: this drains the last of their records.
        drain.run(shared, &mut rings, table, node);
        if stop {
            return;
        }
    }
}

struct Drain {
    assemblers: Vec<Assembler>,
    /// Encoded records not yet in the journal, and how many records they are.
    frames: Vec<u8>,
    unwritten: u64,
    assets: Vec<u8>,
    seq: u64,
}

impl Drain {
    fn run(
        &mut self,
        shared: &Shared,
        rings: &mut [rtrb::Consumer<UsageEvent>],
        table: &PriceTable,
        node: &str,
    ) {
        let mut records = 0u64;
        // Frames left from a failed write go first, so order and ids are kept.
        let rings = if self.frames.len() > MAX_UNWRITTEN {
            &mut [][..]
        } else {
            rings
        };
        for (ring, assembler) in rings.iter_mut().zip(&mut self.assemblers) {
            while let Ok(event) = ring.pop() {
                let Some((head, ids)) = assembler.feed(&event) else {
                    continue;
                };
                self.assets.clear();
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        self.assets.push(b',');
                    }
                    if *id == crate::usage::ALL_ASSETS {
                        self.assets.push(b'*');
                    } else if let Some(symbol) = table.registry().symbol(AssetId::from_raw(*id)) {
                        self.assets.extend_from_slice(symbol.as_bytes());
                    }
                }
                encode_frame(
                    &mut self.frames,
                    shared.boot,
                    self.seq,
                    &head,
                    node.as_bytes(),
                    &self.assets,
                );
                self.seq += 1;
                records += 1;
                assembler.reset();
            }
        }
        self.unwritten += records;
        if self.frames.is_empty() {
            let _ = shared.journal.borrow_mut().sync_if_due();
            return;
        }
        let mut journal = shared.journal.borrow_mut();
        match journal.append(&self.frames) {
            Ok(()) => {
                self.frames.clear();
                let records = std::mem::take(&mut self.unwritten);
                add(&shared.stats.journaled, records);
                for kind in [SinkKind::Sqlite, SinkKind::Postgres, SinkKind::Sqs] {
                    let stats = shared.stats.sink(kind);
                    if stats.configured.load(Ordering::Relaxed) {
                        add(&stats.pending, records);
                    }
                }
            }
            Err(e) => {
                // Kept in memory and written with the next drain.
                add(&shared.stats.journal_errors, 1);
                tracing::error!(error = %e, "usage journal: write failed; retrying");
            }
        }
        let _ = journal.sync_if_due();
        set(&shared.stats.journal_bytes, journal.disk_bytes());
        drop(journal);
        shared.appended.notify_waiters();
    }
}

async fn deliver(
    shared: Rc<Shared>,
    index: usize,
    mut sink: Sink,
    mut cursor: Cursor,
    mut done: watch::Receiver<bool>,
    grace: Duration,
) {
    let kind = sink.kind();
    let stats: &SinkStats = shared.stats.sink(kind);
    let mut buf = Vec::new();
    let mut last_flush = Instant::now();
    let mut retry = RETRY_MIN;
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && *done.borrow() {
            deadline = Some(Instant::now() + grace);
        }
        let end = shared.journal.borrow().end();
        let caught_up = cursor.pos >= end;
        if let Some(deadline) = deadline
            && (caught_up || Instant::now() >= deadline)
        {
            break;
        }
        if caught_up {
            tokio::select! {
                _ = shared.appended.notified() => {}
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
                _ = done.changed(), if deadline.is_none() => {}
            }
            continue;
        }
        let read = shared
            .journal
            .borrow()
            .read(cursor.pos, kind.batch(), &mut buf);
        let (records, next) = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, sink = kind.name(), "usage journal: read failed");
                add(&stats.errors, 1);
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        // Less than a batch waiting: let it fill up to the flush interval (not at shutdown).
        if records.len() < kind.batch() && last_flush.elapsed() < FLUSH_EVERY && deadline.is_none()
        {
            let wait = FLUSH_EVERY.saturating_sub(last_flush.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = done.changed() => {}
            }
            continue;
        }
        let started = Instant::now();
        match sink.deliver(&records).await {
            Ok(new) => {
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let sent = records.len() as u64;
                add(&stats.delivered, sent);
                add(&stats.duplicates, sent.saturating_sub(new));
                let old = records.iter().filter(|r| r.boot != shared.boot).count() as u64;
                add(&stats.replayed, old);
                add(&stats.batches, 1);
                add(&stats.batch_ns_sum, ns);
                stats.batch_ns_max.fetch_max(ns, Ordering::Relaxed);
                set(&stats.pending, get(&stats.pending).saturating_sub(sent));
                if !stats.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(sink = kind.name(), "usage sink delivering");
                }
                retry = RETRY_MIN;
                last_flush = Instant::now();
                if let Err(e) = cursor.advance(next) {
                    tracing::error!(error = %e, sink = kind.name(), "cannot save a usage cursor");
                }
                collect(&shared, index, next);
                // A sink catching up must not starve the drain (SQLite calls do not yield).
                tokio::task::yield_now().await;
            }
            Err(e) => {
                add(&stats.errors, 1);
                if stats.up.swap(false, Ordering::Relaxed) || get(&stats.errors) == 1 {
                    tracing::warn!(
                        sink = kind.name(),
                        error = %e,
                        retryable = e.is_retryable(),
                        "usage sink failing; records wait in the journal"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = done.changed(), if deadline.is_none() => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
    if let Err(e) = cursor.save() {
        tracing::error!(error = %e, sink = kind.name(), "cannot save a usage cursor");
    }
}

/// Records a sink's new cursor and deletes the segments every sink has passed.
fn collect(shared: &Shared, index: usize, pos: Position) {
    let oldest = {
        let mut cursors = shared.cursors.borrow_mut();
        if let Some(c) = cursors.get_mut(index) {
            *c = pos;
        }
        cursors.iter().min().copied().unwrap_or(pos)
    };
    let mut journal = shared.journal.borrow_mut();
    journal.collect(oldest);
    set(&shared.stats.journal_bytes, journal.disk_bytes());
}
