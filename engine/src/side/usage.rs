//! Usage from the reactors' rings to the journal, and from the journal to each sink.
//!
//! Every 5 ms the drain turns the rings' events into records (id: this run's random boot id and
//! a counter), rolls them up into one batch per drain and appends it to the journal in one
//! write, then wakes the sinks. Nothing slow runs on the drain's path: the journal's fsyncs, the
//! embedded store's calls and the cursors' saves go to tokio's blocking pool, and counting a
//! backlog is never needed (queue depths are bytes, known from positions).
//!
//! Each sink delivers what is past its cursor, at least every [`SinkKind::flush_every`] and at
//! once when a backlog waits, and moves its cursor (durably) only once the batches are durable
//! in the sink. A failed delivery is retried from the journal with a growing pause (100 ms to
//! 2 s): a sink that is down simply falls behind, however long the outage, up to the journal's
//! cap. Past the cap the oldest segment is given up: serving goes on, and what a sink lost is
//! counted (`beast_usage_sink_discarded_records_total`) and logged once per episode.
//!
//! Retention runs on the store sink between deliveries: rows older than `USAGE_RETENTION_DAYS`
//! go in statements of [`RETENTION_STEP`] rows.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::stats::{SinkStats, add, get, set};
use super::{SideOptions, SideStats};
use crate::price::PriceTable;
use crate::side::sink::sqs::SqsClient;
use crate::side::sink::{Sink, SinkKind};
use crate::usage::builder::BatchBuilder;
use crate::usage::journal::{self, Cursor, CursorSource, Journal, Position};
use crate::usage::{Assembler, UsageEvent};
use beast_core::clock::wall_ms;

const DRAIN_EVERY: Duration = Duration::from_millis(5);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Frames read for one delivery at most (about 25 000 raw records, or a few seconds of rollups).
const DELIVERY_BYTES: usize = 1 << 20;
/// A sink this far behind delivers at once instead of waiting for its flush interval.
const BACKLOG_NOW: u64 = 256 * 1024;
/// Encoded batches kept in memory while the journal cannot be written (a full disk). Past this
/// the rings are left to fill, and the reactors then refuse price requests (503) rather than
/// answer without a record.
const MAX_UNWRITTEN: usize = 16 << 20;
/// Rows one retention statement deletes at most.
pub(crate) const RETENTION_STEP: u64 = 5_000;
/// Statements per retention turn before deliveries get the store back.
const RETENTION_STEPS_PER_TURN: u32 = 20;
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// State the drain and the sinks share on the side thread.
struct Shared {
    journal: RefCell<Journal>,
    /// Per sink: how far it has delivered; where the delivery in flight (if any) started;
    /// and its durably saved cursor (segments before every one of these may go).
    delivered: RefCell<Vec<Position>>,
    delivering: RefCell<Vec<Option<Position>>>,
    saved: RefCell<Vec<Position>>,
    kinds: Vec<SinkKind>,
    /// Rung after each append: for the sinks (all of them) and the syncer (a permit kept, so
    /// an append while it syncs is not missed).
    appended: Notify,
    unsynced: Notify,
    stats: Arc<SideStats>,
    max_bytes: u64,
    /// A segment is being given up (counted and deleted on the blocking pool).
    discarding: Cell<bool>,
    /// The journal went past its cap and has not been back under 80 % since (log once).
    over_cap: Cell<bool>,
    /// This run's boot id: batches of other boots are replays.
    boot: u64,
}

