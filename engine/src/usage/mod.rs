//! Usage metering: every request answered with prices is one usage record, and what is stored
//! are exact counts of them per (minute, key, asset, protocol, latency bucket, node): what the
//! stores hold grows with the keys and assets in use, not with the request rate.
//!
//! The path of a record: the reactor that answered pushes a `Copy` [`UsageEvent`] into its own
//! SPSC ring ([`Meter`], no lock, no allocation); every 5 ms the side thread drains every ring,
//! gives each record its id and rolls the drain's records up into one [`batch`] appended to the
//! on-disk [`journal`]; each configured sink (SQLite, PostgreSQL, SQS) reads the journal from
//! its own saved cursor and moves the cursor only once the sink made the batches durable. A
//! sink that is down just falls behind; nothing is lost or counted twice (a store applies each
//! batch at most once: [`apply`]).

pub(crate) mod apply;
pub mod batch;
pub(crate) mod builder;
pub(crate) mod journal;

use crate::price::AssetId;

/// Assets one event carries; a request with more continues in the next events of the ring.
pub(crate) const EVENT_ASSETS: usize = 8;
/// The asset id that stands for "every asset" (`/assets`): recorded as `*`.
pub(crate) const ALL_ASSETS: u32 = u32::MAX;
/// Most assets one request may list on any protocol (HTTP `/prices`: 64, UDP: 32).
pub(crate) const MAX_REQUEST_ASSETS: usize = 64;
/// Events each reactor's ring holds: a quarter of a second at 250 000 answers/s, drained every
/// 5 ms. When it is full, price requests are refused until it has room again (counted).
pub(crate) const RING_EVENTS: usize = 64 * 1024;

/// How a request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Protocol {
    Http = 0,
    UdpText = 1,
    UdpV8 = 2,
    /// A report (`/reports/*` on the LRS port): metered apart from prices.
    HttpReport = 3,
    UdpReport = 4,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::UdpText => "udp",
            Protocol::UdpV8 => "udp-v8",
            Protocol::HttpReport => "http-report",
            Protocol::UdpReport => "udp-report",
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<Protocol> {
        match v {
            0 => Some(Protocol::Http),
            1 => Some(Protocol::UdpText),
            2 => Some(Protocol::UdpV8),
            3 => Some(Protocol::HttpReport),
            4 => Some(Protocol::UdpReport),
            _ => None,
        }
    }
}

/// Upper bounds (µs) of the latency buckets; the last bucket is everything slower.
pub(crate) const LATENCY_BOUNDS_US: [u64; 8] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000];
const LATENCY_NAMES: [&str; 9] = [
    "lt100us", "lt250us", "lt500us", "lt1ms", "lt2.5ms", "lt5ms", "lt10ms", "lt50ms", "ge50ms",
];

/// The bucket of a latency, as stored.
pub fn latency_bucket(ns: u64) -> u8 {
    let us = ns / 1_000;
    let index = LATENCY_BOUNDS_US.iter().take_while(|&&b| us >= b).count();
    u8::try_from(index).unwrap_or(u8::MAX)
}

pub(crate) fn latency_name(bucket: u8) -> &'static str {
    LATENCY_NAMES
        .get(usize::from(bucket))
        .copied()
        .unwrap_or("unknown")
}

/// The assets of one request, gathered while it is answered, and whether its usage record
/// can be queued at all.
#[derive(Clone, Copy)]
pub struct AssetList {
    ids: [u32; MAX_REQUEST_ASSETS],
    len: usize,
    /// The usage ring has room for this request's record. When it has not (the side thread is
    /// behind), price requests are refused (HTTP 503, UDP dropped) rather than served unmetered:
    /// every answer with prices has its record.
    pub room: bool,
}

impl Default for AssetList {
    fn default() -> AssetList {
        AssetList {
            ids: [0; MAX_REQUEST_ASSETS],
            len: 0,
            room: true,
        }
    }
}

