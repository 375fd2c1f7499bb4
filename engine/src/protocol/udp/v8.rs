//! The binary v8 request and reply format (docs/PROTOCOL-UDP.md), little-endian, fixed-size,
//! so client and server encode and decode without allocating. The load generator uses this
//! module too.

use beast_core::Venue;

/// First two bytes of every v8 datagram (`A7 BE` on the wire). 0xA7 is not printable ASCII, so
/// a v8 datagram can never be mistaken for a text request.
pub(crate) const MAGIC: u16 = 0xBEA7;
pub const VERSION: u8 = 8;
pub const HEADER_LEN: usize = 12;
/// Each requested symbol: ASCII, zero-padded.
pub(crate) const SYMBOL_LEN: usize = 16;
pub(crate) const RECORD_LEN: usize = 24;
pub(crate) const MAX_SYMBOLS: usize = 32;
pub(crate) const MAX_KEY_LEN: usize = 64;
/// Request flag: an API key follows the header.
pub(crate) const FLAG_KEY: u8 = 1;

/// Reply header status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ReplyStatus {
    Ok = 0,
    Malformed = 1,
    /// The reply would be larger than the request and no valid key was given: pad the request
    /// to [`reply_len`] bytes (or send a key).
    TooSmall = 2,
    TooManySymbols = 3,
    /// The key is unknown or revoked, or this node requires one.
    InvalidKey = 4,
    /// The key is over its tier's rate; retry in a second.
    RateLimited = 5,
}

/// Per-symbol record status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordStatus {
    Ok = 0,
    UnknownAsset = 1,
    NoPrice = 2,
    InvalidSymbol = 3,
}

/// Record flags.
pub const RECORD_STALE: u8 = 1;
pub(crate) const RECORD_REST: u8 = 2;
/// The price is made up (the exchange simulator, the demo walk).
pub const RECORD_SIMULATED: u8 = 4;
/// `venue` value of a record without a price.
pub(crate) const NO_VENUE: u8 = 0xff;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum V8Error {
    #[error("datagram shorter than its header or its declared contents")]
    Short,
    #[error("not a v8 datagram (magic or version)")]
    NotV8,
    #[error("reserved bits set")]
    Reserved,
    #[error("symbol count outside 1-{MAX_SYMBOLS}")]
    Count,
    #[error("key length above {MAX_KEY_LEN} or inconsistent with the key flag")]
    Key,
    #[error("output buffer too small")]
    Buffer,
}

/// Length of the reply to a request for `count` symbols; unauthenticated requests must be at
/// least this long.
pub const fn reply_len(count: usize) -> usize {
    HEADER_LEN + RECORD_LEN * count
}

/// True if `datagram` claims to be v8 (magic present); it may still be malformed.
pub(crate) fn is_v8(datagram: &[u8]) -> bool {
    datagram.get(..2) == Some(&MAGIC.to_le_bytes()[..])
}

/// A parsed request, borrowing the datagram.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub request_id: u32,
    pub key: Option<&'a [u8]>,
    symbols: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn count(&self) -> usize {
        self.symbols.len() / SYMBOL_LEN
    }

    /// Each symbol's bytes, zero padding removed.
    pub fn symbols(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.symbols.chunks_exact(SYMBOL_LEN).map(|slot| {
            let end = slot.iter().position(|&b| b == 0).unwrap_or(SYMBOL_LEN);
            slot.get(..end).unwrap_or_default()
        })
    }
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    buf.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

pub fn parse_request(datagram: &[u8]) -> Result<Request<'_>, V8Error> {
    let header = datagram.get(..HEADER_LEN).ok_or(V8Error::Short)?;
    if !is_v8(header) || header.get(2) != Some(&VERSION) {
        return Err(V8Error::NotV8);
    }
    let byte = |at: usize| header.get(at).copied().unwrap_or(0);
    let flags = byte(3);
    if flags & !FLAG_KEY != 0 || byte(10) != 0 || byte(11) != 0 {
        return Err(V8Error::Reserved);
    }
    let count = usize::from(byte(8));
    if count == 0 || count > MAX_SYMBOLS {
        return Err(V8Error::Count);
    }
    let key_len = usize::from(byte(9));
    let has_key = flags & FLAG_KEY != 0;
    if key_len > MAX_KEY_LEN || has_key != (key_len > 0) {
        return Err(V8Error::Key);
    }
    let key_end = HEADER_LEN + key_len;
    let symbols_end = key_end + count * SYMBOL_LEN;
    let key = datagram.get(HEADER_LEN..key_end).ok_or(V8Error::Short)?;
    let symbols = datagram.get(key_end..symbols_end).ok_or(V8Error::Short)?;
    Ok(Request {
        request_id: u32_at(header, 4).unwrap_or(0),
        key: has_key.then_some(key),
        symbols,
    })
}

