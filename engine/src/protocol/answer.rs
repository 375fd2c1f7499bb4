//! The answer to "what is the price of X", shared by every protocol, and its JSON form.
//!
//! Price object: `{"asset":"BTC","price":"97123.45","source":"coinbase-ws","ts":1732400000123,"age_ms":12}`
//! with `"stale":true` appended once the price is older than the stale limit.
//! Error object: `{"error":"unknown_asset","message":"unknown asset NOPE"}`.

use beast_core::Symbol;

use super::sink::Sink;
use crate::price::{Aggregate, AssetId, Freshness, PriceTable};

/// The outcome of looking one asset up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    Price {
        id: AssetId,
        symbol: Symbol,
        price: Aggregate,
    },
    /// Well-formed symbol the table does not know.
    Unknown(Symbol),
    /// Known asset without a price yet.
    NoPrice(Symbol),
    /// Not a symbol at all (bad characters, too long, empty).
    Invalid,
}

impl Answer {
    /// Looks `text` (request bytes, any case) up in the table. No allocation, no lock.
    #[inline]
    pub fn lookup(table: &PriceTable, text: &[u8]) -> Answer {
        let symbol = match Symbol::parse(text) {
            Ok(symbol) => symbol,
            Err(_) => return Answer::Invalid,
        };
        match table.registry().find(&symbol) {
            None => Answer::Unknown(symbol),
            Some(id) => match table.aggregate(id) {
                Some(price) => Answer::Price { id, symbol, price },
                None => Answer::NoPrice(symbol),
            },
        }
    }

    pub(crate) fn is_price(&self) -> bool {
        matches!(self, Answer::Price { .. })
    }
}

/// Machine-readable error codes, the `"error"` field of every error object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    UnknownAsset,
    InvalidAsset,
    NoPrice,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    Overloaded,
    TooManyAssets,
    TooSmall,
    Unavailable,
    InvalidApiKey,
    RateLimited,
    Unauthorized,
    Conflict,
    NotAcceptable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownAsset => "unknown_asset",
            ErrorCode::InvalidAsset => "invalid_asset",
            ErrorCode::NoPrice => "no_price",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::TooManyAssets => "too_many_assets",
            ErrorCode::TooSmall => "too_small",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotAcceptable => "not_acceptable",
        }
    }
}

/// Writes the JSON object for one answer.
pub(crate) fn write_answer(out: &mut impl Sink, answer: &Answer, fresh: Freshness) {
    match answer {
        Answer::Price { symbol, price, .. } => write_price(out, symbol, price, fresh),
        Answer::Unknown(symbol) => {
            write_error_for(out, ErrorCode::UnknownAsset, b"unknown asset ", symbol)
        }
        Answer::NoPrice(symbol) => {
            write_error_for(out, ErrorCode::NoPrice, b"no price yet for ", symbol)
        }
        Answer::Invalid => {
            write_error(
                out,
                ErrorCode::InvalidAsset,
                b"asset symbols are 1-16 letters or digits",
            );
        }
    }
}

pub(crate) fn write_price(
    out: &mut impl Sink,
    symbol: &Symbol,
    price: &Aggregate,
    fresh: Freshness,
) {
    out.put(b"{\"asset\":\"");
    out.put(symbol.as_bytes());
    out.put(b"\",\"price\":\"");
    out.put(price.price.format().as_bytes());
    out.put(b"\",\"source\":\"");
    out.put(price.source.tag_for(fresh.simulated).as_bytes());
    out.put(b"\",\"ts\":");
    out.put_u64(price.exchange_ms);
    out.put(b",\"age_ms\":");
    out.put_u64(fresh.age_ms(price.exchange_ms));
    if fresh.is_stale(price.exchange_ms) {
        out.put(b",\"stale\":true");
    }
    if fresh.simulated {
        out.put(b",\"simulated\":true");
    }
    out.put(b"}");
}

/// `{"error":"<code>","message":"<message>"}`. Messages are ASCII text of ours, never echoed
/// client input, so they need no escaping.
pub(crate) fn write_error(out: &mut impl Sink, code: ErrorCode, message: &[u8]) {
    out.put(b"{\"error\":\"");
    out.put(code.as_str().as_bytes());
    out.put(b"\",\"message\":\"");
    out.put(message);
    out.put(b"\"}");
}

/// An error whose message names a symbol (letters and digits only, so safe in JSON).
fn write_error_for(out: &mut impl Sink, code: ErrorCode, message: &[u8], symbol: &Symbol) {
    out.put(b"{\"error\":\"");
    out.put(code.as_str().as_bytes());
    out.put(b"\",\"message\":\"");
    out.put(message);
    out.put(symbol.as_bytes());
    out.put(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use beast_core::{Decimal, Source, Venue};

    fn table_with_btc() -> std::sync::Arc<PriceTable> {
        let (table, mut writer) = PriceTable::new(8);
        let btc = writer.add_asset(&Symbol::parse(b"BTC").unwrap()).unwrap();
        writer.add_asset(&Symbol::parse(b"ETH").unwrap()).unwrap();
        let price = Aggregate {
            price: Decimal::parse("97123.450").unwrap(),
            source: Source::stream(Venue::Coinbase),
            exchange_ms: 1_000,
            received_ms: 1_001,
            sources: 1,
            spread_bps: 0,
        };
        writer.publish_aggregate(btc, &price);
        table
    }

    fn json(answer: &Answer, now_ms: u64, simulated: bool) -> String {
        let mut out = Vec::new();
        write_answer(
            &mut out,
            answer,
            Freshness {
                now_ms,
                stale_after_ms: 9_000,
                simulated,
            },
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn answers_in_json() {
        let table = table_with_btc();
        // (request, now, simulated, expected JSON)
        let cases: &[(&[u8], u64, bool, &str)] = &[
            (
                b"btc",
                1_012,
                false,
                r#"{"asset":"BTC","price":"97123.450","source":"coinbase-ws","ts":1000,"age_ms":12}"#,
            ),
            (
                b"btc",
                1_012,
                true,
                r#"{"asset":"BTC","price":"97123.450","source":"sim-coinbase-ws","ts":1000,"age_ms":12,"simulated":true}"#,
            ),
            (
                b"BTC",
                10_001,
                false,
                r#"{"asset":"BTC","price":"97123.450","source":"coinbase-ws","ts":1000,"age_ms":9001,"stale":true}"#,
            ),
            (
                b"BTC",
                999,
                false,
                r#"{"asset":"BTC","price":"97123.450","source":"coinbase-ws","ts":1000,"age_ms":0}"#,
            ),
            (
                b"eth",
                0,
                false,
                r#"{"error":"no_price","message":"no price yet for ETH"}"#,
            ),
            (
                b"nope",
                0,
                false,
                r#"{"error":"unknown_asset","message":"unknown asset NOPE"}"#,
            ),
            (
                b"BTC-USD",
                0,
                false,
                r#"{"error":"invalid_asset","message":"asset symbols are 1-16 letters or digits"}"#,
            ),
            (
                b"",
                0,
                false,
                r#"{"error":"invalid_asset","message":"asset symbols are 1-16 letters or digits"}"#,
            ),
        ];
        for (request, now, simulated, expected) in cases {
            let answer = Answer::lookup(&table, request);
            let got = json(&answer, *now, *simulated);
            assert_eq!(got, *expected);
            serde_json::from_str::<serde_json::Value>(&got).unwrap();
        }
    }
}
