//! What a delivery carries. JSON (HTTPS and UDP) is a Standard Webhooks event:
//!
//! `{"type":"price.update","timestamp":"…Z","data":{"subscription":7,"seq":42,"trigger":"interval","part":1,"parts":1,"prices":[…]}}`
//!
//! with each price object exactly as the price API writes it. Over UDP a delivery is split
//! into datagrams of at most [`UDP_MAX`] bytes, each a whole JSON document with its `part` of
//! `parts`. v8 datagrams (UDP only) are a v8 reply header (request id: the low 32 bits of the
//! sequence number; byte 9 the part, byte 10 the parts, byte 11 [`V8_PUSH_FLAG`]) and up to
//! [`V8_PER_DATAGRAM`] 24-byte records in the subscription's asset order.

use beast_core::Symbol;

use crate::price::{Freshness, PriceTable};
use crate::protocol::answer::{Answer, write_answer};
use crate::protocol::sink::Sink as _;
use crate::protocol::udp::v8;

/// Largest datagram sent: below the IPv6 minimum MTU's payload, so no fragmentation.
pub const UDP_MAX: usize = 1_200;
/// Largest HTTPS body.
pub const BODY_MAX: usize = 64 * 1_024;
pub const V8_PER_DATAGRAM: usize = (UDP_MAX - v8::HEADER_LEN) / v8::RECORD_LEN;
/// Byte 11 of a v8 push datagram (zero in replies to requests).
pub const V8_PUSH_FLAG: u8 = 1;

/// Why a delivery was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Interval,
    Move,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Interval => "interval",
            Cause::Move => "move",
        }
    }
}

/// One delivery's identity.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub subscription: u64,
    pub seq: u64,
    pub cause: Cause,
    pub now_ms: u64,
}

/// Each asset's price object as the price API writes it.
fn price_objects(assets: &[Symbol], table: &PriceTable, fresh: Freshness) -> Vec<Vec<u8>> {
    assets
        .iter()
        .map(|symbol| {
            let mut object = Vec::with_capacity(128);
            write_answer(
                &mut object,
                &Answer::lookup(table, symbol.as_bytes()),
                fresh,
            );
            object
        })
        .collect()
}

fn envelope_head(event: &Event, part: usize, parts: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.put(b"{\"type\":\"price.update\",\"timestamp\":\"");
    out.put(beast_core::clock::rfc3339_ms(event.now_ms).as_bytes());
    out.put(b"\",\"data\":{\"subscription\":");
    out.put_u64(event.subscription);
    out.put(b",\"seq\":");
    out.put_u64(event.seq);
    out.put(b",\"trigger\":\"");
    out.put(event.cause.as_str().as_bytes());
    out.put(b"\",\"part\":");
    out.put_u64(part as u64);
    out.put(b",\"parts\":");
    out.put_u64(parts as u64);
    out.put(b",\"prices\":[");
    out
}

const ENVELOPE_TAIL: &[u8] = b"]}}";

/// The JSON documents of one delivery: one when `max_len` is `None` (HTTPS), else as many as
/// needed for each to fit `max_len` bytes.
pub fn json(
    event: &Event,
    assets: &[Symbol],
    table: &PriceTable,
    fresh: Freshness,
    max_len: Option<usize>,
) -> Vec<Vec<u8>> {
    let objects = price_objects(assets, table, fresh);
    // Room for the prices in one document, with the widest part numbers.
    let budget = max_len.map_or(usize::MAX, |max| {
        max.saturating_sub(envelope_head(event, 999, 999).len() + ENVELOPE_TAIL.len())
    });
    let mut groups: Vec<Vec<&[u8]>> = vec![Vec::new()];
    let mut used = 0;
    for object in &objects {
        let cost = object.len() + 1;
        let fits = used + cost <= budget;
        if let Some(group) = groups.last_mut()
            && (fits || group.is_empty())
        {
            group.push(object);
            used += cost;
            continue;
        }
        groups.push(vec![object]);
        used = cost;
    }
    let parts = groups.len();
    groups
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let mut out = envelope_head(event, index + 1, parts);
            for (n, object) in group.iter().enumerate() {
                if n > 0 {
                    out.put(b",");
                }
                out.put(object);
            }
            out.put(ENVELOPE_TAIL);
            out
        })
        .collect()
}

