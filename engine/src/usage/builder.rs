//! Turns the requests the drain takes from the reactors' rings into batches: each request gets
//! its record id (the boot id and a counter) and is added to the open batch's rollups (and raw
//! records, when they are on); a batch is sealed into a journal frame at the end of each drain,
//! or earlier when one more request could push its JSON form past [`JSON_BUDGET`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::batch::{Batch, JSON_BUDGET, JSON_PER_ROW, RawRecord, Rollup, count_request, minute_of};
use super::{ALL_ASSETS, MAX_REQUEST_ASSETS, Protocol, UsageEvent};
use crate::price::AssetId;
use crate::price::registry::AssetRegistry;

/// What one rollup counts within a batch; assets are the registry's ids until the batch is
/// sealed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    minute_ms: u64,
    key_id: u64,
    asset: u32,
    protocol: Protocol,
    latency: u8,
}

/// The drain hashes a few keys per request on the side thread: a multiply-rotate hash is plenty
/// for keys it builds itself (no attacker chooses them wholesale: asset ids and key ids are the
/// node's own), and several times cheaper than SipHash.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

pub(crate) struct BatchBuilder {
    boot: u64,
    node: String,
    raw: bool,
    next_seq: u64,
    first_seq: u64,
    counts: HashMap<Key, (u64, u64), BuildHasherDefault<FastHasher>>,
    raw_records: Vec<RawRecord>,
    /// Estimated size of the open batch's JSON form.
    json: usize,
}

impl BatchBuilder {
    /// `raw`: keep each request's raw record besides the rollups.
    pub fn new(boot: u64, node: &str, raw: bool) -> BatchBuilder {
        BatchBuilder {
            boot,
            node: node.to_string(),
            raw,
            next_seq: 0,
            first_seq: 0,
            counts: HashMap::default(),
            raw_records: Vec::new(),
            json: 0,
        }
    }

    /// Records in the open batch.
    pub(crate) fn open_records(&self) -> u64 {
        self.next_seq - self.first_seq
    }

    /// Adds one answered request (`head`: its first event; `assets`: its whole asset list).
    /// Seals the open batch into `out` first when the request might not fit in it; returns
    /// the records sealed so.
    pub fn add(
        &mut self,
        head: &UsageEvent,
        assets: &[u32],
        registry: &AssetRegistry,
        written_ms: u64,
        out: &mut Vec<u8>,
    ) -> u64 {
        let assets = assets
            .get(..assets.len().min(MAX_REQUEST_ASSETS))
            .unwrap_or_default();
        let grows = (assets.len().max(1) + usize::from(self.raw)) * JSON_PER_ROW;
        let sealed = if self.json + grows > JSON_BUDGET {
            self.seal(registry, written_ms, out)
        } else {
            0
        };
        let minute_ms = minute_of(head.ts_ms);
        let mut new_rows = 0;
        // A priced answer always names an asset; an empty list is counted, not lost.
        let listed: &[u32] = if assets.is_empty() {
            &[u32::MAX - 1]
        } else {
            assets
        };
        count_request(listed.iter().copied(), |asset, requests, prices| {
            let counts = self
                .counts
                .entry(Key {
                    minute_ms,
                    key_id: head.key_id,
                    asset,
                    protocol: head.protocol,
                    latency: head.latency,
                })
                .or_insert_with(|| {
                    new_rows += 1;
                    (0, 0)
                });
            counts.0 += requests;
            counts.1 += prices;
        });
        self.json += new_rows * JSON_PER_ROW;
        if self.raw {
            let mut text = String::with_capacity(assets.len() * 5);
            for (i, id) in assets.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&asset_name(registry, *id));
            }
            self.json += JSON_PER_ROW + text.len();
            self.raw_records.push(RawRecord {
                seq: self.next_seq,
                key_id: head.key_id,
                ts_ms: head.ts_ms,
                protocol: head.protocol,
                latency: head.latency,
                assets: text,
            });
        }
        self.next_seq += 1;
        sealed
    }

    /// Seals the open batch, if it has records, as a frame appended to `out`; returns how many
    /// records it held.
    pub(crate) fn seal(
        &mut self,
        registry: &AssetRegistry,
        written_ms: u64,
        out: &mut Vec<u8>,
    ) -> u64 {
        let records = self.open_records();
        if records == 0 {
            return 0;
        }
        let rollups = self
            .counts
            .drain()
            .map(|(key, (requests, prices))| Rollup {
                minute_ms: key.minute_ms,
                key_id: key.key_id,
                asset: asset_name(registry, key.asset),
                protocol: key.protocol,
                latency: key.latency,
                requests,
                prices,
            })
            .collect();
        let batch = Batch {
            boot: self.boot,
            first_seq: self.first_seq,
            records,
            written_ms,
            node: self.node.clone(),
            rollups,
            raw: std::mem::take(&mut self.raw_records),
        };
        batch.encode(out);
        self.first_seq = self.next_seq;
        self.json = 0;
        records
    }
}

