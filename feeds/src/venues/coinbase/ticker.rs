//! The `ticker` channel: the last traded price of each product.
//!
//! ```json
//! {"channel":"ticker","timestamp":"2026-08-09T21:05:48.229198328Z","sequence_num":6,"events":[{"type":"snapshot","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"65086.18","volume_24_h":"2867.54532609","low_24_h":"64675.22","high_24_h":"65252.99","low_52_w":"57717.55","high_52_w":"126296","price_percent_chg_24_h":"0.09601107287722","best_bid":"65083.66","best_ask":"65083.67","best_bid_quantity":"0.20371215","best_ask_quantity":"0.24290402"}]}]}
//! ```
//!
//! Price: `events[].tickers[].price`; asset from `product_id`; time: the envelope `timestamp`
//! (there is no per-ticker time). `heartbeats` and `subscriptions` frames carry no price; every
//! other channel (`market_trades`, `candles`, `l2_data`) is skipped.

use crate::exchange::{Frame, ParseError, Skip, Update, field};
use crate::json::{self, Value};

pub fn parse(frame: &str, out: &mut dyn FnMut(Update)) -> Result<Frame, ParseError> {
    let root = json::parse(frame)?
        .as_object()
        .ok_or(ParseError::WrongType("frame"))?;
    let channel = match root.get("channel") {
        Some(channel) => channel.as_str().ok_or(ParseError::WrongType("channel"))?,
        // {"type":"error","message":"failure to subscribe"}
        None if root.get("type").and_then(Value::as_str) == Some("error") => {
            return Ok(Frame::Skip(Skip::ExchangeError));
        }
        None => return Err(ParseError::Missing("channel")),
    };
    match channel {
        "ticker" => {}
        "heartbeats" => return Ok(Frame::Skip(Skip::Heartbeat)),
        "subscriptions" => return Ok(Frame::Skip(Skip::Ack)),
        _ => return Ok(Frame::Skip(Skip::OtherChannel)),
    }
    let exchange_ms = field::rfc3339(field::required(&root, "timestamp")?, "timestamp")?;
    let mut count = 0;
    for event in field::array(&root, "events")?.iter() {
        let event = event.as_object().ok_or(ParseError::WrongType("events"))?;
        for ticker in field::array(&event, "tickers")?.iter() {
            let ticker = ticker.as_object().ok_or(ParseError::WrongType("tickers"))?;
            let asset = field::base(field::string(&ticker, "product_id")?, '-', "product_id")?;
            let price = field::price(field::required(&ticker, "price")?, "price")?;
            out(Update {
                asset,
                price,
                exchange_ms,
            });
            count += 1;
        }
    }
    Ok(if count == 0 {
        Frame::Skip(Skip::NoPrice)
    } else {
        Frame::Prices(count)
    })
}

#[cfg(test)]
mod tests {
    use super::super::Coinbase;
    use crate::exchange::testing::render;

    #[test]
    fn frames() {
        let cases: &[(&str, &str)] = &[
            // TC0: a recorded snapshot (samples/coinbase.jsonl)
            (
                r#"{"channel":"ticker","timestamp":"2026-08-09T21:05:48.229198328Z","sequence_num":6,"events":[{"type":"snapshot","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"65086.18","volume_24_h":"2867.54532609","best_bid":"65083.66"}]}]}"#,
                "BTC 65086.18 1786309548229",
            ),
            // TC1: several events and tickers, in order; variable fraction digits
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33.1Z","events":[{"type":"update","tickers":[{"product_id":"BTC-USD","price":"97012.34"},{"product_id":"pepe-usd","price":"0.000012345678"}]},{"type":"update","tickers":[{"price":"1919.40","product_id":"ETH-USD"}]}]}"#,
                "BTC 97012.34 1795497153100 | PEPE 0.000012345678 1795497153100 | ETH 1919.40 1795497153100",
            ),
            (
                r#"{"channel":"heartbeats","timestamp":"2026-11-24T05:12:34.000210441Z","sequence_num":57,"events":[{"current_time":"2026-11-24 05:12:34.000101 +0000 UTC m=+9021.2","heartbeat_counter":9021}]}"#,
                "skip Heartbeat",
            ),
            (
                r#"{"channel":"subscriptions","timestamp":"2026-11-24T05:12:33.004512993Z","sequence_num":2,"events":[{"subscriptions":{"ticker":["BTC-USD"]}}]}"#,
                "skip Ack",
            ),
            (
                r#"{"channel":"market_trades","timestamp":"2026-11-24T05:12:33Z","events":[{"trades":[{"price":"1"}]}]}"#,
                "skip OtherChannel",
            ),
            (r#"{"channel":"l2_data","events":[]}"#, "skip OtherChannel"),
            (
                r#"{"type":"error","message":"failure to subscribe"}"#,
                "skip ExchangeError",
            ),
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33Z","events":[]}"#,
                "skip NoPrice",
            ),
            // malformed
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33Z","events":[{"tickers":[{"product_id":"BTC-USD","price":true}]}]}"#,
                "error field price has the wrong type",
            ),
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33Z","events":[{"tickers":[{"product_id":"BTC-USD","price":null}]}]}"#,
                "error field price has the wrong type",
            ),
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33Z","events":[{"tickers":[{"product_id":"BTC-USD","price":"abc"}]}]}"#,
                "error field price is not a price: unexpected byte 0x61 at offset 0",
            ),
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33Z","events":[{"tickers":[{"product_id":"BTC-USD"}]}]}"#,
                "error missing field price",
            ),
            (
                r#"{"channel":"ticker","timestamp":12,"events":[]}"#,
                "error field timestamp has the wrong type",
            ),
            (
                r#"{"channel":"ticker","events":[]}"#,
                "error missing field timestamp",
            ),
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33Z","events":{}}"#,
                "error field events has the wrong type",
            ),
            (
                r#"{"channel":"ticker","timestamp":"2026-11-24T05:12:33Z","events":[{"tickers":[{"product_id":"BTC-USD","price":"1"}]}"#,
                "error invalid JSON at byte 115",
            ),
            ("[1,2]", "error field frame has the wrong type"),
            ("not json", "error invalid JSON at byte 0"),
        ];
        for (frame, expected) in cases {
            assert_eq!(render(&Coinbase, frame), *expected, "{frame}");
        }
    }
}
