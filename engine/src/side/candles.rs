//! The price history across restarts: closed candles (1 m and longer) go to the store every
//! [`SAVE_EVERY`], the candles still open go at shutdown, and at start every candle the rings
//! can hold is read back before the price thread takes the table's writer.
//!
//! With Valkey configured (`CACHE_URL`) every saved candle is also written there, one sorted
//! set per (asset, series, interval), `candles:BTC:served:1m`, scored by open time, trimmed to
//! what the rings keep: a node started on an empty disk (a replaced Fargate task with the
//! embedded store) reads the cluster's history back from it; what its own store has wins.
//!
//! Nothing is queued for this: the rings are the buffer. Each (asset, series, interval) has a
//! watermark, the newest candle saved; a pass walks back from the newest candle to it. A store
//! that is down only delays the pass (the watermarks stay), and a candle the rings overwrote
//! before the store came back is lost: at the 1 m interval a day of outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beast_core::{Decimal, Symbol};
use tokio::sync::watch;

use super::{SideOptions, SideStats};
use crate::history::{Candle, History, Interval, SeriesId};
use crate::price::{AssetId, PriceTable, TableWriter};
use crate::store::{CandleRow, Store};

const SAVE_EVERY: Duration = Duration::from_secs(10);
/// The intervals kept across restarts: every one but the first, 1 s (five minutes of them are
/// not worth a store write each second per series; a restart starts them afresh).
const SAVED: &[Interval] = Interval::ALL.split_at(1).1;
/// Expired candles are deleted this often.
const EXPIRE_EVERY: Duration = Duration::from_secs(3_600);
/// How long the start-up read may take before the node starts without its history.
const WARM_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per store call.
const CHUNK: usize = 2_000;

/// The oldest open time any series keeps, per interval (the served price keeps the most).
fn bounds(now_ms: u64) -> Vec<(String, u64)> {
    SAVED
        .iter()
        .map(|i| {
            (
                i.as_str().to_string(),
                History::oldest_kept(SeriesId::Served, *i, now_ms),
            )
        })
        .collect()
}

fn row(symbol: &Symbol, series: SeriesId, interval: Interval, c: &Candle) -> CandleRow {
    CandleRow {
        asset: symbol.as_str().to_string(),
        series: series.name().to_string(),
        interval: interval.as_str().to_string(),
        open_ms: c.open_ms,
        open: c.open.to_string(),
        high: c.high.to_string(),
        low: c.low.to_string(),
        close: c.close.to_string(),
        ticks: u64::from(c.ticks),
        venues: c.venues,
    }
}

fn candle(row: &CandleRow) -> Option<(Symbol, SeriesId, Interval, Candle)> {
    let price = |text: &str| Decimal::parse(text).ok().filter(|p| !p.is_zero());
    Some((
        Symbol::parse(row.asset.as_bytes()).ok()?,
        SeriesId::parse(&row.series)?,
        Interval::parse(row.interval.as_bytes())?,
        Candle {
            open_ms: row.open_ms,
            open: price(&row.open)?,
            high: price(&row.high)?,
            low: price(&row.low)?,
            close: price(&row.close)?,
            ticks: u32::try_from(row.ticks).ok().filter(|&t| t > 0)?,
            venues: row.venues,
        },
    ))
}

fn valkey_key(row: &CandleRow) -> String {
    format!("candles:{}:{}:{}", row.asset, row.series, row.interval)
}

/// `open_ms,open,high,low,close,ticks,venues`.
fn valkey_member(row: &CandleRow) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        row.open_ms, row.open, row.high, row.low, row.close, row.ticks, row.venues
    )
}

fn from_valkey(key: &str, member: &str) -> Option<CandleRow> {
    let mut names = key.strip_prefix("candles:")?.split(':');
    let (asset, series, interval) = (names.next()?, names.next()?, names.next()?);
    let mut fields = member.split(',');
    let mut next = || fields.next().map(str::to_string);
    Some(CandleRow {
        asset: asset.to_string(),
        series: series.to_string(),
        interval: interval.to_string(),
        open_ms: next()?.parse().ok()?,
        open: next()?,
        high: next()?,
        low: next()?,
        close: next()?,
        ticks: next()?.parse().ok()?,
        venues: next()?.parse().ok()?,
    })
}

