//! The shared store: PostgreSQL (Aurora compatible), the same tables as the embedded store.
//! Every node connects to it; migrations run under an advisory lock so nodes starting together
//! apply each one once.
//!
//! TLS is asked for in the URL, with libpq's parameters: `sslmode=require`, `verify-ca` or
//! `verify-full` connect over TLS or not at all, and the certificate and host name are always
//! verified (rustls, ring) against the PEM bundle in `sslrootcert=` (Aurora: the RDS global
//! bundle) or else the Mozilla roots. Without one of those (`prefer`, libpq's default, which
//! encrypts without verifying) the connection is plain: encryption that is not verified is not
//! offered, rather than failing against a server's self-signed certificate.

mod candles;
mod push;

use std::time::Duration;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use std::collections::HashMap;

use super::{NewKey, StoreError, StoredKey, UsageQuery};
use crate::access::key::{from_hex, to_hex};
use crate::usage::apply::{self, Applied};
use crate::usage::batch::Batch;

/// Every statement and the connection itself must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(3);

const MIGRATIONS: &[&str] = &[
    // 1: keys, usage records, parameters.
    "CREATE TABLE api_keys (
        id BIGSERIAL PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        name TEXT NOT NULL,
        tier TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT
     );
     CREATE TABLE usage_logs (
        boot BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        key_id BIGINT NOT NULL,
        assets TEXT NOT NULL,
        protocol TEXT NOT NULL,
        latency_bucket TEXT NOT NULL,
        node TEXT NOT NULL,
        ts_ms BIGINT NOT NULL,
        PRIMARY KEY (boot, seq)
     );
     CREATE INDEX usage_logs_key_ts ON usage_logs (key_id, ts_ms);
     CREATE TABLE application_parameters (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
     );
     CREATE TABLE store_versions (name TEXT PRIMARY KEY, version BIGINT NOT NULL);
     INSERT INTO store_versions VALUES ('keys', 0), ('params', 0);",
    // 2: usage as exact rollups per minute; each boot's applied end; raw records keyed by the
    // text record id every sink uses. Rows already stored are rolled up and kept.
    "CREATE TABLE usage_rollups (
        minute_ms BIGINT NOT NULL,
        key_id BIGINT NOT NULL,
        asset TEXT NOT NULL,
        protocol TEXT NOT NULL,
        latency_bucket TEXT NOT NULL,
        node TEXT NOT NULL,
        requests BIGINT NOT NULL,
        prices BIGINT NOT NULL,
        PRIMARY KEY (minute_ms, key_id, asset, protocol, latency_bucket, node)
     );
     CREATE INDEX usage_rollups_key ON usage_rollups (key_id, minute_ms);
     CREATE TABLE usage_progress (
        boot TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        end_seq BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
     );
     INSERT INTO usage_rollups
        SELECT (ts_ms / 60000) * 60000, key_id, a.asset, protocol, latency_bucket, node,
               COUNT(*) FILTER (WHERE a.ord = 1), COUNT(*)
        FROM usage_logs, unnest(CASE WHEN assets = '' THEN ARRAY[''] ELSE string_to_array(assets, ',') END)
             WITH ORDINALITY AS a(asset, ord)
        GROUP BY 1, 2, 3, 4, 5, 6;
     INSERT INTO usage_progress
        SELECT lpad(to_hex(boot), 16, '0'), MIN(node), MAX(seq) + 1, MAX(ts_ms)
        FROM usage_logs GROUP BY boot;
     ALTER TABLE usage_logs ADD COLUMN record_id TEXT;
     UPDATE usage_logs SET record_id = lpad(to_hex(boot), 16, '0') || '-' || lpad(to_hex(seq), 16, '0');
     ALTER TABLE usage_logs DROP CONSTRAINT usage_logs_pkey;
     ALTER TABLE usage_logs DROP COLUMN boot, DROP COLUMN seq;
     ALTER TABLE usage_logs ALTER COLUMN record_id SET NOT NULL;
     ALTER TABLE usage_logs ADD PRIMARY KEY (record_id);
     CREATE INDEX usage_logs_ts ON usage_logs (ts_ms);",
    // 3: push subscriptions, their delivery log, and replay requests.
    "CREATE TABLE subscriptions (
        id BIGSERIAL PRIMARY KEY,
        owner_key_id BIGINT NOT NULL,
        target TEXT NOT NULL,
        assets TEXT NOT NULL,
        every_s BIGINT,
        move_bps BIGINT,
        min_gap_ms BIGINT NOT NULL,
        format TEXT NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_until_ms BIGINT NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        seq_floor BIGINT NOT NULL DEFAULT 0
     );
     CREATE INDEX subscriptions_owner ON subscriptions (owner_key_id);
     CREATE TABLE push_deliveries (
        id BIGSERIAL PRIMARY KEY,
        subscription_id BIGINT NOT NULL,
        protocol TEXT NOT NULL,
        seq BIGINT NOT NULL,
        seq_last BIGINT NOT NULL,
        count BIGINT NOT NULL,
        attempt BIGINT NOT NULL,
        ts_ms BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        status BIGINT,
        error TEXT NOT NULL DEFAULT '',
        latency_ms BIGINT NOT NULL,
        payload TEXT
     );
     CREATE INDEX push_deliveries_sub_ts ON push_deliveries (subscription_id, ts_ms);
     CREATE INDEX push_deliveries_ts ON push_deliveries (ts_ms);
     CREATE TABLE push_replays (
        id BIGSERIAL PRIMARY KEY,
        subscription_id BIGINT NOT NULL,
        since_ms BIGINT NOT NULL,
        requested_ms BIGINT NOT NULL,
        done_ms BIGINT
     );
     INSERT INTO store_versions VALUES ('subscriptions', 0);",
    // 4: closed candles of the price history, reloaded at start.
    "CREATE TABLE candles (
        asset TEXT NOT NULL,
        series TEXT NOT NULL,
        interval TEXT NOT NULL,
        open_ms BIGINT NOT NULL,
        open TEXT NOT NULL,
        high TEXT NOT NULL,
        low TEXT NOT NULL,
        close TEXT NOT NULL,
        ticks BIGINT NOT NULL,
        venues INTEGER NOT NULL,
        PRIMARY KEY (asset, series, interval, open_ms)
     );
     CREATE INDEX candles_interval_open ON candles (interval, open_ms);",
];

