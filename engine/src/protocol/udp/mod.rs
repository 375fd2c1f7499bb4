//! UDP request handling: one datagram in, at most one datagram out.
//!
//! Never an amplifier: a reply is never larger than its request unless the request carries a
//! valid key of a tier that lifts the rule ([`crate::access::Tier::lifts_reply_limit`]: not
//! the public demo key, not free keys), and a refusal (invalid key, rate limited) is never
//! larger than its request whatever key it names. A reply that would be larger is replaced by
//! a short error that fits, or, when even that does not fit, the datagram is dropped and
//! counted.

pub(crate) mod text;
pub mod v8;

use super::answer::{Answer, ErrorCode, write_error};
use super::sink::{Fixed, Sink};
use crate::access::{Access, Denied, Grant};
use crate::price::Freshness;
use crate::price::PriceTable;
use crate::usage::AssetList;

/// Largest reply sent: one datagram that fits loopback and jumbo frames comfortably; larger
/// answers are refused with an error.
pub const MAX_REPLY: usize = 4096;
/// Largest report reply: one datagram that crosses any path unfragmented; longer reports are
/// cut at a line and end with [`TRUNCATED`].
pub const MAX_REPORT_REPLY: usize = 1_200;
pub(crate) const TRUNCATED: &[u8] = b"~ truncated\n";

/// Which form a datagram used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Text,
    V8,
    /// A report in text (the LRS port).
    Report,
}

/// Why a datagram got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Not text, not v8: binary garbage, control bytes, or nothing but separators.
    Malformed,
    /// The reply, even a short error, would be larger than the request (no valid key).
    Amplification,
    /// The usage ring had no room: not answered rather than answered unmetered.
    Metering,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `len` bytes of reply are in the output buffer. `priced`: every asset asked for was
    /// answered with a price (the assets are in the caller's list) for key `key_id` (0: none).
    /// `denied`: the reply is a refusal for this reason.
    Reply {
        len: usize,
        form: Form,
        priced: bool,
        key_id: u64,
        denied: Option<Denied>,
    },
    Dropped(Drop),
}

/// What answering needs, fixed for a batch of datagrams.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub table: &'a PriceTable,
    pub access: &'a Access,
    pub fresh: Freshness,
    /// The datagram came to the LRS port: its first word may name a report.
    pub reports: bool,
}

/// Answers one datagram into `out` (at least [`MAX_REPLY`] bytes), gathering the assets priced
/// into `assets`. Allocates nothing.
pub fn answer(
    datagram: &[u8],
    ctx: Context<'_>,
    out: &mut [u8],
    assets: &mut AssetList,
) -> Outcome {
    assets.clear();
    if !assets.room {
        return Outcome::Dropped(Drop::Metering);
    }
    if v8::is_v8(datagram) {
        return answer_v8(datagram, ctx, out, assets);
    }
    let Some(request) = text::parse(datagram) else {
        return Outcome::Dropped(Drop::Malformed);
    };
    let out = out.get_mut(..MAX_REPLY.min(out.len())).unwrap_or_default();
    let mut sink = Fixed::new(out);
    let grant = match ctx.access.check(request.key) {
        Ok(grant) => grant,
        Err(denied) => {
            // Refusals are sent to whatever address the datagram claims: never larger than it.
            let limit = datagram.len();
            let (code, message): (ErrorCode, &[u8]) = match denied {
                Denied::Missing => (ErrorCode::InvalidApiKey, b"key= required"),
                Denied::Invalid => (ErrorCode::InvalidApiKey, b"unknown or revoked key"),
                Denied::RateLimited { .. } => (ErrorCode::RateLimited, b"over the tier limit"),
            };
            write_error(&mut sink, code, message);
            return if sink.len() <= limit {
                Outcome::Reply {
                    len: sink.len(),
                    form: Form::Text,
                    priced: false,
                    key_id: 0,
                    denied: Some(denied),
                }
            } else {
                Outcome::Dropped(Drop::Amplification)
            };
        }
    };
    let limit = reply_limit(grant, datagram.len());
    if ctx.reports
        && let Some(report) = crate::report::request_from_words(
            request.assets.get(..request.count).unwrap_or_default(),
            ctx.table,
        )
    {
        return answer_report(report, ctx, grant, limit, sink, assets);
    }
    let written = text::write_reply(&request, ctx.table, ctx.fresh, &mut sink, assets);
    if let Some(priced) = written
        && sink.len() <= limit
    {
        return Outcome::Reply {
            len: sink.len(),
            form: Form::Text,
            priced,
            key_id: grant.key_id(),
            denied: None,
        };
    }
    // Too large for this requester: say so in as few bytes as we can, if even that fits.
    sink.clear();
    assets.clear(); // no price went out
    if written.is_some() {
        write_error(&mut sink, ErrorCode::TooSmall, b"pad request or use key=");
    } else {
        write_error(&mut sink, ErrorCode::TooManyAssets, b"reply too large");
    }
    if sink.len() <= limit {
        Outcome::Reply {
            len: sink.len(),
            form: Form::Text,
            priced: false,
            key_id: grant.key_id(),
            denied: None,
        }
    } else {
        Outcome::Dropped(Drop::Amplification)
    }
}

