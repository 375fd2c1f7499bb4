//! REST fallback: `GET /spot/tickers?currency_pair=BNB_USDT` (or every pair without the
//! parameter), no time (receive time used).
//!
//! ```json
//! [{"currency_pair":"BNB_USDT","last":"912.34","lowest_ask":"912.35","highest_bid":"912.33","change_percentage":"1.27","base_volume":"81234.1","quote_volume":"74125678.29","high_24h":"918.02","low_24h":"897.44"}]
//! ```

use crate::exchange::{ParseError, Update, field};
use crate::json;

pub fn parse(
    body: &str,
    received_ms: u64,
    out: &mut dyn FnMut(Update),
) -> Result<usize, ParseError> {
    // Errors arrive as {"label":"INVALID_CURRENCY_PAIR","message":"..."} with a 4xx status.
    let Some(list) = json::parse(body)?.as_array() else {
        return Ok(0);
    };
    let mut count = 0;
    for item in list.iter() {
        let item = item.as_object().ok_or(ParseError::WrongType("tickers"))?;
        let pair = field::string(&item, "currency_pair")?;
        if !pair.ends_with("_USDT") {
            continue;
        }
        let asset = field::base(pair, '_', "currency_pair")?;
        let price = field::price(field::required(&item, "last")?, "last")?;
        out(Update {
            asset,
            price,
            exchange_ms: received_ms,
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
        let body = r#"[{"currency_pair":"BNB_USDT","last":"912.34"},{"currency_pair":"NEO_BTC","last":"0.0018"},{"currency_pair":"HOT_USDT","last":"0.0012100"}]"#;
        let mut got = Vec::new();
        assert_eq!(
            parse(body, 1, &mut |u| got
                .push(format!("{} {}", u.asset, u.price))),
            Ok(2)
        );
        assert_eq!(got, ["BNB 912.34", "HOT 0.0012100"]);
        assert_eq!(
            parse(
                r#"{"label":"INVALID_CURRENCY_PAIR","message":"x"}"#,
                1,
                &mut |_| {}
            ),
            Ok(0)
        );
    }
}
