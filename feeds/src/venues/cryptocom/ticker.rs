//! The `ticker.{instrument}` channel.
//!
//! ```json
//! {"id":-1,"method":"subscribe","code":0,"result":{"instrument_name":"TON_USDT","subscription":"ticker.TON_USDT","channel":"ticker","data":[{"i":"TON_USDT","h":"5.6200","l":"5.3810","a":"5.5120","v":"1250031.22","vv":"6890413.51","c":"0.0213","b":"5.5110","bs":"410.5","k":"5.5130","ks":"1200.0","oi":"0","t":1795497153123}]}}
//! ```
//!
//! Price `result.data[].a` (a string in v1, a number token in the v2 frames of
//! samples/cryptocom.jsonl; `null` until the instrument trades), asset from `data[].i`, time
//! `data[].t` in ms. `public/heartbeat` must be answered (the caller does it); any non-zero
//! `code` is an exchange error; a `code` 0 frame without `result` is an acknowledgement.

use crate::exchange::{Frame, ParseError, Skip, Update, field};
use crate::json::{self, Value};

pub fn parse(frame: &str, out: &mut dyn FnMut(Update)) -> Result<Frame, ParseError> {
    let root = json::parse(frame)?
        .as_object()
        .ok_or(ParseError::WrongType("frame"))?;
    if root.get("method").and_then(Value::as_str) == Some("public/heartbeat") {
        let id = field::required(&root, "id")?
            .as_u64()
            .ok_or(ParseError::WrongType("id"))?;
        return Ok(Frame::Skip(Skip::HeartbeatRequest(id)));
    }
    if let Some(code) = root.get("code")
        && code.as_u64().ok_or(ParseError::WrongType("code"))? != 0
    {
        return Ok(Frame::Skip(Skip::ExchangeError));
    }
    let Some(result) = root.get("result") else {
        return Ok(Frame::Skip(Skip::Ack));
    };
    let result = result.as_object().ok_or(ParseError::WrongType("result"))?;
    if field::string(&result, "channel")? != "ticker" {
        return Ok(Frame::Skip(Skip::OtherChannel));
    }
    let mut count = 0;
    for item in field::array(&result, "data")?.iter() {
        let item = item.as_object().ok_or(ParseError::WrongType("data"))?;
        let last = field::required(&item, "a")?;
        if last.is_null() {
            continue;
        }
        let asset = match item.get("i") {
            Some(i) => field::base(i.as_str().ok_or(ParseError::WrongType("i"))?, '_', "i")?,
            None => field::base(
                field::string(&result, "instrument_name")?,
                '_',
                "instrument_name",
            )?,
        };
        let price = field::price(last, "a")?;
        let exchange_ms = field::millis(field::required(&item, "t")?, "t")?;
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
    use super::super::Cryptocom;
    use crate::exchange::testing::render;

    #[test]
    fn frames() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"id":-1,"method":"subscribe","code":0,"result":{"instrument_name":"TON_USDT","subscription":"ticker.TON_USDT","channel":"ticker","data":[{"i":"TON_USDT","h":"5.6200","l":"5.3810","a":"5.5120","v":"1250031.22","vv":"6890413.51","c":"0.0213","b":"5.5110","bs":"410.5","k":"5.5130","ks":"1200.0","oi":"0","t":1795497153123}]}}"#,
                "TON 5.5120 1795497153123",
            ),
            // v2 recording: numbers, trailing zeros kept
            (
                r#"{"code":0,"method":"subscribe","result":{"instrument_name":"BAND_USDT","subscription":"ticker.BAND_USDT","channel":"ticker","data":[{"i":"BAND_USDT","b":7.5248,"k":7.5328,"a":45.330,"t":1637709517473,"v":35912.66}]}}"#,
                "BAND 45.330 1637709517473",
            ),
            (
                r#"{"id":1,"method":"subscribe","code":0,"result":{"instrument_name":"NEW_USDT","channel":"ticker","data":[{"i":"NEW_USDT","a":null,"b":null,"k":null,"t":1}]}}"#,
                "skip NoPrice",
            ),
            (
                r#"{"id":1795497180000,"method":"public/heartbeat","code":0}"#,
                "skip HeartbeatRequest(1795497180000)",
            ),
            (
                r#"{"id":1637709519420,"method":"public/heartbeat"}"#,
                "skip HeartbeatRequest(1637709519420)",
            ),
            (r#"{"id":0,"code":0,"method":"subscribe"}"#, "skip Ack"),
            (
                r#"{"id":1,"method":"subscribe","code":0,"channel":"book.TON_USDT.50"}"#,
                "skip Ack",
            ),
            (
                r#"{"id":11,"method":"subscribe","code":40003,"channel":"ticker.FOO_USDT","message":"Unknown symbol"}"#,
                "skip ExchangeError",
            ),
            (
                r#"{"code":0,"method":"subscribe","result":{"instrument_name":"MATIC_USDT","subscription":"trade.MATIC_USDT","channel":"trade","data":[{"p":1.75445}]}}"#,
                "skip OtherChannel",
            ),
            // malformed
            (
                r#"{"id":-1,"code":0,"result":{"channel":"ticker","data":[{"i":"TON_USDT","a":"five","t":1}]}}"#,
                "error field a is not a price: unexpected byte 0x66 at offset 0",
            ),
            (
                r#"{"id":-1,"code":0,"result":{"channel":"ticker","data":[{"i":"TON_USDT","a":"5.5","t":"soon"}]}}"#,
                "error field t is not a timestamp",
            ),
            (
                r#"{"id":-1,"code":0,"result":{"channel":"ticker","data":[{"i":"TON_USDT","t":1}]}}"#,
                "error missing field a",
            ),
            (
                r#"{"id":-1,"code":"0","result":{}}"#,
                "error field code has the wrong type",
            ),
            (
                r#"{"method":"public/heartbeat","id":"x"}"#,
                "error field id has the wrong type",
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(render(&Cryptocom, frame), *expected, "{frame}");
        }
    }
}
