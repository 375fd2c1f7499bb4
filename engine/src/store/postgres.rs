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

use std::time::Duration;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use super::{NewKey, StoreError, StoredKey, UsageQuery};
use crate::access::key::{from_hex, to_hex};
use crate::usage::record::UsageRecord;

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
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(pg)
}

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

    pub fn is_closed(&self) -> bool {
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
        for (version, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(current).unwrap_or(0))
        {
            timed(tx.batch_execute(sql)).await?;
            timed(tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
                &[&(version as i64 + 1), &(crate::node::wall_ms() as i64)],
            ))
            .await?;
        }
        timed(tx.commit()).await
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

    /// Inserts records, skipping ids already stored; returns how many were new.
    pub async fn insert_usage(&mut self, records: &[UsageRecord]) -> Result<u64, StoreError> {
        let mut boots = Vec::with_capacity(records.len());
        let mut seqs = Vec::with_capacity(records.len());
        let mut keys = Vec::with_capacity(records.len());
        let mut assets = Vec::with_capacity(records.len());
        let mut protocols = Vec::with_capacity(records.len());
        let mut latencies = Vec::with_capacity(records.len());
        let mut nodes = Vec::with_capacity(records.len());
        let mut times = Vec::with_capacity(records.len());
        for r in records {
            boots.push(r.boot as i64);
            seqs.push(r.seq as i64);
            keys.push(r.key_id as i64);
            assets.push(r.assets.as_str());
            protocols.push(r.protocol.as_str());
            latencies.push(r.latency_name());
            nodes.push(r.node.as_str());
            times.push(r.ts_ms as i64);
        }
        timed(self.client.execute(
            "INSERT INTO usage_logs (boot, seq, key_id, assets, protocol, latency_bucket, node, ts_ms)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[])
             ON CONFLICT (boot, seq) DO NOTHING",
            &[&boots, &seqs, &keys, &assets, &protocols, &latencies, &nodes, &times],
        ))
        .await
    }

    pub async fn count_usage(&mut self, query: &UsageQuery) -> Result<u64, StoreError> {
        let key = query.key_id.map(|k| k as i64);
        let since = query.since_ms.unwrap_or(0) as i64;
        let row = timed(self.client.query_one(
            "SELECT COUNT(*) FROM usage_logs WHERE ($1::int8 IS NULL OR key_id = $1) AND ts_ms >= $2",
            &[&key, &since],
        ))
        .await?;
        Ok(row.get::<_, i64>(0) as u64)
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
