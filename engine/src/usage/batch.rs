//! A usage batch: what one drain of the reactors' rings produced, as the journal keeps it and the
//! sinks deliver it.
//!
//! A batch covers the records (answered requests) `first_seq .. first_seq + records` of one boot
//! (one run of the process) and holds them rolled up: one count per (minute, key, asset,
//! protocol, latency bucket). Its raw records ride along only when raw records are on. A batch is
//! the unit of idempotence: a store applies a batch at most once (it keeps, per boot, the end of
//! the last batch it applied) and an SQS message carries exactly one batch, deduplicated by its
//! id.
//!
//! Frame: `magic: u32 LE` ([`MAGIC`]), `len: u32 LE` (of the payload), `check: u32 LE` (FNV-1a
//! of the payload), payload (integers little-endian):
//!
//! ```text
//! boot u64, first_seq u64, records u32, written_ms u64, node_len u8, node,
//! rollups u32 × (minute_ms u64, key_id u64, protocol u8, latency u8, asset_len u8, asset,
//!                requests u32, prices u32),
//! raw u32 × (seq u64, key_id u64, ts_ms u64, protocol u8, latency u8, assets_len u16, assets)
//! ```
//!
//! A frame whose length runs past the file or whose check fails ends the readable journal: that
//! is a write torn by a crash, cut off at start-up. Journals written before batches (one frame
//! per request, without the magic; see [`scan`]) are still read, so an upgrade loses
//! nothing.

use std::fmt;

use super::{Protocol, latency_name};

/// Leads every batch frame ("BEU2"). A version-1 frame starts with its length, at most
/// [`V1_MAX_PAYLOAD`], so the two cannot be confused.
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"BEU2");
pub(crate) const FRAME_HEADER: usize = 12;
/// Largest payload a frame may claim. Batches are cut well below it (see [`JSON_BUDGET`]).
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;
/// A batch is sealed before its JSON form (the SQS message body) could pass this: SQS takes at
/// most 256 KiB per message.
pub(crate) const JSON_BUDGET: usize = 200 * 1024;
/// Rough JSON size of one rollup or raw record (field names, numbers, quotes), for the budget.
pub(crate) const JSON_PER_ROW: usize = 200;

/// A usage record's id: the boot id of the process that answered (64 random bits per start)
/// and its counter. Text form `<boot>-<seq>`, 16 hex digits each: the same in every sink (the
/// `record_id` column, SQS bodies), and a batch's id is the id of its first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    pub boot: u64,
    pub seq: u64,
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{:016x}", self.boot, self.seq)
    }
}

/// The text form of a boot id, as `usage_progress.boot` keeps it.
pub(crate) fn boot_hex(boot: u64) -> String {
    format!("{boot:016x}")
}

/// Counts for one (minute, key, asset, protocol, latency bucket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollup {
    /// Start of the minute, Unix ms.
    pub minute_ms: u64,
    pub key_id: u64,
    /// A symbol, or `*` for every asset (`/assets`).
    pub asset: String,
    pub protocol: Protocol,
    pub latency: u8,
    /// Requests answered, each counted once: under the first asset it asked for.
    pub requests: u64,
    /// Prices of this asset answered (a request for BTC and ETH adds one to each).
    pub prices: u64,
}

/// One answered request, kept only when raw records are on (audits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub seq: u64,
    pub key_id: u64,
    pub ts_ms: u64,
    pub protocol: Protocol,
    pub latency: u8,
    /// Comma-separated symbols, in request order.
    pub assets: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub boot: u64,
    pub first_seq: u64,
    /// Records (answered requests) in the batch: ids `first_seq .. first_seq + records`.
    pub records: u64,
    /// When the drain wrote it, Unix ms (how far behind a sink is).
    pub written_ms: u64,
    pub node: String,
    pub rollups: Vec<Rollup>,
    pub raw: Vec<RawRecord>,
}

/// The minute a time falls in, as Unix ms of its start.
pub(crate) fn minute_of(ts_ms: u64) -> u64 {
    ts_ms - ts_ms % 60_000
}

/// Counts one request for `assets` (in request order) through `add(asset, requests, prices)`:
/// the request under its first asset, a price under each.
pub(crate) fn count_request<A>(
    assets: impl IntoIterator<Item = A>,
    mut add: impl FnMut(A, u64, u64),
) {
    for (i, asset) in assets.into_iter().enumerate() {
        add(asset, u64::from(i == 0), 1);
    }
}

impl Batch {
    pub fn id(&self) -> RecordId {
        RecordId {
            boot: self.boot,
            seq: self.first_seq,
        }
    }

