//! REST fallback: `GET /v1/pricefeed`, every pair in one call, no time (receive time used).
//!
//! ```json
//! [{"pair":"BTCUSD","price":"97012.34","percentChange24h":"0.0103"},{"pair":"ETHUSD","price":"3512.5","percentChange24h":"-0.0021"}]
//! ```

use super::symbols::Pairs;
use crate::exchange::{ParseError, Update, field};
use crate::json;

pub fn parse(
    body: &str,
    pairs: &Pairs,
    received_ms: u64,
    out: &mut dyn FnMut(Update),
) -> Result<usize, ParseError> {
    let list = json::parse(body)?
        .as_array()
        .ok_or(ParseError::WrongType("body"))?;
    let mut count = 0;
    for item in list.iter() {
        let item = item.as_object().ok_or(ParseError::WrongType("pricefeed"))?;
        let Ok(Ok(asset)) = pairs.resolve(field::string(&item, "pair")?, "pair") else {
            continue; // a quote or product this oracle does not serve
        };
        let price = field::price(field::required(&item, "price")?, "price")?;
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
    use beast_core::Symbol;

    #[test]
    fn reads_the_price_feed() {
        let pairs = Pairs::new(&[Symbol::parse(b"ETH").unwrap()], "usd");
        let body = r#"[{"pair":"BTCUSD","price":"97012.34","percentChange24h":"0.0103"},{"pair":"ETHUSD","price":"3512.5"},{"pair":"BTCUSDCPERP","price":"1"},{"pair":"ZECLTC","price":"1"}]"#;
        let mut got = Vec::new();
        assert_eq!(
            parse(body, &pairs, 9, &mut |u| got
                .push(format!("{} {}", u.asset, u.price))),
            Ok(2)
        );
        assert_eq!(got, ["BTC 97012.34", "ETH 3512.5"]);
    }
}
