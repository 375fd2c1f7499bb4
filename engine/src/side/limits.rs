//! Cluster-wide rate limits: each key's tier limit holds across every live node, while each
//! request is still decided locally by the key's GCRA cell ([`crate::access::limiter`]).
//!
//! Time is cut into one-second windows of the wall clock (the nodes' clocks agree to well under
//! a millisecond under NTP). Shortly after a window closes, each node adds how many requests
//! each key presented to it in that window (admitted or not: its demand) to the window's hash in
//! Valkey, `{ratelimit}:<window>`, field `<key id>:<node>`. Valkey closes the window to writes
//! by its own clock (a script), and a little later every node reads the same frozen hash and
//! computes every node's share of each key's limit the same way
//! ([`allocate`]): a tenth of the limit split evenly (so a node that saw no demand still admits
//! a first request), the rest by max-min fairness over the demands, and what nobody wanted
//! split evenly as headroom. Each node then holds each key to its own share until the next
//! window's read. Keys nobody asked for get the even split, limit ÷ live nodes.
//!
//! The bound: while the nodes agree on the live count (and read the window), the shares of
//! a key sum to at most its limit `L`, and each node's cell allows one second of its share as
//! burst, so across the cluster a key gets at most `L × t + L` answers in any `t` seconds: the
//! bound of a single node. A share that grows restarts the cell at the new rate, which may admit
//! one request early: at most one more per node and window. A node that cannot read a window
//! (Valkey down or slow) falls back to `L ÷` the last known live nodes for every key, never to
//! unlimited; while others still hold demand-sized shares that adds at most `L ÷ N` per such
//! node for the windows it misses.
//!
//! No consensus, no lock, nothing on the request path: the only shared state is a hash per
//! second that expires by itself, written and read once a second per node.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use beast_core::clock::wall_ms;
use tokio::sync::watch;

use super::SideOptions;
use super::stats::{SideStats, add, get, set};
use crate::access::limiter::{Share, WHOLE};
use crate::access::{Access, KeyEntry, Tier};

const WINDOW_MS: u64 = 1_000;
/// When, into the next window, each node writes the demand of the one that closed, when Valkey
/// stops taking writes for it (by its own clock, so every node's view of the closing is the
/// same), and when the nodes read it: every node reads the same frozen hash, so every node
/// computes the same shares, whatever a slow node managed to write.
const WRITE_AT_MS: u64 = 50;
const CLOSE_AT_MS: u64 = 300;
const READ_AT_MS: u64 = 400;
/// A window's hash is read 0.4 s after it closes; it expires by itself after this.
const WINDOW_TTL_S: u64 = 10;
/// Of each key's limit, the part split evenly whatever the demand.
const FLOOR: f64 = 0.1;
/// Most (key, node) demands read for one window; past it the window counts as missed (and
/// the nodes fall back to the even split) rather than reading without bound.
const MAX_FIELDS: usize = 200_000;
/// Most demands one write carries (a call's arguments stay small).
const WRITE_CHUNK: usize = 2_000;

/// Adds demands (ARGV[3..]: field, count pairs) to a window's hash (KEYS[1]) unless Valkey's
/// clock says the window closed (ARGV[1], Unix ms); 1 if written, 0 if too late.
const WRITE_WINDOW: &str = r"
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) >= tonumber(ARGV[1]) then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
";

/// Reads a window's hash (KEYS[1]) once it is closed (ARGV[1]) and within ARGV[2] fields:
/// `ok` and the fields and values, or why not (`open`, `full`).
const READ_WINDOW: &str = r"
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) < tonumber(ARGV[1]) then return {'open'} end
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[2]) then return {'full'} end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'ok')
return reply
";