/// A report, in text, within `limit` (and [`MAX_REPORT_REPLY`]): cut after its last whole line
/// that fits, with a marker. A refusal is the same JSON error as the HTTP API's.
fn answer_report(
    report: Result<crate::report::Request, crate::report::Refusal>,
    ctx: Context<'_>,
    grant: Grant,
    limit: usize,
    mut sink: Fixed<'_>,
    assets: &mut AssetList,
) -> Outcome {
    let limit = limit.min(MAX_REPORT_REPLY);
    let reply = |sink: &Fixed<'_>, form| Outcome::Reply {
        len: sink.len(),
        form,
        priced: false,
        key_id: grant.key_id(),
        denied: None,
    };
    let request = match report {
        Ok(request) => request,
        Err(refusal) => {
            write_error(&mut sink, refusal.code, refusal.message);
            return if sink.len() <= limit {
                reply(&sink, Form::Text)
            } else {
                Outcome::Dropped(Drop::Amplification)
            };
        }
    };
    crate::report::write_response(
        &request,
        ctx.table,
        ctx.fresh,
        crate::report::Format::Txt,
        &mut sink,
    );
    if sink.overflowed() || sink.len() > limit {
        let room = limit.saturating_sub(TRUNCATED.len());
        // The title and the column names, then at least one row, or it is not worth sending.
        let written = sink.written();
        let head = memchr::memchr_iter(b'\n', written)
            .nth(1)
            .map_or(usize::MAX, |at| at + 1);
        let cut = written
            .get(..room.min(written.len()))
            .and_then(|fits| memchr::memrchr(b'\n', fits))
            .map(|at| at + 1)
            .filter(|&cut| cut > head);
        match cut {
            Some(cut) => {
                sink.truncate(cut);
                sink.put(TRUNCATED);
            }
            None => {
                // Not one row fits: say so, if even that fits.
                sink.clear();
                write_error(&mut sink, ErrorCode::TooSmall, b"pad request or use key=");
                return if sink.len() <= limit {
                    reply(&sink, Form::Text)
                } else {
                    Outcome::Dropped(Drop::Amplification)
                };
            }
        }
    }
    assets.push(request.metered_asset());
    Outcome::Reply {
        len: sink.len(),
        form: Form::Report,
        priced: true,
        key_id: grant.key_id(),
        denied: None,
    }
}

/// The largest reply `grant` may get to a request of `request_len` bytes.
fn reply_limit(grant: Grant, request_len: usize) -> usize {
    match grant {
        Grant::Key { tier, .. } if tier.lifts_reply_limit() => MAX_REPLY,
        Grant::Key { .. } | Grant::Anonymous => request_len.min(MAX_REPLY),
    }
}

