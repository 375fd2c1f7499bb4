//! The embedded store: one SQLite file (`beast.db`) in the data directory, in WAL mode so the
//! CLI can create and revoke keys while `beast serve` reads them.

mod candles;
mod push;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use std::collections::HashMap;

use super::{NewKey, StoreError, StoredKey, UsageQuery};
use crate::access::key::{from_hex, to_hex};
use crate::usage::apply::{self, Applied};
use crate::usage::batch::Batch;

/// Each migration, in order; `schema_migrations` records which have run.
const MIGRATIONS: &[&str] = &[
    // 1: keys, usage records, parameters.
    "CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        name TEXT NOT NULL,
        tier TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
     );
     CREATE TABLE usage_logs (
        boot INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        assets TEXT NOT NULL,
        protocol TEXT NOT NULL,
        latency_bucket TEXT NOT NULL,
        node TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        PRIMARY KEY (boot, seq)
     ) WITHOUT ROWID;
     CREATE INDEX usage_logs_key_ts ON usage_logs (key_id, ts_ms);
     CREATE TABLE application_parameters (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
     );
     CREATE TABLE store_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
     INSERT INTO store_versions VALUES ('keys', 0), ('params', 0);",
    // 2: usage as exact rollups per minute; each boot's applied end; raw records keyed by the
    // text record id every sink uses. Rows already stored are rolled up and kept.
    "CREATE TABLE usage_rollups (
        minute_ms INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        asset TEXT NOT NULL,
        protocol TEXT NOT NULL,
        latency_bucket TEXT NOT NULL,
        node TEXT NOT NULL,
        requests INTEGER NOT NULL,
        prices INTEGER NOT NULL,
        PRIMARY KEY (minute_ms, key_id, asset, protocol, latency_bucket, node)
     ) WITHOUT ROWID;
     CREATE INDEX usage_rollups_key ON usage_rollups (key_id, minute_ms);
     CREATE TABLE usage_progress (
        boot TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        end_seq INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO usage_rollups
        SELECT (ts_ms / 60000) * 60000, key_id, j.value, protocol, latency_bucket, node,
               SUM(j.key = 0), COUNT(*)
        FROM usage_logs, json_each('[\"' || replace(assets, ',', '\",\"') || '\"]') AS j
        GROUP BY 1, 2, 3, 4, 5, 6;
     INSERT INTO usage_progress
        SELECT printf('%016x', boot), MIN(node), MAX(seq) + 1, MAX(ts_ms) FROM usage_logs GROUP BY boot;
     CREATE TABLE usage_logs_v2 (
        record_id TEXT PRIMARY KEY,
        key_id INTEGER NOT NULL,
        assets TEXT NOT NULL,
        protocol TEXT NOT NULL,
        latency_bucket TEXT NOT NULL,
        node TEXT NOT NULL,
        ts_ms INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO usage_logs_v2
        SELECT printf('%016x-%016x', boot, seq), key_id, assets, protocol, latency_bucket, node, ts_ms
        FROM usage_logs;
     DROP TABLE usage_logs;
     ALTER TABLE usage_logs_v2 RENAME TO usage_logs;
     CREATE INDEX usage_logs_ts ON usage_logs (ts_ms);
     CREATE INDEX usage_logs_key_ts ON usage_logs (key_id, ts_ms);",
    // 3: push subscriptions, their delivery log, and replay requests.
    "CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner_key_id INTEGER NOT NULL,
        target TEXT NOT NULL,
        assets TEXT NOT NULL,
        every_s INTEGER,
        move_bps INTEGER,
        min_gap_ms INTEGER NOT NULL,
        format TEXT NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_until_ms INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        seq_floor INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX subscriptions_owner ON subscriptions (owner_key_id);
     CREATE TABLE push_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subscription_id INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        seq INTEGER NOT NULL,
        seq_last INTEGER NOT NULL,
        count INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        error TEXT NOT NULL DEFAULT '',
        latency_ms INTEGER NOT NULL,
        payload TEXT
     );
     CREATE INDEX push_deliveries_sub_ts ON push_deliveries (subscription_id, ts_ms);
     CREATE INDEX push_deliveries_ts ON push_deliveries (ts_ms);
     CREATE TABLE push_replays (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subscription_id INTEGER NOT NULL,
        since_ms INTEGER NOT NULL,
        requested_ms INTEGER NOT NULL,
        done_ms INTEGER
     );
     INSERT INTO store_versions VALUES ('subscriptions', 0);",
    // 4: closed candles of the price history, reloaded at start.
    "CREATE TABLE candles (
        asset TEXT NOT NULL,
        series TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_ms INTEGER NOT NULL,
        open TEXT NOT NULL,
        high TEXT NOT NULL,
        low TEXT NOT NULL,
        close TEXT NOT NULL,
        ticks INTEGER NOT NULL,
        venues INTEGER NOT NULL,
        PRIMARY KEY (asset, series, interval, open_ms)
     );
     CREATE INDEX candles_interval_open ON candles (interval, open_ms);",
];

