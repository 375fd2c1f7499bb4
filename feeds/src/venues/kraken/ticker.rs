//! The v2 `ticker` channel.
//!
//! ```json
//! {"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":97012.3,"bid_qty":0.41,"ask":97012.4,"ask_qty":1.18,"last":97012.4,"volume":2210.51,"vwap":96540.2,"low":95880.0,"high":97650.0,"change":1003.1,"change_pct":1.04,"timestamp":"2026-11-24T05:12:33.123456Z"}]}
//! ```
//!
//! Price `data[].last`, a JSON **number**: its token text is the decimal. Time
//! `data[].timestamp` (RFC 3339); frames from before that field existed lack it and get the
//! receive time. `heartbeat`, `status`, acknowledgements and pongs carry no price; v1 frames
//! (arrays, `"event"` objects) are another protocol and carry none we read.

use crate::exchange::{Frame, ParseError, Skip, Update, field};
use crate::json::{self, Value};

pub fn parse(
    frame: &str,
    received_ms: u64,
    out: &mut dyn FnMut(Update),
) -> Result<Frame, ParseError> {
    let root = match json::parse(frame)? {
        Value::Object(root) => root,
        // v1: [channelID, payload, channelName, pair]
        Value::Array(_) => return Ok(Frame::Skip(Skip::OtherChannel)),
        _ => return Err(ParseError::WrongType("frame")),
    };
    let Some(channel) = root.get("channel") else {
        if let Some(method) = root.get("method") {
            let method = method.as_str().ok_or(ParseError::WrongType("method"))?;
            let failed =
                root.get("success") == Some(Value::Bool(false)) || root.get("error").is_some();
            return Ok(Frame::Skip(match method {
                _ if failed => Skip::ExchangeError,
                "pong" => Skip::Heartbeat,
                _ => Skip::Ack,
            }));
        }
        if let Some(event) = root.get("event").and_then(Value::as_str) {
            // v1 systemStatus, subscriptionStatus, heartbeat.
            return Ok(Frame::Skip(if event == "heartbeat" {
                Skip::Heartbeat
            } else {
                Skip::Ack
            }));
        }
        if root.get("error").is_some() {
            return Ok(Frame::Skip(Skip::ExchangeError));
        }
        return Err(ParseError::Missing("channel"));
    };
    match channel.as_str().ok_or(ParseError::WrongType("channel"))? {
        "ticker" => {}
        "heartbeat" | "status" => return Ok(Frame::Skip(Skip::Heartbeat)),
        _ => return Ok(Frame::Skip(Skip::OtherChannel)),
    }
    let mut count = 0;
    for item in field::array(&root, "data")?.iter() {
        let item = item.as_object().ok_or(ParseError::WrongType("data"))?;
        let asset = field::base(field::string(&item, "symbol")?, '/', "symbol")?;
        // "last" is only guaranteed once the pair traded in the past 24 hours.
        let Some(last) = item.get("last").filter(|v| !v.is_null()) else {
            continue;
        };
        let price = field::price(last, "last")?;
        let exchange_ms = match item.get("timestamp") {
            Some(ts) => field::rfc3339(ts, "timestamp")?,
            None => received_ms,
        };
        out(Update {
            asset,
            price,
            exchange_ms,
        });
        count += 1;
    }
    Ok(if count == 0 {
        Frame::Skip(Skip::NoPrice)
    } else {
        Frame::Prices(count)
    })
}

#[cfg(test)]
mod tests {
    use super::super::Kraken;
    use crate::exchange::testing::render;

    #[test]
    fn frames() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":97012.3,"bid_qty":0.41,"ask":97012.4,"ask_qty":1.18,"last":97012.4,"volume":2210.51,"vwap":96540.2,"low":95880.0,"high":97650.0,"change":1003.1,"change_pct":1.04,"timestamp":"2026-11-24T05:12:33.123456Z"}]}"#,
                "BTC 97012.4 1795497153123",
            ),
            // several, number tokens kept as written, exponent accepted, no timestamp
            (
                r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"KSM/USD","last":98000},{"symbol":"PEPE/USD","last":0.00001234,"timestamp":"2026-11-24T05:12:33Z"},{"symbol":"SC/USD","last":1.5e-7}]}"#,
                "KSM 98000 7 | PEPE 0.00001234 1795497153000 | SC 1.5e-7 7",
            ),
            (
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"NEW/USD","last":null}]}"#,
                "skip NoPrice",
            ),
            (r#"{"channel":"heartbeat"}"#, "skip Heartbeat"),
            (
                r#"{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":13834774380200032777,"system":"online","version":"2.0.10"}]}"#,
                "skip Heartbeat",
            ),
            (
                r#"{"method":"subscribe","result":{"channel":"ticker","event_trigger":"trades","snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2026-11-24T05:12:32.991203Z","time_out":"2026-11-24T05:12:32.991276Z","req_id":1}"#,
                "skip Ack",
            ),
            (
                r#"{"method":"subscribe","success":false,"error":"Currency pair not supported FOO/USD","symbol":"FOO/USD","time_in":"x","time_out":"y","req_id":1}"#,
                "skip ExchangeError",
            ),
            (
                r#"{"method":"pong","req_id":7,"time_in":"x","time_out":"y"}"#,
                "skip Heartbeat",
            ),
            (
                r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","price":1}]}"#,
                "skip OtherChannel",
            ),
            // v1 frames from the recorded session
            (
                r#"{"connectionID":17843232920108168701,"event":"systemStatus","status":"online","version":"1.8.3"}"#,
                "skip Ack",
            ),
            (r#"{"event":"heartbeat"}"#, "skip Heartbeat"),
            (
                r#"[1664,{"a":["1","0","0"],"c":["1","1"]},"ticker","WAVES/EUR"]"#,
                "skip OtherChannel",
            ),
            // malformed
            (
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":"abc"}]}"#,
                "error field last is not a price: unexpected byte 0x61 at offset 0",
            ),
            (
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":[1]}]}"#,
                "error field last has the wrong type",
            ),
            (
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":-5}]}"#,
                "error field last is not a price: negative price",
            ),
            (
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":1,"timestamp":"yesterday"}]}"#,
                "error field timestamp is not a timestamp",
            ),
            (
                r#"{"channel":"ticker","data":[{"last":1}]}"#,
                "error missing field symbol",
            ),
            (r#"{"type":"update"}"#, "error missing field channel"),
        ];
        for (frame, expected) in cases {
            assert_eq!(render(&Kraken, frame), *expected, "{frame}");
        }
    }
}
