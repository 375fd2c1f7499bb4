//! The embedded store: one SQLite file (`beast.db`) in the data directory, in WAL mode so the
//! CLI can create and revoke keys while `beast serve` reads them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{NewKey, StoreError, StoredKey, UsageQuery};
use crate::access::key::{from_hex, to_hex};
use crate::usage::record::UsageRecord;

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
];

/// Rows per `INSERT` statement (8 parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 50;

/// `INSERT OR IGNORE … VALUES (…), (…)` for `rows` rows. Only two lengths occur per batch
/// (full chunks and the rest), so the statement cache keeps them.
fn insert_sql(rows: usize) -> &'static str {
    static FULL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static SHORTER: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let build = |n: usize| {
        let row = "(?, ?, ?, ?, ?, ?, ?, ?)";
        format!(
            "INSERT OR IGNORE INTO usage_logs (boot, seq, key_id, assets, protocol, latency_bucket, node, ts_ms) VALUES {}",
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
        // WAL lets readers and one writer work at once; NORMAL sync is durable across a process
        // crash (the usage journal covers power loss until the next checkpoint).
        self.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
            )
            .map_err(|e| self.err(e))?;
        let current: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        let done = usize::try_from(current).unwrap_or(0);
        for (version, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = self.conn.transaction().map_err(failed(&self.path))?;
            tx.execute_batch(sql)
                .and_then(|()| {
                    tx.execute(
                        "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                        params![version as i64 + 1, crate::node::wall_ms() as i64],
                    )
                })
                .and_then(|_| tx.commit())
                .map_err(failed(&self.path))?;
        }
        Ok(())
    }

    /// Stores a new key; returns its id.
    pub fn create_key(&mut self, key: &NewKey<'_>) -> Result<u64, StoreError> {
        let tx = self.conn.transaction().map_err(failed(&self.path))?;
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
        let tx = self.conn.transaction().map_err(failed(&self.path))?;
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
    pub fn keys_version(&mut self) -> Result<i64, StoreError> {
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
    /// Inserts records in one transaction, skipping ids already stored; returns how many were new.
    pub fn insert_usage(&mut self, records: &[UsageRecord]) -> Result<u64, StoreError> {
        let err = failed(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let mut inserted = 0;
        // Rows go in statements of ROWS_PER_INSERT: one statement step per row costs SQLite
        // about as much as the row itself.
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut statement = tx.prepare_cached(insert_sql(chunk.len())).map_err(err)?;
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 8);
            let numbers: Vec<[i64; 4]> = chunk
                .iter()
                .map(|r| [r.boot as i64, r.seq as i64, r.key_id as i64, r.ts_ms as i64])
                .collect();
            let names: Vec<[&str; 2]> = chunk
                .iter()
                .map(|r| [r.protocol.as_str(), r.latency_name()])
                .collect();
            for ((r, n), t) in chunk.iter().zip(&numbers).zip(&names) {
                values.extend_from_slice(&[
                    &n[0], &n[1], &n[2], &r.assets, &t[0], &t[1], &r.node, &n[3],
                ]);
            }
            inserted += statement
                .execute(rusqlite::params_from_iter(values))
                .map_err(err)? as u64;
        }
        tx.commit().map_err(err)?;
        Ok(inserted)
    }

    pub fn count_usage(&mut self, query: &UsageQuery) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM usage_logs WHERE (?1 IS NULL OR key_id = ?1) AND ts_ms >= ?2",
                params![
                    query.key_id.map(|k| k as i64),
                    query.since_ms.unwrap_or(0) as i64
                ],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
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

    pub fn set_param(&mut self, name: &str, value: &str, now_ms: u64) -> Result<(), StoreError> {
        let err = failed(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
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

    #[test]
    fn usage_rows_are_inserted_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let record = |seq| UsageRecord {
            boot: u64::MAX - 1, // stored as a negative i64 and back
            seq,
            key_id: seq % 3,
            ts_ms: 1_000 + seq,
            protocol: crate::usage::Protocol::Http,
            latency: 1,
            node: "n".into(),
            assets: "BTC".into(),
        };
        let first: Vec<UsageRecord> = (0..120).map(record).collect();
        assert_eq!(store.insert_usage(&first).unwrap(), 120);
        let again: Vec<UsageRecord> = (60..180).map(record).collect();
        assert_eq!(
            store.insert_usage(&again).unwrap(),
            60,
            "the repeats are no-ops"
        );
        let all = UsageQuery::default();
        assert_eq!(store.count_usage(&all).unwrap(), 180);
        let key = UsageQuery {
            key_id: Some(0),
            since_ms: Some(1_090),
        };
        assert_eq!(store.count_usage(&key).unwrap(), 30);
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