/// Raw rows per `INSERT` statement (7 parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 50;

/// `INSERT OR IGNORE … VALUES (…), (…)` of raw records for `rows` rows. Only two lengths occur
/// per delivery (full chunks and the rest), so the statement cache keeps them.
fn insert_raw_sql(rows: usize) -> &'static str {
    static FULL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static SHORTER: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let build = |n: usize| {
        let row = "(?, ?, ?, ?, ?, ?, ?)";
        format!(
            "INSERT OR IGNORE INTO usage_logs (record_id, key_id, assets, protocol, latency_bucket, node, ts_ms) VALUES {}",
            vec![row; n.max(1)].join(", ")
        )
    };
    if rows >= ROWS_PER_INSERT {
        return FULL.get_or_init(|| build(ROWS_PER_INSERT));
    }
    let shorter = SHORTER.get_or_init(|| (0..ROWS_PER_INSERT).map(build).collect());
    shorter.get(rows).map_or("", String::as_str)
}

/// Names the database file in an error from it.
fn failed(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// A write transaction, begun IMMEDIATE: it waits (up to the busy timeout) for another writer
/// rather than fail on upgrading a read lock.
fn write(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// How long a call waits for another process's write (`beast keys create`) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) `beast.db` under `data_dir` and runs pending migrations.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("beast.db");
        let conn = Connection::open(&path).map_err(failed(&path))?;
        let mut store = SqliteStore { conn, path };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        failed(&self.path)(source)
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        // WAL lets readers and one writer work at once. FULL sync makes every commit durable
        // before it returns, so the journal segments a commit covers may be deleted: usage
        // commits are a few a second, keys and parameters rarer. Incremental vacuum (taken
        // only by a new file) lets retention hand freed pages back in small steps.
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch(
                "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
            )
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
            )
            .map_err(|e| self.err(e))?;
        // One migration per write transaction, the version read inside it: processes that open
        // the store together (the side thread's keys and usage tasks, `beast keys create`) wait
        // their turn and each migration runs once.
        let known = MIGRATIONS.len() as i64;
        let path = self.path.clone();
        loop {
            let tx = write(&mut self.conn).map_err(failed(&path))?;
            let current: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    [],
                    |r| r.get(0),
                )
                .map_err(failed(&path))?;
            if current > known {
                return Err(StoreError::TooNew {
                    found: current,
                    known,
                });
            }
            let Some(sql) = MIGRATIONS.get(usize::try_from(current).unwrap_or(usize::MAX)) else {
                return Ok(());
            };
            tx.execute_batch(sql)
                .and_then(|()| {
                    tx.execute(
                        "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                        params![current + 1, beast_core::clock::wall_ms() as i64],
                    )
                })
                .and_then(|_| tx.commit())
                .map_err(failed(&path))?;
        }
    }

    /// Stores a new key; returns its id.
    pub fn create_key(&mut self, key: &NewKey<'_>) -> Result<u64, StoreError> {
        let tx = write(&mut self.conn).map_err(failed(&self.path))?;
        let result = tx
            .execute(
                "INSERT INTO api_keys (key_hash, prefix, name, tier, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![to_hex(&key.hash), key.prefix, key.name, key.tier.name(), key.now_ms as i64],
            )
            .map(|_| tx.last_insert_rowid())
            .and_then(|id| {
                tx.execute("UPDATE store_versions SET version = version + 1 WHERE name = 'keys'", [])?;
                tx.commit()?;
                Ok(id)
            });
        result.map(|id| id as u64).map_err(|e| self.err(e))
    }

    /// Every key, revoked ones included, by id.
    pub fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, key_hash, prefix, name, tier, created_ms, revoked_ms FROM api_keys ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .map_err(failed(&self.path))?;
        let mut keys = Vec::new();
        for row in rows {
            let (id, hash, prefix, name, tier, created, revoked) =
                row.map_err(failed(&self.path))?;
            keys.push(StoredKey {
                id: id as u64,
                hash: from_hex(&hash)
                    .ok_or_else(|| StoreError::Corrupt(format!("key {id}: hash {hash:?}")))?,
                prefix,
                name,
                tier: tier
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("key {id}: tier {tier:?}")))?,
                created_ms: created as u64,
                revoked_ms: revoked.map(|r| r as u64),
            });
        }
        Ok(keys)
    }

    /// Revokes key `id`; false when there is no such key or it was already revoked.
    pub fn revoke_key(&mut self, id: u64, now_ms: u64) -> Result<bool, StoreError> {
        let tx = write(&mut self.conn).map_err(failed(&self.path))?;
        let result = tx
            .execute(
                "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id as i64, now_ms as i64],
            )
            .and_then(|changed| {
                if changed > 0 {
                    tx.execute(
                        "UPDATE store_versions SET version = version + 1 WHERE name = 'keys'",
                        [],
                    )?;
                }
                tx.commit()?;
                Ok(changed > 0)
            });
        result.map_err(|e| self.err(e))
    }

    /// Changes whenever a key is created or revoked: the side thread reloads on a change.
    #[cfg(test)]
    pub(crate) fn keys_version(&mut self) -> Result<i64, StoreError> {
        self.version("keys")
    }

    /// A table's change counter (`keys`, `params`).
    pub fn version(&mut self, name: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT version FROM store_versions WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }
}

