//! What a store writes for a delivery of batches, decided the same way by both stores.
//!
//! A store keeps, per boot, the end of the last batch it applied (`usage_progress`), and
//! applies a batch only when it starts at or after that end, in the same transaction that moves
//! the end on. So a batch delivered twice (a replay after a crash, an insert retried after a
//! lost answer, a cursor rebuilt from the journal's oldest segment) adds nothing, and the
//! rollups' additive upserts stay exact.

use std::collections::HashMap;

use super::batch::{Batch, RecordId, boot_hex};
use super::latency_name;

/// One row of `usage_rollups`, merged across the delivery's batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RollupRow {
    pub minute_ms: i64,
    pub key_id: i64,
    pub asset: String,
    pub protocol: &'static str,
    pub latency_bucket: &'static str,
    pub node: String,
    pub requests: i64,
    pub prices: i64,
}

/// One row of `usage_logs` (raw records, when they are on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawRow {
    pub record_id: String,
    pub key_id: i64,
    pub assets: String,
    pub protocol: &'static str,
    pub latency_bucket: &'static str,
    pub node: String,
    pub ts_ms: i64,
}

/// The new end of one boot's applied batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProgressRow {
    pub boot: String,
    pub node: String,
    pub end_seq: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub rollups: Vec<RollupRow>,
    pub raw: Vec<RawRow>,
    pub progress: Vec<ProgressRow>,
    /// Records in the batches applied, and in those skipped as already applied.
    pub applied: u64,
    pub duplicates: u64,
    /// Records missing between what the store held of a boot and the next batch it was given.
    pub gap: u64,
}

/// What a delivery did, as the store reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub applied: u64,
    pub duplicates: u64,
    /// Rows written (rollups upserted, raw records inserted).
    pub rows: u64,
    /// Records the store lacks before the batches it was given: usage it lost (restored from
    /// an older backup) or never got (given up at the journal's cap, a sink added later).
    pub gap: u64,
}

impl Plan {
    pub(crate) fn applied(&self) -> Applied {
        Applied {
            applied: self.applied,
            duplicates: self.duplicates,
            rows: (self.rollups.len() + self.raw.len()) as u64,
            gap: self.gap,
        }
    }
}

/// The boots a delivery touches, as `usage_progress` keys them.
pub(crate) fn boots(batches: &[Batch]) -> Vec<String> {
    let mut boots: Vec<u64> = batches.iter().map(|b| b.boot).collect();
    boots.sort_unstable();
    boots.dedup();
    boots.into_iter().map(boot_hex).collect()
}

/// Plans a delivery given each boot's applied end (`progress`, keyed as [`boots`] gives them;
/// absent: nothing applied yet). `raw`: write raw records too.
pub(crate) fn plan(batches: &[Batch], progress: &HashMap<String, i64>, raw: bool) -> Plan {
    let mut ends: HashMap<u64, (u64, &str)> = HashMap::new();
    let mut merged: HashMap<(i64, i64, &str, &'static str, &'static str, &str), (i64, i64)> =
        HashMap::new();
    let mut plan = Plan::default();
    for batch in batches {
        let applied_end = ends
            .get(&batch.boot)
            .map(|(end, _)| *end)
            .unwrap_or_else(|| {
                progress
                    .get(&boot_hex(batch.boot))
                    .map_or(0, |end| u64::try_from(*end).unwrap_or(0))
            });
        if batch.first_seq < applied_end {
            plan.duplicates += batch.records;
            continue;
        }
        plan.gap += batch.first_seq - applied_end;
        plan.applied += batch.records;
        ends.insert(batch.boot, (batch.end_seq(), batch.node.as_str()));
        for r in &batch.rollups {
            let counts = merged
                .entry((
                    i64::try_from(r.minute_ms).unwrap_or(i64::MAX),
                    r.key_id as i64,
                    r.asset.as_str(),
                    r.protocol.as_str(),
                    latency_name(r.latency),
                    batch.node.as_str(),
                ))
                .or_default();
            counts.0 += i64::try_from(r.requests).unwrap_or(i64::MAX);
            counts.1 += i64::try_from(r.prices).unwrap_or(i64::MAX);
        }
        if raw {
            plan.raw.extend(batch.raw.iter().map(|r| {
                RawRow {
                    record_id: RecordId {
                        boot: batch.boot,
                        seq: r.seq,
                    }
                    .to_string(),
                    key_id: r.key_id as i64,
                    assets: r.assets.clone(),
                    protocol: r.protocol.as_str(),
                    latency_bucket: latency_name(r.latency),
                    node: batch.node.clone(),
                    ts_ms: i64::try_from(r.ts_ms).unwrap_or(i64::MAX),
                }
            }));
        }
    }
    plan.rollups = merged
        .into_iter()
        .map(
            |((minute_ms, key_id, asset, protocol, latency_bucket, node), (requests, prices))| {
                RollupRow {
                    minute_ms,
                    key_id,
                    asset: asset.to_string(),
                    protocol,
                    latency_bucket,
                    node: node.to_string(),
                    requests,
                    prices,
                }
            },
        )
        .collect();
    plan.progress = ends
        .into_iter()
        .map(|(boot, (end, node))| ProgressRow {
            boot: boot_hex(boot),
            node: node.to_string(),
            end_seq: i64::try_from(end).unwrap_or(i64::MAX),
        })
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::batch::tests::sample;

    #[test]
    fn batches_apply_once_and_merge() {
        let batches = [sample(0, 5), sample(5, 3), sample(8, 2)];
        let none = HashMap::new();
        let first = plan(&batches, &none, false);
        assert_eq!((first.applied, first.duplicates), (10, 0));
        assert_eq!(first.rollups.len(), 2, "merged across batches");
        let btc = first.rollups.iter().find(|r| r.asset == "BTC").unwrap();
        assert_eq!(
            (btc.requests, btc.prices, btc.latency_bucket),
            (10, 10, "lt500us")
        );
        assert!(first.raw.is_empty(), "raw records off");
        assert_eq!(
            first.progress,
            [ProgressRow {
                boot: "deadbeef01234567".into(),
                node: "node-a".into(),
                end_seq: 10
            }]
        );
        // Delivered again after the first two were applied: only the third counts.
        let done: HashMap<String, i64> = [("deadbeef01234567".to_string(), 8)].into();
        let again = plan(&batches, &done, true);
        assert_eq!((again.applied, again.duplicates), (2, 8));
        assert_eq!(again.rollups.iter().map(|r| r.prices).sum::<i64>(), 4);
        assert_eq!(again.raw.len(), 1);
        assert_eq!(again.raw[0].record_id, "deadbeef01234567-0000000000000008");
        assert_eq!(again.applied().rows, 3);
        // The same batch twice in one delivery counts once.
        let twice = plan(&[sample(0, 5), sample(0, 5)], &none, false);
        assert_eq!((twice.applied, twice.duplicates), (5, 5));
        assert_eq!(boots(&batches), ["deadbeef01234567"]);
        assert_eq!(first.gap + again.gap + twice.gap, 0, "no record missing");
        // The store restored from an older backup: it holds 0..5, the next batch starts at 8.
        let restored: HashMap<String, i64> = [("deadbeef01234567".to_string(), 5)].into();
        let after = plan(&[sample(8, 2)], &restored, false);
        assert_eq!((after.applied, after.gap), (2, 3));
    }
}