/// Takes libpq's `sslrootcert=` out of the URL (tokio-postgres does not know it) and maps
/// `verify-ca`/`verify-full` to `require` (TLS here always verifies) and `prefer`/`allow` or
/// no `sslmode` to `disable`.
fn libpq_url(url: &str) -> (String, Option<String>) {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut root_cert = None;
    let mut tls = false;
    let mut kept: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| match pair.split_once('=') {
            Some(("sslrootcert", path)) => {
                root_cert = Some(path.to_string());
                None
            }
            Some(("sslmode", mode)) => {
                tls = matches!(mode, "require" | "verify-ca" | "verify-full");
                None
            }
            _ => Some(pair.to_string()),
        })
        .collect();
    kept.push(
        if tls {
            "sslmode=require"
        } else {
            "sslmode=disable"
        }
        .into(),
    );
    (format!("{base}?{}", kept.join("&")), root_cert)
}

fn tls(root_cert: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let bad = |what: String| StoreError::Tls(what);
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Any number that identifies beast's migration lock among the database's advisory locks.
const MIGRATION_LOCK: i64 = 0x000b_ea57_0001;

pub struct PgStore {
    client: Client,
}

fn pg(source: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(source)
}

async fn timed<T>(
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    timed_for(TIMEOUT, work).await
}

async fn timed_for<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(pg)
}

/// A migration rewrites whole tables (migration 2 rolls up every usage row of version 1), so
/// it gets far longer than a statement.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(3_600);
/// A usage delivery's statements end on the server after this, so a backend a timed-out
/// client gave up on does not keep its boot's progress row locked.
const DELIVERY_STATEMENT_TIMEOUT_MS: u32 = 10_000;