    /// The counter after this batch's last record.
    pub(crate) fn end_seq(&self) -> u64 {
        self.first_seq + self.records
    }

    /// Appends this batch's frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER]);
        let mut w = Writer(out);
        w.u64(self.boot);
        w.u64(self.first_seq);
        w.u32(u32::try_from(self.records).unwrap_or(u32::MAX));
        w.u64(self.written_ms);
        w.short(self.node.as_bytes());
        w.u32(u32::try_from(self.rollups.len()).unwrap_or(0));
        for r in &self.rollups {
            w.u64(r.minute_ms);
            w.u64(r.key_id);
            w.0.push(r.protocol as u8);
            w.0.push(r.latency);
            w.short(r.asset.as_bytes());
            w.u32(u32::try_from(r.requests).unwrap_or(u32::MAX));
            w.u32(u32::try_from(r.prices).unwrap_or(u32::MAX));
        }
        w.u32(u32::try_from(self.raw.len()).unwrap_or(0));
        for r in &self.raw {
            w.u64(r.seq);
            w.u64(r.key_id);
            w.u64(r.ts_ms);
            w.0.push(r.protocol as u8);
            w.0.push(r.latency);
            let assets = r.assets.as_bytes();
            let assets = assets.get(..assets.len().min(2048)).unwrap_or_default();
            w.0.extend_from_slice(&u16::try_from(assets.len()).unwrap_or(0).to_le_bytes());
            w.0.extend_from_slice(assets);
        }
        let payload = out.get(start + FRAME_HEADER..).unwrap_or_default();
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let check = fnv1a(payload);
        let header = [MAGIC, len, check];
        if let Some(place) = out.get_mut(start..start + FRAME_HEADER) {
            for (slot, word) in place.chunks_exact_mut(4).zip(header) {
                slot.copy_from_slice(&word.to_le_bytes());
            }
        }
    }

    /// Reads one frame from the front of `bytes`: the batch and the frame's length, or `None`
    /// when the bytes hold no whole, intact frame.
    pub fn decode(bytes: &[u8]) -> Option<(Batch, usize)> {
        match Batch::peek(bytes) {
            Decoded::Frame(batch, used) => Some((batch, used)),
            Decoded::Short(_) | Decoded::Bad => None,
        }
    }

    /// As [`Batch::decode`], telling a frame cut short by the end of `bytes` (more may follow)
    /// from one that is damaged.
    pub(crate) fn peek(bytes: &[u8]) -> Decoded {
        let (len, v1) = match scan(bytes) {
            Scanned::Frame { len, v1, .. } => (len, v1),
            Scanned::Short(need) => return Decoded::Short(need),
            Scanned::Bad => return Decoded::Bad,
        };
        let header = if v1 { V1_HEADER } else { FRAME_HEADER };
        let payload = bytes.get(header..len).unwrap_or_default();
        let batch = if v1 {
            parse_v1(payload)
        } else {
            Batch::parse(payload)
        };
        match batch {
            Some(batch) => Decoded::Frame(batch, len),
            None => Decoded::Bad,
        }
    }

    fn parse(payload: &[u8]) -> Option<Batch> {
        let len = payload.len();
        let mut r = Reader(payload);
        let mut batch = Batch {
            boot: r.u64()?,
            first_seq: r.u64()?,
            records: u64::from(r.u32()?),
            written_ms: r.u64()?,
            node: r.short()?,
            ..Batch::default()
        };
        let rollups = r.u32()? as usize;
        batch.rollups.reserve(rollups.min(len / 24));
        for _ in 0..rollups {
            batch.rollups.push(Rollup {
                minute_ms: r.u64()?,
                key_id: r.u64()?,
                protocol: Protocol::from_u8(r.u8()?)?,
                latency: r.u8()?,
                asset: r.short()?,
                requests: u64::from(r.u32()?),
                prices: u64::from(r.u32()?),
            });
        }
        let raw = r.u32()? as usize;
        batch.raw.reserve(raw.min(len / 28));
        for _ in 0..raw {
            batch.raw.push(RawRecord {
                seq: r.u64()?,
                key_id: r.u64()?,
                ts_ms: r.u64()?,
                protocol: Protocol::from_u8(r.u8()?)?,
                latency: r.u8()?,
                assets: {
                    let n = usize::from(u16::from_le_bytes(r.take(2)?.try_into().ok()?));
                    String::from_utf8(r.take(n)?.to_vec()).ok()?
                },
            });
        }
        Some(batch)
    }

    /// The SQS message body: the batch as JSON, rollups and raw records in the columns (and
    /// value formats) of the stores' `usage_rollups` and `usage_logs` tables.
    pub(crate) fn to_json(&self) -> String {
        let rollups: Vec<serde_json::Value> = self
            .rollups
            .iter()
            .map(|r| {
                serde_json::json!({
                    "minute_ms": r.minute_ms,
                    "key_id": r.key_id,
                    "asset": r.asset,
                    "protocol": r.protocol.as_str(),
                    "latency_bucket": latency_name(r.latency),
                    "node": self.node,
                    "requests": r.requests,
                    "prices": r.prices,
                })
            })
            .collect();
        let raw: Vec<serde_json::Value> = self
            .raw
            .iter()
            .map(|r| {
                serde_json::json!({
                    "record_id": RecordId { boot: self.boot, seq: r.seq }.to_string(),
                    "key_id": r.key_id,
                    "assets": r.assets,
                    "protocol": r.protocol.as_str(),
                    "latency_bucket": latency_name(r.latency),
                    "node": self.node,
                    "ts_ms": r.ts_ms,
                })
            })
            .collect();
        serde_json::json!({
            "batch_id": self.id().to_string(),
            "boot": boot_hex(self.boot),
            "first_seq": self.first_seq,
            "records": self.records,
            "node": self.node,
            "written_ms": self.written_ms,
            "rollups": rollups,
            "raw": raw,
        })
        .to_string()
    }
}

