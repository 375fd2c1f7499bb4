//! The `tickers` channel.
//!
//! ```json
//! {"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[{"instType":"SPOT","instId":"TIA-USDT","last":"5.812","lastSz":"12.5","askPx":"5.813","askSz":"220","bidPx":"5.811","bidSz":"41.2","open24h":"5.64","high24h":"5.92","low24h":"5.55","volCcy24h":"4813290.12","vol24h":"831244.1","sodUtc0":"5.70","sodUtc8":"5.66","ts":"1795497153123"}]}
//! ```
//!
//! Price `data[].last`, asset from `data[].instId`, time `data[].ts` (ms, a string). Perpetual
//! and dated futures (`-SWAP`, `-220527`, `instType` other than `SPOT`) are not spot prices.
//! The plain-text `pong` answers our `ping`; `event` frames are acknowledgements, errors and
//! notices; other channels are skipped.

use crate::exchange::{Frame, ParseError, Skip, Update, field};
use crate::json::{self, Object, Value};

pub fn parse(frame: &str, out: &mut dyn FnMut(Update)) -> Result<Frame, ParseError> {
    if frame == "pong" {
        return Ok(Frame::Skip(Skip::Heartbeat));
    }
    let root = json::parse(frame)?
        .as_object()
        .ok_or(ParseError::WrongType("frame"))?;
    if let Some(event) = root.get("event") {
        return Ok(Frame::Skip(
            match event.as_str().ok_or(ParseError::WrongType("event"))? {
                "error" => Skip::ExchangeError,
                "notice" | "channel-conn-count" | "channel-conn-count-error" => Skip::Notice,
                _ => Skip::Ack,
            },
        ));
    }
    let arg = field::required(&root, "arg")?
        .as_object()
        .ok_or(ParseError::WrongType("arg"))?;
    if field::string(&arg, "channel")? != "tickers" {
        return Ok(Frame::Skip(Skip::OtherChannel));
    }
    let (mut count, mut derivatives) = (0, 0);
    for item in field::array(&root, "data")?.iter() {
        let item = item.as_object().ok_or(ParseError::WrongType("data"))?;
        let inst = field::string(&item, "instId")?;
        if !is_spot(&item, inst) {
            derivatives += 1;
            continue;
        }
        let asset = field::base(inst, '-', "instId")?;
        let price = field::price(field::required(&item, "last")?, "last")?;
        let exchange_ms = field::millis(field::required(&item, "ts")?, "ts")?;
        out(Update {
            asset,
            price,
            exchange_ms,
        });
        count += 1;
    }
    Ok(match (count, derivatives) {
        (0, 0) => Frame::Skip(Skip::NoPrice),
        (0, _) => Frame::Skip(Skip::Derivative),
        (n, _) => Frame::Prices(n),
    })
}

/// `BASE-QUOTE` with `instType` SPOT (or absent); `BTC-USD-SWAP`, `BTC-USD-220527` are not.
pub(super) fn is_spot(item: &Object<'_>, inst: &str) -> bool {
    let spot_type = item
        .get("instType")
        .and_then(Value::as_str)
        .is_none_or(|t| t == "SPOT");
    spot_type && inst.matches('-').count() == 1
}

#[cfg(test)]
mod tests {
    use super::super::Okx;
    use crate::exchange::testing::render;

    #[test]
    fn frames() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[{"instType":"SPOT","instId":"TIA-USDT","last":"5.812","lastSz":"12.5","askPx":"5.813","bidPx":"5.811","open24h":"5.64","ts":"1795497153123"}]}"#,
                "TIA 5.812 1795497153123",
            ),
            (
                r#"{"arg":{"channel":"tickers","instId":"W-USDT"},"data":[{"instId":"W-USDT","last":"0.3318","ts":"1"},{"instId":"1INCH-USDT","last":"0.47050","ts":"2"}]}"#,
                "W 0.3318 1 | 1INCH 0.47050 2",
            ),
            (
                r#"{"arg":{"channel":"tickers","instId":"BTC-USD-220527"},"data":[{"instType":"FUTURES","instId":"BTC-USD-220527","last":"30218.8","ts":"1652459223003"}]}"#,
                "skip Derivative",
            ),
            (
                r#"{"arg":{"channel":"tickers","instId":"UNI-USD-SWAP"},"data":[{"instId":"UNI-USD-SWAP","last":"5","ts":"1"}]}"#,
                "skip Derivative",
            ),
            ("pong", "skip Heartbeat"),
            (
                r#"{"id":"1","event":"subscribe","arg":{"channel":"tickers","instId":"TIA-USDT"},"connId":"a4d3ae55"}"#,
                "skip Ack",
            ),
            (
                r#"{"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"}}"#,
                "skip Ack",
            ),
            (
                r#"{"id":"1","event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}"#,
                "skip ExchangeError",
            ),
            (
                r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"x"}"#,
                "skip Notice",
            ),
            (
                r#"{"event":"channel-conn-count","channel":"tickers","connCount":"2","connId":"x"}"#,
                "skip Notice",
            ),
            (
                r#"{"arg":{"channel":"trades","instId":"TIA-USDT"},"data":[{"instId":"TIA-USDT","px":"5.812","ts":"1"}]}"#,
                "skip OtherChannel",
            ),
            (
                r#"{"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[]}"#,
                "skip NoPrice",
            ),
            // malformed
            (
                r#"{"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[{"instId":"TIA-USDT","last":"5.812","ts":"yesterday"}]}"#,
                "error field ts is not a timestamp",
            ),
            (
                r#"{"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[{"instId":"TIA-USDT","last":5,"ts":true}]}"#,
                "error field ts has the wrong type",
            ),
            (
                r#"{"arg":{"channel":"tickers","instId":"TIA-USDT"},"data":[{"instId":"TIA-USDT","last":"NaN","ts":"1"}]}"#,
                "error field last is not a price: not a finite number",
            ),
            (r#"{"data":[]}"#, "error missing field arg"),
            ("ping", "error invalid JSON at byte 0"),
        ];
        for (frame, expected) in cases {
            assert_eq!(render(&Okx, frame), *expected, "{frame}");
        }
    }
}