/// Writes saved candles to Valkey: each replaces its period's member; each set is trimmed to
/// the served series' retention and expires a retention after its last write.
async fn save_to_valkey(
    conn: &mut redis::aio::ConnectionManager,
    rows: &[CandleRow],
    now_ms: u64,
) -> Result<(), String> {
    let floors: HashMap<String, u64> = bounds(now_ms).into_iter().collect();
    for chunk in rows.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for row in chunk {
            let key = valkey_key(row);
            let floor = floors.get(&row.interval).copied().unwrap_or(0);
            let keep_s = now_ms.saturating_sub(floor) / 1_000 + 60;
            pipe.zrembyscore(&key, row.open_ms, row.open_ms)
                .ignore()
                .zadd(&key, valkey_member(row), row.open_ms)
                .ignore()
                .zrembyscore(&key, 0, floor.saturating_sub(1))
                .ignore()
                .expire(&key, i64::try_from(keep_s).unwrap_or(i64::MAX))
                .ignore();
        }
        tokio::time::timeout(super::cache::TIMEOUT * 4, pipe.query_async::<()>(conn))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every candle Valkey holds that the rings can keep.
async fn load_from_valkey(url: &str, now_ms: u64) -> Option<Vec<CandleRow>> {
    let mut conn = super::cache::connect(url).await?;
    let floors: HashMap<String, u64> = bounds(now_ms).into_iter().collect();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("candles:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .ok()?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() > 100_000 {
            break;
        }
    }
    let mut rows = Vec::new();
    for chunk in keys.chunks(100) {
        let mut pipe = redis::pipe();
        for key in chunk {
            let interval = key.rsplit(':').next().unwrap_or_default();
            let floor = floors.get(interval).copied().unwrap_or(u64::MAX);
            pipe.zrangebyscore(key, floor, "+inf");
        }
        let members: Vec<Vec<String>> = pipe.query_async(&mut conn).await.ok()?;
        for (key, members) in chunk.iter().zip(members) {
            rows.extend(members.iter().filter_map(|m| from_valkey(key, m)));
        }
    }
    Some(rows)
}

/// Reads the stored candles back into the history; how many were restored. Runs before the
/// price thread starts (it writes through the one writer). A row that does not parse is
/// skipped and counted in the log line.
pub fn warm_start(options: &SideOptions, writer: &mut TableWriter) -> u64 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "price history not read back");
            return 0;
        }
    };
    let now = beast_core::clock::wall_ms();
    // Valkey's first: what this node's own store has replaces them, period by period.
    let mut rows = match &options.cache_url {
        Some(url) => runtime
            .block_on(async {
                tokio::time::timeout(WARM_TIMEOUT, load_from_valkey(url, now)).await
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                tracing::warn!("price history not read back from Valkey");
                Vec::new()
            }),
        None => Vec::new(),
    };
    let loaded = runtime.block_on(async {
        tokio::time::timeout(WARM_TIMEOUT, async {
            let mut store = Store::open(options.database_url.as_deref(), &options.data_dir).await?;
            store.load_candles(bounds(now)).await
        })
        .await
    });
    let stored = match loaded {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "price history not read back from the store");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("price history not read back: the store did not answer within 10 s");
            Vec::new()
        }
    };
    rows.extend(stored);
    let (mut restored, mut skipped) = (0u64, 0u64);
    for row in &rows {
        match candle(row) {
            Some((symbol, series, interval, candle)) => match writer.add_asset(&symbol) {
                Ok(asset) => {
                    writer.restore_candle(asset, series, interval, &candle);
                    restored += 1;
                }
                Err(_) => skipped += 1,
            },
            None => skipped += 1,
        }
    }
    if restored > 0 || skipped > 0 {
        tracing::info!(restored, skipped, "price history read back from the store");
    }
    restored
}