fn asset_name(registry: &AssetRegistry, id: u32) -> String {
    if id == ALL_ASSETS {
        return "*".into();
    }
    registry
        .symbol(AssetId::from_raw(id))
        .map_or_else(String::new, |s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::PriceTable;
    use crate::usage::EVENT_ASSETS;
    use beast_core::Symbol;

    fn event(key_id: u64, ts_ms: u64, protocol: Protocol) -> UsageEvent {
        UsageEvent {
            key_id,
            ts_ms,
            assets: [0; EVENT_ASSETS],
            count: 0,
            more: false,
            protocol,
            latency: 1,
        }
    }

    fn decode_all(mut bytes: &[u8]) -> Vec<Batch> {
        let mut out = Vec::new();
        while let Some((batch, used)) = Batch::decode(bytes) {
            out.push(batch);
            bytes = &bytes[used..];
        }
        assert!(bytes.is_empty());
        out
    }

    #[test]
    fn requests_roll_up_per_minute_key_asset_and_protocol() {
        let (table, mut writer) = PriceTable::new(16);
        let mut add = |s: &str| {
            writer
                .add_asset(&Symbol::parse(s.as_bytes()).unwrap())
                .unwrap()
                .raw()
        };
        let (btc, eth) = (add("BTC"), add("ETH"));
        let registry = table.registry();
        let mut builder = BatchBuilder::new(9, "n", true);
        let mut out = Vec::new();
        for _ in 0..1000 {
            builder.add(
                &event(1, 60_500, Protocol::Http),
                &[btc],
                registry,
                0,
                &mut out,
            );
        }
        builder.add(
            &event(1, 60_900, Protocol::Http),
            &[btc, eth],
            registry,
            0,
            &mut out,
        );
        builder.add(
            &event(2, 120_000, Protocol::UdpV8),
            &[ALL_ASSETS],
            registry,
            0,
            &mut out,
        );
        assert_eq!(builder.seal(registry, 7, &mut out), 1002);
        assert_eq!(builder.seal(registry, 8, &mut out), 0, "nothing open");
        let batches = decode_all(&out);
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(
            (batch.first_seq, batch.records, batch.written_ms),
            (0, 1002, 7)
        );
        let mut rows: Vec<_> = batch
            .rollups
            .iter()
            .map(|r| {
                (
                    r.minute_ms,
                    r.key_id,
                    r.asset.as_str(),
                    r.requests,
                    r.prices,
                )
            })
            .collect();
        rows.sort_unstable();
        assert_eq!(
            rows,
            [
                (60_000, 1, "BTC", 1001, 1001),
                (60_000, 1, "ETH", 0, 1),
                (120_000, 2, "*", 1, 1)
            ]
        );
        assert_eq!(batch.raw.len(), 1002);
        assert_eq!(batch.raw[1000].assets, "BTC,ETH");
        assert_eq!(batch.raw[1001].seq, 1001);
    }

    #[test]
    fn a_batch_is_sealed_before_its_json_outgrows_an_sqs_message() {
        let (table, mut writer) = PriceTable::new(4096);
        let ids: Vec<u32> = (0..3000)
            .map(|i| {
                let symbol = Symbol::parse(format!("A{i}").as_bytes()).unwrap();
                writer.add_asset(&symbol).unwrap().raw()
            })
            .collect();
        let registry = table.registry();
        let mut builder = BatchBuilder::new(1, "n", false);
        let mut out = Vec::new();
        let mut sealed = 0;
        for chunk in ids.chunks(3) {
            sealed += builder.add(&event(1, 0, Protocol::Http), chunk, registry, 0, &mut out);
        }
        sealed += builder.seal(registry, 0, &mut out);
        assert_eq!(sealed, 1000, "every record counted once sealed");
        let batches = decode_all(&out);
        assert!(batches.len() >= 3, "{}", batches.len());
        let mut next = 0;
        for batch in &batches {
            assert_eq!(batch.first_seq, next, "contiguous ids");
            next = batch.end_seq();
            assert!(batch.to_json().len() < 256 * 1024);
        }
        assert_eq!(next, 1000);
        let priced: u64 = batches
            .iter()
            .flat_map(|b| &b.rollups)
            .map(|r| r.prices)
            .sum();
        assert_eq!(priced, 3000);
    }
}