/// What the front of some journal bytes holds.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A whole, intact frame and its length.
    Frame(Batch, usize),
    /// The start of a frame that needs this many bytes in all.
    Short(usize),
    /// Not a frame: damaged bytes.
    Bad,
}

/// What the front of some journal bytes holds, told by the header and checksum alone (no
/// parsing): what the journal's scans (start-up, damage, counting) need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// An intact frame: its length, records, and whether it is a version-1 frame.
    Frame {
        len: usize,
        records: u64,
        v1: bool,
    },
    /// The start of a frame that needs this many bytes in all.
    Short(usize),
    Bad,
}

/// Largest payload of a version-1 frame.
const V1_MAX_PAYLOAD: usize = 2048;
const V1_HEADER: usize = 8;

/// Checks the frame at the front of `bytes` (see [`Scanned`]).
pub fn scan(bytes: &[u8]) -> Scanned {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let Some(first) = word(0) else {
        return Scanned::Short(FRAME_HEADER);
    };
    // A version-1 frame (one record: `len u32, check u32`, then `boot u64, seq u64, key_id u64,
    // ts_ms u64, protocol u8, latency u8, node_len u8, node, assets_len u16, assets`).
    let v1 = first != MAGIC;
    let (header, len, check, max) = if v1 {
        (V1_HEADER, Some(first), word(4), V1_MAX_PAYLOAD)
    } else {
        (FRAME_HEADER, word(4), word(8), MAX_PAYLOAD)
    };
    let (Some(len), Some(check)) = (len, check) else {
        return Scanned::Short(header);
    };
    let len = len as usize;
    if len > max {
        return Scanned::Bad;
    }
    let Some(payload) = bytes.get(header..header + len) else {
        return Scanned::Short(header + len);
    };
    if fnv1a(payload) != check {
        return Scanned::Bad;
    }
    let records = if v1 {
        1
    } else {
        payload
            .get(16..20)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    };
    Scanned::Frame {
        len: header + len,
        records,
        v1,
    }
}