/// Where the shares come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No Valkey: this node is alone, every key gets its whole limit.
    Alone = 0,
    /// Shares computed from the cluster's demand in the last window.
    Shared = 1,
    /// The last window could not be read: limit ÷ the last known live nodes.
    Fallback = 2,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Alone => "alone",
            Mode::Shared => "shared",
            Mode::Fallback => "fallback",
        }
    }

    fn from_u64(value: u64) -> Mode {
        match value {
            1 => Mode::Shared,
            2 => Mode::Fallback,
            _ => Mode::Alone,
        }
    }
}

/// What the cluster limits did, for `/metrics`, `/admin/cluster` and the node's stats entry.
#[derive(Default)]
pub struct LimitStats {
    mode: AtomicU64,
    /// The window last read, and how many were read or missed.
    pub window: AtomicU64,
    pub windows_shared: AtomicU64,
    pub windows_missed: AtomicU64,
    /// Windows this node's demand reached Valkey after it had closed them.
    pub writes_late: AtomicU64,
    /// The share of a key no node asked for, in millionths.
    pub default_share: AtomicU64,
    /// Per tier ([`Tier::ALL`]): keys with a share of their own, and the sum of those shares
    /// (millionths).
    tier_keys: [AtomicU64; Tier::ALL.len()],
    tier_shares: [AtomicU64; Tier::ALL.len()],
}

impl LimitStats {
    pub fn mode(&self) -> Mode {
        Mode::from_u64(get(&self.mode))
    }

    fn tier_index(tier: Tier) -> usize {
        Tier::ALL.iter().position(|t| *t == tier).unwrap_or(0)
    }

    /// The lease state per tier: keys holding a share of their own and this node's mean share
    /// of them (1: the whole limit).
    pub fn view(&self) -> serde_json::Value {
        let tiers: serde_json::Map<String, serde_json::Value> = Tier::ALL
            .iter()
            .zip(self.tier_keys.iter().zip(&self.tier_shares))
            .map(|(tier, (keys, shares))| {
                let (keys, shares) = (get(keys), get(shares));
                let mean = shares
                    .checked_div(keys)
                    .map_or(serde_json::Value::Null, |mean| ratio(mean).into());
                (
                    tier.name().to_string(),
                    serde_json::json!({"keys": keys, "share": mean}),
                )
            })
            .collect();
        serde_json::json!({
            "mode": self.mode().as_str(),
            "window": get(&self.window),
            "default_share": ratio(get(&self.default_share)),
            "windows_shared": get(&self.windows_shared),
            "windows_missed": get(&self.windows_missed),
            "writes_late": get(&self.writes_late),
            "tiers": tiers,
        })
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP beast_cluster_limit_mode Where keys' rate-limit shares come from (1 on the mode in force).\n# TYPE beast_cluster_limit_mode gauge"
        );
        let mode = self.mode();
        for m in [Mode::Alone, Mode::Shared, Mode::Fallback] {
            let _ = writeln!(
                out,
                "beast_cluster_limit_mode{{mode=\"{}\"}} {}",
                m.as_str(),
                u8::from(m == mode)
            );
        }
        let _ = writeln!(
            out,
            "# HELP beast_cluster_limit_windows_total One-second windows of cluster demand, read or missed.\n# TYPE beast_cluster_limit_windows_total counter\nbeast_cluster_limit_windows_total{{outcome=\"shared\"}} {}\nbeast_cluster_limit_windows_total{{outcome=\"missed\"}} {}",
            get(&self.windows_shared),
            get(&self.windows_missed)
        );
        let _ = writeln!(
            out,
            "# HELP beast_cluster_limit_writes_late_total Windows whose demand from this node reached Valkey after it closed them (counted as none).\n# TYPE beast_cluster_limit_writes_late_total counter\nbeast_cluster_limit_writes_late_total {}",
            get(&self.writes_late)
        );
        let _ = writeln!(
            out,
            "# HELP beast_cluster_limit_default_share This node's share of the limit of a key no node asked for.\n# TYPE beast_cluster_limit_default_share gauge\nbeast_cluster_limit_default_share {}",
            ratio(get(&self.default_share))
        );
        let _ = writeln!(
            out,
            "# HELP beast_cluster_limit_keys Keys holding a share of their own (demand in the last window).\n# TYPE beast_cluster_limit_keys gauge"
        );
        for (tier, keys) in Tier::ALL.iter().zip(&self.tier_keys) {
            let _ = writeln!(
                out,
                "beast_cluster_limit_keys{{tier=\"{}\"}} {}",
                tier.name(),
                get(keys)
            );
        }
    }
}