/// Encodes a request into `out`, zero-padded to at least `pad_to` bytes; returns its length.
#[allow(
    clippy::indexing_slicing,
    reason = "slices are cut to the exact field layout first"
)]
pub fn encode_request(
    out: &mut [u8],
    request_id: u32,
    key: Option<&[u8]>,
    symbols: &[&[u8]],
    pad_to: usize,
) -> Result<usize, V8Error> {
    let key = key.unwrap_or_default();
    if symbols.is_empty() || symbols.len() > MAX_SYMBOLS {
        return Err(V8Error::Count);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(V8Error::Key);
    }
    let len = (HEADER_LEN + key.len() + SYMBOL_LEN * symbols.len()).max(pad_to);
    let out = out.get_mut(..len).ok_or(V8Error::Buffer)?;
    out.fill(0);
    let (header, rest) = out.split_at_mut(HEADER_LEN);
    header[..2].copy_from_slice(&MAGIC.to_le_bytes());
    header[2] = VERSION;
    header[3] = if key.is_empty() { 0 } else { FLAG_KEY };
    header[4..8].copy_from_slice(&request_id.to_le_bytes());
    header[8] = u8::try_from(symbols.len()).map_err(|_| V8Error::Count)?;
    header[9] = u8::try_from(key.len()).map_err(|_| V8Error::Key)?;
    let (key_dest, rest) = rest.split_at_mut(key.len());
    key_dest.copy_from_slice(key);
    for (slot, symbol) in rest.chunks_exact_mut(SYMBOL_LEN).zip(symbols) {
        let n = symbol.len().min(SYMBOL_LEN);
        slot[..n].copy_from_slice(&symbol[..n]);
    }
    Ok(len)
}

/// Writes a reply header.
#[allow(
    clippy::indexing_slicing,
    reason = "the header slice is exactly HEADER_LEN bytes"
)]
pub(crate) fn write_reply_header(
    out: &mut [u8],
    status: ReplyStatus,
    request_id: u32,
    count: usize,
) -> Result<(), V8Error> {
    let header = out.get_mut(..HEADER_LEN).ok_or(V8Error::Buffer)?;
    header.fill(0);
    header[..2].copy_from_slice(&MAGIC.to_le_bytes());
    header[2] = VERSION;
    header[3] = status as u8;
    header[4..8].copy_from_slice(&request_id.to_le_bytes());
    header[8] = u8::try_from(count).map_err(|_| V8Error::Count)?;
    Ok(())
}

/// One symbol's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub status: RecordStatus,
    pub flags: u8,
    pub scale: u8,
    /// Venue index ([`Venue::index`]) or [`NO_VENUE`].
    pub venue: u8,
    pub age_ms: u32,
    pub mantissa: u64,
    pub exchange_ms: u64,
}

impl Record {
    pub const fn empty(status: RecordStatus) -> Record {
        Record {
            status,
            flags: 0,
            scale: 0,
            venue: NO_VENUE,
            age_ms: 0,
            mantissa: 0,
            exchange_ms: 0,
        }
    }

    /// A price's record.
    pub(crate) fn priced(
        price: &crate::price::Aggregate,
        fresh: crate::price::Freshness,
    ) -> Record {
        let mut flags = 0;
        if fresh.is_stale(price.exchange_ms) {
            flags |= RECORD_STALE;
        }
        if price.source.channel == beast_core::Channel::Rest {
            flags |= RECORD_REST;
        }
        if fresh.simulated {
            flags |= RECORD_SIMULATED;
        }
        Record {
            status: RecordStatus::Ok,
            flags,
            scale: price.price.scale(),
            venue: price.source.venue as u8,
            age_ms: u32::try_from(fresh.age_ms(price.exchange_ms)).unwrap_or(u32::MAX),
            mantissa: price.price.mantissa(),
            exchange_ms: price.exchange_ms,
        }
    }

    /// Any answer's record.
    pub(crate) fn of(
        answer: &crate::protocol::answer::Answer,
        fresh: crate::price::Freshness,
    ) -> Record {
        use crate::protocol::answer::Answer;
        match answer {
            Answer::Price { price, .. } => Record::priced(price, fresh),
            Answer::Unknown(_) => Record::empty(RecordStatus::UnknownAsset),
            Answer::NoPrice(_) => Record::empty(RecordStatus::NoPrice),
            Answer::Invalid => Record::empty(RecordStatus::InvalidSymbol),
        }
    }