fn parse_v1(payload: &[u8]) -> Option<Batch> {
    let mut r = Reader(payload);
    let (boot, seq, key_id, ts_ms) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let protocol = Protocol::from_u8(r.u8()?)?;
    let latency = r.u8()?;
    let node = r.short()?;
    let n = usize::from(u16::from_le_bytes(r.take(2)?.try_into().ok()?));
    let assets = String::from_utf8(r.take(n)?.to_vec()).ok()?;
    let mut rollups = Vec::new();
    count_request(assets.split(','), |asset, requests, prices| {
        rollups.push(Rollup {
            minute_ms: minute_of(ts_ms),
            key_id,
            asset: asset.to_string(),
            protocol,
            latency,
            requests,
            prices,
        });
    });
    let batch = Batch {
        boot,
        first_seq: seq,
        records: 1,
        written_ms: ts_ms,
        node,
        rollups,
        raw: vec![RawRecord {
            seq,
            key_id,
            ts_ms,
            protocol,
            latency,
            assets,
        }],
    };
    Some(batch)
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// At most 255 bytes, after a length byte.
    fn short(&mut self, text: &[u8]) {
        let text = text.get(..text.len().min(255)).unwrap_or_default();
        self.0.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
        self.0.extend_from_slice(text);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn short(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(first_seq: u64, records: u64) -> Batch {
        Batch {
            boot: 0xdead_beef_0123_4567,
            first_seq,
            records,
            written_ms: 1_764_000_000_123,
            node: "node-a".into(),
            rollups: vec![
                Rollup {
                    minute_ms: 1_764_000_000_000,
                    key_id: 3,
                    asset: "BTC".into(),
                    protocol: Protocol::UdpV8,
                    latency: 2,
                    requests: records,
                    prices: records,
                },
                Rollup {
                    minute_ms: 1_764_000_000_000,
                    key_id: 3,
                    asset: "ETH".into(),
                    protocol: Protocol::UdpV8,
                    latency: 2,
                    requests: 0,
                    prices: records,
                },
            ],
            raw: vec![RawRecord {
                seq: first_seq,
                key_id: 3,
                ts_ms: 1_764_000_000_100,
                protocol: Protocol::UdpV8,
                latency: 2,
                assets: "BTC,ETH".into(),
            }],
        }
    }

    #[test]
    fn frames_round_trip_and_torn_frames_are_refused() {
        let mut bytes = Vec::new();
        sample(0, 5).encode(&mut bytes);
        sample(5, 7).encode(&mut bytes);
        let (first, used) = Batch::decode(&bytes).unwrap();
        assert_eq!(first, sample(0, 5));
        assert_eq!(first.id().to_string(), "deadbeef01234567-0000000000000000");
        let (second, rest) = Batch::decode(&bytes[used..]).unwrap();
        assert_eq!((second.end_seq(), used + rest), (12, bytes.len()));
        for cut in [0, 3, 8, 12, used - 1] {
            assert!(Batch::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(Batch::decode(&flipped).is_none());
        assert!(Batch::decode(&[0xff; 16]).is_none());
    }

    /// A frame as the previous version wrote it (one record).
    fn v1_frame(seq: u64, assets: &str) -> Vec<u8> {
        let mut payload = Vec::new();
        for n in [7u64, seq, 9, 1_764_000_061_000] {
            payload.extend_from_slice(&n.to_le_bytes());
        }
        payload.extend_from_slice(&[Protocol::Http as u8, 1, 1, b'n']);
        payload.extend_from_slice(&u16::try_from(assets.len()).unwrap().to_le_bytes());
        payload.extend_from_slice(assets.as_bytes());
        let mut frame = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
        frame.extend_from_slice(&fnv1a(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    #[test]
    fn version_1_frames_read_as_batches_of_one() {
        let mut bytes = v1_frame(41, "BTC,ETH");
        sample(0, 1).encode(&mut bytes);
        let (old, used) = Batch::decode(&bytes).unwrap();
        assert_eq!((old.boot, old.first_seq, old.records), (7, 41, 1));
        assert_eq!(
            old.rollups
                .iter()
                .map(|r| (r.minute_ms, r.asset.as_str(), r.requests, r.prices))
                .collect::<Vec<_>>(),
            [
                (1_764_000_060_000, "BTC", 1, 1),
                (1_764_000_060_000, "ETH", 0, 1)
            ]
        );
        assert_eq!(old.raw[0].assets, "BTC,ETH");
        assert_eq!(Batch::decode(&bytes[used..]).unwrap().0, sample(0, 1));
    }

    #[test]
    fn the_json_form_names_the_table_columns() {
        let json: serde_json::Value = serde_json::from_str(&sample(16, 2).to_json()).unwrap();
        assert_eq!(json["batch_id"], "deadbeef01234567-0000000000000010");
        assert_eq!(json["records"], 2);
        assert_eq!(json["rollups"][0]["latency_bucket"], "lt500us");
        assert_eq!(json["rollups"][1]["prices"], 2);
        assert_eq!(
            json["raw"][0]["record_id"],
            "deadbeef01234567-0000000000000010"
        );
        assert_eq!(json["raw"][0]["protocol"], "udp-v8");
    }

    #[test]
    fn requests_count_under_their_first_asset() {
        let mut seen = Vec::new();
        count_request(["BTC", "ETH", "SOL"], |a, r, p| seen.push((a, r, p)));
        assert_eq!(seen, [("BTC", 1, 1), ("ETH", 0, 1), ("SOL", 0, 1)]);
        assert_eq!(minute_of(1_764_000_061_999), 1_764_000_060_000);
    }
}