fn ratio(share: u64) -> f64 {
    share as f64 / f64::from(WHOLE)
}

/// One node's share (millionths) of a key's limit of `limit` requests a second, from the
/// demands (requests in the last window) of the nodes that reported one, `mine` among them if
/// this node did, with `nodes` live. Every node computes every share from the same figures, so
/// the shares sum to at most the whole.
pub(crate) fn allocate(limit: u32, nodes: usize, demands: &[u64], mine: Option<usize>) -> Share {
    let n = nodes.max(demands.len()).max(1);
    let limit = f64::from(limit.max(1));
    let floor = limit * FLOOR / n as f64;
    let mut pool = limit * (1.0 - FLOOR);
    // Max-min fairness: the smallest demands are met first; nodes that did not report have
    // none.
    let mut order: Vec<(u64, bool)> = demands
        .iter()
        .enumerate()
        .map(|(i, d)| (*d, Some(i) == mine))
        .collect();
    order.resize(n, (0, false));
    order.sort_unstable();
    let mut given = 0.0;
    for (left, (demand, is_mine)) in (1..=n).rev().zip(order) {
        let give = (demand as f64).min(pool / left as f64);
        pool -= give;
        if is_mine {
            given = give;
        }
    }
    // What nobody wanted is split evenly: room for a node whose demand is growing.
    let share = (floor + given + pool / n as f64) / limit;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a ratio in [0, 1] scaled to millionths, rounded down so the shares never sum past the whole"
    )]
    // (With a whisker added, so float noise does not take a millionth off a whole share.)
    let share = (share * f64::from(WHOLE) + 1e-6).floor() as Share;
    share.clamp(1, WHOLE)
}

/// Keeps this node's shares of every key's limit. Without Valkey it never starts: alone, each
/// key has its whole limit.
pub async fn run(
    options: SideOptions,
    access: Arc<Access>,
    stats: Arc<SideStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(url) = options.cache_url.clone() else {
        let _ = stopped.wait_for(|s| *s).await;
        return;
    };
    let limits = &stats.limits;
    set(&limits.default_share, u64::from(WHOLE));
    let mut connection: Option<redis::aio::ConnectionManager> = None;
    // Slots given a share of their own by the last window: the next one clears what it does
    // not renew.
    let mut shared_slots: Vec<KeyEntry> = Vec::new();
    loop {
        let closed = wall_ms() / WINDOW_MS;
        let window_end = (closed + 1) * WINDOW_MS;
        if !pause_until(window_end + WRITE_AT_MS, &mut stopped).await {
            return;
        }
        let keys = access.keys();
        let limiter = access.limiter();
        let demands: Vec<(u64, u32)> = keys
            .entries()
            .filter_map(|e| {
                let asked = limiter.take_asked(e.slot);
                (asked > 0).then_some((e.id, asked))
            })
            .collect();
        if connection.is_none() {
            connection = super::cache::connect(&url).await;
        }
        let closes = window_end + CLOSE_AT_MS;
        let read = match connection.as_mut() {
            Some(conn) => match write_demand(conn, (closed, closes), &options.node, &demands).await
            {
                Ok(on_time) => {
                    if !on_time {
                        // The others count this node's demand as none for this window, and so
                        // does this node: the shares still sum to the whole.
                        add(&limits.writes_late, 1);
                    }
                    if !pause_until(window_end + READ_AT_MS, &mut stopped).await {
                        return;
                    }
                    read_window(conn, closed, closes).await
                }
                Err(e) => Err(e),
            },
            None => Err("cannot connect".to_string()),
        };
        let nodes = usize::try_from(get(&stats.live_nodes).max(1)).unwrap_or(1);
        set(&limits.window, closed);
        match read {
            Ok(window) => {
                add(&limits.windows_shared, 1);
                if limits.mode() == Mode::Fallback {
                    tracing::info!("cluster rate limits: the cluster's demand is read again");
                }
                set(&limits.mode, Mode::Shared as u64);
                shared_slots = apply(
                    &access,
                    &window,
                    &options.node,
                    nodes,
                    limits,
                    &shared_slots,
                );
            }
            Err(e) => {
                add(&limits.windows_missed, 1);
                if limits.mode() != Mode::Fallback {
                    tracing::warn!(
                        error = %e,
                        nodes,
                        "cluster rate limits: cannot read the cluster's demand; each key falls back to its limit ÷ the last known live nodes"
                    );
                }
                set(&limits.mode, Mode::Fallback as u64);
                shared_slots = apply(
                    &access,
                    &HashMap::new(),
                    &options.node,
                    nodes,
                    limits,
                    &shared_slots,
                );
            }
        }
    }
}