/// The v8 datagrams of one delivery.
pub fn v8(event: &Event, assets: &[Symbol], table: &PriceTable, fresh: Freshness) -> Vec<Vec<u8>> {
    let chunks: Vec<&[Symbol]> = assets.chunks(V8_PER_DATAGRAM).collect();
    let parts = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let mut out = vec![0u8; v8::reply_len(chunk.len())];
            #[allow(
                clippy::cast_possible_truncation,
                reason = "the low 32 bits, as documented"
            )]
            let request_id = event.seq as u32;
            // Both fit: at most 150 assets, 49 a datagram.
            let _ = v8::write_reply_header(&mut out, v8::ReplyStatus::Ok, request_id, chunk.len());
            if let Some(tail) = out.get_mut(9..v8::HEADER_LEN) {
                tail.copy_from_slice(&[
                    u8::try_from(index + 1).unwrap_or(u8::MAX),
                    u8::try_from(parts).unwrap_or(u8::MAX),
                    V8_PUSH_FLAG,
                ]);
            }
            let records = out.get_mut(v8::HEADER_LEN..).unwrap_or_default();
            for (slot, symbol) in records.chunks_exact_mut(v8::RECORD_LEN).zip(chunk.iter()) {
                let answer = Answer::lookup(table, symbol.as_bytes());
                let _ = v8::Record::of(&answer, fresh).write(slot);
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::Aggregate;
    use beast_core::{Decimal, Source, Venue};

    fn table(assets: usize) -> (std::sync::Arc<PriceTable>, Vec<Symbol>) {
        let (table, mut writer) = PriceTable::new(256);
        let mut symbols = Vec::new();
        for i in 0..assets {
            let symbol = Symbol::parse(format!("ASSET{i}").as_bytes()).unwrap();
            let id = writer.add_asset(&symbol).unwrap();
            writer.publish_aggregate(
                id,
                &Aggregate {
                    price: Decimal::parse("12345.678").unwrap(),
                    source: Source::stream(Venue::Kraken),
                    exchange_ms: 1_000,
                    received_ms: 1_001,
                    sources: 1,
                    spread_bps: 0,
                },
            );
            symbols.push(symbol);
        }
        (table, symbols)
    }

    const EVENT: Event = Event {
        subscription: 7,
        seq: 0x1_0000_0005,
        cause: Cause::Move,
        now_ms: 2_000,
    };
    const FRESH: Freshness = Freshness {
        now_ms: 2_000,
        stale_after_ms: 60_000,
        simulated: false,
    };

    #[test]
    fn json_is_split_into_whole_documents_that_fit_a_datagram() {
        for assets in [1, 10, 150] {
            let (table, symbols) = table(assets);
            let parts = json(&EVENT, &symbols, &table, FRESH, Some(UDP_MAX));
            let mut seen = 0;
            for (index, part) in parts.iter().enumerate() {
                assert!(part.len() <= UDP_MAX, "{assets}: {}", part.len());
                let doc: serde_json::Value = serde_json::from_slice(part).unwrap();
                assert_eq!(doc["type"], "price.update");
                assert_eq!(doc["data"]["seq"], EVENT.seq);
                assert_eq!(doc["data"]["part"], index + 1);
                assert_eq!(doc["data"]["parts"], parts.len());
                for price in doc["data"]["prices"].as_array().unwrap() {
                    assert_eq!(price["asset"], format!("ASSET{seen}"));
                    assert_eq!(price["price"], "12345.678");
                    seen += 1;
                }
            }
            assert_eq!(seen, assets);
            let whole = json(&EVENT, &symbols, &table, FRESH, None);
            assert_eq!(whole.len(), 1);
            assert!(whole[0].len() <= BODY_MAX);
        }
    }

    #[test]
    fn v8_datagrams_carry_records_in_asset_order() {
        let (table, symbols) = table(100);
        let parts = v8(&EVENT, &symbols, &table, FRESH);
        assert_eq!(parts.len(), 3);
        let mut records = 0;
        for (index, part) in parts.iter().enumerate() {
            assert!(part.len() <= UDP_MAX);
            assert_eq!(
                &part[9..12],
                &[u8::try_from(index).unwrap() + 1, 3, V8_PUSH_FLAG]
            );
            let (header, found) = v8::parse_reply(part).unwrap();
            assert_eq!(header.status, v8::ReplyStatus::Ok as u8);
            assert_eq!(header.request_id, 5);
            for record in found {
                let record = record.unwrap();
                assert_eq!((record.mantissa, record.scale), (12_345_678, 3));
                records += 1;
            }
        }
        assert_eq!(records, 100);
    }
}
