//! REST fallback: `GET /api/v5/market/ticker?instId=TIA-USDT` (or `tickers?instType=SPOT` for
//! every spot pair). Same fields as the stream, with the exchange time `ts`.
//!
//! ```json
//! {"code":"0","msg":"","data":[{"instType":"SPOT","instId":"TIA-USDT","last":"5.812","ts":"1795497153123"}]}
//! ```

use crate::exchange::{ParseError, Update, field};
use crate::json;

pub fn parse(body: &str, out: &mut dyn FnMut(Update)) -> Result<usize, ParseError> {
    let root = json::parse(body)?
        .as_object()
        .ok_or(ParseError::WrongType("body"))?;
    if root
        .get("code")
        .and_then(json::Value::as_str)
        .is_some_and(|c| c != "0")
    {
        return Ok(0);
    }
    let mut count = 0;
    for item in field::array(&root, "data")?.iter() {
        let item = item.as_object().ok_or(ParseError::WrongType("data"))?;
        let inst = field::string(&item, "instId")?;
        if !inst.ends_with("-USDT") || !super::tickers::is_spot(&item, inst) {
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
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tickers() {
        let body = r#"{"code":"0","msg":"","data":[{"instType":"SPOT","instId":"TIA-USDT","last":"5.812","ts":"1795497153123"},{"instType":"SPOT","instId":"BTC-EUR","last":"1","ts":"1"}]}"#;
        let mut got = Vec::new();
        assert_eq!(
            parse(body, &mut |u| got
                .push(format!("{} {} {}", u.asset, u.price, u.exchange_ms))),
            Ok(1)
        );
        assert_eq!(got, ["TIA 5.812 1795497153123"]);
        assert_eq!(
            parse(
                r#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#,
                &mut |_| {}
            ),
            Ok(0)
        );
    }
}