/// Sleeps until the wall clock reads `at_ms`; false if the node stopped first.
async fn pause_until(at_ms: u64, stopped: &mut watch::Receiver<bool>) -> bool {
    let wait = Duration::from_millis(at_ms.saturating_sub(wall_ms()));
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        _ = stopped.wait_for(|s| *s) => false,
    }
}

/// Adds this node's demands to the window's hash; false if Valkey had closed it already.
async fn write_demand(
    conn: &mut redis::aio::ConnectionManager,
    (window, closes_ms): (u64, u64),
    node: &str,
    demands: &[(u64, u32)],
) -> Result<bool, String> {
    if demands.is_empty() {
        return Ok(true);
    }
    let key = window_key(window);
    let mut pipe = redis::pipe();
    for chunk in demands.chunks(WRITE_CHUNK) {
        let call = pipe
            .cmd("EVAL")
            .arg(WRITE_WINDOW)
            .arg(1)
            .arg(&key)
            .arg(closes_ms)
            .arg(WINDOW_TTL_S);
        for (id, asked) in chunk {
            call.arg(format!("{id}:{node}")).arg(*asked);
        }
    }
    let written: Vec<u8> = tokio::time::timeout(super::cache::TIMEOUT, pipe.query_async(conn))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(written.iter().all(|w| *w == 1))
}

/// Each key's demands in a window, by node.
type Window = HashMap<u64, Vec<(String, u64)>>;

