//! Valkey (`CACHE_URL`, Redis 7 protocol): every fresh price under `price:{ASSET}` every 30 s,
//! this node's stats under `cluster:stats:<node>` every 3 s with a 10 s expiry (the live nodes
//! are the unexpired entries: the cluster's membership, no consensus of ours), and, at start,
//! the cached prices read back so a node whose feeds are not up yet can answer at once (with
//! their original exchange time, so age and staleness stay true).
//!
//! Values are JSON: `price:BTC` = `{"asset":"BTC","price":"97000.5","source":"coinbase-ws",
//! "ts":1764000000000,"node":"node-a"}` with a 10-minute expiry.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beast_core::{Decimal, Source, Symbol};
use redis::AsyncCommands as _;
use tokio::sync::watch;

use super::SideOptions;
use super::stats::{SideStats, add};
use crate::price::{Aggregate, PriceTable, TableWriter};
use beast_core::clock::wall_ms;

/// Cached prices expire after this: a cluster that stopped writing must not serve them forever.
const PRICE_TTL_S: u64 = 600;
/// Every call must finish within this (ASSETS.md: fail fast on Valkey).
pub(super) const TIMEOUT: Duration = Duration::from_millis(500);
/// Connecting may take longer than a call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn run(
    options: SideOptions,
    table: Arc<PriceTable>,
    feeds: Vec<Arc<beast_feeds::client::FeedStatus>>,
    stats: Arc<SideStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(url) = options.cache_url.clone() else {
        let _ = stopped.wait_for(|s| *s).await;
        return;
    };
    let mut connection: Option<redis::aio::ConnectionManager> = None;
    // Metered requests at the last stats write: the node's load is the rate since.
    let mut metered = (
        stats.journaled.load(Ordering::Relaxed),
        std::time::Instant::now(),
    );
    // The governors' counts already added to the cluster's `{adaptive:lpo}:*`.
    let mut governor_sent = [0u64; 3];
    let mut prices = tokio::time::interval(options.cache_prices_every);
    let mut node_stats = tokio::time::interval(options.cache_stats_every);
    for tick in [&mut prices, &mut node_stats] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        let write_prices = tokio::select! {
            _ = prices.tick() => true,
            _ = node_stats.tick() => false,
            _ = stopped.wait_for(|s| *s) => return,
        };
        if connection.is_none() {
            connection = connect(&url).await;
            if connection.is_none() {
                failed(&stats, "cannot connect");
                continue;
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let result = if write_prices {
            write_all_prices(conn, &table, &options)
                .await
                .map(|()| false)
        } else {
            write_node_stats(
                conn,
                (&table, &feeds),
                &options,
                &stats,
                (&mut metered, &mut governor_sent),
            )
            .await
        };
        match result {
            Ok(emptied) => {
                if emptied {
                    // Flushed, or a new (empty) Valkey: the cached prices are gone too, so
                    // they are written now rather than at the next interval.
                    prices.reset_immediately();
                }
                add(&stats.cache_writes, 1);
                if !stats.cache_up.swap(true, Ordering::Relaxed) {
                    tracing::info!("Valkey reachable");
                }
            }
            Err(e) => failed(&stats, &e),
        }
    }
}

fn failed(stats: &SideStats, error: &str) {
    add(&stats.cache_errors, 1);
    if stats.cache_up.swap(false, Ordering::Relaxed)
        || stats.cache_errors.load(Ordering::Relaxed) == 1
    {
        tracing::warn!(
            error,
            "Valkey unreachable; prices are still served from memory"
        );
    }
}

/// One connection for a command-line tool (`beast doctor`, `beast cluster status`): no
/// reconnecting, a bounded wait, the failure in words.
pub async fn dial(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())
}

/// Connects and asks PING (`beast doctor`).
pub async fn ping(url: &str) -> Result<(), String> {
    let mut connection = dial(url).await?;
    let pong: String =
        tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async(&mut connection))
            .await
            .map_err(|_| format!("no PONG within {TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("answered {pong:?} to PING"))
    }
}

pub(super) async fn connect(url: &str) -> Option<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).ok()?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1);
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        client.get_connection_manager_with_config(config),
    )
    .await
    .ok()?
    .ok()
}

