//! The `spot.tickers` channel.
//!
//! ```json
//! {"time":1795497153,"time_ms":1795497153123,"channel":"spot.tickers","event":"update","result":{"currency_pair":"BNB_USDT","last":"912.34","lowest_ask":"912.35","highest_bid":"912.33","change_percentage":"1.27","base_volume":"81234.123","quote_volume":"74125678.29","high_24h":"918.02","low_24h":"897.44"}}
//! ```
//!
//! Price `result.last`, asset from `result.currency_pair`, time the envelope `time_ms`, or
//! `time` (seconds) × 1000 where `time_ms` is absent (older servers, samples/gateio.jsonl).
//! Subscription responses, `spot.pong` and errors carry no price; other channels are skipped.

use crate::exchange::{Frame, ParseError, Skip, Update, field};
use crate::json::{self, Object, Value};

pub fn parse(frame: &str, out: &mut dyn FnMut(Update)) -> Result<Frame, ParseError> {
    let root = json::parse(frame)?
        .as_object()
        .ok_or(ParseError::WrongType("frame"))?;
    if root.get("error").is_some_and(|e| !e.is_null()) {
        return Ok(Frame::Skip(Skip::ExchangeError));
    }
    let channel = field::string(&root, "channel")?;
    match channel {
        "spot.tickers" => {}
        "spot.pong" => return Ok(Frame::Skip(Skip::Heartbeat)),
        _ => return Ok(Frame::Skip(Skip::OtherChannel)),
    }
    if root.get("event").and_then(Value::as_str) != Some("update") {
        return Ok(Frame::Skip(Skip::Ack));
    }
    let exchange_ms = match root.get("time_ms") {
        Some(ms) => field::millis(ms, "time_ms")?,
        None => field::millis(field::required(&root, "time")?, "time")?.saturating_mul(1000),
    };
    let mut count = 0;
    let mut ticker = |item: Object<'_>| -> Result<(), ParseError> {
        let asset = field::base(field::string(&item, "currency_pair")?, '_', "currency_pair")?;
        let price = field::price(field::required(&item, "last")?, "last")?;
        out(Update {
            asset,
            price,
            exchange_ms,
        });
        count += 1;
        Ok(())
    };
    match field::required(&root, "result")? {
        Value::Object(item) => ticker(item)?,
        Value::Array(items) => {
            for item in items.iter() {
                ticker(item.as_object().ok_or(ParseError::WrongType("result"))?)?;
            }
        }
        _ => return Err(ParseError::WrongType("result")),
    }
    Ok(if count == 0 {
        Frame::Skip(Skip::NoPrice)
    } else {
        Frame::Prices(count)
    })
}

#[cfg(test)]
mod tests {
    use super::super::Gateio;
    use crate::exchange::testing::render;

    #[test]
    fn frames() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"time":1795497153,"time_ms":1795497153123,"channel":"spot.tickers","event":"update","result":{"currency_pair":"BNB_USDT","last":"912.34","lowest_ask":"912.35","highest_bid":"912.33","change_percentage":"1.27"}}"#,
                "BNB 912.34 1795497153123",
            ),
            // recorded 2021 frame: no time_ms
            (
                r#"{"time":1619093533,"channel":"spot.tickers","event":"update","result":{"currency_pair":"NEO_BTC","last":"0.0018716","lowest_ask":"0.0018734","highest_bid":"0.0018697","change_percentage":"2.9256","base_volume":"1138.01640718","quote_volume":"2.048263365803126","high_24h":"0.0018754","low_24h":"0.0017148"}}"#,
                "NEO 0.0018716 1619093533000",
            ),
            (
                r#"{"time":1,"time_ms":2,"channel":"spot.tickers","event":"update","result":[{"currency_pair":"S_USDT","last":"0.5"},{"currency_pair":"1INCH_USDT","last":"0.4705000000"}]}"#,
                "S 0.5 2 | 1INCH 0.4705000000 2",
            ),
            (
                r#"{"time":1795497152,"time_ms":1795497152871,"conn_id":"5e74","trace_id":"11a2","channel":"spot.tickers","event":"subscribe","payload":["BNB_USDT"],"result":{"status":"success"}}"#,
                "skip Ack",
            ),
            (
                r#"{"time":1619093532,"channel":"spot.tickers","event":"subscribe","result":{"status":"success"}}"#,
                "skip Ack",
            ),
            (
                r#"{"time":1795497160,"time_ms":1795497160102,"channel":"spot.pong","event":"","result":null}"#,
                "skip Heartbeat",
            ),
            (
                r#"{"time":1,"time_ms":1,"channel":"spot.tickers","event":"subscribe","error":{"code":2,"message":"unknown currency pair: FOO_USDT"},"result":{"status":"fail"}}"#,
                "skip ExchangeError",
            ),
            (
                r#"{"time":1,"channel":"spot.trades","event":"update","result":{"id":1,"currency_pair":"BNB_USDT","price":"912.34"}}"#,
                "skip OtherChannel",
            ),
            (
                r#"{"time":1,"channel":"spot.order_book_update","event":"update","result":{}}"#,
                "skip OtherChannel",
            ),
            // malformed
            (
                r#"{"time":1,"channel":"spot.tickers","event":"update","result":{"currency_pair":"BNB_USDT","last":false}}"#,
                "error field last has the wrong type",
            ),
            (
                r#"{"time":1,"channel":"spot.tickers","event":"update","result":{"currency_pair":"BNB_USDT"}}"#,
                "error missing field last",
            ),
            (
                r#"{"time":"soon","channel":"spot.tickers","event":"update","result":{"currency_pair":"BNB_USDT","last":"1"}}"#,
                "error field time is not a timestamp",
            ),
            (
                r#"{"channel":"spot.tickers","event":"update","result":"x"}"#,
                "error missing field time",
            ),
            (
                r#"{"time":1,"event":"update"}"#,
                "error missing field channel",
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(render(&Gateio, frame), *expected, "{frame}");
        }
    }
}