pub async fn run(
    options: &SideOptions,
    journal: Journal,
    rings: Vec<rtrb::Consumer<UsageEvent>>,
    table: &PriceTable,
    stats: Arc<SideStats>,
    ready: std::sync::mpsc::Sender<()>,
    (mut stopped, grace): (watch::Receiver<bool>, &super::Grace),
) {
    let boot = boot_id();
    set(&stats.journal_bytes, journal.disk_bytes());
    set(&stats.journal_max_bytes, options.journal_max_bytes);
    let mut sinks = vec![Sink::store(
        options.database_url.clone(),
        options.data_dir.clone(),
        options.raw_records,
    )];
    if let Some(url) = &options.sqs_queue_url {
        sinks.push(Sink::Sqs(SqsClient::new(url, &options.aws_region)));
    }
    let cursors: Vec<Cursor> = sinks
        .iter()
        .map(|sink| {
            let name = sink.kind().name();
            let (cursor, source) = Cursor::load(&journal, name);
            match source {
                CursorSource::Saved => {}
                CursorSource::Missing if journal.disk_bytes() == 0 => {}
                CursorSource::PastEnd => tracing::warn!(
                    sink = name,
                    "usage cursor past the journal's end (the journal lost its tail in a crash); \
                     the sink starts at the end"
                ),
                other => tracing::warn!(
                    sink = name,
                    cause = ?other,
                    from = ?cursor.pos,
                    "usage cursor rebuilt from the journal's oldest segment; batches the sink \
                     already has are delivered again and skipped by it"
                ),
            }
            let stats = stats.sink(sink.kind());
            stats.configured.store(true, Ordering::Relaxed);
            set(&stats.backlog_bytes, journal.bytes_from(cursor.pos));
            cursor
        })
        .collect();
    let shared = Rc::new(Shared {
        delivered: RefCell::new(cursors.iter().map(|c| c.pos).collect()),
        delivering: RefCell::new(vec![None; cursors.len()]),
        saved: RefCell::new(cursors.iter().map(|c| c.saved).collect()),
        kinds: sinks.iter().map(Sink::kind).collect(),
        journal: RefCell::new(journal),
        appended: Notify::new(),
        unsynced: Notify::new(),
        stats,
        max_bytes: options.journal_max_bytes,
        discarding: Cell::new(false),
        over_cap: Cell::new(false),
        boot,
    });
    let _ = ready.send(());
    let (done_tx, done_rx) = watch::channel(false);
    let retention = Duration::from_secs(options.retention_days * 86_400);
    let mut tasks = Vec::new();
    for (index, (sink, cursor)) in sinks.into_iter().zip(cursors).enumerate() {
        tasks.push(tokio::task::spawn_local(deliver(
            Rc::clone(&shared),
            index,
            sink,
            cursor,
            done_rx.clone(),
            retention,
        )));
    }
    let syncer = tokio::task::spawn_local(sync_journal(
        Rc::clone(&shared),
        options.journal_fsync,
        done_rx.clone(),
    ));
    let mut drain = Drain {
        builder: BatchBuilder::new(boot, &options.node, options.raw_records),
        assemblers: rings.iter().map(|_| Assembler::default()).collect(),
        rings,
        frames: Vec::with_capacity(1 << 20),
        unwritten: 0,
    };
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        // After the stop the reactors have ended: this drains the last of their records.
        drain.run(&shared, table);
        if stop {
            if drain.unwritten > 0 {
                add(&shared.stats.journal_lost_records, drain.unwritten);
                tracing::error!(
                    records = drain.unwritten,
                    "usage journal: records that could not be written are lost at shutdown"
                );
            }
            break;
        }
    }
    // The sinks get what is left of the shutdown grace to catch up; the rest waits in the
    // journal for the next start.
    let deadline = grace.deadline();
    let _ = done_tx.send(true);
    for task in tasks {
        if tokio::time::timeout_at(deadline.into(), task)
            .await
            .is_err()
        {
            tracing::warn!("usage sink still delivering at the end of the grace period");
        }
    }
    let _ = syncer.await;
    let files = shared.journal.borrow_mut().take_unsynced();
    match files {
        Ok(files) => {
            for file in files {
                if let Err(e) = file.sync_data() {
                    tracing::error!(error = %e, "usage journal: final sync failed");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "usage journal: final sync failed"),
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

struct Drain {
    builder: BatchBuilder,
    rings: Vec<rtrb::Consumer<UsageEvent>>,
    assemblers: Vec<Assembler>,
    /// Encoded batches not yet in the journal, and how many records they hold.
    frames: Vec<u8>,
    unwritten: u64,
}

impl Drain {
    fn run(&mut self, shared: &Rc<Shared>, table: &PriceTable) {
        let now = wall_ms();
        set(&shared.stats.last_drain_ms, now);
        // Batches left from a failed write go first, so order and ids are kept.
        if self.frames.len() <= MAX_UNWRITTEN {
            let mut peak = 0;
            for (ring, assembler) in self.rings.iter_mut().zip(&mut self.assemblers) {
                let capacity = ring.buffer().capacity().max(1);
                peak = peak.max(ring.slots() * 1000 / capacity);
                while let Ok(event) = ring.pop() {
                    let Some((head, ids)) = assembler.feed(&event) else {
                        continue;
                    };
                    self.unwritten +=
                        self.builder
                            .add(&head, ids, table.registry(), now, &mut self.frames);
                    assembler.reset();
                }
            }
            set(&shared.stats.ring_peak_permille, peak as u64);
            self.unwritten += self.builder.seal(table.registry(), now, &mut self.frames);
        }
        if self.frames.is_empty() {
            return;
        }
        let mut journal = shared.journal.borrow_mut();
        let before = journal.disk_bytes();
        match journal.append(&self.frames) {
            Ok(()) => {
                let bytes = journal.disk_bytes() - before;
                self.frames.clear();
                // Backlog first: whoever sees the records journaled sees them waiting too.
                for kind in &shared.kinds {
                    add(&shared.stats.sink(*kind).backlog_bytes, bytes);
                }
                add(&shared.stats.journaled, std::mem::take(&mut self.unwritten));
            }
            Err(e) => {
                // Kept in memory and written with the next drain.
                add(&shared.stats.journal_errors, 1);
                tracing::error!(error = %e, "usage journal: write failed; retrying");
            }
        }
        set(&shared.stats.journal_bytes, journal.disk_bytes());
        let over = journal.over_cap(shared.max_bytes);
        drop(journal);
        if let Some(segment) = over {
            give_up_segment(shared, segment);
        }
        if shared.over_cap.get() && shared.journal.borrow().disk_bytes() < shared.max_bytes / 10 * 8
        {
            shared.over_cap.set(false);
        }
        shared.appended.notify_waiters();
        shared.unsynced.notify_one();
    }
}

/// The journal is past its cap: the oldest segment is given up. It is renamed out of the
/// journal at once (sinks skip it from their next read on); counting what each sink had not
/// delivered from it and deleting it run on the blocking pool. Not while a sink's delivery
/// from it is in flight (it may succeed, or be retried): the next drain tries again.
fn give_up_segment(shared: &Rc<Shared>, segment: u64) {
    let in_flight = shared
        .delivering
        .borrow()
        .iter()
        .flatten()
        .any(|from| from.segment <= segment);
    if shared.discarding.get() || in_flight {
        return;
    }
    let dir = shared.journal.borrow().dir().to_path_buf();
    let path = journal::segment_path(&dir, segment);
    let aside = path.with_extension("discarding");
    if let Err(e) = std::fs::rename(&path, &aside) {
        tracing::error!(error = %e, segment, "usage journal: cannot give up a segment");
        return;
    }
    let size = shared.journal.borrow_mut().forget(segment);
    add(&shared.stats.journal_discarded_bytes, size);
    if !shared.over_cap.replace(true) {
        tracing::error!(
            max_bytes = shared.max_bytes,
            "usage journal full (BEAST_JOURNAL_MAX_BYTES): giving up its oldest segments, \
             usage a sink had not delivered from them is lost and counted in \
             beast_usage_sink_discarded_records_total; serving continues"
        );
    }
    // What each sink had not delivered from the segment.
    let lagging: Vec<(SinkKind, u64)> = shared
        .kinds
        .iter()
        .zip(shared.delivered.borrow().iter())
        .filter(|(_, pos)| pos.segment <= segment)
        .map(|(kind, pos)| {
            let from = if pos.segment == segment {
                pos.offset
            } else {
                0
            };
            (*kind, from)
        })
        .collect();
    for (kind, from) in &lagging {
        let stats = shared.stats.sink(*kind);
        set(
            &stats.backlog_bytes,
            get(&stats.backlog_bytes).saturating_sub(size.saturating_sub(*from)),
        );
    }
    shared.discarding.set(true);
    let shared = Rc::clone(shared);
    tokio::task::spawn_local(async move {
        let counted = tokio::task::spawn_blocking(move || count_and_delete(&aside, &lagging)).await;
        match counted {
            Ok(Ok(lost)) => {
                for (kind, records) in lost {
                    add(&shared.stats.sink(kind).discarded_records, records);
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "usage journal: counting a given-up segment"),
            Err(e) => tracing::error!(error = %e, "usage journal: counting a given-up segment"),
        }
        shared.discarding.set(false);
    });
}

/// Records of a given-up segment file from each sink's offset, then the file deleted (also
/// when it could not be counted).
fn count_and_delete(
    path: &std::path::Path,
    lagging: &[(SinkKind, u64)],
) -> std::io::Result<Vec<(SinkKind, u64)>> {
    let counted: std::io::Result<Vec<(SinkKind, u64)>> = lagging
        .iter()
        .map(|(kind, from)| Ok((*kind, journal::count_records(path, *from)?)))
        .collect();
    std::fs::remove_file(path)?;
    counted
}

/// Syncs the journal every `every` (0: after every append), on the blocking pool.
async fn sync_journal(shared: Rc<Shared>, every: Duration, mut done: watch::Receiver<bool>) {
    loop {
        if *done.borrow() {
            return;
        }
        if every.is_zero() {
            tokio::select! {
                _ = shared.unsynced.notified() => {}
                _ = done.changed() => {}
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = done.changed() => {}
            }
        }
        let files = shared.journal.borrow_mut().take_unsynced();
        let files = match files {
            Ok(files) if files.is_empty() => continue,
            Ok(files) => files,
            Err(e) => {
                add(&shared.stats.journal_errors, 1);
                tracing::error!(error = %e, "usage journal: cannot sync");
                continue;
            }
        };
        let synced = tokio::task::spawn_blocking(move || {
            files.iter().try_for_each(std::fs::File::sync_data)
        })
        .await;
        if !matches!(synced, Ok(Ok(()))) {
            add(&shared.stats.journal_errors, 1);
            tracing::error!("usage journal: fsync failed");
        }
    }
}

async fn deliver(
    shared: Rc<Shared>,
    index: usize,
    mut sink: Sink,
    mut cursor: Cursor,
    mut done: watch::Receiver<bool>,
    retention: Duration,
) {
    let kind = sink.kind();
    let stats: &SinkStats = shared.stats.sink(kind);
    let mut last_delivery = Instant::now();
    let mut retry = RETRY_MIN;
    let mut retention_due = Some(Instant::now());
    // Batches per delivery: halved after a delivery that timed out (a slow store), grown back
    // after each that worked.
    let mut size = kind.batches();
    loop {
        let stopping = *done.borrow();
        let end = shared.journal.borrow().end();
        if cursor.pos >= end {
            set(&stats.oldest_pending_ms, 0);
            if stopping {
                break;
            }
            if kind != SinkKind::Sqs && retention_due.is_some_and(|due| Instant::now() >= due) {
                retention_due = retain(&mut sink, &shared.stats, retention, &done).await;
                continue;
            }
            tokio::select! {
                _ = shared.appended.notified() => {}
                _ = tokio::time::sleep(kind.flush_every()) => {}
                _ = done.changed() => {}
            }
            continue;
        }
        // A little waiting: let it gather up to the flush interval (not at shutdown).
        let behind = get(&stats.backlog_bytes) >= BACKLOG_NOW;
        let gathered = last_delivery.elapsed() >= kind.flush_every();
        if !stopping && !behind && !gathered {
            let wait = kind.flush_every().saturating_sub(last_delivery.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = done.changed() => {}
            }
            continue;
        }
        // Read on the blocking pool (a cold disk must not hold up the drain), the segment
        // marked as in delivery so the cap does not give it up meanwhile.
        set_delivering(&shared, index, Some(cursor.pos));
        let dir = shared.journal.borrow().dir().to_path_buf();
        let from = cursor.pos;
        let read = tokio::task::spawn_blocking(move || {
            journal::read_until(&dir, from, end, size, DELIVERY_BYTES)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|read| read);
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                set_delivering(&shared, index, None);
                tracing::error!(error = %e, sink = kind.name(), "usage journal: read failed");
                add(&stats.errors, 1);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        let journal::Read {
            batches,
            next,
            skipped,
        } = read;
        let moved = Moved {
            next,
            skipped,
            bytes: shared.journal.borrow().bytes_between(cursor.pos, next),
        };
        let Some(oldest) = batches.first().map(|b| b.written_ms) else {
            set_delivering(&shared, index, None);
            // Only damaged bytes, or segments given up: nothing to deliver.
            if next == cursor.pos {
                // Nothing readable yet where the journal says there is: wait for more.
                tokio::time::sleep(kind.flush_every()).await;
            }
            advance(&shared, index, &mut cursor, &moved);
            continue;
        };
        set(&stats.oldest_pending_ms, oldest.max(1));
        let replayed: u64 = batches
            .iter()
            .filter(|b| b.boot != shared.boot)
            .map(|b| b.records)
            .sum();
        let started = Instant::now();
        let delivered = sink.deliver(batches).await;
        set_delivering(&shared, index, None);
        match delivered {
            Ok(applied) => {
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                add(&stats.delivered, applied.applied + applied.duplicates);
                add(&stats.duplicates, applied.duplicates);
                if applied.gap > 0 {
                    add(&stats.gap_records, applied.gap);
                    tracing::warn!(
                        sink = kind.name(),
                        records = applied.gap,
                        "usage missing from the store before the batch just delivered (restored from an older backup, or given up at the journal cap): counted in beast_usage_sink_gap_records_total"
                    );
                }
                add(&stats.replayed, replayed);
                add(&stats.rows_written, applied.rows);
                add(&stats.deliveries, 1);
                add(&stats.delivery_ns_sum, ns);
                stats.delivery_ns_max.fetch_max(ns, Ordering::Relaxed);
                set(&stats.failing_since_ms, 0);
                if !stats.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(sink = kind.name(), "usage sink delivering");
                }
                retry = RETRY_MIN;
                size = (size * 2).min(kind.batches());
                last_delivery = Instant::now();
                advance(&shared, index, &mut cursor, &moved);
                save(&shared, index, &cursor, kind).await;
                // A store that is always behind still gets its retention.
                if kind != SinkKind::Sqs
                    && !stopping
                    && retention_due.is_some_and(|due| Instant::now() >= due)
                {
                    retention_due = retain(&mut sink, &shared.stats, retention, &done).await;
                }
            }
            Err(e) => {
                add(&stats.errors, 1);
                if e.is_timeout() {
                    size = (size / 2).max(1);
                }
                if get(&stats.failing_since_ms) == 0 {
                    set(&stats.failing_since_ms, wall_ms());
                }
                if stats.up.swap(false, Ordering::Relaxed) || get(&stats.errors) == 1 {
                    tracing::warn!(
                        sink = kind.name(),
                        error = %e,
                        retryable = e.is_retryable(),
                        "usage sink failing; usage waits in the journal"
                    );
                }
                if stopping {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = done.changed() => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// How far a read took a sink: where it ends, the journal bytes it went past, and how many of
/// them were damaged.
struct Moved {
    next: Position,
    bytes: u64,
    skipped: u64,
}

/// Moves a sink's cursor past what a read covered, once it is delivered (damaged bytes are
/// counted here, so a retried read does not count them again).
fn advance(shared: &Shared, index: usize, cursor: &mut Cursor, moved: &Moved) {
    let kind = shared.kinds.get(index).copied().unwrap_or(SinkKind::Sqlite);
    let stats = shared.stats.sink(kind);
    set(
        &stats.backlog_bytes,
        get(&stats.backlog_bytes).saturating_sub(moved.bytes),
    );
    add(&shared.stats.journal_damaged_bytes, moved.skipped);
    cursor.pos = moved.next;
    set_position(&shared.delivered, index, cursor.pos);
}

fn set_delivering(shared: &Shared, index: usize, from: Option<Position>) {
    if let Some(slot) = shared.delivering.borrow_mut().get_mut(index) {
        *slot = from;
    }
}

fn set_position(positions: &RefCell<Vec<Position>>, index: usize, pos: Position) {
    if let Some(slot) = positions.borrow_mut().get_mut(index) {
        *slot = pos;
    }
}

/// Saves a sink's cursor durably (on the blocking pool), then deletes the segments every sink
/// has durably passed.
async fn save(shared: &Shared, index: usize, cursor: &Cursor, kind: SinkKind) {
    let path: PathBuf = cursor.path().to_path_buf();
    let pos = cursor.pos;
    match tokio::task::spawn_blocking(move || journal::save_cursor(&path, pos)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, sink = kind.name(), "cannot save a usage cursor");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, sink = kind.name(), "cannot save a usage cursor");
            return;
        }
    }
    set_position(&shared.saved, index, pos);
    let oldest = shared.saved.borrow().iter().min().copied().unwrap_or(pos);
    let mut journal = shared.journal.borrow_mut();
    journal.collect(oldest);
    set(&shared.stats.journal_bytes, journal.disk_bytes());
}

/// One retention turn on the store sink: deletes usage older than `retention`, at most
/// [`RETENTION_STEPS_PER_TURN`] statements of [`RETENTION_STEP`] rows. When the next turn is due.
async fn retain(
    sink: &mut Sink,
    stats: &SideStats,
    retention: Duration,
    done: &watch::Receiver<bool>,
) -> Option<Instant> {
    let Some(store) = sink.open_or_connect().await else {
        return Some(Instant::now() + RETRY_MAX);
    };
    let before = wall_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(0));
    for _ in 0..RETENTION_STEPS_PER_TURN {
        match store.delete_usage_before(before, RETENTION_STEP).await {
            Ok(deleted) => {
                add(&stats.retention_deleted_rows, deleted);
                if deleted == RETENTION_STEP {
                    continue;
                }
                add(&stats.retention_runs, 1);
                // Freed pages go back to the file system only with incremental vacuum: an
                // embedded store made without it is converted once, after a pass that freed
                // some, and never while stopping (the conversion holds the file meanwhile).
                if get(&stats.retention_deleted_rows) > 0
                    && !*done.borrow()
                    && !stats.retention_prepared.swap(true, Ordering::Relaxed)
                {
                    match store.prepare_retention().await {
                        Ok(true) => {
                            tracing::info!("embedded store converted to incremental vacuum")
                        }
                        Ok(false) => {}
                        Err(e) => {
                            stats.retention_prepared.store(false, Ordering::Relaxed);
                            tracing::warn!(error = %e, "usage retention: cannot convert the store");
                        }
                    }
                }
                return Some(Instant::now() + RETENTION_EVERY);
            }
            Err(e) => {
                tracing::warn!(error = %e, "usage retention failed; retried later");
                return Some(Instant::now() + RETENTION_EVERY / 60);
            }
        }
    }
    // More to delete: the next turn comes after the deliveries waiting now.
    Some(Instant::now())
}