    pub fn venue(&self) -> Option<Venue> {
        Venue::from_index(usize::from(self.venue))
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "the record slice is exactly RECORD_LEN bytes"
    )]
    pub fn write(&self, out: &mut [u8]) -> Result<(), V8Error> {
        let out = out.get_mut(..RECORD_LEN).ok_or(V8Error::Buffer)?;
        out[0] = self.status as u8;
        out[1] = self.flags;
        out[2] = self.scale;
        out[3] = self.venue;
        out[4..8].copy_from_slice(&self.age_ms.to_le_bytes());
        out[8..16].copy_from_slice(&self.mantissa.to_le_bytes());
        out[16..24].copy_from_slice(&self.exchange_ms.to_le_bytes());
        Ok(())
    }

    pub fn read(buf: &[u8]) -> Result<Record, V8Error> {
        let buf = buf.get(..RECORD_LEN).ok_or(V8Error::Short)?;
        let status = match buf.first() {
            Some(0) => RecordStatus::Ok,
            Some(1) => RecordStatus::UnknownAsset,
            Some(2) => RecordStatus::NoPrice,
            Some(3) => RecordStatus::InvalidSymbol,
            _ => return Err(V8Error::Reserved),
        };
        let byte = |at: usize| buf.get(at).copied().unwrap_or(0);
        Ok(Record {
            status,
            flags: byte(1),
            scale: byte(2),
            venue: byte(3),
            age_ms: u32_at(buf, 4).ok_or(V8Error::Short)?,
            mantissa: u64_at(buf, 8).ok_or(V8Error::Short)?,
            exchange_ms: u64_at(buf, 16).ok_or(V8Error::Short)?,
        })
    }
}

/// A parsed reply header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    pub status: u8,
    pub request_id: u32,
    pub count: usize,
}

/// Parses a reply: its header and its records (checked to be all present).
pub fn parse_reply(
    datagram: &[u8],
) -> Result<
    (
        ReplyHeader,
        impl Iterator<Item = Result<Record, V8Error>> + '_,
    ),
    V8Error,
> {
    let header = datagram.get(..HEADER_LEN).ok_or(V8Error::Short)?;
    if !is_v8(header) || header.get(2) != Some(&VERSION) {
        return Err(V8Error::NotV8);
    }
    let count = usize::from(header.get(8).copied().unwrap_or(0));
    let records = datagram
        .get(HEADER_LEN..reply_len(count))
        .ok_or(V8Error::Short)?;
    let parsed = ReplyHeader {
        status: header.get(3).copied().unwrap_or(0),
        request_id: u32_at(header, 4).unwrap_or(0),
        count,
    };
    Ok((parsed, records.chunks_exact(RECORD_LEN).map(Record::read)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let mut buf = [0u8; 256];
        let len = encode_request(&mut buf, 77, Some(b"k3y"), &[b"BTC", b"1inch"], 0).unwrap();
        assert_eq!(len, HEADER_LEN + 3 + 2 * SYMBOL_LEN);
        let request = parse_request(&buf[..len]).unwrap();
        assert_eq!(request.request_id, 77);
        assert_eq!(request.key, Some(&b"k3y"[..]));
        assert_eq!(
            request.symbols().collect::<Vec<_>>(),
            [&b"BTC"[..], b"1inch"]
        );

        let padded = encode_request(&mut buf, 1, None, &[b"ETH"], reply_len(1)).unwrap();
        assert_eq!(padded, reply_len(1));
        let request = parse_request(&buf[..padded]).unwrap();
        assert_eq!((request.key, request.count()), (None, 1));
    }

    #[test]
    fn rejects_malformed_requests() {
        let mut good = [0u8; 64];
        let len = encode_request(&mut good, 1, None, &[b"BTC"], 0).unwrap();
        let good = &good[..len];
        let mutate = |at: usize, value: u8| {
            let mut bad = good.to_vec();
            bad[at] = value;
            bad
        };
        let cases: Vec<(Vec<u8>, V8Error)> = vec![
            (good[..11].to_vec(), V8Error::Short),
            (good[..20].to_vec(), V8Error::Short),
            (mutate(0, 0), V8Error::NotV8),
            (mutate(2, 7), V8Error::NotV8),
            (mutate(3, 0x80), V8Error::Reserved),
            (mutate(10, 1), V8Error::Reserved),
            (mutate(8, 0), V8Error::Count),
            (mutate(8, 33), V8Error::Count),
            (mutate(9, 4), V8Error::Key),
            (mutate(3, FLAG_KEY), V8Error::Key),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                parse_request(&bytes).map(|r| r.count()),
                Err(expected),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn reply_round_trips() {
        let mut buf = [0u8; reply_len(2)];
        write_reply_header(&mut buf, ReplyStatus::Ok, 9, 2).unwrap();
        let record = Record {
            status: RecordStatus::Ok,
            flags: RECORD_STALE,
            scale: 2,
            venue: 3,
            age_ms: 12,
            mantissa: 9_712_345,
            exchange_ms: 1_732_400_000_123,
        };
        record.write(&mut buf[HEADER_LEN..]).unwrap();
        Record::empty(RecordStatus::UnknownAsset)
            .write(&mut buf[HEADER_LEN + RECORD_LEN..])
            .unwrap();
        let (header, records) = parse_reply(&buf).unwrap();
        assert_eq!(
            header,
            ReplyHeader {
                status: 0,
                request_id: 9,
                count: 2
            }
        );
        let records: Vec<Record> = records.map(Result::unwrap).collect();
        assert_eq!(records, [record, Record::empty(RecordStatus::UnknownAsset)]);
        assert_eq!(records[0].venue(), Some(Venue::Gateio));
        assert!(parse_reply(&buf[..HEADER_LEN + 5]).is_err());
    }
}