/// Each (asset, series, interval)'s newest saved open time.
struct Watermarks {
    saved: HashMap<(u32, usize, usize), u64>,
    /// Before this, candles were in the store already (read back at start).
    start_ms: u64,
}

impl Watermarks {
    fn get(&self, asset: AssetId, series: usize, interval: Interval) -> u64 {
        self.saved
            .get(&(asset.raw(), series, interval.index()))
            .copied()
            .unwrap_or_else(|| {
                interval
                    .open_of(self.start_ms)
                    .saturating_sub(interval.ms())
            })
    }
}

/// The candles to save: closed ones newer than their watermark, and with `all` (shutdown) the
/// open ones too. Returns the rows and the watermarks they move to.
fn pass(
    table: &PriceTable,
    marks: &Watermarks,
    now_ms: u64,
    all: bool,
) -> (Vec<CandleRow>, Vec<((u32, usize, usize), u64)>) {
    let history = table.history();
    let (mut rows, mut moved) = (Vec::new(), Vec::new());
    for (asset, symbol) in table.registry().iter() {
        for (series_index, series) in SeriesId::ALL.into_iter().enumerate() {
            for &interval in SAVED {
                let Some(newest) = history.latest(asset, series, interval) else {
                    continue;
                };
                let mark = marks.get(asset, series_index, interval);
                let floor = History::oldest_kept(series, interval, now_ms);
                let mut open = newest.open_ms;
                let mut highest_closed = None;
                while open > mark && open >= floor {
                    let closed = History::is_closed(interval, open, now_ms);
                    if (closed || all)
                        && let Some(c) = history.candle(asset, series, interval, open)
                    {
                        rows.push(row(&symbol, series, interval, &c));
                    }
                    if closed && highest_closed.is_none() {
                        highest_closed = Some(open);
                    }
                    open = open.saturating_sub(interval.ms());
                }
                if let Some(at) = highest_closed {
                    moved.push(((asset.raw(), series_index, interval.index()), at));
                }
            }
        }
    }
    (rows, moved)
}

async fn save(store: &mut Store, rows: Vec<CandleRow>, stats: &SideStats) -> bool {
    let count = rows.len() as u64;
    for chunk in rows.chunks(CHUNK) {
        if let Err(e) = store.save_candles(chunk.to_vec()).await {
            stats.candle_save_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "candles not saved; retried at the next pass");
            return false;
        }
    }
    stats.candles_saved.fetch_add(count, Ordering::Relaxed);
    true
}