impl PgStore {
    /// Connects and runs pending migrations. Must run inside a tokio runtime (the connection's
    /// I/O runs as a task on it).
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let (url, root_cert) = libpq_url(url);
        let config: tokio_postgres::Config = url.parse().map_err(StoreError::Postgres)?;
        let client = if config.get_ssl_mode() == SslMode::Disable {
            let (client, connection) = timed(config.connect(NoTls)).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL connection ended");
                }
            });
            client
        } else {
            let tls = tls(root_cert.as_deref())?;
            let (client, connection) = timed(config.connect(tls)).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL connection ended");
                }
            });
            client
        };
        let mut store = PgStore { client };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn migrate(&mut self) -> Result<(), StoreError> {
        timed(self.client.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        ))
        .await?;
        let tx = timed(self.client.transaction()).await?;
        timed(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])).await?;
        let row = timed(tx.query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        ))
        .await?;
        let current: i64 = row.get(0);
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        if current < known {
            timed(tx.batch_execute("SET LOCAL statement_timeout = 0")).await?;
        }
        for (version, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(current).unwrap_or(0))
        {
            tracing::info!(
                version = version + 1,
                "PostgreSQL: running a schema migration"
            );
            timed_for(MIGRATION_TIMEOUT, tx.batch_execute(sql)).await?;
            timed(tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
                &[
                    &(version as i64 + 1),
                    &(beast_core::clock::wall_ms() as i64),
                ],
            ))
            .await?;
        }
        timed_for(MIGRATION_TIMEOUT, tx.commit()).await
    }

    pub async fn create_key(&mut self, key: &NewKey<'_>) -> Result<u64, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let row = timed(tx.query_one(
            "INSERT INTO api_keys (key_hash, prefix, name, tier, created_ms)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &to_hex(&key.hash),
                &key.prefix,
                &key.name,
                &key.tier.name(),
                &(key.now_ms as i64),
            ],
        ))
        .await?;
        timed(tx.execute(
            "UPDATE store_versions SET version = version + 1 WHERE name = 'keys'",
            &[],
        ))
        .await?;
        timed(tx.commit()).await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub async fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = timed(self.client.query(
            "SELECT id, key_hash, prefix, name, tier, created_ms, revoked_ms FROM api_keys ORDER BY id",
            &[],
        ))
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let hash: String = r.get(1);
                let tier: String = r.get(4);
                Ok(StoredKey {
                    id: id as u64,
                    hash: from_hex(&hash)
                        .ok_or_else(|| StoreError::Corrupt(format!("key {id}: hash {hash:?}")))?,
                    prefix: r.get(2),
                    name: r.get(3),
                    tier: tier
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("key {id}: tier {tier:?}")))?,
                    created_ms: r.get::<_, i64>(5) as u64,
                    revoked_ms: r.get::<_, Option<i64>>(6).map(|v| v as u64),
                })
            })
            .collect()
    }

    pub async fn revoke_key(&mut self, id: u64, now_ms: u64) -> Result<bool, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let changed = timed(tx.execute(
            "UPDATE api_keys SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
            &[&(id as i64), &(now_ms as i64)],
        ))
        .await?;
        if changed > 0 {
            timed(tx.execute(
                "UPDATE store_versions SET version = version + 1 WHERE name = 'keys'",
                &[],
            ))
            .await?;
        }
        timed(tx.commit()).await?;
        Ok(changed > 0)
    }

    pub async fn version(&mut self, name: &str) -> Result<i64, StoreError> {
        let row = timed(self.client.query_opt(
            "SELECT version FROM store_versions WHERE name = $1",
            &[&name],
        ))
        .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Applies a delivery of usage batches in one transaction: the batches this store has not
    /// applied yet (see [`crate::usage::apply`]) are added to the rollups (and raw records, when
    /// `raw`), and each boot's applied end moves on with them. Each boot's progress row is
    /// locked for the transaction; nodes write different boots and different rollup rows (the
    /// node is part of the key), so they never wait on each other.
    ///
    /// The plan is made on the blocking pool: with raw records on, a delivery is tens of
    /// thousands of rows to build, and the side thread's drain must not wait for it.
    pub async fn apply_usage(
        &mut self,
        batches: Vec<Batch>,
        raw: bool,
    ) -> Result<Applied, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        timed(tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {DELIVERY_STATEMENT_TIMEOUT_MS}"
        )))
        .await?;
        let boots = apply::boots(&batches);
        let rows = timed(tx.query(
            "SELECT boot, end_seq FROM usage_progress WHERE boot = ANY($1) FOR UPDATE",
            &[&boots],
        ))
        .await?;
        let progress: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let plan = tokio::task::spawn_blocking(move || apply::plan(&batches, &progress, raw))
            .await
            .map_err(|e| StoreError::Interrupted(e.to_string()))?;
        if !plan.rollups.is_empty() {
            let r = &plan.rollups;
            let minutes: Vec<i64> = r.iter().map(|r| r.minute_ms).collect();
            let keys: Vec<i64> = r.iter().map(|r| r.key_id).collect();
            let assets: Vec<&str> = r.iter().map(|r| r.asset.as_str()).collect();
            let protocols: Vec<&str> = r.iter().map(|r| r.protocol).collect();
            let latencies: Vec<&str> = r.iter().map(|r| r.latency_bucket).collect();
            let nodes: Vec<&str> = r.iter().map(|r| r.node.as_str()).collect();
            let requests: Vec<i64> = r.iter().map(|r| r.requests).collect();
            let prices: Vec<i64> = r.iter().map(|r| r.prices).collect();
            timed(tx.execute(
                "INSERT INTO usage_rollups (minute_ms, key_id, asset, protocol, latency_bucket, node, requests, prices)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[])
                 ON CONFLICT (minute_ms, key_id, asset, protocol, latency_bucket, node) DO UPDATE
                 SET requests = usage_rollups.requests + EXCLUDED.requests, prices = usage_rollups.prices + EXCLUDED.prices",
                &[&minutes, &keys, &assets, &protocols, &latencies, &nodes, &requests, &prices],
            ))
            .await?;
        }
        if !plan.raw.is_empty() {
            let r = &plan.raw;
            let ids: Vec<&str> = r.iter().map(|r| r.record_id.as_str()).collect();
            let keys: Vec<i64> = r.iter().map(|r| r.key_id).collect();
            let assets: Vec<&str> = r.iter().map(|r| r.assets.as_str()).collect();
            let protocols: Vec<&str> = r.iter().map(|r| r.protocol).collect();
            let latencies: Vec<&str> = r.iter().map(|r| r.latency_bucket).collect();
            let nodes: Vec<&str> = r.iter().map(|r| r.node.as_str()).collect();
            let times: Vec<i64> = r.iter().map(|r| r.ts_ms).collect();
            timed(tx.execute(
                "INSERT INTO usage_logs (record_id, key_id, assets, protocol, latency_bucket, node, ts_ms)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[])
                 ON CONFLICT (record_id) DO NOTHING",
                &[&ids, &keys, &assets, &protocols, &latencies, &nodes, &times],
            ))
            .await?;
        }
        if !plan.progress.is_empty() {
            let p = &plan.progress;
            let boots: Vec<&str> = p.iter().map(|p| p.boot.as_str()).collect();
            let nodes: Vec<&str> = p.iter().map(|p| p.node.as_str()).collect();
            let ends: Vec<i64> = p.iter().map(|p| p.end_seq).collect();
            let now = beast_core::clock::wall_ms() as i64;
            timed(tx.execute(
                "INSERT INTO usage_progress (boot, node, end_seq, updated_ms)
                 SELECT b, n, e, $4 FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(b, n, e)
                 ON CONFLICT (boot) DO UPDATE
                 SET end_seq = GREATEST(usage_progress.end_seq, EXCLUDED.end_seq), updated_ms = EXCLUDED.updated_ms",
                &[&boots, &nodes, &ends, &now],
            ))
            .await?;
        }
        timed(tx.commit()).await?;
        Ok(plan.applied())
    }

    /// Requests answered (the rollups' `requests`), of one key and from one minute on.
    pub(crate) async fn usage_report(
        &mut self,
        query: &super::UsageReportQuery,
    ) -> Result<Vec<super::UsageRow>, StoreError> {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let rows = timed(self.client.query(
            "SELECT (minute_ms / $4) * $4, asset, protocol, SUM(requests)::int8, SUM(prices)::int8
             FROM usage_rollups WHERE key_id = $1 AND minute_ms >= $2 AND minute_ms < $3
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT $5",
            &[
                &i(query.key_id),
                &i(query.since_ms),
                &i(query.until_ms),
                &i(query.period_ms.max(1)),
                &i(query.limit),
            ],
        ))
        .await?;
        Ok(rows
            .iter()
            .map(|r| super::UsageRow {
                period_ms: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                asset: r.get(1),
                protocol: r.get(2),
                requests: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                prices: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
            })
            .collect())
    }

    pub async fn count_usage(&mut self, query: &UsageQuery) -> Result<u64, StoreError> {
        let key = query.key_id.map(|k| k as i64);
        let row = timed(self.client.query_one(
            "SELECT COALESCE(SUM(requests), 0)::int8 FROM usage_rollups
             WHERE ($1::int8 IS NULL OR key_id = $1) AND minute_ms >= $2",
            &[&key, &query.since_minute_ms()],
        ))
        .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Deletes at most `limit` usage rows older than `before_ms` (rollups by their minute, raw
    /// records by their time, boots' progress by its last move), each statement a short
    /// transaction of its own; how many it deleted.
    pub async fn delete_usage_before(
        &mut self,
        before_ms: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
        let mut deleted: i64 = 0;
        for sql in [
            "DELETE FROM usage_rollups WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM usage_rollups WHERE minute_ms < $1 LIMIT $2))",
            "DELETE FROM usage_logs WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM usage_logs WHERE ts_ms < $1 LIMIT $2))",
            "DELETE FROM usage_progress WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM usage_progress WHERE updated_ms < $1 LIMIT $2))",
        ] {
            let left = i64::try_from(limit).unwrap_or(i64::MAX) - deleted;
            if left <= 0 {
                break;
            }
            deleted += timed(self.client.execute(sql, &[&before, &left])).await? as i64;
        }
        Ok(deleted as u64)
    }

    pub async fn params(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = timed(self.client.query(
            "SELECT name, value FROM application_parameters ORDER BY name",
            &[],
        ))
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn set_param(
        &mut self,
        name: &str,
        value: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let tx = timed(self.client.transaction()).await?;
        timed(tx.execute(
            "INSERT INTO application_parameters (name, value, updated_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_ms = EXCLUDED.updated_ms",
            &[&name, &value, &(now_ms as i64)],
        ))
        .await?;
        timed(tx.execute(
            "UPDATE store_versions SET version = version + 1 WHERE name = 'params'",
            &[],
        ))
        .await?;
        timed(tx.commit()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_read() {
        for (url, expected, cert) in [
            (
                "postgres://a@h/db",
                "postgres://a@h/db?sslmode=disable",
                None,
            ),
            (
                "postgres://a@h/db?sslmode=prefer",
                "postgres://a@h/db?sslmode=disable",
                None,
            ),
            (
                "postgres://a@h/db?sslmode=verify-full&sslrootcert=/etc/rds.pem",
                "postgres://a@h/db?sslmode=require",
                Some("/etc/rds.pem"),
            ),
            (
                "postgres://a@h/db?sslrootcert=/c.pem",
                "postgres://a@h/db?sslmode=disable",
                Some("/c.pem"),
            ),
            (
                "postgres://a@h/db?sslmode=disable&connect_timeout=3",
                "postgres://a@h/db?connect_timeout=3&sslmode=disable",
                None,
            ),
        ] {
            let (parsed, root) = libpq_url(url);
            assert_eq!(
                (parsed.as_str(), root.as_deref()),
                (expected, cert),
                "{url}"
            );
        }
    }
}