async fn write_all_prices(
    conn: &mut redis::aio::ConnectionManager,
    table: &PriceTable,
    options: &SideOptions,
) -> Result<(), String> {
    let now = wall_ms();
    let mut pipe = redis::pipe();
    let mut any = false;
    for (id, symbol) in table.registry().iter() {
        let Some(price) = table.aggregate(id) else {
            continue;
        };
        if now.saturating_sub(price.exchange_ms) > options.stale_after_ms {
            continue; // only fresh prices are worth a warm start
        }
        let value = serde_json::json!({
            "asset": symbol.as_str(),
            "price": price.price.format().as_str(),
            "source": price.source.tag_for(table.simulated()),
            "ts": price.exchange_ms,
            "node": options.node,
        });
        pipe.set_ex(
            format!("price:{}", symbol.as_str()),
            value.to_string(),
            PRICE_TTL_S,
        )
        .ignore();
        any = true;
    }
    if !any {
        return Ok(());
    }
    tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(conn))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// The cluster's governor counters (the inventory's names): each node adds its own.
const GOVERNOR_KEYS: [&str; 3] = [
    "{adaptive:lpo}:successes",
    "{adaptive:lpo}:total",
    "{adaptive:lpo}:throttle",
];

async fn write_node_stats(
    conn: &mut redis::aio::ConnectionManager,
    (table, feeds): (&PriceTable, &[Arc<beast_feeds::client::FeedStatus>]),
    options: &SideOptions,
    stats: &SideStats,
    (metered, governor_sent): (&mut (u64, std::time::Instant), &mut [u64; 3]),
) -> Result<bool, String> {
    let journaled = stats.journaled.load(Ordering::Relaxed);
    let seconds = metered.1.elapsed().as_secs_f64().max(0.001);
    #[allow(clippy::cast_possible_truncation, reason = "a rate of requests")]
    let requests_per_second = (journaled.saturating_sub(metered.0) as f64 / seconds).round() as u64;
    *metered = (journaled, std::time::Instant::now());
    let priced = table
        .registry()
        .iter()
        .filter(|(id, _)| table.aggregate(*id).is_some())
        .count();
    let value = serde_json::json!({
        "node": options.node,
        "ts": wall_ms(),
        "version": crate::build_info::VERSION,
        "assets": table.registry().len(),
        "priced": priced,
        "feeds_streaming": feeds.iter().filter(|f| f.state().as_str() == "streaming").count(),
        "usage_journaled": stats.journaled.load(Ordering::Relaxed),
        "keys_active": stats.keys_active.load(Ordering::Relaxed),
        "keys_version": stats.keys_version.load(Ordering::Relaxed),
        "requests_per_second": requests_per_second,
        "live_nodes": stats.live_nodes.load(Ordering::Relaxed),
        "limits": stats.limits.view(),
    });
    // Membership: a node is live while its entry has not expired; a dead node's goes away by
    // itself within MEMBER_TTL_S. The entry it replaces says whether Valkey still holds what
    // this node wrote 3 s ago (gone: flushed or restarted empty).
    let previous: Option<String> = tokio::time::timeout(
        TIMEOUT,
        redis::cmd("SET")
            .arg(format!("{MEMBER_PREFIX}{}", options.node))
            .arg(value.to_string())
            .arg("EX")
            .arg(MEMBER_TTL_S)
            .arg("GET")
            .query_async(conn),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())?;
    // Only what was added since the last write that worked: a failed one is added next time.
    let counts = [
        &stats.governor.successes,
        &stats.governor.total,
        &stats.governor.throttled,
    ]
    .map(|c| c.load(Ordering::Relaxed));
    let mut pipe = redis::pipe();
    for ((key, now), sent) in GOVERNOR_KEYS.iter().zip(counts).zip(*governor_sent) {
        pipe.incr(*key, now.saturating_sub(sent));
    }
    let cluster: Vec<u64> = tokio::time::timeout(TIMEOUT, pipe.query_async(conn))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    *governor_sent = counts;
    for (total, value) in [
        &stats.governor_cluster.successes,
        &stats.governor_cluster.total,
        &stats.governor_cluster.throttled,
    ]
    .into_iter()
    .zip(cluster)
    {
        total.store(value, Ordering::Relaxed);
    }
    let members = members(conn).await?;
    stats
        .live_nodes
        .store((members.len() as u64).max(1), Ordering::Relaxed);
    stats.members.store(Arc::new(members));
    Ok(previous.is_none())
}

/// `cluster:stats:<node>`: each node's counters, which also say it is live.
const MEMBER_PREFIX: &str = "cluster:stats:";
/// A node's entry lives this long (it writes it every 3 s: three chances before it expires).
const MEMBER_TTL_S: u64 = 10;
/// Most members read: more than any cluster of ours, a bound on what a scan may cost.
const MAX_MEMBERS: usize = 256;