impl SqliteStore {
    /// Applies a delivery of usage batches in one transaction: the batches this store has not
    /// applied yet (see [`crate::usage::apply`]) are added to the rollups (and raw records, when
    /// `raw`), and each boot's applied end moves on with them.
    pub(crate) fn apply_usage(
        &mut self,
        batches: &[Batch],
        raw: bool,
    ) -> Result<Applied, StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        let mut progress = HashMap::new();
        {
            let mut read = tx
                .prepare_cached("SELECT end_seq FROM usage_progress WHERE boot = ?1")
                .map_err(err)?;
            for boot in apply::boots(batches) {
                if let Some(end) = read
                    .query_row([&boot], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(err)?
                {
                    progress.insert(boot, end);
                }
            }
        }
        let plan = apply::plan(batches, &progress, raw);
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO usage_rollups (minute_ms, key_id, asset, protocol, latency_bucket, node, requests, prices)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (minute_ms, key_id, asset, protocol, latency_bucket, node)
                     DO UPDATE SET requests = requests + excluded.requests, prices = prices + excluded.prices",
                )
                .map_err(err)?;
            for r in &plan.rollups {
                upsert
                    .execute(params![
                        r.minute_ms,
                        r.key_id,
                        r.asset,
                        r.protocol,
                        r.latency_bucket,
                        r.node,
                        r.requests,
                        r.prices
                    ])
                    .map_err(err)?;
            }
            // Raw rows go in statements of ROWS_PER_INSERT: one statement step per row costs
            // SQLite about as much as the row itself.
            for chunk in plan.raw.chunks(ROWS_PER_INSERT) {
                let mut statement = tx
                    .prepare_cached(insert_raw_sql(chunk.len()))
                    .map_err(err)?;
                let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 7);
                for r in chunk {
                    values.extend_from_slice(&[
                        &r.record_id,
                        &r.key_id,
                        &r.assets,
                        &r.protocol,
                        &r.latency_bucket,
                        &r.node,
                        &r.ts_ms,
                    ]);
                }
                statement
                    .execute(rusqlite::params_from_iter(values))
                    .map_err(err)?;
            }
            let mut moved = tx
                .prepare_cached(
                    "INSERT INTO usage_progress (boot, node, end_seq, updated_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (boot) DO UPDATE SET end_seq = MAX(end_seq, excluded.end_seq), updated_ms = excluded.updated_ms",
                )
                .map_err(err)?;
            let now = beast_core::clock::wall_ms() as i64;
            for p in &plan.progress {
                moved
                    .execute(params![p.boot, p.node, p.end_seq, now])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(plan.applied())
    }

    /// Requests answered (the rollups' `requests`), of one key and from one minute on.
    pub fn count_usage(&mut self, query: &UsageQuery) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(requests), 0) FROM usage_rollups
                 WHERE (?1 IS NULL OR key_id = ?1) AND minute_ms >= ?2",
                params![query.key_id.map(|k| k as i64), query.since_minute_ms()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    pub(crate) fn usage_report(
        &mut self,
        query: &super::UsageReportQuery,
    ) -> Result<Vec<super::UsageRow>, StoreError> {
        let err = failed(&self.path);
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT (minute_ms / ?4) * ?4, asset, protocol, SUM(requests), SUM(prices)
                 FROM usage_rollups WHERE key_id = ?1 AND minute_ms >= ?2 AND minute_ms < ?3
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT ?5",
            )
            .map_err(err)?;
        let rows = select
            .query_map(
                params![
                    i(query.key_id),
                    i(query.since_ms),
                    i(query.until_ms),
                    i(query.period_ms.max(1)),
                    i(query.limit)
                ],
                |r| {
                    Ok(super::UsageRow {
                        period_ms: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        asset: r.get(1)?,
                        protocol: r.get(2)?,
                        requests: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                        prices: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    })
                },
            )
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    /// Deletes at most `limit` usage rows older than `before_ms` (rollups by their minute, raw
    /// records by their time, boots' progress by its last move); how many it deleted. Freed
    /// pages go back to the file system a few at a time.
    pub(crate) fn delete_usage_before(
        &mut self,
        before_ms: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let err = failed(&self.path);
        let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut deleted = 0;
        for sql in [
            "DELETE FROM usage_rollups WHERE (minute_ms, key_id, asset, protocol, latency_bucket, node) IN
                (SELECT minute_ms, key_id, asset, protocol, latency_bucket, node FROM usage_rollups
                 WHERE minute_ms < ?1 LIMIT ?2)",
            "DELETE FROM usage_logs WHERE record_id IN
                (SELECT record_id FROM usage_logs WHERE ts_ms < ?1 LIMIT ?2)",
            "DELETE FROM usage_progress WHERE boot IN
                (SELECT boot FROM usage_progress WHERE updated_ms < ?1 LIMIT ?2)",
        ] {
            let left = limit - deleted;
            if left <= 0 {
                break;
            }
            deleted += self
                .conn
                .execute(sql, params![before, left])
                .map_err(err)? as i64;
        }
        if deleted > 0 {
            self.conn
                .execute_batch("PRAGMA incremental_vacuum(256)")
                .map_err(err)?;
        }
        Ok(deleted as u64)
    }

    /// A file made before incremental vacuum (auto_vacuum off) is converted once, by a full
    /// VACUUM: it holds the database for as long as it takes, so retention does it off the
    /// serving path, and deliveries wait in the journal meanwhile. True when it ran.
    pub(crate) fn enable_incremental_vacuum(&mut self) -> Result<bool, StoreError> {
        let err = failed(&self.path);
        let mode: i64 = self
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(err)?;
        if mode == 2 {
            return Ok(false);
        }
        self.conn
            .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            .map_err(err)?;
        Ok(true)
    }

    pub fn params(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let err = failed(&self.path);
        let mut statement = self
            .conn
            .prepare("SELECT name, value FROM application_parameters ORDER BY name")
            .map_err(err)?;
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    pub(crate) fn set_param(
        &mut self,
        name: &str,
        value: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        tx.execute(
            "INSERT INTO application_parameters (name, value, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            params![name, value, now_ms as i64],
        )
        .and_then(|_| {
            tx.execute(
                "UPDATE store_versions SET version = version + 1 WHERE name = 'params'",
                [],
            )
        })
        .map_err(err)?;
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{ApiKey, Tier};

    use crate::usage::batch::tests::sample;

    fn rollup_rows(store: &SqliteStore) -> i64 {
        store
            .conn
            .query_row("SELECT COUNT(*) FROM usage_rollups", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn usage_batches_are_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let first = store
            .apply_usage(&[sample(0, 5), sample(5, 5)], true)
            .unwrap();
        assert_eq!((first.applied, first.duplicates, first.rows), (10, 0, 4));
        let again = store
            .apply_usage(&[sample(5, 5), sample(10, 2)], true)
            .unwrap();
        assert_eq!(
            (again.applied, again.duplicates),
            (2, 5),
            "the repeat is a no-op"
        );
        assert_eq!(
            rollup_rows(&store),
            2,
            "one row per minute, key, asset, protocol"
        );
        let all = UsageQuery::default();
        assert_eq!(store.count_usage(&all).unwrap(), 12);
        let other_key = UsageQuery {
            key_id: Some(4),
            since_ms: None,
        };
        assert_eq!(store.count_usage(&other_key).unwrap(), 0);
        // `since` counts from the start of its minute.
        let since = UsageQuery {
            key_id: Some(3),
            since_ms: Some(1_764_000_059_999),
        };
        assert_eq!(store.count_usage(&since).unwrap(), 12);
        let later = UsageQuery {
            key_id: None,
            since_ms: Some(1_764_000_060_000),
        };
        assert_eq!(store.count_usage(&later).unwrap(), 0);
        let raw: i64 = store
            .conn
            .query_row("SELECT COUNT(*) FROM usage_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(raw, 3, "one raw record per batch in the sample");
    }

    #[test]
    fn retention_deletes_only_old_rows_in_bounded_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let mut old = sample(0, 1);
        old.rollups.iter_mut().for_each(|r| r.minute_ms = 60_000);
        old.raw[0].ts_ms = 60_001;
        store.apply_usage(&[old, sample(1, 1)], true).unwrap();
        assert_eq!(rollup_rows(&store), 4);
        assert_eq!(
            store.delete_usage_before(1_000_000, 1).unwrap(),
            1,
            "bounded"
        );
        assert_eq!(store.delete_usage_before(1_000_000, 100).unwrap(), 2);
        assert_eq!(store.delete_usage_before(1_000_000, 100).unwrap(), 0);
        assert_eq!(rollup_rows(&store), 2, "the recent minute is kept");
        assert_eq!(store.count_usage(&UsageQuery::default()).unwrap(), 1);
        assert!(
            !store.enable_incremental_vacuum().unwrap(),
            "new files have it"
        );
    }

    /// A store written by the previous version (one row per request) keeps its counts.
    #[test]
    fn migration_2_rolls_up_existing_rows() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("beast.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0);",
            )
            .unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "INSERT INTO usage_logs VALUES
                    (-2, 0, 5, 'BTC', 'http', 'lt100us', 'n', 60500),
                    (-2, 1, 5, 'BTC,ETH', 'http', 'lt100us', 'n', 61000),
                    (7, 0, 6, '*', 'udp', 'lt1ms', 'm', 125000);",
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.count_usage(&UsageQuery::default()).unwrap(), 3);
        let rows: Vec<(i64, String, i64, i64)> = store
            .conn
            .prepare("SELECT minute_ms, asset, requests, prices FROM usage_rollups ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (60_000, "BTC".into(), 2, 2),
                (60_000, "ETH".into(), 0, 1),
                (120_000, "*".into(), 1, 1)
            ]
        );
        let ids: Vec<String> = store
            .conn
            .prepare("SELECT record_id FROM usage_logs ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            ids,
            [
                "0000000000000007-0000000000000000",
                "fffffffffffffffe-0000000000000000",
                "fffffffffffffffe-0000000000000001"
            ]
        );
        // Their boots count as applied: a journal replaying them adds nothing.
        let mut replay = sample(0, 2);
        replay.boot = u64::MAX - 1;
        let applied = store.apply_usage(&[replay], false).unwrap();
        assert_eq!((applied.applied, applied.duplicates), (0, 2));
    }

    #[test]
    fn keys_round_trip_and_versions_move() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let v0 = store.keys_version().unwrap();
        let key = ApiKey::generate().unwrap();
        let id = store
            .create_key(&NewKey {
                hash: key.hash(),
                prefix: &key.prefix(),
                name: "site",
                tier: Tier::Demo,
                now_ms: 5,
            })
            .unwrap();
        assert!(store.keys_version().unwrap() > v0);
        let keys = store.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].id, keys[0].hash, keys[0].tier, keys[0].revoked_ms),
            (id, key.hash(), Tier::Demo, None)
        );
        let v1 = store.keys_version().unwrap();
        assert!(store.revoke_key(id, 9).unwrap());
        assert!(!store.revoke_key(id, 10).unwrap(), "already revoked");
        assert!(store.keys_version().unwrap() > v1);
        assert_eq!(store.keys().unwrap()[0].revoked_ms, Some(9));
        // Reopening runs no migration twice.
        drop(store);
        let mut again = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(again.keys().unwrap().len(), 1);
    }
}
