//! Trades: the last trade's price is the price.
//!
//! Current API, stream `{symbol}@trade`:
//! ```json
//! {"E":1795497153123456789,"s":"btcusd","t":2840140800042677,"p":"97012.34","q":"0.00510000","m":false}
//! ```
//! Price `p`, asset from `s`, time `E` in nanoseconds (above 2^53: read as an integer).
//! Responses `{"id":"1","status":200}` are acknowledgements; a non-200 status is an error.
//! `depthUpdate` and `bookTicker` frames are other channels.
//!
//! Archived Market Data v2 (samples/gemini.jsonl):
//! ```json
//! {"type":"trade","symbol":"ANKRUSD","event_id":45465818387,"timestamp":1624493670759,"price":"0.07946","quantity":"1020.482111","side":"buy"}
//! ```
//! Price `price`, asset from `symbol`, time `timestamp` in ms; `heartbeat` frames carry none and
//! `l2_updates` (book changes) are another channel.

use super::symbols::Pairs;
use crate::exchange::{Frame, ParseError, Skip, Update, field};
use crate::json::{self, Value};

pub fn parse(frame: &str, pairs: &Pairs, out: &mut dyn FnMut(Update)) -> Result<Frame, ParseError> {
    let root = json::parse(frame)?
        .as_object()
        .ok_or(ParseError::WrongType("frame"))?;
    if let Some(status) = root.get("status") {
        let ok = status.as_u64().ok_or(ParseError::WrongType("status"))? == 200;
        return Ok(Frame::Skip(if ok && root.get("error").is_none() {
            Skip::Ack
        } else {
            Skip::ExchangeError
        }));
    }
    if let Some(kind) = root.get("type") {
        return match kind.as_str().ok_or(ParseError::WrongType("type"))? {
            "trade" => {
                let symbol = field::string(&root, "symbol")?;
                let asset = match pairs.resolve(symbol, "symbol")? {
                    Ok(asset) => asset,
                    Err(skip) => return Ok(Frame::Skip(skip)),
                };
                let price = field::price(field::required(&root, "price")?, "price")?;
                let exchange_ms = field::millis(field::required(&root, "timestamp")?, "timestamp")?;
                out(Update {
                    asset,
                    price,
                    exchange_ms,
                });
                Ok(Frame::Prices(1))
            }
            "heartbeat" => Ok(Frame::Skip(Skip::Heartbeat)),
            _ => Ok(Frame::Skip(Skip::OtherChannel)),
        };
    }
    if root
        .get("e")
        .and_then(Value::as_str)
        .is_some_and(|e| e != "trade")
        || root.get("t").is_none()
        || root.get("p").is_none()
    {
        // depthUpdate, bookTicker, or a shape that is no trade.
        return Ok(Frame::Skip(Skip::OtherChannel));
    }
    let asset = match pairs.resolve(field::string(&root, "s")?, "s")? {
        Ok(asset) => asset,
        Err(skip) => return Ok(Frame::Skip(skip)),
    };
    let price = field::price(field::required(&root, "p")?, "p")?;
    let nanos = field::required(&root, "E")?;
    let nanos = match nanos {
        Value::Number(n) => n.parse::<u64>().map_err(|_| ParseError::Timestamp("E"))?,
        _ => return Err(ParseError::WrongType("E")),
    };
    out(Update {
        asset,
        price,
        exchange_ms: nanos / 1_000_000,
    });
    Ok(Frame::Prices(1))
}

#[cfg(test)]
mod tests {
    use super::super::Gemini;
    use crate::exchange::testing::render;
    use beast_core::Symbol;

    #[test]
    fn frames() {
        let gemini = Gemini::new(&[Symbol::parse(b"CHILLGUY").unwrap()]);
        let cases: &[(&str, &str)] = &[
            (
                r#"{"E":1795497153123456789,"s":"btcusd","t":2840140800042677,"p":"97012.34","q":"0.00510000","m":false}"#,
                "BTC 97012.34 1795497153123",
            ),
            (
                r#"{"e":"trade","E":1795497153999999999,"s":"chillguyusd","t":1,"p":"77401.500","q":"1","m":true}"#,
                "CHILLGUY 77401.500 1795497153999",
            ),
            (r#"{"id":"1","status":200}"#, "skip Ack"),
            (r#"{"id":"1","status":200,"result":null}"#, "skip Ack"),
            (
                r#"{"id":"4","status":400,"error":{"code":-1013,"msg":"Invalid stream name: nosuchusd@trade"}}"#,
                "skip ExchangeError",
            ),
            (
                r#"{"e":"depthUpdate","E":1,"s":"btcusd","U":1,"u":2,"b":[],"a":[]}"#,
                "skip OtherChannel",
            ),
            (
                r#"{"u":1,"E":1,"s":"btcusd","b":"1","B":"1","a":"2","A":"1"}"#,
                "skip OtherChannel",
            ),
            (
                r#"{"E":1795497153123456789,"s":"btcusdcperp","t":1,"p":"97012.34","q":"1","m":false}"#,
                "skip Derivative",
            ),
            // archived v2 (samples/gemini.jsonl)
            (
                r#"{"type":"trade","symbol":"ANKRUSD","event_id":45465818387,"timestamp":1624493670759,"price":"0.07946","quantity":"1020.482111","side":"buy"}"#,
                "ANKR 0.07946 1624493670759",
            ),
            (
                r#"{"type":"heartbeat","timestamp":1624493666869}"#,
                "skip Heartbeat",
            ),
            (
                r#"{"auction_events":[],"changes":[["buy","77.34","14.3"]],"symbol":"FILUSD","trades":[],"type":"l2_updates"}"#,
                "skip OtherChannel",
            ),
            // malformed
            (
                r#"{"E":1795497153123456789,"s":"btcusd","t":1,"p":97012.34e400,"q":"1","m":false}"#,
                "error field p is not a price: more significant digits than a 64-bit mantissa holds",
            ),
            (
                r#"{"E":"1795497153123456789","s":"btcusd","t":1,"p":"1","q":"1","m":false}"#,
                "error field E has the wrong type",
            ),
            (r#"{"s":"btcusd","t":1,"p":"1"}"#, "error missing field E"),
            (r#"{"E":1,"s":"zecltc","t":1,"p":"1"}"#, "skip UnknownPair"),
            (
                r#"{"E":1,"s":"btc-usd","t":1,"p":"1"}"#,
                "error field s is not a pair this parser knows",
            ),
            (
                r#"{"E":1,"s":null,"t":1,"p":"1"}"#,
                "error field s has the wrong type",
            ),
            (
                r#"{"type":"trade","symbol":"BTCUSD","timestamp":1,"price":{}}"#,
                "error field price has the wrong type",
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(render(&gemini, frame), *expected, "{frame}");
        }
    }
}
