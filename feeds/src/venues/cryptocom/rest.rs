//! REST fallback: `GET /public/get-tickers?instrument_name=TON_USDT` (every instrument without
//! the parameter). Same fields as the stream, with the exchange time `t`.
//!
//! ```json
//! {"id":-1,"method":"public/get-tickers","code":0,"result":{"data":[{"i":"TON_USDT","h":"5.62","l":"5.38","a":"5.5120","v":"1","vv":"1","c":"0.02","b":"5.51","k":"5.52","oi":"0","t":1795497153123}]}}
//! ```

use crate::exchange::{ParseError, Update, field};
use crate::json;

pub fn parse(
    body: &str,
    _received_ms: u64,
    out: &mut dyn FnMut(Update),
) -> Result<usize, ParseError> {
    let root = json::parse(body)?
        .as_object()
        .ok_or(ParseError::WrongType("body"))?;
    if root
        .get("code")
        .and_then(json::Value::as_u64)
        .is_some_and(|c| c != 0)
    {
        return Ok(0);
    }
    let result = field::required(&root, "result")?
        .as_object()
        .ok_or(ParseError::WrongType("result"))?;
    let mut count = 0;
    for item in field::array(&result, "data")?.iter() {
        let item = item.as_object().ok_or(ParseError::WrongType("data"))?;
        let name = field::string(&item, "i")?;
        let last = field::required(&item, "a")?;
        if !name.ends_with("_USDT") || last.is_null() {
            continue;
        }
        let asset = field::base(name, '_', "i")?;
        let price = field::price(last, "a")?;
        let exchange_ms = field::millis(field::required(&item, "t")?, "t")?;
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
        let body = r#"{"id":-1,"method":"public/get-tickers","code":0,"result":{"data":[{"i":"TON_USDT","a":"5.5120","t":1795497153123},{"i":"BTCUSD-PERP","a":"1","t":1},{"i":"NEW_USDT","a":null,"t":1}]}}"#;
        let mut got = Vec::new();
        assert_eq!(
            parse(body, 0, &mut |u| got
                .push(format!("{} {} {}", u.asset, u.price, u.exchange_ms))),
            Ok(1)
        );
        assert_eq!(got, ["TON 5.5120 1795497153123"]);
        assert_eq!(
            parse(r#"{"code":40003,"message":"x"}"#, 0, &mut |_| {}),
            Ok(0)
        );
    }
}