async fn read_window(
    conn: &mut redis::aio::ConnectionManager,
    window: u64,
    closes_ms: u64,
) -> Result<Window, String> {
    // EVAL with the script's text (a few hundred bytes a second): no script cache to lose.
    let reply: Vec<String> = tokio::time::timeout(
        super::cache::TIMEOUT,
        redis::cmd("EVAL")
            .arg(READ_WINDOW)
            .arg(1)
            .arg(window_key(window))
            .arg(closes_ms)
            .arg(MAX_FIELDS)
            .query_async(conn),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let mut reply = reply.into_iter();
    match reply.next().as_deref() {
        Some("ok") => {}
        Some("open") => return Err("Valkey's clock says the window is still open: this node's clock is ahead of Valkey's by over 100 ms".into()),
        Some("full") => return Err(format!("over {MAX_FIELDS} demands in one window")),
        other => return Err(format!("unexpected reply {other:?}")),
    }
    let mut window = Window::new();
    while let (Some(field), Some(demand)) = (reply.next(), reply.next()) {
        let Ok(demand) = demand.parse::<u64>() else {
            continue;
        };
        // Another node's field that does not parse is skipped, not trusted.
        if let Some((id, node)) = field.split_once(':')
            && let Ok(id) = id.parse::<u64>()
        {
            window
                .entry(id)
                .or_default()
                .push((node.to_string(), demand));
        }
    }
    Ok(window)
}

fn window_key(window: u64) -> String {
    format!("{{ratelimit}}:{window}")
}

/// Gives each key in force its share for the next window; returns the slots with a share of
/// their own.
fn apply(
    access: &Access,
    window: &Window,
    node: &str,
    live_nodes: usize,
    limits: &LimitStats,
    previous: &[KeyEntry],
) -> Vec<KeyEntry> {
    let limiter = access.limiter();
    // A node that reported demand is live, whatever the membership count says yet.
    let reporting = window
        .values()
        .flat_map(|d| d.iter().map(|(n, _)| n.as_str()))
        .collect::<HashSet<_>>()
        .len();
    let nodes = live_nodes.max(reporting).max(1);
    let default_share = WHOLE / u32::try_from(nodes).unwrap_or(u32::MAX);
    limiter.set_default_share(default_share);
    set(&limits.default_share, u64::from(default_share));
    let mut per_tier = [(0u64, 0u64); Tier::ALL.len()];
    let mut shared = Vec::new();
    let performance = access.performance();
    for entry in access.keys().entries() {
        let Some(reports) = window.get(&entry.id) else {
            continue;
        };
        let demands: Vec<u64> = reports.iter().map(|(_, d)| *d).collect();
        let mine = reports.iter().position(|(n, _)| n == node);
        let share = allocate(
            entry.tier.rate(performance).per_second,
            nodes,
            &demands,
            mine,
        );
        access.set_share(entry, Some(share));
        shared.push(*entry);
        if let Some(t) = per_tier.get_mut(LimitStats::tier_index(entry.tier)) {
            t.0 += 1;
            t.1 += u64::from(share);
        }
    }
    for ((keys, shares), (k, s)) in limits
        .tier_keys
        .iter()
        .zip(&limits.tier_shares)
        .zip(per_tier)
    {
        set(keys, k);
        set(shares, s);
    }
    // Keys nobody asked for in this window go back to the default share.
    let renewed: HashSet<u32> = shared.iter().map(|e| e.slot).collect();
    for entry in previous.iter().filter(|e| !renewed.contains(&e.slot)) {
        access.set_share(entry, None);
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_demand_and_sum_to_the_whole() {
        // (limit, live nodes, demands of the reporting nodes, expected shares of every live
        // node in millionths: the reporting ones first, then the silent ones)
        let cases: &[(u32, usize, &[u64], &[Share])] = &[
            // Nobody reported: the even split.
            (3, 3, &[], &[333_333, 333_333, 333_333]),
            // One node has all the demand: all but the others' floors.
            (3, 3, &[50], &[933_333, 33_333, 33_333]),
            // Even demand past the limit: even shares.
            (3, 3, &[10, 10, 10], &[333_333, 333_333, 333_333]),
            // A light demand is met, and the rest split as headroom.
            (100, 2, &[10], &[550_000, 450_000]),
            // Max-min: the small demand is met, the large ones share the rest.
            (100, 3, &[10, 500, 500], &[133_333, 433_333, 433_333]),
            // More reporting nodes than the membership count knows of: they count.
            (10, 1, &[5, 5], &[500_000, 500_000]),
        ];
        for (limit, nodes, demands, expected) in cases {
            let n = (*nodes).max(demands.len());
            let shares: Vec<Share> = (0..n)
                .map(|i| allocate(*limit, *nodes, demands, (i < demands.len()).then_some(i)))
                .collect();
            assert_eq!(
                &shares, expected,
                "limit {limit}, {nodes} nodes, {demands:?}"
            );
            let sum: u64 = shares.iter().map(|s| u64::from(*s)).sum();
            assert!(sum <= u64::from(WHOLE), "{sum}");
        }
    }
}