/// The live nodes' entries: the unexpired member keys (this node's among them), oldest name
/// first, at most [`MAX_MEMBERS`].
pub async fn members(
    conn: &mut impl redis::aio::ConnectionLike,
) -> Result<Vec<serde_json::Value>, String> {
    // SCAN may name a key twice: each is kept once.
    let (mut cursor, mut keys) = (0u64, std::collections::BTreeSet::new());
    loop {
        let (next, batch): (u64, Vec<String>) = tokio::time::timeout(
            TIMEOUT,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{MEMBER_PREFIX}*"))
                .arg("COUNT")
                .arg(100)
                .query_async(conn),
        )
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= MAX_MEMBERS {
            break;
        }
    }
    let keys: Vec<String> = keys.into_iter().take(MAX_MEMBERS).collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<String>> =
        tokio::time::timeout(TIMEOUT, redis::cmd("MGET").arg(&keys).query_async(conn))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
    // An entry that expired between the scan and the read is gone: not a member.
    Ok(values
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_str(&v).ok())
        .collect())
}

/// Cached prices older than this are not read back: the writers give their entries this TTL
/// (10 minutes), so anything older was not written by a node of ours.
const WARM_START_MAX_AGE_MS: u64 = 600_000;

/// Reads the cached prices of `wanted` (the configured assets) into the table before the feeds
/// start; how many. The cache is shared, so nothing in it is trusted: only the configured
/// assets' entries are read (no scan; so the registry keeps room for them), and an entry is
/// taken only if it names the asset of its key, carries a real venue's source (a simulated
/// price never comes back as a real one), and an exchange time neither in the future (beyond
/// the clock tolerance) nor older than [`WARM_START_MAX_AGE_MS`]. Bounded to a few seconds;
/// without Valkey the node just starts cold.
pub fn warm_start(options: &SideOptions, writer: &mut TableWriter, wanted: &[Symbol]) -> u64 {
    let Some(url) = options.cache_url.clone() else {
        return 0;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "warm start skipped");
            return 0;
        }
    };
    let cached = runtime.block_on(async {
        let mut conn = connect(&url).await?;
        let mut values = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(500) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|a| format!("price:{}", a.as_str()))
                .collect();
            let got: Vec<Option<String>> = tokio::time::timeout(TIMEOUT, conn.mget(keys))
                .await
                .ok()?
                .ok()?;
            values.extend(chunk.iter().copied().zip(got));
        }
        Some(values)
    });
    let Some(values) = cached else {
        tracing::warn!("Valkey unreachable at start: no warm start");
        return 0;
    };
    let now = beast_core::clock::wall_ms();
    let (mut loaded, mut refused) = (0u64, 0u64);
    for (asset, value) in values {
        let Some(value) = value else {
            continue;
        };
        let accepted = parse_cached(&value).filter(|(symbol, price)| {
            *symbol == asset
                && price.exchange_ms <= now + beast_core::clock::FUTURE_TOLERANCE_MS
                && now.saturating_sub(price.exchange_ms) <= WARM_START_MAX_AGE_MS
        });
        match accepted {
            Some((symbol, aggregate)) => {
                if let Ok(id) = writer.add_asset(&symbol) {
                    writer.publish_aggregate(id, &aggregate);
                    loaded += 1;
                }
            }
            None => refused += 1,
        }
    }
    if refused > 0 {
        tracing::warn!(
            refused,
            "warm start: cached prices refused (another asset's, an unknown source, a time in the future or older than 10 min)"
        );
    }
    tracing::info!(prices = loaded, "warm start from Valkey");
    loaded
}

pub(crate) fn parse_cached(value: &str) -> Option<(Symbol, Aggregate)> {
    let v: serde_json::Value = serde_json::from_str(value).ok()?;
    let symbol = Symbol::parse(v.get("asset")?.as_str()?.as_bytes()).ok()?;
    let exchange_ms = v.get("ts")?.as_u64()?;
    Some((
        symbol,
        Aggregate {
            price: Decimal::parse(v.get("price")?.as_str()?).ok()?,
            source: Source::from_tag(v.get("source")?.as_str()?)?,
            exchange_ms,
            received_ms: exchange_ms,
            sources: 1,
            spread_bps: 0,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_prices_parse() {
        let (symbol, price) = parse_cached(
            r#"{"asset":"BTC","price":"97000.5","source":"coinbase-ws","ts":1764000000000,"node":"a"}"#,
        )
        .unwrap();
        assert_eq!(symbol.as_str(), "BTC");
        assert_eq!(price.price.format().as_str(), "97000.5");
        assert_eq!(price.exchange_ms, 1_764_000_000_000);
        for bad in [
            "",
            "{}",
            r#"{"asset":"BTC","price":"x","source":"coinbase-ws","ts":1}"#,
        ] {
            assert!(parse_cached(bad).is_none(), "{bad}");
        }
    }
}