pub(crate) async fn run(
    options: SideOptions,
    table: Arc<PriceTable>,
    stats: Arc<SideStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut marks = Watermarks {
        saved: HashMap::new(),
        start_ms: beast_core::clock::wall_ms(),
    };
    let mut store: Option<Store> = None;
    let mut store_down = false;
    let mut valkey: Option<redis::aio::ConnectionManager> = None;
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry: Option<std::time::Instant> = None;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        if store.as_ref().is_none_or(Store::is_closed) {
            store = match Store::open(options.database_url.as_deref(), &options.data_dir).await {
                Ok(opened) => {
                    store_down = false;
                    Some(opened)
                }
                Err(e) => {
                    // Once per outage: the next passes retry quietly.
                    if !std::mem::replace(&mut store_down, true) {
                        tracing::warn!(error = %e, "candles: store not reachable; the rings keep them");
                    }
                    None
                }
            };
        }
        if let Some(store) = store.as_mut() {
            let now = beast_core::clock::wall_ms();
            let (rows, moved) = pass(&table, &marks, now, stopping);
            if let (Some(url), false) = (&options.cache_url, rows.is_empty()) {
                if valkey.is_none() {
                    valkey = super::cache::connect(url).await;
                }
                let written = match valkey.as_mut() {
                    Some(conn) => save_to_valkey(conn, &rows, now).await,
                    None => Err("cannot connect".to_string()),
                };
                if let Err(e) = written {
                    // Counted, not retried: the store keeps these, Valkey gets the next pass's.
                    tracing::debug!(error = %e, "candles not copied to Valkey");
                    stats.candle_save_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !rows.is_empty() && save(store, rows, &stats).await {
                marks.saved.extend(moved);
            }
            if last_expiry.is_none_or(|at| at.elapsed() >= EXPIRE_EVERY) {
                last_expiry = Some(std::time::Instant::now());
                if let Err(e) = store.delete_candles_before(bounds(now)).await {
                    tracing::warn!(error = %e, "expired candles not deleted");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beast_core::{Source, Venue};

    #[test]
    fn closed_candles_are_saved_once_and_open_ones_at_shutdown() {
        let (table, mut writer) = PriceTable::new(4);
        let btc = writer.add_asset(&Symbol::parse(b"BTC").unwrap()).unwrap();
        let t0 = 1_700_000_040_000;
        for (price, at) in [("100", t0), ("101", t0 + 30_000), ("102", t0 + 60_000)] {
            writer.publish_quote(
                btc,
                &crate::price::Quote {
                    price: Decimal::parse(price).unwrap(),
                    source: Source::stream(Venue::Kraken),
                    exchange_ms: at,
                    received_ms: at,
                },
            );
        }
        assert_eq!(
            SAVED.first(),
            Some(&Interval::M1),
            "1 s candles are not saved"
        );
        let mut marks = Watermarks {
            saved: HashMap::new(),
            start_ms: t0,
        };
        let now = t0 + 60_000 + CLOSE_GRACE;
        let (rows, moved) = pass(&table, &marks, now, false);
        let minutes: Vec<_> = rows.iter().filter(|r| r.interval == "1m").collect();
        assert_eq!(
            minutes.len(),
            1,
            "the first minute closed, the second is open"
        );
        assert_eq!(
            (
                minutes[0].open_ms,
                minutes[0].close.as_str(),
                minutes[0].ticks
            ),
            (t0, "101", 2)
        );
        assert!(rows.iter().all(|r| r.series == "kraken"));
        marks.saved.extend(moved);
        let (again, _) = pass(&table, &marks, now, false);
        assert!(again.iter().all(|r| r.interval != "1m"), "saved once");
        let (last, _) = pass(&table, &marks, now, true);
        let open: Vec<_> = last.iter().filter(|r| r.interval == "1m").collect();
        assert_eq!(
            (open.len(), open[0].open_ms, open[0].close.as_str()),
            (1, t0 + 60_000, "102")
        );
        // What was saved reads back as it was.
        let (parsed_symbol, series, interval, c) = candle(minutes[0]).unwrap();
        assert_eq!(
            (parsed_symbol.as_str(), series, interval),
            ("BTC", SeriesId::Venue(Venue::Kraken), Interval::M1)
        );
        assert_eq!(
            (c.open.to_string(), c.high.to_string(), c.ticks),
            ("100".into(), "101".into(), 2)
        );
    }

    #[test]
    fn valkey_members_read_back_as_written() {
        let row = CandleRow {
            asset: "BTC".into(),
            series: "kraken".into(),
            interval: "1m".into(),
            open_ms: 1_700_000_040_000,
            open: "97000.5".into(),
            high: "97010".into(),
            low: "96990.25".into(),
            close: "97001".into(),
            ticks: 42,
            venues: 4,
        };
        assert_eq!(valkey_key(&row), "candles:BTC:kraken:1m");
        assert_eq!(
            from_valkey(&valkey_key(&row), &valkey_member(&row)),
            Some(row)
        );
        assert_eq!(from_valkey("candles:BTC:served:1m", "1,2,3"), None);
        assert_eq!(from_valkey("price:BTC", "1,1,1,1,1,1,1"), None);
    }

    const CLOSE_GRACE: u64 = crate::history::CLOSE_GRACE_MS;
}