impl AssetList {
    /// Empties the list (`room` is left as the caller set it).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds an asset; past [`MAX_REQUEST_ASSETS`] (which no protocol allows) it is ignored.
    pub fn push(&mut self, id: AssetId) {
        if let Some(slot) = self.ids.get_mut(self.len) {
            *slot = id.raw();
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[u32] {
        self.ids.get(..self.len).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One event in a reactor's ring: a request, or part of one (`more`: the next event continues
/// the same request's asset list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageEvent {
    pub key_id: u64,
    pub ts_ms: u64,
    pub assets: [u32; EVENT_ASSETS],
    pub count: u8,
    pub more: bool,
    pub protocol: Protocol,
    pub latency: u8,
}

/// A reactor's end of its usage ring.
pub struct Meter {
    ring: Option<rtrb::Producer<UsageEvent>>,
    /// Requests whose record could not be queued (ring full, or metering off: not counted then).
    pub dropped: u64,
}

impl Meter {
    /// A meter that records nothing (metering off, or a test).
    pub fn off() -> Meter {
        Meter {
            ring: None,
            dropped: 0,
        }
    }

    pub fn new(ring: rtrb::Producer<UsageEvent>) -> Meter {
        Meter {
            ring: Some(ring),
            dropped: 0,
        }
    }

    /// Whether the largest request's record fits in the ring now. Only this reactor pushes, so
    /// room seen here is still there when the request has been answered.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.ring
            .as_ref()
            .is_none_or(|ring| ring.slots() >= MAX_REQUEST_ASSETS / EVENT_ASSETS)
    }

    /// Queues the record of one answered request. All of a request's events are queued or none.
    #[inline]
    pub fn record(
        &mut self,
        key_id: u64,
        protocol: Protocol,
        ts_ms: u64,
        latency_ns: u64,
        assets: &[u32],
    ) -> bool {
        let Some(ring) = &mut self.ring else {
            return true;
        };
        let events = assets.len().div_ceil(EVENT_ASSETS).max(1);
        if ring.slots() < events {
            self.dropped += 1;
            return false;
        }
        let latency = latency_bucket(latency_ns);
        let mut chunks = assets.chunks(EVENT_ASSETS).peekable();
        loop {
            let chunk = chunks.next().unwrap_or_default();
            let mut event = UsageEvent {
                key_id,
                ts_ms,
                assets: [0; EVENT_ASSETS],
                count: u8::try_from(chunk.len()).unwrap_or(0),
                more: chunks.peek().is_some(),
                protocol,
                latency,
            };
            for (slot, id) in event.assets.iter_mut().zip(chunk) {
                *slot = *id;
            }
            // Cannot fail: the free slots were checked above and only this reactor pushes.
            let _ = ring.push(event);
            if !event.more {
                return true;
            }
        }
    }
}

/// A ring per reactor: the producers go to the reactors, the consumers to the side thread.
pub fn rings(reactors: usize) -> (Vec<Meter>, Vec<rtrb::Consumer<UsageEvent>>) {
    (0..reactors)
        .map(|_| {
            let (tx, rx) = rtrb::RingBuffer::new(RING_EVENTS);
            (Meter::new(tx), rx)
        })
        .unzip()
}

/// Collects one request's assets from a ring's events (see [`UsageEvent::more`]).
#[derive(Default)]
pub(crate) struct Assembler {
    assets: Vec<u32>,
}

impl Assembler {
    /// Feeds one event; returns the whole request once its last event arrives.
    pub fn feed(&mut self, event: &UsageEvent) -> Option<(UsageEvent, &[u32])> {
        let count = usize::from(event.count).min(EVENT_ASSETS);
        self.assets
            .extend_from_slice(event.assets.get(..count).unwrap_or_default());
        if event.more {
            return None;
        }
        Some((*event, &self.assets))
    }

    /// Ready for the next request.
    pub fn reset(&mut self) {
        self.assets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets() {
        for (ns, bucket, name) in [
            (0, 0, "lt100us"),
            (99_999, 0, "lt100us"),
            (100_000, 1, "lt250us"),
            (1_200_000, 4, "lt2.5ms"),
            (49_999_999, 7, "lt50ms"),
            (60_000_000, 8, "ge50ms"),
        ] {
            assert_eq!(latency_bucket(ns), bucket, "{ns}");
            assert_eq!(latency_name(bucket), name);
        }
    }

    #[test]
    fn requests_split_across_events_and_come_back_whole() {
        let (mut meters, mut rings) = rings(1);
        let meter = &mut meters[0];
        let many: Vec<u32> = (0..20).collect();
        assert!(meter.record(7, Protocol::Http, 1_000, 50_000, &many));
        assert!(meter.record(8, Protocol::UdpV8, 1_001, 50_000, &[42]));
        let ring = &mut rings[0];
        let mut assembler = Assembler::default();
        let mut whole = Vec::new();
        while let Ok(event) = ring.pop() {
            if let Some((head, assets)) = assembler.feed(&event) {
                whole.push((head.key_id, assets.to_vec()));
                assembler.reset();
            }
        }
        assert_eq!(whole, vec![(7, many), (8, vec![42])]);
    }

    #[test]
    fn a_full_ring_drops_whole_requests() {
        let (tx, _rx) = rtrb::RingBuffer::new(2);
        let mut meter = Meter::new(tx);
        assert!(!meter.record(1, Protocol::Http, 0, 0, &[0; 20]), "needs 3");
        assert!(meter.record(1, Protocol::Http, 0, 0, &[0; 9]));
        assert!(!meter.record(1, Protocol::Http, 0, 0, &[1]));
        assert_eq!(meter.dropped, 2);
    }
}
