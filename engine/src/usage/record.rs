//! A usage record as the journal and the sinks see it, and its binary form in the journal.
//!
//! Frame: `len: u32 LE` (of the payload), `check: u32 LE` (FNV-1a of the payload), payload:
//! `boot u64, seq u64, key_id u64, ts_ms u64, protocol u8, latency u8, node_len u8, node,
//! assets_len u16, assets` (integers little-endian, `assets` comma-separated symbols). A frame
//! whose length runs past the file or whose check fails ends the readable journal: that is a
//! write torn by a crash, and it is cut off at start-up.

use super::{Protocol, UsageEvent, latency_name};

/// Largest payload a frame may claim (a node name of 255 and 64 assets of 16 characters fit).
pub const MAX_PAYLOAD: usize = 2048;
pub const FRAME_HEADER: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    /// The process that answered (random per start) and its record counter: together the id.
    pub boot: u64,
    pub seq: u64,
    pub key_id: u64,
    pub ts_ms: u64,
    pub protocol: Protocol,
    pub latency: u8,
    pub node: String,
    /// Comma-separated symbols, in request order.
    pub assets: String,
}

impl UsageRecord {
    /// Unique across nodes and restarts: the boot id is 64 random bits. The stores key rows by
    /// the pair (`boot`, `seq`, as signed 64-bit integers); this is its text form.
    pub fn record_id(&self) -> String {
        format!("{:016x}-{:x}", self.boot, self.seq)
    }

    pub fn latency_name(&self) -> &'static str {
        latency_name(self.latency)
    }

    /// Appends this record's frame to `out`.
    #[cfg(test)]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let head = UsageEvent {
            key_id: self.key_id,
            ts_ms: self.ts_ms,
            assets: [0; crate::usage::EVENT_ASSETS],
            count: 0,
            more: false,
            protocol: self.protocol,
            latency: self.latency,
        };
        encode_frame(
            out,
            self.boot,
            self.seq,
            &head,
            self.node.as_bytes(),
            self.assets.as_bytes(),
        );
    }

    /// Reads one frame from the front of `bytes`: the record and the frame's length, or `None`
    /// when the bytes hold no whole, intact frame.
    pub fn decode(bytes: &[u8]) -> Option<(UsageRecord, usize)> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let check = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
        if len > MAX_PAYLOAD {
            return None;
        }
        let payload = bytes.get(FRAME_HEADER..FRAME_HEADER + len)?;
        if fnv1a(payload) != check {
            return None;
        }
        let mut r = Reader(payload);
        let record = UsageRecord {
            boot: r.u64()?,
            seq: r.u64()?,
            key_id: r.u64()?,
            ts_ms: r.u64()?,
            protocol: Protocol::from_u8(r.u8()?)?,
            latency: r.u8()?,
            node: {
                let n = usize::from(r.u8()?);
                String::from_utf8(r.take(n)?.to_vec()).ok()?
            },
            assets: {
                let n = usize::from(u16::from_le_bytes(r.take(2)?.try_into().ok()?));
                String::from_utf8(r.take(n)?.to_vec()).ok()?
            },
        };
        Some((record, FRAME_HEADER + len))
    }
}

/// Appends the frame of the record for `head` (its key, time, protocol and latency) to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    boot: u64,
    seq: u64,
    head: &UsageEvent,
    node: &[u8],
    assets: &[u8],
) {
    let node = node.get(..node.len().min(255)).unwrap_or_default();
    let assets = assets
        .get(..assets.len().min(MAX_PAYLOAD - 300))
        .unwrap_or_default();
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    for n in [boot, seq, head.key_id, head.ts_ms] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.push(head.protocol as u8);
    out.push(head.latency);
    out.push(u8::try_from(node.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(node);
    out.extend_from_slice(&u16::try_from(assets.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(assets);
    let payload = out.get(start + FRAME_HEADER..).unwrap_or_default();
    let len = u32::try_from(payload.len()).unwrap_or(0);
    let check = fnv1a(payload);
    let mut header = [0u8; FRAME_HEADER];
    for (slot, byte) in header
        .iter_mut()
        .zip(len.to_le_bytes().into_iter().chain(check.to_le_bytes()))
    {
        *slot = byte;
    }
    if let Some(place) = out.get_mut(start..start + FRAME_HEADER) {
        place.copy_from_slice(&header);
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

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> UsageRecord {
        UsageRecord {
            boot: 0xdead_beef_0123_4567,
            seq,
            key_id: 3,
            ts_ms: 1_764_000_000_000,
            protocol: Protocol::UdpV8,
            latency: 2,
            node: "node-a".into(),
            assets: "BTC,ETH".into(),
        }
    }

    #[test]
    fn frames_round_trip_and_torn_frames_are_refused() {
        let mut bytes = Vec::new();
        sample(1).encode(&mut bytes);
        sample(2).encode(&mut bytes);
        let (first, used) = UsageRecord::decode(&bytes).unwrap();
        assert_eq!(first, sample(1));
        assert_eq!(first.record_id(), "deadbeef01234567-1");
        let (second, rest) = UsageRecord::decode(&bytes[used..]).unwrap();
        assert_eq!((second, used + rest), (sample(2), bytes.len()));
        for cut in [0, 3, 8, used - 1] {
            assert!(UsageRecord::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(UsageRecord::decode(&flipped).is_none());
        assert!(UsageRecord::decode(&[0xff; 16]).is_none());
    }
}