fn answer_v8(datagram: &[u8], ctx: Context<'_>, out: &mut [u8], assets: &mut AssetList) -> Outcome {
    let request_id = datagram
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let header_only = |status, denied: Option<Denied>, out: &mut [u8]| {
        // A header is 12 bytes; anything claiming v8 that is shorter is dropped.
        if datagram.len() < v8::HEADER_LEN
            || v8::write_reply_header(out, status, request_id, 0).is_err()
        {
            return Outcome::Dropped(Drop::Malformed);
        }
        Outcome::Reply {
            len: v8::HEADER_LEN,
            form: Form::V8,
            priced: false,
            key_id: 0,
            denied,
        }
    };
    let request = match v8::parse_request(datagram) {
        Ok(request) => request,
        Err(v8::V8Error::Count) => return header_only(v8::ReplyStatus::TooManySymbols, None, out),
        Err(_) => return header_only(v8::ReplyStatus::Malformed, None, out),
    };
    let grant = match ctx.access.check(request.key) {
        Ok(grant) => grant,
        Err(denied) => {
            let status = match denied {
                Denied::Missing | Denied::Invalid => v8::ReplyStatus::InvalidKey,
                Denied::RateLimited { .. } => v8::ReplyStatus::RateLimited,
            };
            return header_only(status, Some(denied), out);
        }
    };
    let len = v8::reply_len(request.count());
    if len > reply_limit(grant, datagram.len()) {
        return header_only(v8::ReplyStatus::TooSmall, None, out);
    }
    if len > out.len()
        || v8::write_reply_header(
            out,
            v8::ReplyStatus::Ok,
            request.request_id,
            request.count(),
        )
        .is_err()
    {
        return Outcome::Dropped(Drop::Malformed);
    }
    let mut priced = true;
    let records = out.get_mut(v8::HEADER_LEN..len).unwrap_or_default();
    for (slot, symbol) in records
        .chunks_exact_mut(v8::RECORD_LEN)
        .zip(request.symbols())
    {
        let record = match Answer::lookup(ctx.table, symbol) {
            Answer::Price { id, price, .. } => {
                assets.push(id);
                v8::Record::priced(&price, ctx.fresh)
            }
            other => v8::Record::of(&other, ctx.fresh),
        };
        priced &= record.status == v8::RecordStatus::Ok;
        if record.write(slot).is_err() {
            return Outcome::Dropped(Drop::Malformed);
        }
    }
    Outcome::Reply {
        len,
        form: Form::V8,
        priced,
        key_id: grant.key_id(),
        denied: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::Aggregate;
    use beast_core::{Decimal, Source, Symbol, Venue};

    fn setup() -> (std::sync::Arc<PriceTable>, Access) {
        let (table, mut writer) = PriceTable::new(8);
        let btc = writer.add_asset(&Symbol::parse(b"BTC").unwrap()).unwrap();
        writer.add_asset(&Symbol::parse(b"ETH").unwrap()).unwrap();
        let price = Aggregate {
            price: Decimal::parse("97123.45").unwrap(),
            source: Source::stream(Venue::Coinbase),
            exchange_ms: 1_000,
            received_ms: 1_000,
            sources: 1,
            spread_bps: 0,
        };
        writer.publish_aggregate(btc, &price);
        let access = Access::new(false, 4);
        let entry = |presented: &[u8], id, tier, slot| {
            (
                crate::access::ApiKey::hash_presented(presented).unwrap(),
                crate::access::KeyEntry { id, tier, slot },
            )
        };
        access.publish(crate::access::KeySet::new([
            entry(b"good-key-123", 9, crate::access::Tier::Stress, 0),
            entry(b"demo-key-123", 10, crate::access::Tier::Demo, 1),
        ]));
        (table, access)
    }

    fn run(datagram: &[u8]) -> (Outcome, Vec<u8>) {
        let (table, access) = setup();
        let ctx = Context {
            table: &table,
            access: &access,
            fresh: Freshness {
                now_ms: 1_010,
                stale_after_ms: 9_000,
                simulated: false,
            },
            reports: false,
        };
        let mut out = [0u8; MAX_REPLY];
        let outcome = answer(datagram, ctx, &mut out, &mut AssetList::default());
        let len = match outcome {
            Outcome::Reply { len, .. } => len,
            Outcome::Dropped(_) => 0,
        };
        (outcome, out[..len].to_vec())
    }

    fn padded(text: &str) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(200, b' ');
        bytes
    }

    #[test]
    fn text_requests() {
        let btc =
            r#"{"asset":"BTC","price":"97123.45","source":"coinbase-ws","ts":1000,"age_ms":10}"#;
        let (outcome, reply) = run(&padded("BTC"));
        assert_eq!(String::from_utf8(reply).unwrap(), btc);
        assert!(matches!(
            outcome,
            Outcome::Reply {
                form: Form::Text,
                priced: true,
                ..
            }
        ));

        let (_, reply) = run(&padded("btc nope"));
        let expected =
            format!(r#"[{btc},{{"error":"unknown_asset","message":"unknown asset NOPE"}}]"#);
        assert_eq!(String::from_utf8(reply).unwrap(), expected);

        let (outcome, reply) = run(b"key=good-key-123 BTC");
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            btc,
            "a valid key lifts the size rule"
        );
        assert!(matches!(outcome, Outcome::Reply { priced: true, .. }));
    }

    #[test]
    fn never_larger_than_the_request_without_a_key() {
        let cases: &[(&[u8], Option<Drop>)] = &[
            (b"BTC", Some(Drop::Amplification)),
            (b"key=wrong-key-0 BTC", Some(Drop::Amplification)),
            (b"\x01\x02garbage", Some(Drop::Malformed)),
            (b"     ", Some(Drop::Malformed)),
            (b"", Some(Drop::Malformed)),
        ];
        for (datagram, drop) in cases {
            let (outcome, reply) = run(datagram);
            assert_eq!(outcome, Outcome::Dropped(drop.unwrap()), "{datagram:?}");
            assert!(reply.is_empty());
        }
        // A request that fits an error but not the price gets the error, no larger than itself.
        let request = padded("BTC")[..70].to_vec();
        let (_, reply) = run(&request);
        assert!(
            reply.len() <= request.len(),
            "{} > {}",
            reply.len(),
            request.len()
        );
        assert!(String::from_utf8(reply).unwrap().contains("too_small"));
    }

    /// A public key is no key: the demo tier gets the keyless size rule, and refusals are never
    /// larger than their request, whatever key they name.
    #[test]
    fn public_keys_and_refusals_do_not_amplify() {
        let (table, access) = setup();
        let ctx = Context {
            table: &table,
            access: &access,
            fresh: Freshness {
                now_ms: 1_010,
                stale_after_ms: 9_000,
                simulated: false,
            },
            reports: false,
        };
        let mut out = [0u8; MAX_REPLY];
        let many = format!("key=demo-key-123{}", " BTC".repeat(32));
        for _ in 0..10 {
            let outcome = answer(many.as_bytes(), ctx, &mut out, &mut AssetList::default());
            if let Outcome::Reply { len, .. } = outcome {
                assert!(len <= many.len(), "{len} > {}", many.len());
            }
        }
        let mut request = [0u8; 128];
        let symbols: [&[u8]; 4] = [b"btc"; 4];
        let n = v8::encode_request(&mut request, 5, Some(b"demo-key-123"), &symbols, 0).unwrap();
        let outcome = answer(&request[..n], ctx, &mut out, &mut AssetList::default());
        assert!(
            matches!(outcome, Outcome::Reply { len, .. } if len <= n),
            "{outcome:?}"
        );
        // A paid tier still lifts the rule.
        let (outcome, _) = run(b"key=good-key-123 BTC ETH");
        assert!(matches!(outcome, Outcome::Reply { len, .. } if len > 24));
    }

    #[test]
    fn v8_requests() {
        let mut request = [0u8; 128];
        let len = v8::encode_request(
            &mut request,
            42,
            None,
            &[b"btc", b"eth", b"nope"],
            v8::reply_len(3),
        )
        .unwrap();
        let (outcome, reply) = run(&request[..len]);
        assert_eq!(
            outcome,
            Outcome::Reply {
                len: v8::reply_len(3),
                form: Form::V8,
                priced: false,
                key_id: 0,
                denied: None,
            }
        );
        let (header, records) = v8::parse_reply(&reply).unwrap();
        assert_eq!((header.status, header.request_id, header.count), (0, 42, 3));
        let records: Vec<v8::Record> = records.map(Result::unwrap).collect();
        assert_eq!(
            (records[0].mantissa, records[0].scale, records[0].age_ms),
            (9_712_345, 2, 10)
        );
        assert_eq!(records[0].venue(), Some(Venue::Coinbase));
        assert_eq!(records[1].status, v8::RecordStatus::NoPrice);
        assert_eq!(records[2].status, v8::RecordStatus::UnknownAsset);

        // Unpadded and keyless: header-only "too small", which is smaller than the request.
        let len = v8::encode_request(&mut request, 43, None, &[b"btc"], 0).unwrap();
        let (_, reply) = run(&request[..len]);
        assert_eq!(reply.len(), v8::HEADER_LEN);
        assert_eq!(
            v8::parse_reply(&reply).unwrap().0.status,
            v8::ReplyStatus::TooSmall as u8
        );

        // With a valid key, no padding needed.
        let len =
            v8::encode_request(&mut request, 44, Some(b"good-key-123"), &[b"btc"], 0).unwrap();
        let (outcome, _) = run(&request[..len]);
        assert!(matches!(outcome, Outcome::Reply { priced: true, .. }));

        // Claims v8, too short for a header: dropped.
        let (outcome, _) = run(&request[..5]);
        assert_eq!(outcome, Outcome::Dropped(Drop::Malformed));
    }
}
